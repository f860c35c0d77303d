"""SFT: supervised fine-tuning on positive examples and corrections, loss on the answer only.

Rows are TRL's conversational prompt–completion shape (``datasets.exporters`` ``sft``),
so ``completion_only_loss`` puts the loss on the assistant turn alone.

On a CPU the loss is computed from the answer tokens only (``AnswerLossTrainer``): TRL's
fused LM head scores every position there (only on CUDA/XPU does it pick the answer
positions), and recomputes the vocabulary projection in the backward pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, cast

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer

from trainerbot.datasets.records import Example
from trainerbot.errors import BadInput
from trainerbot.training.common import (
    JobCallback,
    TrainParams,
    TrainResult,
    compiled_layers,
    compiles,
    compiling_message,
    run,
    trained_model,
    training_copy,
    training_layers,
    trl_args,
)
from trainerbot.training.packed import frozen_matmul, pack, packing
from trainerbot.training.recipes import recipe


def rows(examples: list[Example]) -> list[dict[str, Any]]:
    return recipe("sft").rows(examples)


class AnswerLossTrainer(SFTTrainer):
    """TRL's SFT trainer whose loss projects only the answer positions through the LM head.

    The vocabulary projection is a fifth of SmolLM2's weights (49 152 × 576); TRL on a CPU
    scores it at every position, prompt and padding included, and a second time in the
    backward pass. Here the backbone runs once and only the hidden states whose next token
    is a label reach the head: the same mean cross-entropy over the answer tokens
    (``tests/training/test_recipes.py`` compares the two). Elsewhere (CUDA, other loss types) TRL's
    own loss runs.

    Under bf16 autocast a frozen head (LoRA: the tied input embeddings, kept float32 for the
    residual stream) is cast to bfloat16 once, not at every step: that cast of 28 M weights
    took 13.5 ms of a 330 ms compiled step here (bench/RESULTS.md, issue 31).

    The rows of a batch share their opening (the system instruction): it runs once a step,
    the rows' rests after it (``shared_prefix``), the same loss with about a third fewer
    tokens through the layers at the LoRA batch of 4.

    Where the job's layers are compiled, so is the loss on the answers' logits
    (``compiled_cross_entropy``): its log-softmax and gradient fused, 1.05x a batch-8 step.
    """

    _head_bf16: tuple[int, int, torch.Tensor] | None = None  # (id, version) of the float32 head, its bf16 copy
    _flop_params: int | None = None
    share_prefix = True  # the rows' common opening runs once a step (``shared_prefix``); from ``TrainParams.share_prefix``
    tokens_run = 0  # tokens through the layers (the rows' tokens, less the openings shared)
    compiled_loss = False  # the loss on the answers' logits compiled (``training_run``, with the layers)

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        labels = inputs.get("labels")
        if return_outputs or labels is None or labels.device.type != "cpu" or getattr(self.args, "loss_type", "nll") != "nll":
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[no-untyped-call]
        # The backbone is called directly, not the forward that Accelerate wrapped in its
        # mixed-precision autocast: enter it here, or bf16=True would train in float32.
        with self.accelerator.autocast():
            packed = shared_prefix(inputs) if self.share_prefix else None
            loss = answer_loss(model, inputs, num_items_in_batch, self._frozen_head(model), packed,
                               compiled_cross_entropy() if self.compiled_loss else cross_entropy)
        if model.training:  # tokens seen (padding left out), for the job's tokens/s
            seen = int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else labels.numel()
            self.tokens_run += int(packed["input_ids"].numel()) if packed is not None else seen
            self._total_train_tokens += seen
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return loss

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """The Trainer's FLOP count for its logs, with the model's parameter count taken once:
        counting them walks every module at every step (1 % of a compiled step here)."""
        main = getattr(self.model, "main_input_name", "input_ids")
        if self._flop_params is None:  # 6 FLOPs a token and parameter, as the Trainer counts them
            self._flop_params = super().floating_point_ops({main: torch.ones(1)}) // 6
        ids = inputs.get(main)
        return 6 * ids.numel() * self._flop_params if isinstance(ids, torch.Tensor) else 0

    def _frozen_head(self, model: Any) -> torch.Tensor | None:
        """The LM head's weight in bfloat16 where autocast would cast it at every step: a
        frozen float32 head under bf16 autocast. Cast once, again only if the weight changes."""
        causal = model.get_base_model() if hasattr(model, "get_base_model") else model
        weight = causal.get_output_embeddings().weight
        if weight.requires_grad or weight.dtype != torch.float32 or torch.get_autocast_dtype("cpu") != torch.bfloat16 \
                or not torch.is_autocast_enabled("cpu"):
            return None
        key = (id(weight), weight._version)
        if self._head_bf16 is None or self._head_bf16[:2] != key:
            self._head_bf16 = (*key, weight.detach().to(torch.bfloat16))
        if packing():  # the job's frozen weights are packed (``packed.packed_weights``): the head's copy too
            pack(self._head_bf16[2], rows=HEAD_ROWS)
        return self._head_bf16[2]


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The summed cross-entropy of the answers' logits (in float32, whatever they were computed in)."""
    return F.cross_entropy(logits.float(), targets, reduction="sum")


