# test_extras.py — the extras against PyTorch run in float64: fused add + RMSNorm/LayerNorm
# (forward, backward through autograd), GroupNorm + SiLU (F.silu(F.group_norm(...))),
# fold_batch_norm (torch.nn.utils.fusion and real Conv/Linear + eval BatchNorm), FrozenBatchNorm
# (detectron2's formula) and AdaIN (the InstanceNorm composition, both gradients).
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights

import normkit
from torch_reference import DTYPES, FWD_TOL, GRAD_TOL, torch_rms_norm


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def close(got, want, tol, what):
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = np.max(np.abs(got.astype(np.float64) - want)) / max(np.max(np.abs(want)), 1e-3)
    assert err <= tol, f"{what}: normwise error {err:.3g} > {tol:.3g}"


# ---- fused residual add + norm -------------------------------------------------------------

ADD_CASES = [((4, 7), (7,)), ((2, 3, 16), (16,)), ((3, 4, 5), (4, 5)), ((64, 513), (513,))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer", [False, True])
@pytest.mark.parametrize("shape,ns", ADD_CASES)
@pytest.mark.parametrize("with_grad_sum", [True, False])
def test_add_norm_matches_torch(shape, ns, layer, dtype, with_grad_sum, rng):
    x = (rng.standard_normal(shape) + 0.3).astype(dtype)
    r = rng.standard_normal(shape).astype(dtype)
    w = rng.uniform(0.5, 1.5, ns).astype(dtype)
    b = rng.standard_normal(ns).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    gs = rng.standard_normal(shape).astype(dtype) if with_grad_sum else None
    eps = 1e-5
    tx, tr, tw, tb = t64(x, True), t64(r, True), t64(w, True), t64(b, True)
    ts = tx + tr
    ty = F.layer_norm(ts, ns, tw, tb, eps) if layer else torch_rms_norm(ts, ns, tw, eps)
    loss = (ty * t64(gy)).sum() + ((ts * t64(gs)).sum() if gs is not None else 0)
    loss.backward()
    if layer:
        y, s = normkit.add_layer_norm(x, r, ns, w, b, eps)
        dx, dw, db = normkit.add_layer_norm_backward(gy, gs, s, ns, w, b, eps)
        close(db, tb.grad, GRAD_TOL[dtype], "grad_bias")
    else:
        y, s = normkit.add_rms_norm(x, r, ns, w, eps)
        dx, dw = normkit.add_rms_norm_backward(gy, gs, s, ns, w, eps)
    assert y.dtype == dtype and s.dtype == dtype
    np.testing.assert_array_equal(s, x + r)
    close(y, ty, FWD_TOL[dtype], "y")
    close(dx, tx.grad, GRAD_TOL[dtype], "grad_input")
    close(dx, tr.grad, GRAD_TOL[dtype], "grad_residual")
    close(dw, tw.grad, GRAD_TOL[dtype], "grad_weight")


def test_add_rms_norm_gemma_default_eps_and_layout(rng):
    base = rng.standard_normal((8, 3, 32)).astype(np.float32)
    x = base.transpose(1, 0, 2)  # leading dims permuted: read in place, outputs keep the strides
    r = rng.standard_normal(x.shape).astype(np.float32)
    w = rng.standard_normal(32).astype(np.float32) * 0.1
    y, s = normkit.add_rms_norm(x, r, 32, w, unit_offset=True)
    assert y.strides == x.strides and s.strides == x.strides
    eps = np.finfo(np.float32).eps
    want = torch_rms_norm(t64(x + r), (32,), t64(w), float(eps), unit_offset=True)
    close(y, want, FWD_TOL[np.float32], "y (Gemma, eps unset, permuted)")


def test_add_norm_errors():
    x = np.ones((4, 6), np.float32)
    with pytest.raises(ValueError, match=r"\[add_rms_norm\] residual shape=2x6"):
        normkit.add_rms_norm(x, np.ones((2, 6), np.float32), 6)
    with pytest.raises(ValueError, match=r"\[add_layer_norm\] normalized_shape=5"):
        normkit.add_layer_norm(x, x, 5)
    with pytest.raises(TypeError, match=r"\[add_rms_norm\] input dtype=int64"):
        normkit.add_rms_norm(np.ones((4, 6), np.int64), x, 6)


# ---- GroupNorm + SiLU -----------------------------------------------------------------------

GN_CASES = [((2, 6, 5, 3), 3), ((3, 4, 7), 2), ((2, 32, 16, 16), 8), ((4, 8), 4), ((1, 64, 24, 24), 32)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,groups", GN_CASES)
def test_group_norm_silu_matches_torch(shape, groups, affine, dtype, rng):
    c = shape[1]
    x = (rng.standard_normal(shape) * 1.5 + 0.3).astype(dtype)
    w = rng.uniform(0.5, 1.5, c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    gy = rng.standard_normal(shape).astype(dtype)
    tx = t64(x, True)
    tw, tb = (t64(w, True), t64(b, True)) if affine else (None, None)
    ty = F.silu(F.group_norm(tx, groups, tw, tb, 1e-5))
    (ty * t64(gy)).sum().backward()
    y = normkit.group_norm_silu(x, groups, w, b)
    dx, dw, db = normkit.group_norm_silu_backward(gy, x, groups, w, b)
    close(y, ty, FWD_TOL[dtype], "y")
    close(dx, tx.grad, GRAD_TOL[dtype], "grad_input")
    if affine:
        close(dw, tw.grad, GRAD_TOL[dtype], "grad_weight")
        close(db, tb.grad, GRAD_TOL[dtype], "grad_bias")
    else:
        assert dw is None and db is None


def test_group_norm_silu_channels_last(rng):
    x_nhwc = rng.standard_normal((2, 5, 7, 12)).astype(np.float32)
    x = x_nhwc.transpose(0, 3, 1, 2)  # logical NCHW, channels-last memory
    w, b = rng.uniform(0.5, 1.5, 12).astype(np.float32), rng.standard_normal(12).astype(np.float32)
    y = normkit.group_norm_silu(x, 4, w, b)
    assert y.strides == x.strides
    close(y, F.silu(F.group_norm(t64(x), 4, t64(w), t64(b), 1e-5)), FWD_TOL[np.float32], "y")


# ---- deployment -----------------------------------------------------------------------------

def bn_params(rng, c, dtype=np.float64):
    return dict(running_mean=rng.standard_normal(c).astype(dtype),
                running_var=rng.uniform(0.5, 2.0, c).astype(dtype),
                bn_weight=rng.uniform(0.5, 1.5, c).astype(dtype),
                bn_bias=rng.standard_normal(c).astype(dtype))


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("with_bias", [True, False])
def test_fold_batch_norm_matches_torch_fusion(transpose, with_bias, rng):
    w = rng.standard_normal((6, 4, 3, 3) if transpose else (4, 6, 3, 3))
    b = rng.standard_normal(4) if with_bias else None
    p = bn_params(rng, 4)
    got_w, got_b = normkit.fold_batch_norm(w, b, eps=1e-3, transpose=transpose, **p)
    tb = t64(b) if b is not None else None
    want_w, want_b = fuse_conv_bn_weights(t64(w), tb, t64(p["running_mean"]), t64(p["running_var"]), 1e-3,
                                          t64(p["bn_weight"]), t64(p["bn_bias"]), transpose=transpose)
    close(got_w, want_w, 1e-14, "weight'")
    close(got_b, want_b, 1e-14, "bias'")


@pytest.mark.parametrize("kind", ["linear", "conv", "conv_transpose"])
def test_layer_then_eval_batch_norm_equals_folded_layer(kind, rng):
    torch.manual_seed(0)
    if kind == "linear":
        layer, bn, x = torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.randn(8, 5)
    elif kind == "conv":
        layer, bn, x = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.randn(2, 3, 6, 5)
    else:
        layer, bn, x = torch.nn.ConvTranspose2d(3, 4, 3, stride=2), torch.nn.BatchNorm2d(4), torch.randn(2, 3, 4, 4)
    layer, bn, x = layer.double(), bn.double(), x.double()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(4))
        bn.running_var.copy_(torch.rand(4) + 0.5)
        bn.weight.copy_(torch.rand(4) + 0.5)
        bn.bias.copy_(torch.randn(4))
    bn.eval()
    with torch.no_grad():
        want = bn(layer(x))
        w, b = normkit.fold_batch_norm(layer.weight.numpy(), layer.bias.numpy(), bn.running_mean.numpy(),
                                       bn.running_var.numpy(), bn.weight.numpy(), bn.bias.numpy(), bn.eps,
                                       transpose=kind == "conv_transpose")
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
        close(layer(x).numpy(), want, 1e-12, f"{kind} + eval BN vs folded {kind}")


def test_fold_batch_norm_errors():
    w = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"\[fold_batch_norm\] running_mean has 2 elements, expected 3"):
        normkit.fold_batch_norm(w, None, np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match=r"\[fold_batch_norm\] running_mean and running_var are required"):
        normkit.fold_batch_norm(w, None, None, None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_frozen_batch_norm_matches_detectron2(dtype, rng):
    x = rng.standard_normal((2, 5, 4, 3)).astype(dtype)
    p = bn_params(rng, 5, dtype)
    rm, rv, w, b = p["running_mean"], p["running_var"], p["bn_weight"], p["bn_bias"]
    y = normkit.frozen_batch_norm(x, rm, rv, w, b, eps=1e-5)
    scale = t64(w) * (t64(rv) + 1e-5).rsqrt()  # detectron2 FrozenBatchNorm2d.forward
    shift = t64(b) - t64(rm) * scale
    want = t64(x) * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)
    close(y, want, FWD_TOL[dtype], "y")
    close(y, F.batch_norm(t64(x), t64(rm), t64(rv), t64(w), t64(b), False, 0.1, 1e-5), FWD_TOL[dtype],
          "y vs eval F.batch_norm")
    gy = rng.standard_normal(x.shape).astype(dtype)
    close(normkit.frozen_batch_norm_backward(gy, rm, rv, w, b, eps=1e-5), t64(gy) * scale.reshape(1, -1, 1, 1),
          FWD_TOL[dtype], "grad_input")
    fresh = normkit.frozen_batch_norm(x)  # running_var = 1 - eps: the identity
    close(fresh, x.astype(np.float64), FWD_TOL[dtype], "fresh layer")


# ---- AdaIN ----------------------------------------------------------------------------------

def torch_adain(content, style, eps):
    dims = tuple(range(2, content.dim()))
    sdims = tuple(range(2, style.dim()))
    cm, cv = content.mean(dims, keepdim=True), content.var(dims, unbiased=False, keepdim=True)
    sm, sv = style.mean(sdims, keepdim=True), style.var(sdims, unbiased=False, keepdim=True)
    sm = sm.reshape(sm.shape[:2] + (1,) * len(dims))
    sv = sv.reshape(sv.shape[:2] + (1,) * len(dims))
    return (content - cm) / torch.sqrt(cv + eps) * torch.sqrt(sv + eps) + sm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cshape,sshape", [((2, 3, 5, 4), (2, 3, 7, 6)), ((1, 8, 16, 16), (1, 8, 16, 16)),
                                           ((4, 5, 9), (4, 5, 3))])
