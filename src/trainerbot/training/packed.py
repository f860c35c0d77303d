"""Frozen bf16 weights packed once, in oneDNN's own blocked layout, while a LoRA job trains.

A plain ``x @ w.T`` in bf16 hands oneDNN a row-major weight, which it reorders into the
blocked layout its kernels read at every call. A LoRA job's frozen projections and LM head
never change, so here each is reordered once for the job, twice in fact: as the forward
multiplies it and transposed, as the input's gradient does. On this CPU the projections'
shapes then run at 1.0–1.06 TFLOP/s instead of 0.74–0.89 (bench/RESULTS.md, issue 31).

``frozen_linear`` is a custom operator (``torch.library``), so ``torch.compile`` keeps it as
one opaque call inside a compiled layer; it finds a weight's packed forms by the weight's
storage, and runs the plain matmul for a weight that was not packed or has changed since.
Only bf16 weights are packed, only where oneDNN has bf16 kernels for this CPU; the packed
forms (about twice the frozen weights, some 0.5 GB for the default model with its head)
are dropped when the job's layers are put back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROWS_HINT = 256  # rows a step's matmuls typically multiply (a packed batch of 8): the layout oneDNN picks for them


@dataclass(frozen=True)
class _Packed:
    weight: torch.Tensor  # held, so that its storage (the key) is not reused while packed
    version: int  # the weight's version counter when packed: a change in place unpacks it
    forward: torch.Tensor  # the weight in oneDNN's layout, as ``x @ weight.T`` reads it
    backward: torch.Tensor  # its transpose, as the input's gradient ``g @ weight`` reads it


_PACKED: dict[int, _Packed] = {}  # by the weight's data pointer


def usable() -> bool:
    """Whether this build of PyTorch has oneDNN with bf16 kernels for this CPU."""
    return bool(torch.backends.mkldnn.is_available()) and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # type: ignore[no-untyped-call]


def _found(weight: torch.Tensor) -> _Packed | None:
    packed = _PACKED.get(weight.data_ptr())
    if packed is None or packed.version != packed.weight._version or packed.weight.shape != weight.shape \
            or packed.weight.stride() != weight.stride():  # another view of the same storage (a transpose) is not it
        return None
    return packed


def _multiply(x: torch.Tensor, packed: torch.Tensor, out_features: int) -> torch.Tensor:
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(flat, packed, None, "none", [], "")
    return out.reshape(*x.shape[:-1], out_features)


@torch.library.custom_op("trainerbot::frozen_linear", mutates_args=())
def frozen_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` for a frozen weight, through its packed form where it has one."""
    packed = _found(weight)
    return F.linear(x, weight) if packed is None else _multiply(x, packed.forward, weight.shape[0])


@frozen_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


@torch.library.custom_op("trainerbot::frozen_linear_input_grad", mutates_args=())
def frozen_linear_input_grad(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``grad @ weight``: the gradient of ``frozen_linear``'s input (a frozen weight gets none)."""
    packed = _found(weight)
    return grad @ weight if packed is None else _multiply(grad, packed.backward, weight.shape[1])


@frozen_linear_input_grad.register_fake
def _(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return grad.new_empty((*grad.shape[:-1], weight.shape[1]))


def _keep_weight(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    ctx.save_for_backward(inputs[1])


def _input_grad(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
    (weight,) = ctx.saved_tensors
    return frozen_linear_input_grad(grad, weight), None


frozen_linear.register_autograd(_input_grad, setup_context=_keep_weight)


def frozen_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` for a frozen weight: a bf16 one through ``frozen_linear`` (``x`` cast to
    bf16, as autocast would), any other as it was."""
    if weight.dtype != torch.bfloat16 or weight.requires_grad:
        return F.linear(x, weight, bias)
    out: torch.Tensor = frozen_linear(x.to(torch.bfloat16), weight)
    return out if bias is None else out + bias


def pack(weight: torch.Tensor, rows: int = ROWS_HINT) -> None:
    """Keep ``weight``'s packed forms until ``packed_weights`` ends (a no-op for any weight but a frozen bf16 one)."""
    if weight.dtype != torch.bfloat16 or weight.requires_grad or weight.dim() != 2 or _found(weight) is not None:
        return
    w = weight.detach()
    _PACKED[w.data_ptr()] = _Packed(w, w._version, torch.ops.mkldnn._reorder_linear_weight(w, rows),
                                    torch.ops.mkldnn._reorder_linear_weight(w.t().contiguous(), rows))


def packing() -> bool:
    """Whether weights are being packed now (inside ``packed_weights``)."""
    return _active[0] > 0


_active = [0]


class PackedLinear(nn.Linear):
    """A frozen ``nn.Linear`` whose weight is packed: its class while a job trains (a class,
    not a per-module forward, so that one compiled graph serves every layer)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return frozen_matmul(input, self.weight, self.bias)


@contextmanager
def packed_weights(model: nn.Module) -> Iterator[int]:
    """Pack ``model``'s frozen bf16 weights that a LoRA step multiplies: the projections that
    run fused (``fused.WEIGHT``) and every other frozen bf16 ``nn.Linear`` that runs on its
    own (those then step as ``PackedLinear``); yields how many were packed. The layers'
    classes are back and every packed form dropped afterwards (the LM head's too, which
    ``sft.AnswerLossTrainer`` packs while this is on). Nothing where ``usable()`` is false."""
    from trainerbot.training.fused import FUSED, WEIGHT  # only a training job needs transformers' Llama code

    if not usable():
        yield 0
        return
    fused_kinds = dict(FUSED.values())  # a fused module's class: the projections it runs as one
    fused_away = {id(getattr(projection, "base_layer", projection))  # their own linears do not run while fused
                  for module in model.modules() if type(module) in fused_kinds
                  for projection in (getattr(module, name) for name in fused_kinds[type(module)])}
    swapped: list[nn.Linear] = []
    _active[0] += 1
    try:
        for module in model.modules():
            weight = module._buffers.get(WEIGHT)
            if weight is not None:
                pack(weight)
            elif type(module) is nn.Linear and id(module) not in fused_away and module.weight.dtype == torch.bfloat16 \
                    and not module.weight.requires_grad and "forward" not in module.__dict__:
                pack(module.weight)
                module.__class__ = PackedLinear
                swapped.append(module)
        yield len(_PACKED)
    finally:
        _active[0] -= 1
        for module in swapped:
            module.__class__ = nn.Linear
        if not _active[0]:
            _PACKED.clear()
