# test_instance_norm.py — normkit.instance_norm and its backward against F.instance_norm:
# ranks 3..5, odd sizes, use_input_stats both ways, running statistics present or absent.
import numpy as np
import pytest

import normkit
from torch_reference import DTYPES, check_op

SHAPES = [(2, 3, 5), (1, 5, 7), (3, 1, 17), (2, 3, 3, 5), (1, 2, 3, 1, 5), (2, 3, 2, 2, 3)]
AFFINE = ["weight+bias", "weight", "none"]
# (use_input_stats, running statistics given); torch needs them when use_input_stats=False.
MODES = [(True, True), (True, False), (False, True)]


def make(shape, dtype, rng, affine, running, offset=0.3):
    c = shape[1]
    return dict(
        input=(rng.standard_normal(shape) * 1.5 + offset).astype(dtype),
        running_mean=(rng.standard_normal(c) * 0.1).astype(dtype) if running else None,
        running_var=rng.uniform(0.5, 2.0, c).astype(dtype) if running else None,
        weight=rng.uniform(0.5, 1.5, c).astype(dtype) if affine != "none" else None,
        bias=rng.standard_normal(c).astype(dtype) if affine == "weight+bias" else None,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES, ids=["input_stats+running", "input_stats", "running_stats"])
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape", SHAPES)
def test_instance_norm_matches_torch(shape, affine, mode, dtype, rng):
    use_input_stats, running = mode
    arrays = make(shape, dtype, rng, affine, running)
    params = dict(use_input_stats=use_input_stats, momentum=0.1, eps=1e-5)
    check_op("instance_norm", arrays, params, dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_instance_norm_large_offset_and_momentum(dtype, rng):
    arrays = make((3, 4, 7, 5), dtype, rng, "weight+bias", True, offset=-200.0)
    check_op("instance_norm", arrays, dict(momentum=0.6, eps=1e-4), dtype, rng)


def test_instance_norm_running_stats(rng):
    x = rng.standard_normal((3, 2, 11)).astype(np.float64)
    rm, rv = np.zeros(2), np.ones(2)
    normkit.instance_norm(x, rm, rv, momentum=0.5)
    # The batch average of the per-instance mean and unbiased variance.
    np.testing.assert_allclose(rm, 0.5 * x.mean(axis=2).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.5 + 0.5 * x.var(axis=2, ddof=1).mean(axis=0), rtol=1e-12)
    before = rm.copy(), rv.copy()
    normkit.instance_norm(x, rm, rv, use_input_stats=False)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])
