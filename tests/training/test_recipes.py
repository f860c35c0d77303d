"""Real training steps with TRL on a tiny model: SFT lowers the loss; KTO and DPO run; cancel stops."""

from __future__ import annotations

import dataclasses
import math
import os
import types

import pytest
import torch

from trainerbot.config import Settings, TrainingSettings
from trainerbot.datasets.records import Example
from trainerbot.datasets.sample import generate
from trainerbot.errors import BadInput
from trainerbot.model.build import ModelShape, new_model, train_tokenizer
from trainerbot.training import dpo, kto, packed, runner, sft
from trainerbot.training.common import JobCallback, Progress, TrainParams, training_attention

TINY = ModelShape(vocab_size=400, hidden_size=64, layers=2, heads=2, max_positions=128)


def _tiny(examples: list[Example]):  # type: ignore[no-untyped-def]
    tok = train_tokenizer([t for e in examples for t in (e.prompt, e.response)], TINY.vocab_size)
    return new_model(tok, TINY), tok


def _loss_and_grads(net: torch.nn.Module, compute) -> tuple[float, list[torch.Tensor]]:  # type: ignore[no-untyped-def]
    """``compute()``'s loss, and the gradients it leaves on ``net``'s trained parameters."""
    net.zero_grad()
    loss = compute()
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in net.parameters() if p.requires_grad]


def _callback(stop_after: int | None = None) -> tuple[JobCallback, list[Progress]]:
    seen: list[Progress] = []
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return stop_after is not None and calls["n"] > stop_after
    return JobCallback(seen.append, should_stop, check_every=0.0), seen


def test_sft_loss_falls_and_progress_is_reported(tmp_path) -> None:
    examples = generate(8, seed=3)
    model, tok = _tiny(examples)
    callback, seen = _callback()
    params = TrainParams(epochs=40, batch_size=8, learning_rate=3e-3, warmup_steps=5, logging_steps=5)
    _, result = sft.train(model, tok, examples, params, callback, str(tmp_path / "out"))
    assert not result.cancelled and result.steps == 40
    first, last = result.losses[0][1], result.losses[-1][1]
    assert last < first * 0.5, result.losses
    assert seen[-1].step == 40 and seen[-1].total_steps == 40
    assert all(p.learning_rate is not None and p.tokens_per_s for p in seen[:-1])


def test_a_small_job_warms_up_over_a_tenth_of_its_steps_and_ends_below_its_peak_rate(tmp_path) -> None:
    """32 steps under the default warm-up (at most 30 steps): the rate peaks by step 4 and
    the cosine brings it down by the end. (Warming up over 30 of 32 steps ended a 10-fact
    job at its peak rate.)"""
    examples = generate(8, seed=3)
    model, tok = _tiny(examples)
    callback, seen = _callback()
    _, result = sft.train(model, tok, examples, TrainParams(epochs=16, batch_size=4, learning_rate=2e-3, logging_steps=1),
                          callback, str(tmp_path / "out"))
    rates = {p.step: p.learning_rate for p in seen if p.learning_rate is not None}
    assert result.steps == 32 and max(rates, key=lambda step: rates[step]) <= 5, rates
    assert max(rates.values()) == pytest.approx(2e-3, rel=0.05) and rates[max(rates)] < 2e-4


def test_sft_only_counts_the_answer(tmp_path) -> None:
    examples = generate(4, seed=4)
    rows = sft.rows(examples + [Example(prompt="bad", response="worse", label="negative")])
    assert len(rows) == 4 and rows[0]["completion"][0]["role"] == "assistant"


