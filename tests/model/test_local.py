from __future__ import annotations

import pytest
import torch

from trainerbot.errors import NotAvailable
from trainerbot.model.build import ModelShape, new_model, train_tokenizer
from trainerbot.model.fastdecode import LlamaDecoder, supports
from trainerbot.model.files import DONE_MARKER
from trainerbot.model.local import LocalModel, ModelHub

TEXTS = ["What is the capital of Zorbia?", "The capital of Zorbia is Quillport.", "Где Кворпорт?"] * 10


def _saved(tmp_path, kv_heads: int = 2, done: bool = True):  # type: ignore[no-untyped-def]
    tok = train_tokenizer(TEXTS, 300)
    torch.manual_seed(0)
    model = new_model(tok, ModelShape(vocab_size=300, hidden_size=64, layers=2, heads=2, max_positions=64))
    if kv_heads != 2:
        from transformers import LlamaConfig, LlamaForCausalLM
        cfg = LlamaConfig(**{**model.config.to_dict(), "num_key_value_heads": kv_heads, "num_attention_heads": 4})
        model = LlamaForCausalLM(cfg)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    if done:
        (tmp_path / DONE_MARKER).write_text("{}")
    return model, tok


@pytest.mark.parametrize("kv_heads", [2, 1], ids=["mha", "gqa"])
def test_fast_decoder_matches_the_hugging_face_forward(tmp_path, kv_heads: int) -> None:
    model, _ = _saved(tmp_path, kv_heads)
    model.eval()
    assert supports(model)
    fast = LlamaDecoder(model)
    ids = [5, 17, 42, 8, 99, 3]
    caches = fast.new_caches()
    ours = fast.forward(torch.tensor(ids), 0, caches)
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor([ids])).logits[0, -1]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    # one more token through the cache equals the full forward of the longer sequence
    ours_next = fast.forward(torch.tensor([7]), len(ids), caches)
    with torch.no_grad():
        theirs_next = model(input_ids=torch.tensor([ids + [7]])).logits[0, -1]
    torch.testing.assert_close(ours_next, theirs_next, atol=1e-4, rtol=1e-4)


def test_greedy_output_is_the_same_as_generate(tmp_path) -> None:
    model, tok = _saved(tmp_path)
    local = LocalModel(tmp_path)
    assert local.weights.fast is not None
    ids = local.encode([{"role": "user", "content": "What is the capital of Zorbia?"}], 20)
    ours = local.generate_ids(ids, 20, min_new_tokens=20)
    with torch.no_grad():
        theirs = model.eval().generate(torch.tensor([ids]), max_new_tokens=20, min_new_tokens=20, do_sample=False,
                                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)[0, len(ids):].tolist()
    assert ours == theirs
    local.weights.fast = None  # the model's own forward with its cache gives the same
    assert local.generate_ids(ids, 20, min_new_tokens=20) == theirs


def test_history_is_trimmed_to_fit_the_context(tmp_path) -> None:
    _saved(tmp_path)
    local = LocalModel(tmp_path)
    long = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "The capital of Zorbia is Quillport. " * 3} for i in range(20)
    ]
    ids = local.encode(long + [{"role": "user", "content": "Where?"}], 16)
    assert len(ids) <= 64 - 16
    assert isinstance(local.reply(long, max_new_tokens=16), str)


def test_an_incomplete_folder_is_never_served(tmp_path) -> None:
    _saved(tmp_path, done=False)
    with pytest.raises(NotAvailable, match="incomplete"):
        LocalModel(tmp_path)


def test_hub_keeps_a_bounded_number_of_models(tmp_path) -> None:
    folders = []
    for i in range(3):
        folder = tmp_path / f"m{i}"
        folder.mkdir()
        _saved(folder)
        folders.append(folder)
    hub = ModelHub(capacity=2)
    first = hub.get(folders[0])
    assert hub.get(folders[0]) is first
    hub.get(folders[1])
    hub.get(folders[2])
    assert len(hub._models) == 2 and folders[0] not in hub._models


def _adapter(tmp_path, kv_heads: int = 1):  # type: ignore[no-untyped-def]
    """A tiny base and a LoRA adapter on every projection, with B not zero (as after training)."""
    from peft import LoraConfig, get_peft_model

    base_dir = tmp_path / "base"
    model, _ = _saved(base_dir, kv_heads)
    torch.manual_seed(1)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    peft = get_peft_model(model, config)
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.2)
    adapter_dir = tmp_path / "guilds" / "g" / "models" / "job-1"
    peft.save_pretrained(adapter_dir)
    import json

    from trainerbot.model.files import relative_base

    (adapter_dir / DONE_MARKER).write_text(json.dumps({"base_dir": relative_base(adapter_dir, base_dir)}))
    return peft, base_dir, adapter_dir


@pytest.mark.parametrize("kv_heads", [2, 1], ids=["mha", "gqa"])
def test_an_applied_adapter_gives_the_merged_models_logits(tmp_path, kv_heads: int) -> None:
    peft, base_dir, adapter_dir = _adapter(tmp_path, kv_heads)
    merged = peft.merge_and_unload().eval()
    local = LocalModel(adapter_dir)
    assert local.adapter is not None and local.weights.folder == base_dir.resolve()
    ids = [5, 17, 42, 8, 99, 3]
    ours = local.weights.fast.logits(ids, local.adapter)
    with torch.no_grad():
        theirs = merged(input_ids=torch.tensor([ids])).logits[0]
        plain = LocalModel(base_dir).weights.fast.logits(ids)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert (plain - theirs).abs().max() > 1e-2  # the adapter really changes the answer
    with torch.no_grad():
        ids_out = merged.generate(torch.tensor([ids]), max_new_tokens=8, min_new_tokens=8, do_sample=False)[
            0, len(ids) :
        ].tolist()
    assert local.generate_ids(ids, 8, min_new_tokens=8) == ids_out


def test_adapter_versions_share_one_base_in_the_hub(tmp_path) -> None:
    _, base_dir, adapter_dir = _adapter(tmp_path)
    hub = ModelHub(capacity=2)
    a = hub.get(adapter_dir)
    b = hub.get(base_dir)
    assert a.weights is b.weights and a.adapter is not None and b.adapter is None
