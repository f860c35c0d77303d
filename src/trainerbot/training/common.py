"""What the three recipes share: parameters, TRL arguments for a CPU, and the callback that
turns training progress into job events and checks for cancellation.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeVar

import datasets
import torch
from transformers import PrinterCallback, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.utils import logging as hf_logging

from trainerbot.errors import NotAvailable

T = TypeVar("T")


def quiet_libraries() -> None:
    """Hugging Face's own progress bars and warnings off for a training run (the job's events
    carry the progress). Called when a job starts, never at import."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()


@dataclass(frozen=True)
class TrainParams:
    epochs: float = 60.0
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 30  # at most: never more than ``warmup_share`` of the job's steps
    warmup_share: float = 0.1
    max_length: int = 256
    seed: int = 0
    logging_steps: int = 5
    beta: float = 0.1  # DPO / KTO
    lora: bool = False  # a LoRA adapter on a pretrained model
    bf16: bool = False  # bfloat16 mixed precision (autocast; trained weights and the optimizer stay float32)
    # Under LoRA with bf16: the frozen projection weights stored in bfloat16 in the training copy,
    # so autocast no longer casts them at every op (the same products: it cast them to bf16 anyway).
    bf16_frozen: bool = True
    # KTO/DPO: the reference's log-probabilities computed once, before the first step, instead
    # of a reference forward pass in every step of every epoch (1.2-1.3x faster a job here).
    precompute_reference: bool = True
    # Under LoRA with bf16, SFT's decoder layers compiled with ``torch.compile`` (``compiled_layers``):
    # "auto" where the job is long enough to pay for compiling (``COMPILE_TOKENS``).
    compile: Literal["auto", "on", "off"] = "off"
    compile_cache: str | None = None  # where compiled kernels are kept (TORCHINDUCTOR_CACHE_DIR), if not set already
    # SFT: the opening a batch's rows share (the system instruction) run once a step, the rows
    # after it in one sequence (``sft.shared_prefix``): the same loss, 1.2x a LoRA step here.
    share_prefix: bool = True
    # Under LoRA, SFT, KTO and DPO run the projections that read one input (query/key/value, gate/up) as one
    # matmul (``fused.fused_projections``): the same sums, fewer and wider matmuls.
    fuse_projections: bool = True
    # Under LoRA with bf16, the frozen weights a step multiplies (the projections, the LM head)
    # packed once in oneDNN's layout for the job (``packed.packed_weights``): 1.09x a compiled
    # SFT step here, 1.07x a job's. Where the recipe measured it faster (``RecipeConfig.pack_frozen``).
    pack_frozen: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX): there mixed
    precision trains faster; elsewhere it is emulated and slower than float32."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without the probes: do not guess
        return False


def frozen_in_bf16(model: Any, *, new_adapter: bool) -> Any:
    """A training copy of ``model`` whose frozen projections (every ``nn.Linear`` but the LM
    head, which shares the input embeddings) hold their weights in bfloat16; everything else
    as it was: the embeddings, the norms and the residual stream in float32, the adapter and
    its optimizer in float32 (PEFT keeps a new adapter in float32 over a bf16 layer). Under
    autocast the matmuls are the same bf16 products as before; only the cast of every weight
    at every op is gone. ``new_adapter``: PEFT wraps the copy later (every projection will be
    frozen); else only the projections already frozen (a parent's adapter trained further)
    change. The caller's model is left as it was: it serves the base in float32."""
    copy_ = copy.deepcopy(model)
    head = copy_.get_output_embeddings()
    for module in copy_.modules():
        if isinstance(module, torch.nn.Linear) and module is not head and (new_adapter or not module.weight.requires_grad):
            module.weight = torch.nn.Parameter(module.weight.detach().to(torch.bfloat16), requires_grad=False)
            if module.bias is not None:
                module.bias = torch.nn.Parameter(module.bias.detach().to(torch.bfloat16), requires_grad=False)
    return copy_


def training_copy(model: Any, params: TrainParams, peft_config: Any) -> Any:
    """The model a LoRA job under bf16 trains: its frozen projections in bfloat16
    (``frozen_in_bf16``; ``peft_config``: a new adapter to add); otherwise ``model`` itself.
    SFT, KTO and DPO all train this way."""
    if params.lora and params.bf16 and params.bf16_frozen:
        return frozen_in_bf16(model, new_adapter=peft_config is not None)
    return model