@pytest.mark.parametrize("lora", [False, True])
def test_answer_loss_is_the_loss_trl_and_the_model_compute(tmp_path, lora: bool) -> None:
    """The CPU loss that projects only answer positions equals TRL's own loss and the
    model's full-logit loss on the same batch, and gives the same gradients (under LoRA
    only the adapter's), while the trainer still counts the tokens it saw."""
    from peft import LoraConfig

    examples = generate(6, seed=5)
    model, tok = _tiny(examples)
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM") if lora else None
    params = TrainParams(epochs=1, batch_size=6, warmup_steps=0)
    trainer = sft.trainer(model, tok, examples, params, _callback()[0], str(tmp_path / "out"), peft_config)
    assert isinstance(trainer, sft.AnswerLossTrainer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(examples))])
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    answers = sum(len(tok(e.response)["input_ids"]) for e in examples)
    # the answers and their end-of-turn tokens: prompts and padding are left out
    assert answers <= labelled <= answers + 2 * len(examples) < int(batch["attention_mask"].sum())
    net = trainer.model
    net.train()

    ours = _loss_and_grads(net, lambda: trainer.compute_loss(net, dict(batch)))
    assert trainer._metrics["train"]["num_tokens"] == [int(batch["attention_mask"].sum())]
    trl = _loss_and_grads(net, lambda: sft.SFTTrainer.compute_loss(trainer, net, dict(batch)))
    full = _loss_and_grads(net, lambda: net(**batch).loss)
    assert ours[0] > 1.0 and math.isclose(ours[0], trl[0], rel_tol=1e-4) and math.isclose(ours[0], full[0], rel_tol=1e-4)
    assert len(ours[1]) == (4 * TINY.layers if lora else len(list(model.parameters())))
    for a, b, c in zip(ours[1], trl[1], full[1], strict=True):
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, c, atol=1e-5)


