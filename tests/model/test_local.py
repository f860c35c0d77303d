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
    assert local.fast is not None
    ids = local.encode([{"role": "user", "content": "What is the capital of Zorbia?"}], 20)
    ours = local.generate_ids(ids, 20, min_new_tokens=20)
    with torch.no_grad():
        theirs = model.eval().generate(torch.tensor([ids]), max_new_tokens=20, min_new_tokens=20, do_sample=False,
                                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)[0, len(ids):].tolist()
    assert ours == theirs
    local.fast = None  # the model's own forward with its cache gives the same
    assert local.generate_ids(ids, 20, min_new_tokens=20) == theirs


def test_history_is_trimmed_to_fit_the_context(tmp_path) -> None:
    _saved(tmp_path)
    local = LocalModel(tmp_path)
    long = [{"role": "user" if i % 2 == 0 else "assistant", "content": "The capital of Zorbia is Quillport. " * 3} for i in range(20)]
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
