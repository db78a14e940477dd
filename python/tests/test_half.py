# test_half.py — float16 NumPy arrays: every function accepts them and returns float16,
# with float32 statistics; compared with torch in float32 on the same (rounded) inputs
# (torch 1.13's CPU kernels have no float16 norms to compare with), within the field's
# tolerance for float16 (5e-3 relative to max(1, |ref|)). Gradients likewise.
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import normkit as nk

TOL = 5e-3
rng = np.random.default_rng(7)


def half(*shape, offset=0.5):
    return (rng.standard_normal(shape) * 2 + offset).astype(np.float16)


def close(got, want, tol=TOL):
    assert got.dtype == np.float16 or got.dtype == np.float32, got.dtype
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert err.max() <= tol, f"max rel err {err.max()}"


def t32(a):
    return None if a is None else torch.tensor(np.asarray(a, np.float32), requires_grad=True)


def torch_grads(fn, x, dy, *params):
    """Runs fn in float32 on the float16 values; returns (y, [grads of x and params])."""
    xs = t32(x)
    ps = [t32(p) for p in params]
    y = fn(xs, *ps)
    y.backward(torch.tensor(dy.astype(np.float32)))
    return y.detach().numpy(), [xs.grad.numpy()] + [None if p is None else p.grad.numpy() for p in ps]


@pytest.mark.parametrize("param_dtype", [np.float16, np.float32])
@pytest.mark.parametrize("shape", [(3, 37), (4, 5, 67)])
def test_layer_norm(shape, param_dtype):
    x, dy = half(*shape), half(*shape, offset=0)
    w = (rng.random(shape[-1]) + 0.5).astype(param_dtype)
    b = rng.standard_normal(shape[-1]).astype(param_dtype)
    y = nk.layer_norm(x, shape[-1], w, b)
    assert y.dtype == np.float16
    want, grads = torch_grads(lambda a, p, q: F.layer_norm(a, (shape[-1],), p, q), x, dy, w, b)
    close(y, want)
    dx, dw, db = nk.layer_norm_backward(dy, x, shape[-1], w, b)
    assert dx.dtype == np.float16 and dw.dtype == param_dtype and db.dtype == param_dtype
    close(dx, grads[0])
    close(dw, grads[1], tol=TOL * 4)  # sums over the batch, rounded to the parameter dtype
    close(db, grads[2], tol=TOL * 4)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(training, channels_last):
    x, dy = half(4, 6, 5, 7), half(4, 6, 5, 7, offset=0)
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    w, b = (rng.random(6) + 0.5).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    rm, rv = np.zeros(6, np.float32), np.ones(6, np.float32)
    trm, trv = torch.zeros(6), torch.ones(6)
    y = nk.batch_norm(x, rm, rv, w, b, training=training)
    assert y.dtype == np.float16
    if channels_last:
        assert y.strides == x.strides
    want, grads = torch_grads(lambda a, p, q: F.batch_norm(a, trm, trv, p, q, training=training), x, dy, w, b)
    close(y, want)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-5, atol=1e-6)
    dx, dw, db = nk.batch_norm_backward(dy, x, rm, rv, w, b, training=training)
    close(dx, grads[0])
    close(dw, grads[1], tol=1e-4)  # float32 parameters: float32 gradients
    close(db, grads[2], tol=1e-4)


def test_batch_norm_float16_running_stats_written_back_rounded():
    x = half(8, 3, 9, offset=2.0)
    rm16, rv16 = np.zeros(3, np.float16), np.ones(3, np.float16)
    rm32, rv32 = np.zeros(3, np.float32), np.ones(3, np.float32)
    nk.batch_norm(x, rm16, rv16, training=True)
    nk.batch_norm(x, rm32, rv32, training=True)
    assert np.array_equal(rm16, rm32.astype(np.float16))
    assert np.array_equal(rv16, rv32.astype(np.float16))