@contextmanager
def training_attention(model: Any, params: TrainParams) -> Iterator[None]:
    """Under bfloat16 mixed precision, train with the plain ("eager") attention instead of
    PyTorch's fused one, and put the model's own back afterwards (the same weights then serve).

    On this CPU the fused kernel's backward pass in bf16 costs several times its forward on
    rows of 50–120 tokens: the eager one made LoRA steps 1.17x faster on the 100-fact bench's
    batches (spread 1.08–1.27; 1.12x through the product's trainer), while in float32 it was no
    faster (0.97; ``bench/lora_attention.py``, bench/RESULTS.md).
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(inner, "config", None)
    before = getattr(config, "_attn_implementation", None)
    if not params.bf16 or before != "sdpa" or not hasattr(inner, "set_attn_implementation"):
        yield
        return
    inner.set_attn_implementation("eager")
    try:
        yield
    finally:
        inner.set_attn_implementation(before)


@contextmanager
def training_layers(model: Any, params: TrainParams) -> Iterator[None]:
    """How every recipe's layers train (SFT, KTO, DPO): the plain attention under bf16
    (``training_attention``) and, under LoRA, the projections of one input fused
    (``fused.fused_projections``) and, with bf16 too, the frozen weights packed
    (``packed.packed_weights``). All put back afterwards."""
    from trainerbot.training.fused import fused_projections  # only a training job needs transformers' Llama code
    from trainerbot.training.packed import packed_weights

    with training_attention(model, params), ExitStack() as stack:
        if params.lora and isinstance(model, torch.nn.Module):
            if params.fuse_projections:
                stack.enter_context(fused_projections(model))
            if params.bf16 and params.pack_frozen:
                stack.enter_context(packed_weights(model))
        yield


# "auto" compiles a job that trains at least this many tokens (rows' tokens × epochs): about
# 50 s of eager training here, where the compiled layers' 1.29x saves more than the ~6 s a
# compile costs from the on-disk cache. A 100-fact job trains about 66,000; a 10-fact job,
# about 7,000 (bench/RESULTS.md, issue 31).
COMPILE_TOKENS = 30_000


def compiles(params: TrainParams, tokens: int) -> bool:
    """Whether a job training ``tokens`` tokens (rows × epochs) compiles its layers: only
    LoRA under bf16 (where it was measured), ``on`` always, ``auto`` past ``COMPILE_TOKENS``
    and where inductor finds a C++ compiler."""
    if params.compile == "off" or not (params.lora and params.bf16):
        return False
    return params.compile == "on" or (tokens >= COMPILE_TOKENS and cpp_compiler())


def cpp_compiler() -> bool:
    """Whether ``torch.compile``'s CPU backend finds the C++ compiler it builds kernels with."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception:  # none on this machine (it raises its own error types)
        return False
    return True


def is_decoder_layer(module: torch.nn.Module) -> bool:
    """One transformer block (``LlamaDecoderLayer`` and its kin in transformers)."""
    return type(module).__name__.endswith("DecoderLayer")


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    return [m for m in model.modules() if is_decoder_layer(m)]


@contextmanager
def compiled_layers(model: Any, params: TrainParams, callback: JobCallback) -> Iterator[None]:
    """Train with each decoder layer's forward compiled by ``torch.compile`` (dynamic shapes,
    so the length-grouped batches share one graph), then put the layers' own forward back
    (evaluation runs them eagerly).

    All the layers run the same code, so one compile serves every layer ("regional"
    compilation: 33 s on a cold cache against 299 s for the whole model; about 6 s from the
    kernels kept in ``params.compile_cache``). It fuses the small elementwise work around the
    matmuls (norms, rotary, softmax, casts): 1.29x a LoRA step here, 1.18x a 100-fact job
    with the compile. While compiled, the job gives way to chat at every layer
    (``JobCallback.layers_only``), not inside one: a hook there would split the compiled graph.
    A compile that fails falls back to the eager layers (dynamo's ``suppress_errors``), and
    this process's compiled graphs are dropped afterwards.
    """
    cache = kernel_cache(params)
    if cache and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    import torch._dynamo

    layers = decoder_layers(model)
    callback.layers_only = True
    for layer in layers:
        layer.forward = torch.compile(layer.forward, dynamic=True)
    try:
        with torch._dynamo.config.patch(suppress_errors=True):
            yield
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)
        callback.layers_only = False
        torch._dynamo.reset()


def kernel_cache(params: TrainParams) -> str | None:
    """The folder compiled kernels are kept in: TORCHINDUCTOR_CACHE_DIR where set, else the job's."""
    return os.environ.get("TORCHINDUCTOR_CACHE_DIR") or params.compile_cache


def compiling_message(params: TrainParams) -> str:
    """What a job says before it compiles: why its first step waits, and for how long."""
    cache = kernel_cache(params)
    kept = False
    if cache and os.path.isdir(cache):
        with os.scandir(cache) as entries:
            kept = any(entries)
    if kept:
        return ("compiling its layers (torch.compile) from the kernels earlier jobs kept: a few seconds before the first "
                "step, then steps about 1.3x faster")
    return ("compiling its layers (torch.compile) before the first step: about half a minute, once on this machine "
            "(the kernels are kept for later jobs), then steps about 1.3x faster")


