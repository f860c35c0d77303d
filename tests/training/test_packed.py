"""Frozen bf16 weights packed in oneDNN's layout while a LoRA job trains (``packed.packed_weights``):
the same products and gradients, a weight changed in place never read stale, everything put back."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.training.test_fused import _base, _lora, _loss_and_grads
from trainerbot.training import packed
from trainerbot.training.common import frozen_in_bf16
from trainerbot.training.fused import fused_projections

pytestmark = pytest.mark.skipif(not packed.usable(), reason="this CPU has no oneDNN bf16 kernels")


class _Two(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(48, 40, bias=True).to(torch.bfloat16).requires_grad_(False)
        self.trained = nn.Linear(40, 8)  # float32, trained: never packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trained(self.frozen(x).float())


def test_a_packed_weight_gives_the_plain_products_and_input_gradients() -> None:
    torch.manual_seed(0)
    model = _Two()
    x = torch.randn(2, 7, 48, dtype=torch.bfloat16, requires_grad=True)

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        x.grad = None
        out = model(x)
        out.square().sum().backward()
        assert x.grad is not None
        return out.detach(), x.grad.clone()

    plain = run()
    with packed.packed_weights(model) as count:
        assert count == 1 and type(model.frozen) is packed.PackedLinear and type(model.trained) is nn.Linear
        assert packed._found(model.frozen.weight) is not None  # the packed form is what runs
        inside = run()
    assert type(model.frozen) is nn.Linear and not packed._PACKED  # its class back, the packed forms dropped
    assert torch.allclose(inside[0], plain[0], rtol=1e-2, atol=1e-2) and torch.allclose(inside[1], plain[1], rtol=1e-2, atol=1e-2)
    assert inside[1].abs().sum() > 0


def test_a_weight_changed_in_place_is_multiplied_as_it_is_now_never_as_packed() -> None:
    weight = torch.randn(16, 24).to(torch.bfloat16)
    x = torch.randn(5, 24, dtype=torch.bfloat16)
    holder = nn.Linear(24, 16, bias=False)
    holder.weight = nn.Parameter(weight, requires_grad=False)
    with packed.packed_weights(holder):
        before = packed.frozen_linear(x, weight)
        with torch.no_grad():
            weight.mul_(-2)  # a changed weight: the packed form is stale
        after = packed.frozen_linear(x, weight)
        assert packed._found(weight) is None
    assert torch.allclose(after.float(), F.linear(x, weight).float(), rtol=1e-2, atol=1e-2)
    assert torch.allclose(after.float(), -2 * before.float(), rtol=2e-2, atol=2e-2)


def test_a_lora_model_in_bf16_packs_its_frozen_projections_with_the_same_loss_and_gradients() -> None:
    """Fused projections as a job trains them, with and without their weights packed: the
    fused groups' weights and the projections that run alone (o_proj, down_proj) are packed,
    the adapters and the tied head (float32) are not; the loss and adapter gradients match."""
    net = _lora(frozen_in_bf16(_base(), new_adapter=True))
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(5))
    with fused_projections(net):
        plain = _loss_and_grads(net, ids, bf16=True)
        with packed.packed_weights(net) as count:
            layer = net.base_model.model.model.layers[1]
            assert count == 2 * 4  # 2 layers: query/key/value fused, gate/up fused, o_proj, down_proj
            assert type(layer.self_attn.o_proj.base_layer) is packed.PackedLinear
            assert type(layer.self_attn.q_proj.base_layer) is nn.Linear  # it runs fused: its own weight is not multiplied
            inside = _loss_and_grads(net, ids, bf16=True)
    assert type(net.base_model.model.model.layers[1].self_attn.o_proj.base_layer) is nn.Linear and not packed._PACKED
    assert inside[0] == pytest.approx(plain[0], rel=1e-3)
    for a, b in zip(plain[1], inside[1], strict=True):
        assert float((a - b).norm()) <= 0.01 * float(b.norm()) + 1e-6


def test_another_view_of_a_packed_weights_storage_is_not_taken_for_it() -> None:
    """A square weight's transpose shares its storage and shape: it must be multiplied as itself."""
    weight = torch.randn(24, 24).to(torch.bfloat16)
    holder = nn.Linear(24, 24, bias=False)
    holder.weight = nn.Parameter(weight, requires_grad=False)
    x = torch.randn(3, 24, dtype=torch.bfloat16)
    with packed.packed_weights(holder):
        assert packed._found(weight) is not None and packed._found(weight.t()) is None
        got = packed.frozen_linear(x, weight.t())
    assert torch.allclose(got.float(), F.linear(x, weight.t()).float(), rtol=1e-2, atol=1e-2)
