"""Greedy decoding for Llama-architecture models in a few plain tensor operations.

For models as small as the default (3.4 M parameters) a reply is dominated by per-call
overhead, not arithmetic: Hugging Face's forward runs dozens of small modules per token.
This decoder reads the same weights, fuses Q/K/V and gate/up into one matrix each, keeps
a preallocated KV cache, and computes exactly the Llama forward (RMSNorm, rotary
embeddings with the default RoPE, grouped-query attention, SwiGLU). It takes only models
it can reproduce (``supports``); anything else falls back to the model's own forward.
A test checks its logits against Hugging Face's.

The model's own Q/K/V and gate/up weights become views of the fused matrices, so the
weights are held once. A LoRA adapter (``Adapter``, the low-rank pairs PEFT trains) is applied beside the base
weights rather than merged into a copy: one base in memory serves every taught version,
each costing only its few megabytes. The KV cache is sized to the reply, not to the
model's whole context window (SmolLM2's is 8192 positions: 380 MB per reply).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


def supports(model: Any) -> bool:
    cfg = model.config
    rope = getattr(cfg, "rope_parameters", None) or {}
    return (
        getattr(cfg, "model_type", None) == "llama"
        and cfg.hidden_act == "silu"
        and not getattr(cfg, "attention_bias", False)
        and not getattr(cfg, "mlp_bias", False)
        and rope.get("rope_type", "default") == "default"
        and "rope_theta" in rope
        and model.dtype == torch.float32
    )


PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LoraPair = tuple[torch.Tensor, torch.Tensor] | None  # (A [r, in], B·scale [out, r])


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter as plain tensors: per layer, per projection, (A, B·scale) or None."""

    layers: list[dict[str, LoraPair]]

    @classmethod
    def load(cls, folder: Path, layers: int) -> Adapter:
        """Read a PEFT LoRA adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)."""
        import json
        import re

        from safetensors.torch import load_file

        config = json.loads((folder / "adapter_config.json").read_text())
        rank, alpha = int(config["r"]), float(config["lora_alpha"])
        scale = alpha / (rank ** 0.5) if config.get("use_rslora") else alpha / rank
        tensors = load_file(str(folder / "adapter_model.safetensors"))
        found: list[dict[str, Any]] = [{} for _ in range(layers)]
        pattern = re.compile(r".*layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.\w+)?\.weight$")
        for name, tensor in tensors.items():
            m = pattern.match(name)
            if m is None:
                raise ValueError(f"unexpected tensor {name} in the adapter")
            found[int(m.group(1))].setdefault(m.group(2), {})[m.group(3)] = tensor.float()
        out: list[dict[str, LoraPair]] = []
        for per_layer in found:
            out.append({p: ((per_layer[p]["A"].contiguous(), (per_layer[p]["B"] * scale).contiguous())
                            if p in per_layer else None) for p in PROJECTIONS})
        return cls(out)

    @classmethod
    def from_model(cls, model: Any) -> Adapter:
        """The active LoRA adapter of an in-memory PEFT model (what training just produced)."""
        out: list[dict[str, LoraPair]] = []
        for layer in model.get_base_model().model.layers:
            per_layer: dict[str, LoraPair] = {}
            for p in PROJECTIONS:
                module = getattr(layer.self_attn if p.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else layer.mlp, p)
                if hasattr(module, "lora_A") and module.active_adapters and module.active_adapters[0] in module.lora_A:
                    name = module.active_adapters[0]
                    a = module.lora_A[name].weight.detach().float().clone()
                    b = module.lora_B[name].weight.detach().float() * module.scaling[name]
                    per_layer[p] = (a.contiguous(), b.contiguous())
                else:
                    per_layer[p] = None
            out.append(per_layer)
        return cls(out)


def _delta(h: torch.Tensor, pair: LoraPair) -> torch.Tensor | None:
    return None if pair is None else (h @ pair[0].T) @ pair[1].T