def test_adain_matches_torch(cshape, sshape, dtype, rng):
    c = (rng.standard_normal(cshape) + 0.5).astype(dtype)
    s = (rng.standard_normal(sshape) * 2 - 1).astype(dtype)
    gy = rng.standard_normal(cshape).astype(dtype)
    tc, ts = t64(c, True), t64(s, True)
    ty = torch_adain(tc, ts, 1e-5)
    (ty * t64(gy)).sum().backward()
    close(normkit.adain(c, s), ty, FWD_TOL[dtype], "y")
    dc, ds = normkit.adain_backward(gy, c, s)
    close(dc, tc.grad, GRAD_TOL[dtype], "grad_content")
    close(ds, ts.grad, GRAD_TOL[dtype], "grad_style")


def test_adain_channels_last_and_errors(rng):
    c = rng.standard_normal((2, 6, 5, 3)).transpose(0, 3, 1, 2)  # (2, 3, 6, 5), channels-last
    s = rng.standard_normal((2, 3, 4, 4))
    y = normkit.adain(c, s)
    assert y.strides == c.strides
    close(y, torch_adain(t64(c), t64(s), 1e-5), FWD_TOL[np.float64], "y")
    with pytest.raises(ValueError, match=r"\[adain\] content shape 2x3x6x5 and style shape 2x4x4"):
        normkit.adain(c, np.ones((2, 4, 4)))
    with pytest.raises(TypeError, match=r"\[adain\] style dtype=int64"):
        normkit.adain(c, np.ones((2, 3, 4), np.int64))