def trl_args(params: TrainParams, output_dir: str, rows: int) -> dict[str, Any]:
    """Arguments every TRL config gets here: the CPU in float32 (bfloat16 autocast with
    ``params.bf16``), no saving, no reporting.

    The loss is logged often enough for a curve of about 50 points, and at least every
    ``params.logging_steps`` steps.
    """
    steps = math.ceil(rows / params.batch_size) * params.epochs
    # A small job (10 facts: 32 steps) spent 30 of its steps warming up and ended at the peak
    # rate: its general score fell further and recall was lower than with a tenth of its steps
    # (bench/RESULTS.md, issue 31). Jobs of 300 steps or more warm up as before.
    warmup = min(params.warmup_steps, max(1, math.ceil(steps * params.warmup_share)))
    return dict(
        output_dir=output_dir, per_device_train_batch_size=params.batch_size, num_train_epochs=params.epochs,
        learning_rate=params.learning_rate, lr_scheduler_type="cosine", warmup_steps=warmup,
        weight_decay=0.0, adam_beta2=0.98, max_grad_norm=1.0, logging_steps=max(1, min(params.logging_steps, int(steps // 50))),
        save_strategy="no", report_to=[], use_cpu=True, bf16=params.bf16, fp16=False, dataloader_num_workers=0,
        disable_tqdm=True, seed=params.seed, data_seed=params.seed, max_length=params.max_length,
        # TRL turns activation checkpointing on by default: memory we do not need to save on
        # these models, paid for with a second forward pass in every backward.
        gradient_checkpointing=False,
    )


@dataclass
class Progress:
    """One progress report, as stored in job events."""

    step: int
    total_steps: int
    loss: float | None
    learning_rate: float | None
    tokens_per_s: float | None
    eta_s: float | None


class JobCallback(TrainerCallback):
    """Reports progress at each log and stops training when ``should_stop()`` says so.

    ``should_stop`` is asked at most every ``check_every`` seconds (it reads the store).
    ``pause``, if given, is called before every step and around every decoder layer and
    frozen projection, in the forward pass and again in the backward pass (a hook on the
    module and one on its output's gradient): it returns once chat on this machine is not
    writing a reply (``chat_first``), so the worker gives way within one projection's work
    (a millisecond or two), not a whole step; with ``layers_only`` (compiled layers) at
    every decoder layer only (a few milliseconds). Asking costs one 8-byte read. The time it
    waited is kept in ``paused_s``. ``note``, if given, takes a line for the job's log that a
    recipe has to say before training (``tell``).
    """

    def __init__(self, report: Callable[[Progress], None], should_stop: Callable[[], bool], *, check_every: float = 0.5,
                 pause: Callable[[], float] | None = None, note: Callable[[str], None] | None = None) -> None:
        self.report = report
        self.note = note
        self.should_stop = should_stop
        self.check_every = check_every
        self.pause = pause
        self.paused_s = 0.0
        self.layers_only = False  # give way at decoder layers only (compiled layers: ``compiled_layers``)
        self._hooks: list[Any] = []
        self._hooked: set[int] = set()
        self.cancelled = False
        self.losses: list[tuple[int, float]] = []
        self._last_check = 0.0
        self._start = time.monotonic()
        self._tokens = 0

    def tell(self, message: str) -> None:
        if self.note is not None:
            self.note(message)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._start = time.monotonic()
        self.hook_layers(kw.get("model"))

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._give_way()

    def _give_way(self, *unused: Any) -> None:
        if self.pause is not None:
            self.paused_s += self.pause()

    def _after_layer(self, module: Any, args: Any, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        if isinstance(hidden, torch.Tensor) and hidden.requires_grad:
            hidden.register_hook(self._give_way)  # type: ignore[no-untyped-call]  # torch leaves it untyped; runs as the backward pass reaches this layer

    def hook_layers(self, model: Any) -> None:
        """Make ``model``'s decoder layers and frozen projections give way to chat (each module
        once, however often this is called) until training ends or ``unhook``."""
        if self.pause is None or model is None:
            return
        for module in model.modules():
            frozen = isinstance(module, torch.nn.Linear) and not module.weight.requires_grad and not self.layers_only
            if (frozen or is_decoder_layer(module)) and id(module) not in self._hooked:
                self._hooked.add(id(module))
                self._hooks.append(module.register_forward_pre_hook(self._give_way))
                self._hooks.append(module.register_forward_hook(self._after_layer))

    def unhook(self) -> None:
        while self._hooks:
            self._hooks.pop().remove()
        self._hooked.clear()

    def building(self, build: Callable[[], T], *models: Any) -> T:
        """``build()``, a TRL trainer, with ``models``' layers (the model and its reference, if
        any) already giving way to chat: KTO and DPO compute the reference's log-probabilities
        when their trainer is built, before training begins."""
        for model in models:
            self.hook_layers(model)
        try:
            return build()
        except BaseException:
            self.unhook()
            raise

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        now = time.monotonic()
        if now - self._last_check >= self.check_every:
            self._last_check = now
            if self.should_stop():
                self.cancelled = True
                control.should_training_stop = True

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self.unhook()
        # The last logging step may fall before the end; report where training really stopped.
        if state.global_step and (not self.losses or self.losses[-1][0] != state.global_step):
            loss = next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None)
            self.report(Progress(step=state.global_step, total_steps=state.max_steps, loss=loss, learning_rate=None,
                                 tokens_per_s=None, eta_s=0.0 if not self.cancelled else None))

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        logs = logs or {}
        loss = logs.get("loss")
        if loss is None or not state.global_step:
            return
        if isinstance(loss, float) and math.isfinite(loss):
            self.losses.append((state.global_step, float(loss)))
        elapsed = time.monotonic() - self._start
        tokens = logs.get("num_tokens") or state.num_input_tokens_seen or None
        rate = float(tokens) / elapsed if tokens and elapsed > 0 else None
        remaining = (state.max_steps - state.global_step) * elapsed / state.global_step if state.max_steps else None
        self.report(
            Progress(
                step=state.global_step,
                total_steps=state.max_steps,
                loss=float(loss),
                learning_rate=logs.get("learning_rate"),
                tokens_per_s=rate,
                eta_s=remaining,
            )
        )


@dataclass
class TrainResult:
    cancelled: bool
    losses: list[tuple[int, float]]
    steps: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


def trained_model(trainer: Any) -> torch.nn.Module:
    """The model a TRL trainer trains: the one given, or under LoRA the PEFT model it wrapped around it."""
    model: torch.nn.Module | None = trainer.model
    if model is None:  # the trainers set it in their constructor
        raise NotAvailable("The trainer holds no model to train.")
    return model


def run(trainer: Any, callback: JobCallback) -> TrainResult:
    """Train with a TRL trainer built with ``callback``; the result says whether it was cancelled."""
    trainer.remove_callback(PrinterCallback)  # progress goes to job events, not stdout
    start = time.monotonic()
    out = trainer.train()
    return TrainResult(
        cancelled=callback.cancelled,
        losses=callback.losses,
        steps=trainer.state.global_step,
        seconds=time.monotonic() - start,
        metrics={"train_loss": float(out.training_loss), "paused_for_chat_s": round(callback.paused_s, 1)},
    )


def train_preference(trainer_class: Any, config: Any, model: Any, tokenizer: Any, data: list[dict[str, Any]],
                     params: TrainParams, callback: JobCallback, peft_config: Any) -> tuple[torch.nn.Module, TrainResult]:
    """KTO's and DPO's run with TRL's ``trainer_class`` and its ``config``: over the bf16
    training copy under LoRA (``training_copy``), against the frozen ``reference``, with the
    plain attention under bf16 and, under LoRA, the projections of one input fused as SFT
    trains them (``fused.fused_projections``; the reference, the adapter switched off, runs
    the projections' own path). The reference's log-probabilities are computed as the trainer
    is built (``precompute_ref_log_probs``): that pass gives way to chat too."""
    model = training_copy(model, params, peft_config)
    ref = reference(model, peft_config)
    build = partial(trainer_class, model=model, ref_model=ref, args=config, train_dataset=datasets.Dataset.from_list(data),
                    processing_class=tokenizer, callbacks=[callback], peft_config=peft_config)
    trainer = callback.building(build, model, ref)
    with training_layers(trainer.model, params):
        result = run(trainer, callback)
    return trained_model(trainer), result


def reference(model: Any, peft_config: Any) -> Any:
    """The frozen reference for KTO/DPO: a copy of the starting model, or None under LoRA
    (a new adapter, or the parent's adapter being taught further).

    TRL would otherwise reload the reference from the model's path, which a model built
    in memory does not have (and loading from disk again costs time).
    """
    if peft_config is not None or hasattr(model, "peft_config"):  # LoRA: the adapter switched off is the reference
        return None
    ref = copy.deepcopy(model).eval()
    # A model a trainer has already run carries Accelerate's forward wrapper as an instance
    # attribute, and its copy would still call the original's forward: a "reference" that
    # moves with the policy. The copy runs its class's own forward.
    ref.__dict__.pop("forward", None)
    for param in ref.parameters():
        param.requires_grad_(False)
    return ref
