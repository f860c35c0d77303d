"""The projections that read the same input run as one matmul while a LoRA job trains.

A Llama layer's attention reads its input through three projections (query, key, value)
and its MLP through two (gate, up). Under LoRA each is a frozen weight and a small adapter,
so a step ran 5 frozen matmuls and 10 adapter ones per layer on one input, forward and back.
Here each such group runs as one frozen matmul over the projections' weights side by side
(kept once, for the job) and one adapter pair: the adapters' A matrices stacked, their B
matrices (each times its scaling) on a block diagonal. The products are the same sums of
the same terms; the matmuls are fewer and wider, which this CPU runs nearer its bf16 peak
(bench/RESULTS.md, issue 31).

Only the layers whose code this mirrors are fused (transformers' Llama attention and MLP,
the default model's), only where every projection's base weight is frozen, and only with
the plain LoRA of one active adapter; a projection whose adapter is switched off or merged
at call time runs its own forward. Everything else trains as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.llama import modeling_llama

from trainerbot.training.packed import frozen_matmul

WEIGHT, BIAS = "fused_weight", "fused_bias"  # the buffers a fused module holds its projections' weights in, side by side


def fused(module: nn.Module, names: tuple[str, ...], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The outputs of ``module``'s projections ``names`` on ``x``, computed together: one matmul
    over their frozen weights side by side (the buffer ``WEIGHT``), and where they carry an
    adapter, one over the adapters' A matrices stacked and one over their B matrices (each
    times its scaling) on a block diagonal. The weights are read from the module, not kept
    aside, so that one compiled graph serves every layer."""
    projections = [getattr(module, name) for name in names]
    weight, bias = getattr(module, WEIGHT), getattr(module, BIAS, None)
    lora = [_is_lora(p) for p in projections]
    if all(lora) and any(p.disable_adapters or p.merged for p in projections):
        return tuple(p(x) for p in projections)  # the projections' own path: adapters off or merged in
    out = frozen_matmul(x, weight, bias)  # through its packed form while packed (``packed.packed_weights``)
    if all(lora):
        name = str(projections[0].active_adapters[0])
        stacked = torch.cat([p.lora_A[name].weight for p in projections])
        diagonal = torch.block_diag(*[p.lora_B[name].weight * p.scaling[name] for p in projections])  # type: ignore[no-untyped-call]
        out = out + F.linear(F.linear(x.to(stacked.dtype), stacked), diagonal).to(out.dtype)  # x cast as PEFT casts it
    return tuple(out.split([_base(p).out_features for p in projections], dim=-1))  # type: ignore[no-untyped-call]


def _base(projection: nn.Module) -> nn.Linear:
    base = getattr(projection, "base_layer", projection)
    assert isinstance(base, nn.Linear)
    return base


def _is_lora(projection: nn.Module) -> bool:
    return hasattr(projection, "lora_A") and hasattr(projection, "base_layer")


def _adapter(projection: Any) -> str | None:
    """The one plain LoRA adapter active on ``projection`` (no dropout, no variant such as DoRA), else None."""
    active = list(projection.active_adapters)
    if len(active) != 1 or active[0] not in projection.lora_A or active[0] in getattr(projection, "lora_variant", {}):
        return None
    name = str(active[0])
    dropout = projection.lora_dropout[name]
    if not (isinstance(dropout, nn.Identity) or (isinstance(dropout, nn.Dropout) and dropout.p == 0)):
        return None
    if projection.lora_B[name].bias is not None:
        return None
    return name


def fusable(projections: list[Any]) -> bool:
    """Whether these projections can run as one: plain linears of one input size whose
    weights are frozen, alike in dtype and bias, and all plain (frozen) or all carrying the
    same single plain adapter."""
    if not all(isinstance(getattr(p, "base_layer", p), nn.Linear) for p in projections):  # None: no such submodule
        return False
    bases = [_base(p) for p in projections]
    if any(b.weight.requires_grad or (b.bias is not None and b.bias.requires_grad) for b in bases):
        return False
    if len({(b.in_features, b.weight.dtype, b.bias is None) for b in bases}) != 1:
        return False
    lora = [_is_lora(p) for p in projections]
    if not any(lora):
        return True
    adapters = {_adapter(p) for p in projections}
    return all(lora) and len(adapters) == 1 and None not in adapters


class FusedLlamaAttention(modeling_llama.LlamaAttention):
    """transformers 5.24's ``LlamaAttention`` with the query, key and value projections as one.
    A training module's class while it is fused (a class, not a per-module forward: one
    compiled graph then serves every layer)."""

    def forward(self, hidden_states: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                attention_mask: torch.Tensor | None = None, cache: Any = None, **kwargs: Any) -> Any:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query, key, value = (t.view(hidden_shape).transpose(1, 2) for t in fused(self, ATTENTION, hidden_states))
        assert position_embeddings is not None
        cos, sin = position_embeddings
        query, key = modeling_llama.apply_rotary_pos_emb(query, key, cos, sin)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx, kwargs=kwargs)
        attention: Callable[..., Any] = modeling_llama.ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, modeling_llama.eager_attention_forward)
        output, weights = attention(self, query, key, value, attention_mask,
                                    dropout=0.0 if not self.training else self.attention_dropout, scaling=self.scaling,
                                    **kwargs)
        return self.o_proj(output.reshape(*input_shape, -1).contiguous()), weights


class FusedLlamaMLP(modeling_llama.LlamaMLP):
    """transformers' ``LlamaMLP`` with the gate and up projections as one (see ``FusedLlamaAttention``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = fused(self, MLP, x)
        return self.down_proj(self.act_fn(gate) * up)  # type: ignore[no-any-return]


ATTENTION, MLP = ("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj")
FUSED: dict[type, tuple[type, tuple[str, ...]]] = {modeling_llama.LlamaAttention: (FusedLlamaAttention, ATTENTION),
                                                   modeling_llama.LlamaMLP: (FusedLlamaMLP, MLP)}


@contextmanager
def fused_projections(model: nn.Module) -> Iterator[int]:
    """Train ``model`` with each Llama attention's and MLP's projections of one input fused
    (``fused``); yields how many modules were. Their own class is back afterwards, and the
    fused weights (a copy of the frozen ones, about 140 MB in bf16 for the default model)
    are dropped."""
    done: list[tuple[nn.Module, type]] = []
    for module in model.modules():
        kind = type(module)
        if kind not in FUSED or "forward" in module.__dict__:
            continue
        fused_kind, names = FUSED[kind]
        found = [getattr(module, name, None) for name in names]
        if not fusable(found):
            continue
        bases = [_base(p) for p in found if p is not None]
        module.register_buffer(WEIGHT, torch.cat([b.weight.detach() for b in bases]), persistent=False)
        if bases[0].bias is not None:
            module.register_buffer(BIAS, torch.cat([b.bias.detach() for b in bases if b.bias is not None]), persistent=False)
        module.__class__ = fused_kind
        done.append((module, kind))
    try:
        yield len(done)
    finally:
        for module, kind in done:
            module.__class__ = kind
            for buffer in (WEIGHT, BIAS):
                module._buffers.pop(buffer, None)