@pytest.mark.parametrize("fn", ["instance_norm", "group_norm"])
def test_instance_and_group_norm(fn):
    x, dy = half(3, 6, 5, 7), half(3, 6, 5, 7, offset=0)
    w, b = (rng.random(6) + 0.5).astype(np.float16), rng.standard_normal(6).astype(np.float16)
    if fn == "instance_norm":
        y = nk.instance_norm(x, weight=w, bias=b)
        dx, dw, db = nk.instance_norm_backward(dy, x, weight=w, bias=b)
        ref = lambda a, p, q: F.instance_norm(a, weight=p, bias=q)
    else:
        y = nk.group_norm(x, 3, w, b)
        dx, dw, db = nk.group_norm_backward(dy, x, 3, w, b)
        ref = lambda a, p, q: F.group_norm(a, 3, p, q)
    want, grads = torch_grads(ref, x, dy, w, b)
    assert y.dtype == dx.dtype == dw.dtype == np.float16
    close(y, want)
    close(dx, grads[0])
    close(dw, grads[1], tol=TOL * 4)
    close(db, grads[2], tol=TOL * 4)


def rms_ref(a, w, eps):
    return a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + eps) * w


def test_rms_norm_and_cast_orders():
    x, dy = half(5, 64, offset=0), half(5, 64, offset=0)
    w = (rng.random(64) + 0.5).astype(np.float16)
    eps = float(np.finfo(np.float32).eps)  # eps=None for float16 input: float32's epsilon
    y = nk.rms_norm(x, 64, w)
    want, grads = torch_grads(lambda a, p: rms_ref(a, p, eps), x, dy, w)
    close(y, want)
    # multiply_then_cast (default): one rounding of the float32 product.
    assert np.array_equal(y, want.astype(np.float16)) or np.abs(y.astype(np.float32) - want).max() < 1e-2
    # normalize_then_cast (LLaMA): x * rstd is rounded to float16 before the weight.
    xt = torch.tensor(x.astype(np.float32))
    normed = (xt * torch.rsqrt(xt.pow(2).mean(-1, keepdim=True) + eps)).to(torch.float16)
    llama = (torch.tensor(w) * normed).numpy()  # float16 * float16 in torch
    y2 = nk.rms_norm(x, 64, w, cast="normalize_then_cast")
    close(y2, llama)
    dx, dw = nk.rms_norm_backward(dy, x, 64, w)
    close(dx, grads[0])
    close(dw, grads[1], tol=TOL * 4)
    with pytest.raises(ValueError, match="cast='sideways'"):
        nk.rms_norm(x, 64, w, cast="sideways")


def test_weight_norm_and_normalize():
    v, dw_ = half(6, 9), half(6, 9, offset=0)
    g = (rng.random((6, 1)) + 0.5).astype(np.float32)
    w = nk.weight_norm(v, g)
    assert w.dtype == np.float16
    want, grads = torch_grads(lambda a, q: torch._weight_norm(a, q, 0), v, dw_, g)
    close(w, want)
    dv, dg = nk.weight_norm_backward(dw_, v, g)
    close(dv, grads[0])
    close(dg, grads[1], tol=1e-3)
    x = half(4, 5, 6)
    y = nk.normalize(x, (0, 2))
    xt = torch.tensor(x.astype(np.float32))
    ref = (xt - xt.mean((0, 2), keepdim=True)) / torch.sqrt(xt.var((0, 2), unbiased=False, keepdim=True) + 1e-5)
    close(y, ref.numpy())


def test_float16_bad_input_still_raises():
    x = half(2, 5)
    with pytest.raises(ValueError, match=r"\[layer_norm\] weight has 3 elements"):
        nk.layer_norm(x, 5, np.ones(3, np.float16))
    rm = np.zeros(5, np.float16)
    rm_before = rm.copy()
    with pytest.raises(ValueError):
        nk.batch_norm(half(4, 5), rm, np.ones(5, np.float16), training=True, momentum=2.0)
    assert np.array_equal(rm, rm_before)