@functools.cache
def compiled_cross_entropy() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``cross_entropy`` through ``torch.compile`` (dynamic shapes: the answers' count changes
    every step), made once a process."""
    return torch.compile(cross_entropy, dynamic=True)


def answer_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None,
                head: torch.Tensor | None = None, packed: dict[str, torch.Tensor] | None = None,
                summed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy) -> torch.Tensor:
    """Mean cross-entropy of a causal LM over the labelled tokens (labels -100 elsewhere),
    with the LM head applied to those positions only. ``model`` may be a PEFT model: its
    adapters live inside the backbone's layers, so calling the backbone runs them. ``head``:
    a frozen head's weight to use instead of its own (its bfloat16 copy). ``packed``: the
    same batch with the rows' common opening once (``shared_prefix``), run instead.
    ``summed``: the summed cross-entropy (``cross_entropy``, or ``compiled_cross_entropy()``'s)."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(causal, causal.base_model_prefix)
    source = packed if packed is not None else inputs
    labels = source["labels"]
    features = {k: v for k, v in source.items() if k != "labels"}
    hidden = backbone(**features, use_cache=False).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    chosen = targets != -100
    projection = causal.get_output_embeddings()
    logits = projection(hidden[chosen]) if head is None else frozen_matmul(hidden[chosen], head, projection.bias)
    total = summed(logits, targets[chosen])
    count = num_items_in_batch if num_items_in_batch is not None else chosen.sum()
    return total / torch.as_tensor(count, device=total.device).clamp(min=1)


HEAD_ROWS = 128  # answer positions a step's head multiplies (about 120 at batch 8): the layout its packed form is made for
MIN_SHARED = 8  # tokens: a shorter common opening is not worth the packing
# tokens: a longer packed sequence is not packed (its attention, one T×T square instead of a
# square per row, would grow with the batch's rows squared; a LoRA batch of 4 packs to ~140).
MAX_PACKED = 512


def shared_prefix(inputs: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The batch as one sequence whose rows share their common opening (the system
    instruction every row carries: 23 of a fact row's ~50 tokens), or None where they share
    fewer than ``MIN_SHARED`` tokens or the batch is not right-padded rows.

    The opening comes once, then each row's rest in turn, with its own positions; a 4D mask
    lets each token see the opening and the earlier tokens of its own row only. Every
    labelled token is then predicted from exactly the context it had in its row, so the loss
    and the gradients are the batch's own (the opening's gradient is the sum over the rows,
    as before), with fewer tokens through every layer.
    """
    ids, mask, labels = inputs.get("input_ids"), inputs.get("attention_mask"), inputs.get("labels")
    if set(inputs) - {"input_ids", "attention_mask", "labels"} or ids is None or mask is None or labels is None \
            or ids.dim() != 2 or ids.shape[0] < 2:
        return None
    lengths = mask.sum(1)
    if not bool((mask.long().cumprod(1).sum(1) == lengths).all()):  # real tokens first, padding after
        return None
    same = (ids == ids[:1]).all(0) & mask.bool().all(0) & (labels == -100).all(0)
    shared = int(same.long().cumprod(0).sum())
    # nothing in the packed sequence predicts a row's first token after the opening: it must be unlabelled
    while shared and (shared >= int(lengths.min()) or bool((labels[:, shared] != -100).any())):
        shared -= 1
    ends = lengths.tolist()
    if shared < MIN_SHARED or shared + sum(end - shared for end in ends) > MAX_PACKED:
        return None
    rows = range(ids.shape[0])
    device = ids.device
    segment = torch.cat([torch.full((shared,), -1, device=device)]
                        + [torch.full((ends[i] - shared,), i, device=device) for i in rows])
    order = torch.arange(len(segment), device=device)
    seen = (order[None, :] <= order[:, None]) & ((segment[None, :] == segment[:, None]) | (segment[None, :] == -1))
    dtype = torch.get_default_dtype()  # as transformers builds the eager mask: 0 where seen, the lowest value elsewhere
    blocked = torch.zeros(seen.shape, dtype=dtype, device=device).masked_fill(~seen, torch.finfo(dtype).min)
    return {
        "input_ids": torch.cat([ids[0, :shared]] + [ids[i, shared:ends[i]] for i in rows])[None],
        "position_ids": torch.cat([torch.arange(shared, device=device)]
                                  + [torch.arange(shared, ends[i], device=device) for i in rows])[None],
        "attention_mask": blocked[None, None],
        "labels": torch.cat([labels[0, :shared]] + [labels[i, shared:ends[i]] for i in rows])[None],
    }


def trainer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[Example], params: TrainParams,
            callback: JobCallback, output_dir: str, peft_config: Any = None) -> SFTTrainer:
    """The SFT trainer for ``examples`` (``train`` runs it; ``bench/train_throughput.py`` times it)."""
    data = rows(examples)
    if not data:
        raise BadInput("SFT needs positive examples: import some answers first.")
    model = training_copy(model, params, peft_config)
    # Under LoRA, facts (~50 tokens) and rehearsal answers (up to ~120) mix: batches of like
    # lengths pad less (1.3–1.5× faster an epoch here). KTO/DPO rows have no plain input_ids to sort by.
    strategy = "group_by_length" if params.lora else "random"
    config = SFTConfig(**trl_args(params, output_dir, len(data)), completion_only_loss=True, train_sampling_strategy=strategy)
    built = AnswerLossTrainer(model=model, args=config, train_dataset=Dataset.from_list(data), processing_class=tokenizer,
                              callbacks=[callback], peft_config=peft_config)
    built.share_prefix = params.share_prefix
    return built


@contextmanager
def training_run(built: SFTTrainer, params: TrainParams, callback: JobCallback, compile_: bool) -> Iterator[None]:
    """How the model trains while ``built`` runs (``train``; the throughput bench alike): eager
    attention under bf16, the projections of one input fused under LoRA, the layers compiled
    where ``compile_`` (the loss on the answers too). All put back afterwards."""
    with training_layers(built.model, params), ExitStack() as stack:
        if compile_:
            callback.tell(compiling_message(params))
            stack.enter_context(compiled_layers(built.model, params, callback))
            if isinstance(built, AnswerLossTrainer):
                built.compiled_loss = True
                stack.callback(setattr, built, "compiled_loss", False)
        yield


def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[Example], params: TrainParams,
          callback: JobCallback, output_dir: str, peft_config: Any = None) -> tuple[torch.nn.Module, TrainResult]:
    built = trainer(model, tokenizer, examples, params, callback, output_dir, peft_config)
    rows = cast(Dataset, built.train_dataset)["input_ids"]
    compile_ = compiles(params, int(sum(len(ids) for ids in rows) * params.epochs))
    with training_run(built, params, callback, compile_):
        result = run(built, callback)
    result.metrics["compiled"] = float(compile_)
    return trained_model(built), result
