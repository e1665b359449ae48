"""The loss terms compile whole (torch.compile, fullgraph=True) and match eager; the config
key `compile`."""

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.testing import CompileCounterWithBackend

from scdepth import config, step
from scdepth.models import DepthNet, PoseNet
from scdepth.ops import get_backend

B, H, W = 2, 64, 64  # the networks need multiples of 32, >= 64


def network_outputs(seed=0):
    """A batch and the networks' outputs for it (tgt_depth needs a gradient)."""
    g = torch.Generator().manual_seed(seed)
    f = 40.0
    K = torch.tensor([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1.0]])
    batch = dict(
        tgt=torch.rand(B, 3, H, W, generator=g),
        refs=torch.rand(B, 2, 3, H, W, generator=g),
        K=K.expand(B, 3, 3).clone(),
        # smooth, so that not every pixel is a depth edge (normal_rank skips those)
        pseudo_depth=1 + F.interpolate(torch.rand(B, 1, H // 8, W // 8, generator=g), (H, W)),
    )
    tgt_depth = (1 + torch.rand(B, 1, H, W, generator=g)).requires_grad_()
    ref_depths = [1 + torch.rand(B, 1, H, W, generator=g) for _ in range(2)]
    poses = [0.01 * torch.randn(B, 6, generator=g) for _ in range(2)]
    return batch, tgt_depth, ref_depths, poses, [-p for p in poses]


@pytest.mark.parametrize("method", ["sc_depth_v1", "sc_depth_v3"])
def test_loss_terms_compile_whole_once_for_every_step_and_match_eager(method):
    cfg = config.load(overrides=[f"method={method}"])
    ops = get_backend("ext")
    counter = CompileCounterWithBackend("aot_eager")  # Dynamo and AOTAutograd, no codegen
    compiled = step.compile_loss_terms(backend=counter)
    for s in range(3):
        results = []
        for fn in (compiled, step.loss_terms):
            batch, tgt_depth, *outs = network_outputs()
            draws = step.draw(cfg, s, batch)
            total, terms = fn(ops, cfg, batch, tgt_depth, *outs, s, None, draws)
            (grad,) = torch.autograd.grad(total, tgt_depth)
            results.append((total, terms, grad))
        (total, terms, grad), (e_total, e_terms, e_grad) = results
        torch.testing.assert_close(total, e_total, rtol=1e-6, atol=0)
        torch.testing.assert_close(grad, e_grad, rtol=1e-5, atol=1e-9)
        assert terms.keys() == e_terms.keys()
        assert total > 0 and grad.abs().sum() > 0
    assert counter.frame_count == 1  # fullgraph, and the step is a symbol: no recompile
    if method == "sc_depth_v3":
        assert e_terms["normal_rank"] > 0 and e_terms["mask_rank"] > 0


@pytest.mark.slow
def test_compute_losses_with_compile_losses_matches_eager():
    """The real thing (Inductor's C++ code) through compute_losses, networks and backward."""
    torch.manual_seed(0)
    nets = DepthNet(pretrained=False), PoseNet(pretrained=False)
    ops = get_backend("ext")
    grads = []
    for mode in ("losses", "none"):
        cfg = config.load(overrides=[f"compile={mode}"])
        batch = network_outputs()[0]
        for net in nets:
            net.zero_grad()
        total, terms, _ = step.compute_losses(*nets, batch, cfg, ops, 5)
        total.backward()
        grads.append([p.grad.clone() for net in nets for p in net.parameters()])
        assert all(torch.isfinite(t) for t in terms.values())
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)


def test_compile_key_and_prepare_networks():
    assert config.load().compile == "none"
    with pytest.raises(ValueError, match="compile must be none, losses or all, got 'fast'"):
        config.load(overrides=["compile=fast"])
    net = torch.nn.Linear(2, 2)
    keys = list(net.state_dict())
    step.prepare_networks(config.load(overrides=["compile=losses"]), net, None)
    assert net._compiled_call_impl is None  # losses only: the networks stay eager
    step.prepare_networks(config.load(overrides=["compile=all"]), net, None)
    assert net._compiled_call_impl is not None and list(net.state_dict()) == keys
    assert step.loss_function(config.load()) is step.loss_terms
    with torch.no_grad():  # validation stays eager
        assert step.loss_function(config.load(overrides=["compile=losses"])) is step.loss_terms