def test_rows_sharing_their_opening_run_it_once_with_the_same_loss_and_gradients(tmp_path) -> None:
    """A batch whose rows open alike (the system instruction) runs as one sequence, the opening
    once: the trainer's loss and the adapter's gradients are TRL's on the padded rows, with
    fewer tokens through the layers."""
    from peft import LoraConfig

    examples = [dataclasses.replace(e, system="You answer questions about the test server, briefly and kindly.")
                for e in generate(6, seed=5)]
    model, tok = _tiny(examples)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = sft.trainer(model, tok, examples, TrainParams(epochs=1, batch_size=6, warmup_steps=0), _callback()[0],
                          str(tmp_path / "out"), lora)
    batch = dict(trainer.data_collator([trainer.train_dataset[i] for i in range(len(examples))]))
    packed = sft.shared_prefix(batch)
    assert packed is not None
    lengths = batch["attention_mask"].sum(1).tolist()
    shared = (sum(lengths) - packed["input_ids"].shape[1]) // (len(lengths) - 1)  # packed: the opening, then each row's rest
    assert shared >= sft.MIN_SHARED and packed["input_ids"].shape[1] == shared + sum(n - shared for n in lengths)
    assert packed["position_ids"][0, shared].item() == shared and packed["position_ids"][0, -1].item() == lengths[-1] - 1
    net = trainer.model
    net.train()

    ours = _loss_and_grads(net, lambda: trainer.compute_loss(net, dict(batch)))
    assert trainer.tokens_run == packed["input_ids"].shape[1] < sum(lengths)
    trl = _loss_and_grads(net, lambda: sft.SFTTrainer.compute_loss(trainer, net, dict(batch)))
    assert ours[0] > 1.0 and math.isclose(ours[0], trl[0], rel_tol=1e-5)
    for a, b in zip(ours[1], trl[1], strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # a row labelled right after the opening: the opening shrinks by one, the loss stays the rows'
    labelled = {**batch, "labels": batch["labels"].clone()}
    labelled["labels"][1, shared] = batch["input_ids"][1, shared]
    shorter = sft.shared_prefix(labelled)
    assert shorter is not None and shorter["input_ids"].shape[1] == packed["input_ids"].shape[1] + len(lengths) - 1
    with torch.no_grad():
        assert math.isclose(float(sft.answer_loss(net, labelled, packed=shorter)), float(sft.answer_loss(net, labelled)),
                            rel_tol=1e-5)
    # not packed: one row; padding first; an opening shorter than MIN_SHARED; with the setting off
    assert sft.shared_prefix({k: v[:1] for k, v in batch.items()}) is None
    assert sft.shared_prefix({k: v.flip(1) for k, v in batch.items()}) is None
    cut = {k: v[:, shared - sft.MIN_SHARED + 1:] for k, v in batch.items()}
    assert sft.shared_prefix(cut) is None
    trainer.share_prefix = False
    trainer.tokens_run = 0
    with torch.no_grad():
        trainer.compute_loss(net, dict(batch))
    assert trainer.tokens_run == sum(lengths)


def test_a_frozen_head_is_cast_to_bf16_once_and_the_loss_is_autocasts(tmp_path) -> None:
    """Under bf16 with LoRA the LM head (the tied embeddings, float32) is frozen: the loss
    multiplies by its bf16 copy, made once, and gives the loss and adapter gradients that
    autocast's cast at every step gave. A head that trains is used as it is."""
    from peft import LoraConfig

    examples = generate(6, seed=5)
    model, tok = _tiny(examples)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    params = TrainParams(epochs=1, batch_size=6, warmup_steps=0, lora=True, bf16=True)
    trainer = sft.trainer(model, tok, examples, params, _callback()[0], str(tmp_path / "out"), lora)
    batch = dict(trainer.data_collator([trainer.train_dataset[i] for i in range(len(examples))]))
    net = trainer.model
    net.train()
    head = net.get_base_model().get_output_embeddings().weight
    assert head.dtype == torch.float32 and not head.requires_grad

    ours = _loss_and_grads(net, lambda: trainer.compute_loss(net, dict(batch)))
    assert trainer._head_bf16 is not None
    copy = trainer._head_bf16[2]
    assert copy.dtype == torch.bfloat16 and torch.equal(copy, head.detach().to(torch.bfloat16))
    again = _loss_and_grads(net, lambda: trainer.compute_loss(net, dict(batch)))
    assert trainer._head_bf16[2] is copy  # not cast again
    with trainer.accelerator.autocast():
        autocast = _loss_and_grads(net, lambda: sft.answer_loss(net, dict(batch)))
    assert ours[0] == autocast[0] == again[0]
    assert all(torch.equal(a, b) for a, b in zip(ours[1], autocast[1], strict=True))
    # the FLOP count for the Trainer's logs, its parameters counted once: the Trainer's own figure
    assert trainer.floating_point_ops(batch) == sft.SFTTrainer.floating_point_ops(trainer, batch) > 0
    model, tok = _tiny(examples)
    full = sft.trainer(model, tok, examples, TrainParams(epochs=1, batch_size=6, bf16=True), _callback()[0], str(tmp_path / "f"))
    with full.accelerator.autocast():
        assert full._frozen_head(full.model) is None  # trained: autocast casts it at every step, as before


def test_kto_and_dpo_train_from_a_model(tmp_path) -> None:
    examples = generate(6, seed=5)
    model, tok = _tiny(examples)
    model, _ = sft.train(
        model, tok, examples, TrainParams(epochs=5, batch_size=8, warmup_steps=1), _callback()[0], str(tmp_path / "a")
    )
    rated = [Example(prompt=e.prompt, response=e.response, label="positive") for e in examples[:3]] + [
        Example(prompt=e.prompt, response="I do not know.", label="negative") for e in examples[3:]
    ]
    params = TrainParams(epochs=2, batch_size=4, learning_rate=5e-4, warmup_steps=1, logging_steps=1)
    model, result = kto.train(model, tok, rated, params, _callback()[0], str(tmp_path / "k"))
    assert result.steps > 0 and all(math.isfinite(v) for _, v in result.losses)
    pairs = [Example(prompt=e.prompt, response=e.response, rejected="Nobody knows.") for e in examples]
    _, result = dpo.train(model, tok, pairs, params, _callback()[0], str(tmp_path / "d"))
    assert result.steps > 0 and all(math.isfinite(v) for _, v in result.losses)


def test_kto_weighs_a_one_sided_pile_of_votes_down() -> None:
    """TRL's guidance: desirable_weight × #👍 over undesirable_weight × #👎 in [1, 4/3]."""
    from trainerbot.training.kto_config import BALANCE, balanced_weights

    for good, bad in ((18, 2), (2, 18), (9, 1), (1, 9), (5, 4), (4, 5), (7, 3)):
        d, u = balanced_weights(good, bad)
        assert BALANCE[0] - 1e-9 <= d * good / (u * bad) <= BALANCE[1] + 1e-9 and max(d, u) == 1.0
    assert balanced_weights(18, 2) == pytest.approx((4 / 27, 1.0)) and balanced_weights(1, 9) == pytest.approx((1.0, 1 / 9))
    assert balanced_weights(5, 4) == (1.0, 1.0) and balanced_weights(3, 0) == (1.0, 1.0)


def test_the_reference_of_a_model_a_trainer_ran_is_a_copy_that_stays_put(tmp_path) -> None:
    """After a trainer has run a model, Accelerate's forward wrapper sits on it as an instance
    attribute; a deep copy of it would still run the original's forward, so KTO's and DPO's
    reference would move with the policy."""
    from trainerbot.training.common import reference

    examples = generate(6, seed=5)
    model, tok = _tiny(examples)
    model, _ = sft.train(model, tok, examples, TrainParams(epochs=2, batch_size=8, warmup_steps=1), _callback()[0],
                         str(tmp_path / "a"))
    ref = reference(model, None)
    ids = torch.tensor([[1, 5, 9, 12, 3]])
    with torch.no_grad():
        before = ref(input_ids=ids).logits.clone()
        for p in model.parameters():
            p.add_(0.5)  # the policy moves …
        assert torch.equal(ref(input_ids=ids).logits, before)  # … the reference does not
        assert not torch.equal(model(input_ids=ids).logits, before)


def test_recipes_refuse_data_they_cannot_use(tmp_path) -> None:
    examples = generate(2, seed=6)
    model, tok = _tiny(examples)
    with pytest.raises(BadInput, match="DPO needs approved corrections"):
        dpo.train(model, tok, examples, TrainParams(), _callback()[0], str(tmp_path / "d"))


def test_should_stop_ends_training_early(tmp_path) -> None:
    examples = generate(8, seed=7)
    model, tok = _tiny(examples)
    callback, _ = _callback(stop_after=3)
    _, result = sft.train(
        model, tok, examples, TrainParams(epochs=100, batch_size=8, warmup_steps=1), callback, str(tmp_path / "o")
    )
    assert result.cancelled and result.steps == 4


def test_sft_trains_in_bfloat16_mixed_precision(tmp_path) -> None:
    """bf16=True runs the Trainer's CPU autocast: the loss still falls and the weights stay float32."""
    examples = generate(8, seed=3)
    model, tok = _tiny(examples)
    params = TrainParams(epochs=40, batch_size=8, learning_rate=3e-3, warmup_steps=5, logging_steps=5, bf16=True)
    assert model.config._attn_implementation == "sdpa"
    seen: list[str] = []
    callback = _callback()[0]
    callback.on_step_begin = lambda *a, **kw: seen.append(model.config._attn_implementation)  # type: ignore[method-assign]
    multiplied: set[torch.dtype] = set()  # what the layers' projections compute in
    model.model.layers[0].mlp.up_proj.register_forward_hook(lambda mod, args, out: multiplied.add(out.dtype))
    trained, result = sft.train(model, tok, examples, params, callback, str(tmp_path / "out"))
    assert result.losses[-1][1] < result.losses[0][1] * 0.5, result.losses
    assert multiplied == {torch.bfloat16}  # autocast reached the backbone (sft.answer_loss calls it directly)
    assert {p.dtype for p in trained.parameters()} == {torch.float32}
    # the plain attention while it trains (faster in bf16 here), the model's own again after
    assert set(seen) == {"eager"} and model.config._attn_implementation == "sdpa"


def test_training_attention_changes_nothing_in_float32_and_comes_back_after_an_error() -> None:
    model, _ = _tiny(generate(4, seed=3))
    with training_attention(model, TrainParams(bf16=False)):
        assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError), training_attention(model, TrainParams(bf16=True)):
        assert model.config._attn_implementation == "eager"
        raise RuntimeError("a failed step")
    assert model.config._attn_implementation == "sdpa"


