"""Greedy decoding for Llama-architecture models in a few plain tensor operations.

For models as small as the default (3.4 M parameters) a reply is dominated by per-call
overhead, not arithmetic: Hugging Face's forward runs dozens of small modules per token.
This decoder reads the same weights, fuses Q/K/V and gate/up into one matrix each, keeps
a preallocated KV cache, and computes exactly the Llama forward (RMSNorm, rotary
embeddings with the default RoPE, grouped-query attention, SwiGLU). It takes only models
it can reproduce (``supports``); anything else falls back to the model's own forward.
A test checks its logits against Hugging Face's.
"""

from __future__ import annotations

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
        scale = self.head_dim ** -0.5
        self.layers = []
        for layer in inner.layers:
            att, mlp = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm.weight.detach(),
                # The attention scale is folded into Q (rotary embedding is linear, so it commutes).
                torch.cat([att.q_proj.weight * scale, att.k_proj.weight, att.v_proj.weight]).detach().contiguous(),
                att.o_proj.weight.detach(),
                layer.post_attention_layernorm.weight.detach(),
                torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).detach().contiguous(),
                mlp.down_proj.weight.detach(),
            ))
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
    def forward(self, ids: torch.Tensor, start: int, caches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Logits of the last position for ``ids`` (1-D) placed at ``start``; fills the caches."""
        n = ids.shape[0]
        end = start + n
        x = self.embed[ids]  # [n, hidden]
        cos, sin = self.cos[start:end], self.sin[start:end]
        groups = self.heads // self.kv_heads
        for (ln1, wqkv, wo, ln2, wgu, wdown), (k_cache, v_cache) in zip(self.layers, caches):
            h = self._rms(x, ln1)
            qkv = h @ wqkv.T
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
                att = F.scaled_dot_product_attention(q, keys, values, is_causal=True, scale=1.0)
            else:  # one new token attends to everything cached: a plain softmax is cheapest
                att = torch.softmax(q @ keys.transpose(1, 2), dim=-1) @ values
            x = x + att.transpose(0, 1).reshape(n, self.q_size) @ wo.T
            h = self._rms(x, ln2)
            gate, up = (h @ wgu.T).chunk(2, dim=-1)
            x = x + (F.silu(gate) * up) @ wdown.T
        return self._rms(x[-1], self.norm) @ self.lm_head.T

    def new_caches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        shape = (self.kv_heads, self.max_positions, self.head_dim)
        return [(torch.empty(shape), torch.empty(shape)) for _ in self.layers]

    def generate(self, ids: list[int], max_new_tokens: int, eos: int | None, min_new_tokens: int = 0) -> list[int]:
        budget = min(max_new_tokens, self.max_positions - len(ids))
        caches = self.new_caches()
        logits = self.forward(torch.tensor(ids), 0, caches)
        position = len(ids)
        produced: list[int] = []
        for _ in range(budget):
            token = int(logits.argmax())
            if token == eos and len(produced) >= min_new_tokens:
                break
            produced.append(token)
            if len(produced) == budget:
                break
            logits = self.forward(torch.tensor([token]), position, caches)
            position += 1
        return produced
