# test_group_norm.py — normkit.group_norm and its backward against F.group_norm: ranks
# 2..5, odd sizes and group counts (1, C, and in between), affine on and off.
import pytest

from torch_reference import DTYPES, check_op

CASES = [((3, 6), 3), ((3, 6), 1), ((2, 6, 5), 3), ((2, 6, 5), 6), ((1, 9, 3, 3), 3),
         ((2, 4, 1, 5, 3), 2), ((5, 17, 3), 17), ((5, 17, 3), 1), ((2, 7, 1, 1), 1),
         ((3, 15, 7, 1, 1), 5)]
AFFINE = ["weight+bias", "weight", "bias", "none"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,groups", CASES)
def test_group_norm_matches_torch(shape, groups, affine, dtype, rng):
    c = shape[1]
    arrays = dict(
        input=(rng.standard_normal(shape) * 1.5 + 0.3).astype(dtype),
        weight=rng.uniform(0.5, 1.5, c).astype(dtype) if "weight" in affine else None,
        bias=rng.standard_normal(c).astype(dtype) if "bias" in affine else None,
    )
    check_op("group_norm", arrays, dict(num_groups=groups, eps=1e-5), dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm_large_offset(dtype, rng):
    c = 8
    arrays = dict(input=(rng.standard_normal((2, c, 9, 9)) + 500.0).astype(dtype),
                  weight=rng.uniform(0.5, 1.5, c).astype(dtype),
                  bias=rng.standard_normal(c).astype(dtype))
    check_op("group_norm", arrays, dict(num_groups=4, eps=1e-3), dtype, rng)
