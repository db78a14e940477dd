# test_weight_norm.py — normkit.weight_norm and its backward against torch._weight_norm:
# every dim (first, middle, last, None / -1 = whole tensor), g in torch's
# broadcast shape or flat, grad_g shaped like g.
import numpy as np
import pytest

import normkit
from torch_reference import DTYPES, check_op

CASES = [((5, 3), 0), ((5, 3), 1), ((7, 3, 3, 3), 0), ((7, 3, 3, 3), 1), ((7, 3, 3, 3), 3),
         ((7, 3, 3, 3), -1), ((7, 3, 3, 3), None), ((4, 5, 6), 2), ((17,), 0), ((1, 33), 1)]


def g_shape(shape, dim):
    """torch keeps g broadcastable against v: size shape[dim] at dim, 1 elsewhere."""
    if dim is None or dim == -1:
        return ()
    d = dim % len(shape)
    return tuple(s if i == d else 1 for i, s in enumerate(shape))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", CASES)
def test_weight_norm_matches_torch(shape, dim, dtype, rng):
    arrays = dict(v=(rng.standard_normal(shape) + 0.2).astype(dtype),
                  g=rng.uniform(0.5, 2.0, g_shape(shape, dim)).astype(dtype))
    torch_params = dict(dim=-1 if dim is None else dim)
    w, (gv, gg) = check_op("weight_norm", arrays, dict(dim=dim), dtype, rng, torch_params)

    # The same g given flat: same values, grad_g comes back flat.
    flat = arrays["g"].reshape(-1)
    np.testing.assert_array_equal(normkit.weight_norm(arrays["v"], flat, dim), w)
    dw = rng.standard_normal(shape).astype(dtype)
    gv1, gg1 = normkit.weight_norm_backward(dw, arrays["v"], arrays["g"], dim)
    gv2, gg2 = normkit.weight_norm_backward(dw, arrays["v"], flat, dim)
    assert gg2.shape == flat.shape
    np.testing.assert_array_equal(gv1, gv2)
    np.testing.assert_array_equal(gg1.reshape(-1), gg2)


def test_weight_norm_g_of_another_dtype_is_converted(rng):
    v = rng.standard_normal((4, 3)).astype(np.float32)
    g = rng.uniform(0.5, 2.0, (4, 1))
    w = normkit.weight_norm(v, g)
    assert w.dtype == np.float32
    expected = g * v / np.linalg.norm(v.astype(np.float64), axis=1, keepdims=True)
    np.testing.assert_allclose(w, expected, rtol=2e-6)
    gv, gg = normkit.weight_norm_backward(np.ones_like(v), v, g)
    assert gv.dtype == np.float32 and gg.dtype == np.float32 and gg.shape == g.shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", [((7, 3, 3, 3), 0), ((4, 5, 6), 2), ((7, 3, 3, 3), None)])
def test_weight_norm_norms_round_trip_like_torch_interface(shape, dim, dtype, rng):
    """return_norms=True gives torch._weight_norm_interface's (w, norms) (which takes the first
    or the last dim); the backward given those norms matches _weight_norm_interface_backward
    and the backward that takes them from v itself."""
    import torch
    v = (rng.standard_normal(shape) + 0.2).astype(dtype)
    g = rng.uniform(0.5, 2.0, g_shape(shape, dim)).astype(dtype)
    dw = rng.standard_normal(shape).astype(dtype)
    w, norms = normkit.weight_norm(v, g, dim, return_norms=True)
    np.testing.assert_array_equal(w, normkit.weight_norm(v, g, dim))
    assert norms.shape == g.shape
    gv, gg = normkit.weight_norm_backward(dw, v, g, dim, norms=norms)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    if dim is not None:
        tw, tnorms = torch._weight_norm_interface(torch.from_numpy(v), torch.from_numpy(g), dim)
        np.testing.assert_allclose(w, tw.numpy(), rtol=rtol, atol=rtol)
        np.testing.assert_allclose(norms.reshape(-1), tnorms.numpy().reshape(-1), rtol=rtol)
        tgv, tgg = torch.ops.aten._weight_norm_interface_backward(
            torch.from_numpy(dw), torch.from_numpy(v), torch.from_numpy(g), tnorms, dim)
        scale = np.abs(tgv.numpy()).max()
        np.testing.assert_allclose(gv, tgv.numpy(), rtol=10 * rtol, atol=10 * rtol * scale)
        np.testing.assert_allclose(gg.reshape(-1), tgg.numpy().reshape(-1), rtol=10 * rtol, atol=10 * rtol)
    else:
        np.testing.assert_allclose(norms, np.linalg.norm(v.astype(np.float64)), rtol=rtol)
    scale = np.abs(gv).max()
    gv0, gg0 = normkit.weight_norm_backward(dw, v, g, dim)
    np.testing.assert_allclose(gv, gv0, rtol=10 * rtol, atol=10 * rtol * scale)
    if dtype == np.float64:  # the norms the backward would take: the same bits
        np.testing.assert_array_equal(gv, gv0)
        np.testing.assert_array_equal(gg, gg0)


def test_weight_norm_backward_rejects_bad_norms(rng):
    v = rng.standard_normal((4, 3)).astype(np.float32)
    g = np.ones((4, 1), np.float32)
    with pytest.raises(ValueError, match=r"\[weight_norm\] norms has 3 elements"):
        normkit.weight_norm_backward(np.ones_like(v), v, g, norms=np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"\[weight_norm_backward\] norms has 0 elements, expected 4"):
        normkit.weight_norm_backward(np.ones_like(v), v, g, norms=np.ones(0, np.float32))
    with pytest.raises(ValueError, match=r"norms\[1\]=-1.* is negative"):
        normkit.weight_norm_backward(np.ones_like(v), v, g, norms=np.array([1, -1, 1, 1], np.float32))
