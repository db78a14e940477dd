# test_normalize.py — the generic normkit.normalize over any axes, with each statistic
# (variance, mean_square, l2) and affine parameters along any axes, against torch ops.
import numpy as np
import pytest

from torch_reference import DTYPES, check_op

CASES = [  # shape, reduce_axes, affine_axes, statistic
    ((4, 3, 5), (0, 2), (1,), "variance"),          # BatchNorm's plan
    ((2, 3, 4, 5), (1, 3), (1,), "variance"),       # reduce non-adjacent axes
    ((2, 3, 4, 5), (-1,), (-1,), "mean_square"),    # RMSNorm's plan
    ((3, 7, 5), 1, (0, 2), "mean_square"),
    ((5, 3, 3, 3), (1, 2, 3), (), "l2"),            # WeightNorm's norm
    ((6, 17), (0,), (1,), "l2"),
    ((2, 3, 5), (0, 1, 2), (), "variance"),         # one statistic
    ((3, 1, 5, 1), (1, 3), (0,), "variance"),       # reduce over size-1 axes only... and
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["weight+bias", "weight", "none"])
@pytest.mark.parametrize("shape,reduce,affine_axes,statistic", CASES)
def test_normalize_matches_torch(shape, reduce, affine_axes, statistic, affine, dtype, rng):
    n = 1
    for a in affine_axes:
        n *= shape[a]
    with_params = affine != "none" and affine_axes != ()
    arrays = dict(
        input=(rng.standard_normal(shape) * 1.5 + 0.3).astype(dtype),
        weight=rng.uniform(0.5, 1.5, n).astype(dtype) if with_params else None,
        bias=rng.standard_normal(n).astype(dtype) if with_params and "bias" in affine else None,
    )
    params = dict(reduce_axes=reduce, affine_axes=affine_axes, statistic=statistic, eps=1e-5)
    check_op("normalize", arrays, params, dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_clamps_at_eps_like_torch_normalize(dtype, rng):
    """statistic='l2' divides by max(||x||, eps), as F.normalize: rows 1 and 3 have a norm
    below eps, where the divisor is the constant eps (forward and gradient)."""
    x = rng.standard_normal((5, 9)) * 0.8
    x[1] *= 0.02
    x[3] *= 0.05
    arrays = dict(input=x.astype(dtype), weight=rng.uniform(0.5, 1.5, 9).astype(dtype), bias=None)
    params = dict(reduce_axes=(1,), affine_axes=(1,), statistic="l2", eps=0.5)
    norms = np.sqrt((x.astype(np.float64) ** 2).sum(axis=1))
    assert (norms < 0.5).sum() == 2 and np.all(np.abs(norms - 0.5) > 1e-2)
    check_op("normalize", arrays, params, dtype, rng)