def test_lora_jobs_get_their_own_recipe(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LoRA SFT: 8 epochs at batch 4, at half the rate for one correction, at batch 8 for 128 to 256 rows; every recipe
    under LoRA in bfloat16 where the CPU has it (or as set); whole-model training stays float32. A new adapter covers
    every layer, or the top share set."""
    def params(precision: str, recipe: str = "sft", start: str = "lora", rows: int = 40, **set_: object) -> TrainParams:
        settings = Settings(_env_file=None, data_dir=tmp_path, train_precision=precision, **set_)  # type: ignore[call-arg]
        return runner.params_for(settings.section(TrainingSettings), recipe, start, rows)

    sft_lora = params("bf16")
    assert (sft_lora.epochs, sft_lora.batch_size, sft_lora.learning_rate) == (8.0, 4, 2e-3) and sft_lora.lora and sft_lora.bf16
    # from 128 to 256 rows, batch 8 at a higher rate; a batch set in the settings still wins
    assert [params("bf16", rows=n).batch_size for n in (127, 128, 256, 257, 800)] == [4, 8, 8, 4, 4]
    assert params("bf16", rows=150).learning_rate == pytest.approx(2.8e-3) and params("bf16", rows=150).epochs == 8.0
    assert params("bf16", rows=150, train_batch_size=4).batch_size == 4
    # one correction (with its 24 rehearsal answers) at half the rate; a rate set in the settings still wins
    assert [params("bf16", rows=n).learning_rate for n in (1, 25, 26, 32, 127)] == [1e-3, 1e-3, 2e-3, 2e-3, 2e-3]
    assert params("bf16", rows=25).batch_size == 4 and params("bf16", rows=25, learning_rate=5e-4).learning_rate == 5e-4
    assert params("bf16", "sft", "scratch", rows=150).batch_size == 32 and params("bf16", "kto", rows=150).batch_size == 4
    assert not params("fp32").bf16 and not params("fp32", "kto").bf16
    assert params("bf16", "kto").bf16 and params("bf16", "dpo").bf16  # under LoRA, as measured
    # the frozen weights packed where that was measured faster: SFT and KTO, not DPO
    assert params("bf16").pack_frozen and params("bf16", "kto").pack_frozen and not params("bf16", "dpo").pack_frozen
    assert not params("bf16", "sft", "scratch").bf16 and not params("bf16", "sft", "continue").bf16
    assert not params("bf16", "kto", "continue").bf16 and not params("bf16", "dpo", "continue").bf16
    for native in (True, False):
        monkeypatch.setattr(runner, "native_bf16", lambda native=native: native)
        assert params("auto").bf16 is native
    shape = types.SimpleNamespace(num_hidden_layers=30)
    assert runner.lora_config(shape).layers_to_transform is None  # every layer
    assert runner.lora_config(shape, 1 / 3).layers_to_transform == list(range(20, 30))
    assert runner.lora_config(types.SimpleNamespace(num_hidden_layers=2), 0.1).layers_to_transform == [1]  # at least one


def _preference_data(recipe: str) -> list[Example]:
    """SFT: the facts; DPO: each fact corrected from the next one's answer; KTO: those
    corrections and a 👍 and a 👎 on their own."""
    facts = generate(8, seed=3)
    if recipe == "sft":
        return facts
    corrected = [Example(f.prompt, f.response, rejected=facts[(i + 1) % 8].response) for i, f in enumerate(facts)]
    if recipe == "dpo":
        return corrected
    return [*corrected, facts[0], Example(facts[1].prompt, facts[2].response, label="negative")]


@pytest.mark.parametrize("recipe", ["sft", "kto", "dpo"])
def test_lora_in_bf16_stores_the_frozen_weights_in_bf16_and_trains_the_adapter_in_float32(tmp_path, recipe: str) -> None:
    """Inspected while it trains, for each recipe: the frozen projections are bf16 tensors and
    compute in bf16, the adapter and its optimizer state float32, the embeddings (the LM
    head's weights too) float32, the attention the plain one; the loss falls; and the model
    handed in (the base that keeps serving, KTO's and DPO's reference under LoRA) is
    untouched, in float32 with its own attention."""
    from peft import LoraConfig

    examples = _preference_data(recipe)
    model, tok = _tiny(examples)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    seen: dict[str, set[tuple[torch.dtype, bool]]] = {}

    def inspect(args, state, control, model=None, optimizer=None, **kw):  # type: ignore[no-untyped-def]
        if seen:
            return
        for name, p in model.named_parameters():
            kind = "lora" if "lora_" in name else "embed" if "embed_tokens" in name else (
                "projection" if name.endswith("proj.base_layer.weight") else "other")
            seen.setdefault(kind, set()).add((p.dtype, p.requires_grad))
        states = [s for group in optimizer.state.values() for s in group.values() if isinstance(s, torch.Tensor) and s.dim()]
        seen["optimizer"] = {(s.dtype, False) for s in states}

    callback = _callback()[0]
    callback.on_step_end = inspect  # type: ignore[method-assign]
    attention: set[str] = set()
    layers: set[str] = set()  # the classes of the first layer's attention and MLP while it steps

    def step_begins(*a, model=None, **kw):  # type: ignore[no-untyped-def]
        attention.add(model.get_base_model().config._attn_implementation)
        layer = model.get_base_model().model.layers[0]
        layers.update({type(layer.self_attn).__name__, type(layer.mlp).__name__,
                       type(layer.mlp.down_proj.base_layer).__name__})  # the frozen weights multiplied packed

    callback.on_step_begin = step_begins  # type: ignore[method-assign]
    multiplied: set[torch.dtype] = set()

    def hook(trained_copy: torch.nn.Module) -> None:  # the copy training runs on, once PEFT wrapped it
        layer = trained_copy.get_base_model().model.layers[0].mlp.down_proj.base_layer  # (up_proj runs fused with gate_proj)
        layer.register_forward_hook(lambda mod, args, out: multiplied.add(out.dtype))

    callback.on_train_begin = lambda *a, model=None, **kw: hook(model)  # type: ignore[method-assign]
    params = TrainParams(epochs=30, batch_size=8, learning_rate=3e-3, warmup_steps=3, logging_steps=5, lora=True, bf16=True)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=runner.LORA_TARGETS, task_type="CAUSAL_LM")
    train = {"sft": sft.train, "kto": kto.train, "dpo": dpo.train}[recipe]
    trained, result = train(model, tok, examples, params, callback, str(tmp_path / "out"), lora)
    assert seen["projection"] == {(torch.bfloat16, False)} and multiplied == {torch.bfloat16}
    assert attention == {"eager"} and model.config._attn_implementation == "sdpa"
    # every recipe trains the projections of one input fused (KTO's and DPO's reference, the adapter off, runs them apart)
    assert layers == {"FusedLlamaAttention", "FusedLlamaMLP", "PackedLinear" if packed.usable() else "Linear"}
    assert type(trained.get_base_model().model.layers[0].mlp).__name__ == "LlamaMLP"  # its own class again after
    assert type(trained.get_base_model().model.layers[0].mlp.down_proj.base_layer) is torch.nn.Linear and not packed._PACKED
    assert seen["lora"] == {(torch.float32, True)} and seen["optimizer"] == {(torch.float32, False)}
    assert seen["embed"] == {(torch.float32, False)}
    assert result.losses[-1][1] < result.losses[0][1], result.losses
    assert all(p.dtype == torch.float32 and torch.equal(p, before[name]) for name, p in model.named_parameters())
    assert trained is not model


def test_a_long_lora_job_compiles_its_layers_and_gives_way_at_each_layer(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With compiling on, SFT says so in the job's log before its first step, runs each decoder
    layer through ``torch.compile`` (kernels kept in the job's cache folder; the projections of
    one input fused inside), gives way to chat
    at each layer only (a hook inside a compiled layer would split its graph), still learns,
    and hands back layers that run eagerly."""
    from peft import LoraConfig

    from trainerbot.training import common

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unset")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")  # undone after the test: the job sets it
    examples = generate(8, seed=3)
    model, tok = _tiny(examples)
    asked = [0]

    def pause() -> float:
        asked[0] += 1
        return 0.0
    said: list[tuple[int, str]] = []  # (steps done, line for the job's log)
    callback = JobCallback(lambda p: None, lambda: False, check_every=0.0, pause=pause,
                           note=lambda line: said.append((len(compiled), line)))
    compiled: list[bool] = []
    callback.on_step_end = lambda *a, model=None, **kw: compiled.extend(  # type: ignore[method-assign]
        hasattr(layer.forward, "_torchdynamo_orig_callable") and type(layer.self_attn).__name__ == "FusedLlamaAttention"
        for layer in model.get_base_model().model.layers)  # compiled, the projections of one input fused
    cache = tmp_path / "compiled"
    losses_compiled: list[int] = []  # steps whose loss on the answers ran compiled
    compiled_loss = sft.compiled_cross_entropy
    monkeypatch.setattr(sft, "compiled_cross_entropy", lambda: losses_compiled.append(1) or compiled_loss())
    params = TrainParams(epochs=30, batch_size=8, learning_rate=3e-3, warmup_steps=3, logging_steps=5, lora=True, bf16=True,
                         compile="on", compile_cache=str(cache))
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=runner.LORA_TARGETS, task_type="CAUSAL_LM")
    trained, result = sft.train(model, tok, examples, params, callback, str(tmp_path / "out"), lora)
    assert result.metrics["compiled"] == 1.0 and compiled and all(compiled)
    assert len(losses_compiled) == result.steps  # the loss compiled with the layers
    # the job's log says why its first step waits, before it does
    assert len(said) == 1 and said[0][0] == 0 and "about half a minute" in said[0][1], said
    eager = sft.train(model, tok, examples, dataclasses.replace(params, compile="off"), _callback()[0], str(tmp_path / "eager"),
                      lora)[1]
    assert eager.metrics["compiled"] == 0.0 and len(losses_compiled) == result.steps  # not compiled: nor is its loss
    # the same training: the loss falls alike (bf16 rounding differs where kernels fuse)
    assert result.losses[-1][1] < result.losses[0][1] - 0.3, result.losses
    assert result.losses[-1][1] == pytest.approx(eager.losses[-1][1], rel=0.01), (result.losses, eager.losses)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(cache) and any(p.is_file() for p in cache.rglob("*"))
    assert "from the kernels earlier jobs kept" in common.compiling_message(params)  # the next job's line
    # each step: once before it, then at each of the 2 layers forward and backward; no projection
    assert asked[0] == result.steps * (1 + 2 * 2)
    assert all("forward" not in vars(layer) and type(layer.self_attn).__name__ == "LlamaAttention"
               for layer in trained.get_base_model().model.layers)
    assert not callback.layers_only and not callback._hooks


def test_compiling_is_chosen_for_long_lora_jobs_in_bf16_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainerbot.training import common

    auto = TrainParams(lora=True, bf16=True, compile="auto")
    assert common.compiles(auto, common.COMPILE_TOKENS) and not common.compiles(auto, common.COMPILE_TOKENS - 1)
    assert not common.compiles(TrainParams(lora=True, bf16=False, compile="on"), 10**6)  # measured under bf16 only
    assert not common.compiles(TrainParams(lora=False, bf16=True, compile="on"), 10**6)
    assert not common.compiles(TrainParams(lora=True, bf16=True, compile="off"), 10**6)
    monkeypatch.setattr(common, "cpp_compiler", lambda: False)  # no C++ compiler for inductor's kernels
    assert not common.compiles(auto, 10**6) and common.compiles(TrainParams(lora=True, bf16=True, compile="on"), 1)