class LlamaDecoder:
    def __init__(self, model: Any) -> None:
        cfg = model.config
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.eps = cfg.rms_norm_eps
        self.max_positions = cfg.max_position_embeddings
        inner = model.model
        self.embed = inner.embed_tokens.weight.detach()
        self.norm = inner.norm.weight.detach()
        self.lm_head = model.lm_head.weight.detach()
        self.scale = self.head_dim ** -0.5
        self.layers = []
        for layer in inner.layers:
            att, mlp = layer.self_attn, layer.mlp
            wqkv = torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]).detach().contiguous()
            wgu = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).detach().contiguous()
            # The model's own projections become views of the fused matrices, so the weights
            # are held once (a 135 M-parameter model would otherwise cost 280 MB more).
            q, k = att.q_proj.weight.shape[0], att.k_proj.weight.shape[0]
            with torch.no_grad():
                att.q_proj.weight.data = wqkv[:q]
                att.k_proj.weight.data = wqkv[q:q + k]
                att.v_proj.weight.data = wqkv[q + k:]
                mlp.gate_proj.weight.data = wgu[: mlp.gate_proj.weight.shape[0]]
                mlp.up_proj.weight.data = wgu[mlp.gate_proj.weight.shape[0]:]
            self.layers.append((layer.input_layernorm.weight.detach(), wqkv, att.o_proj.weight.detach(),
                                layer.post_attention_layernorm.weight.detach(), wgu, mlp.down_proj.weight.detach()))
        theta = cfg.rope_parameters["rope_theta"]
        inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        freqs = torch.arange(self.max_positions, dtype=torch.float32)[:, None] * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()
        self.q_size = self.heads * self.head_dim
        self.kv_size = self.kv_heads * self.head_dim

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), weight, self.eps)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = self.head_dim // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, start: int, caches: list[tuple[torch.Tensor, torch.Tensor]],
                adapter: Adapter | None = None, *, all_logits: bool = False) -> torch.Tensor:
        """Logits of the last position (or of every position) for ``ids`` (1-D) placed at
        ``start``; fills the caches. ``adapter`` adds its low-rank deltas to each projection."""
        n = ids.shape[0]
        end = start + n
        x = self.embed[ids]  # [n, hidden]
        cos, sin = self.cos[start:end], self.sin[start:end]
        groups = self.heads // self.kv_heads
        lora = adapter.layers if adapter is not None else [None] * len(self.layers)
        for (ln1, wqkv, wo, ln2, wgu, wdown), (k_cache, v_cache), ad in zip(self.layers, caches, lora, strict=True):
            h = self._rms(x, ln1)
            qkv = h @ wqkv.T
            if ad is not None:
                for lo, hi, p in ((0, self.q_size, "q_proj"), (self.q_size, self.q_size + self.kv_size, "k_proj"),
                                  (self.q_size + self.kv_size, self.q_size + 2 * self.kv_size, "v_proj")):
                    if (d := _delta(h, ad[p])) is not None:
                        qkv[:, lo:hi] += d
            # Q and K sit side by side in the fused projection: rotate them in one go.
            qk = qkv[:, : self.q_size + self.kv_size].view(n, self.heads + self.kv_heads, self.head_dim).transpose(0, 1)
            qk = self._rope(qk, cos, sin)
            q, k = qk[: self.heads], qk[self.heads:]
            v = qkv[:, self.q_size + self.kv_size:].view(n, self.kv_heads, self.head_dim).transpose(0, 1)
            k_cache[:, start:end] = k
            v_cache[:, start:end] = v
            keys, values = k_cache[:, :end], v_cache[:, :end]
            if groups > 1:
                keys, values = keys.repeat_interleave(groups, 0), values.repeat_interleave(groups, 0)
            if n > 1:
                att = F.scaled_dot_product_attention(q, keys, values, is_causal=True, scale=self.scale)
            else:  # one new token attends to everything cached: a plain softmax is cheapest
                att = torch.softmax((q @ keys.transpose(1, 2)) * self.scale, dim=-1) @ values
            att = att.transpose(0, 1).reshape(n, self.q_size)
            out = att @ wo.T
            if ad is not None and (d := _delta(att, ad["o_proj"])) is not None:
                out += d
            x = x + out
            h = self._rms(x, ln2)
            gu = h @ wgu.T
            if ad is not None:
                half = gu.shape[-1] // 2
                for lo, p in ((0, "gate_proj"), (half, "up_proj")):
                    if (d := _delta(h, ad[p])) is not None:
                        gu[:, lo:lo + half] += d
            gate, up = gu.chunk(2, dim=-1)
            mid = F.silu(gate) * up
            out = mid @ wdown.T
            if ad is not None and (d := _delta(mid, ad["down_proj"])) is not None:
                out += d
            x = x + out
        logits: torch.Tensor = self._rms(x if all_logits else x[-1], self.norm) @ self.lm_head.T
        return logits

    def new_caches(self, positions: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        shape = (self.kv_heads, min(positions or self.max_positions, self.max_positions), self.head_dim)
        return [(torch.empty(shape), torch.empty(shape)) for _ in self.layers]

    def stream(self, ids: list[int], max_new_tokens: int, eos: int | None, min_new_tokens: int = 0,
               adapter: Adapter | None = None) -> Iterator[int]:
        """Greedy tokens one by one, as they are decided."""
        budget = min(max_new_tokens, self.max_positions - len(ids))
        caches = self.new_caches(len(ids) + budget)
        logits = self.forward(torch.tensor(ids), 0, caches, adapter)
        position = len(ids)
        produced = 0
        for _ in range(budget):
            token = int(logits.argmax())
            if token == eos and produced >= min_new_tokens:
                break
            produced += 1
            yield token
            if produced == budget:
                break
            logits = self.forward(torch.tensor([token]), position, caches, adapter)
            position += 1

    def generate(self, ids: list[int], max_new_tokens: int, eos: int | None, min_new_tokens: int = 0,
                 adapter: Adapter | None = None) -> list[int]:
        return list(self.stream(ids, max_new_tokens, eos, min_new_tokens, adapter))

    def logits(self, ids: list[int], adapter: Adapter | None = None) -> torch.Tensor:
        """Logits at every position of ``ids`` ([len, vocab]), for losses."""
        return self.forward(torch.tensor(ids), 0, self.new_caches(len(ids)), adapter, all_logits=True)
