"""The projections that read one input run as one matmul under LoRA (``fused.fused_projections``):
the same loss and gradients, the layers' own classes and weights back afterwards."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama import modeling_llama

from trainerbot.training import runner
from trainerbot.training.common import frozen_in_bf16
from trainerbot.training.fused import FusedLlamaAttention, FusedLlamaMLP, fused_projections


def _base() -> LlamaForCausalLM:
    """Two layers, grouped-query attention (the key and value projections narrower than the query's)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def _lora(model: torch.nn.Module) -> torch.nn.Module:
    """The product's adapter on the top layer only (the bottom one keeps plain frozen projections),
    its B matrices made nonzero so that the adapters count in the loss."""
    config = LoraConfig(r=4, lora_alpha=8, target_modules=runner.LORA_TARGETS, layers_to_transform=[1], task_type="CAUSAL_LM")
    net = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, weight in net.named_parameters():
            if "lora_B" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.1)
    return net


def _loss_and_grads(net: torch.nn.Module, ids: torch.Tensor, bf16: bool = False) -> tuple[float, list[torch.Tensor]]:
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = net(input_ids=ids, labels=ids).loss
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in net.parameters() if p.requires_grad]


def test_projections_of_one_input_run_as_one_with_the_same_loss_and_gradients() -> None:
    net = _lora(_base())
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(2))
    keys = set(net.state_dict())
    alone = _loss_and_grads(net, ids)
    called: list[str] = []
    hooks = [net.base_model.model.model.layers[i].self_attn.k_proj.register_forward_hook(
        lambda *_a, i=i: called.append(f"k_proj {i}")) for i in (0, 1)]
    with fused_projections(net) as count:
        assert count == 4  # both layers' attention and MLP: plain frozen projections and adapted ones alike
        layer = net.base_model.model.model.layers[1]
        assert type(layer.self_attn) is FusedLlamaAttention and type(layer.mlp) is FusedLlamaMLP
        assert layer.self_attn.fused_weight.shape == (64 + 32 + 32, 64) and layer.mlp.fused_weight.shape == (2 * 176, 64)
        together = _loss_and_grads(net, ids)
        assert called == []  # the projections' own forward did not run: they ran fused
    assert alone[0] > 1.0 and together[0] == pytest.approx(alone[0], rel=1e-6)
    assert len(alone[1]) == 2 * 7
    for a, b in zip(alone[1], together[1], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    # as it was afterwards: the classes, no fused weights, the same state
    layer = net.base_model.model.model.layers[1]
    assert type(layer.self_attn) is modeling_llama.LlamaAttention and type(layer.mlp) is modeling_llama.LlamaMLP
    assert not hasattr(layer.self_attn, "fused_weight") and set(net.state_dict()) == keys
    assert _loss_and_grads(net, ids)[0] == alone[0] and len(called) == 2
    for hook in hooks:
        hook.remove()


def test_under_bf16_the_fused_gradients_are_as_close_to_float32_as_the_projections_own() -> None:
    """The frozen weights in bf16 and autocast on, as a job trains: the fused sums round
    differently, no worse than each projection's own against the same model in float32."""
    net = _lora(frozen_in_bf16(_base(), new_adapter=True))
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(3))
    exact = _loss_and_grads(copy.deepcopy(net).float(), ids)
    alone = _loss_and_grads(net, ids, bf16=True)
    with fused_projections(net):
        mlp = net.base_model.model.model.layers[1].mlp
        assert mlp.fused_weight.dtype == torch.bfloat16 and mlp.up_proj.lora_A["default"].weight.dtype == torch.float32
        together = _loss_and_grads(net, ids, bf16=True)

    def error(got: tuple[float, list[torch.Tensor]]) -> float:
        return max(float((a - b).norm() / b.norm()) for a, b in zip(got[1], exact[1], strict=True))
    assert together[0] == pytest.approx(exact[0], rel=0.01)
    assert 0 < error(together) <= 1.25 * error(alone), (error(together), error(alone))


def test_adapters_switched_off_or_a_trained_base_are_left_to_the_projections() -> None:
    """Under ``disable_adapter`` (KTO and DPO's reference) a fused module gives the base's own
    output; projections whose weights train (a whole model) are not fused."""
    base = _base()
    ids = torch.randint(0, 100, (1, 10), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        plain = base(input_ids=ids).logits
    net = _lora(copy.deepcopy(base))
    with fused_projections(net), torch.no_grad():
        assert not torch.allclose(net(input_ids=ids).logits, plain, atol=1e-4)  # the adapters count
        with net.disable_adapter():
            assert torch.allclose(net(input_ids=ids).logits, plain, atol=1e-5)
    with fused_projections(base) as count:
        assert count == 0 and type(base.model.layers[0].self_attn) is modeling_llama.LlamaAttention
