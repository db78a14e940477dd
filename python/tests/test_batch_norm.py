# test_batch_norm.py — normkit.batch_norm and its backward against F.batch_norm: every rank
# 2..5, odd sizes, training/eval with and without running statistics, affine on and off.
import numpy as np
import pytest

from torch_reference import DTYPES, GRAD_TOL, assert_close, check_op

SHAPES = [(3, 5), (7, 1), (5, 3, 7), (2, 5, 3, 3), (1, 17, 3, 1), (2, 3, 5, 1, 7), (4, 3, 1, 1, 1)]
AFFINE = ["weight+bias", "weight", "none"]
MODES = ["train+running", "train", "eval+running", "eval"]


def make(shape, dtype, rng, affine, mode, offset=0.3):
    c = shape[1]
    x = (rng.standard_normal(shape) * 1.5 + offset).astype(dtype)
    running = "running" in mode
    return dict(
        input=x,
        running_mean=(rng.standard_normal(c) * 0.1).astype(dtype) if running else None,
        running_var=rng.uniform(0.5, 2.0, c).astype(dtype) if running else None,
        weight=rng.uniform(0.5, 1.5, c).astype(dtype) if affine != "none" else None,
        bias=rng.standard_normal(c).astype(dtype) if affine == "weight+bias" else None,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_matches_torch(shape, affine, mode, dtype, rng):
    arrays = make(shape, dtype, rng, affine, mode)
    params = dict(training=mode.startswith("train"), momentum=0.1, eps=1e-5)
    # Eval without running statistics uses the batch statistics, as torch.nn.BatchNorm does
    # with track_running_stats=False (F.batch_norm itself refuses that call).
    torch_params = dict(params, training=True) if mode == "eval" else None
    check_op("batch_norm", arrays, params, dtype, rng, torch_params)


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "few_channels"])
def test_batch_norm_eval_grad_input_does_not_involve_input(layout, rng):
    # torch's eval backward: grad_input = grad_output * weight / sqrt(running_var + eps), without
    # the input, so an Inf or a NaN in it leaves grad_input finite.
    import torch
    import torch.nn.functional as F

    import normkit
    arrays = make((3, 4 if layout == "few_channels" else 16, 5, 7), np.float32, rng, "weight+bias", "eval+running")
    x = arrays["input"]
    x[0, 0, 0, 3], x[1, 2, 1, 1] = np.inf, np.nan
    if layout == "channels_last":
        arrays["input"] = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gx = normkit.batch_norm_backward(dy, **arrays, training=False, momentum=0.1, eps=1e-5)[0]
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in arrays.items()}
    t["input"].requires_grad_(True)
    F.batch_norm(t["input"], t["running_mean"], t["running_var"], t["weight"], t["bias"], training=False,
                 eps=1e-5).backward(torch.tensor(dy, dtype=torch.float64))
    want = t["input"].grad.numpy()
    assert np.isfinite(want).all() and np.isfinite(gx).all()
    assert_close(gx, want, None, GRAD_TOL[np.float32], "batch_norm eval grad_input")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.0, 0.3, 1.0])
def test_batch_norm_momentum_and_eps(momentum, dtype, rng):
    arrays = make((6, 4, 5), dtype, rng, "weight+bias", "train+running")
    check_op("batch_norm", arrays, dict(training=True, momentum=momentum, eps=1e-3), dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_large_offset(dtype, rng):
    # A mean far from zero: the float32 case where naive E[x^2]-E[x]^2 would fail.
    arrays = make((8, 3, 9, 9), dtype, rng, "weight+bias", "train+running", offset=300.0)
    check_op("batch_norm", arrays, dict(training=True), dtype, rng)


def test_batch_norm_running_stats_updated_in_place(rng):
    arrays = make((4, 3, 5), np.float32, rng, "none", "train+running")
    rm, rv = arrays["running_mean"], arrays["running_var"]
    rm0, rv0 = rm.copy(), rv.copy()
    import normkit
    normkit.batch_norm(arrays["input"], rm, rv, training=True, momentum=0.25)
    x = arrays["input"].astype(np.float64)
    mean = x.mean(axis=(0, 2))
    var = x.var(axis=(0, 2), ddof=1)
    np.testing.assert_allclose(rm, 0.75 * rm0 + 0.25 * mean, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(rv, 0.75 * rv0 + 0.25 * var, rtol=2e-5, atol=1e-6)
    # Eval reads them and leaves them alone.
    rm1, rv1 = rm.copy(), rv.copy()
    normkit.batch_norm(arrays["input"], rm, rv, training=False)
    np.testing.assert_array_equal(rm, rm1)
    np.testing.assert_array_equal(rv, rv1)
