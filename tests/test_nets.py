"""The shared building blocks: the one MLP builder and the EMA update."""

import pytest
import torch
from torch import nn

from worldmodels.nets.ema import ema_update
from worldmodels.nets.mlp import layernorm_mlp, mlp


def test_mlp_builds_hidden_layers_then_an_output_layer():
    net = mlp(3, (8, 5), 2, activation=nn.ELU, layer_norm=True)
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.LayerNorm, nn.ELU, nn.Linear, nn.LayerNorm, nn.ELU, nn.Linear]
    assert net(torch.randn(4, 3)).shape == (4, 2)
    assert [type(m) for m in mlp(3, (8,), None)] == [nn.Linear, nn.ReLU]  # no output layer: ends on a hidden one


def test_layernorm_mlp_is_dreamers_layer_and_can_start_at_zero():
    net = layernorm_mlp(6, 16, 2, 4, zero_init=True)
    assert [type(m) for m in net] == [nn.Linear, nn.LayerNorm, nn.SiLU] * 2 + [nn.Linear]
    assert net[0].bias is None and net[3].bias is None  # LayerNorm follows: no bias before it
    assert torch.equal(net(torch.randn(5, 6)), torch.zeros(5, 4))


def test_ema_update_moves_each_parameter_by_the_rate_and_leaves_buffers():
    torch.manual_seed(0)
    online, target = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        target.weight.zero_()
        online.running_mean.fill_(5.0)
    ema_update(target, online, 0.25)
    torch.testing.assert_close(target.weight, torch.tensor([0.25, 0.5, 0.75]))
    assert torch.equal(target.running_mean, torch.zeros(3))
    # every parameter of a deeper module moves as its own lerp_ would move it
    online, target = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    expected = [
        t.detach().clone().lerp_(o.detach(), 0.005)
        for t, o in zip(target.parameters(), online.parameters(), strict=True)
    ]
    ema_update(target, online, 0.005)
    assert all(torch.equal(t, e) for t, e in zip(target.parameters(), expected, strict=True))
    with pytest.raises(ValueError, match="target has 4 parameters, online 2"):
        ema_update(target, nn.Linear(3, 4), 0.1)


def test_adam_helper_is_fused_on_cpu_and_takes_torchs_adam_step():
    from worldmodels.nets.optim import adam

    torch.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    fused, plain = adam(a.parameters(), lr=0.1, eps=1e-5), torch.optim.Adam(b.parameters(), lr=0.1, eps=1e-5)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    x = torch.randn(16, 4)
    for _ in range(3):
        for net, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    groups = adam([{"params": (p for p in [a.weight]), "lr": 0.01}, {"params": [a.bias]}], lr=0.1)
    assert [(g["lr"], len(g["params"]), g["fused"]) for g in groups.param_groups] == [(0.01, 1, True), (0.1, 1, True)]
    # a checkpoint of an unfused Adam (saved before the helper existed) keeps the loaded optimizer fused
    fused.load_state_dict(plain.state_dict())
    assert fused.param_groups[0]["fused"]
    fused.step()
    from worldmodels.nets.optim import adamw

    assert adamw(b.parameters(), lr=0.1, weight_decay=0.1).defaults["fused"]
