# test_layer_norm.py — normkit.layer_norm and its backward against F.layer_norm: any
# normalized_shape (int or tuple), odd sizes, weight and bias each optional.
import pytest

from torch_reference import DTYPES, check_op

CASES = [((7,), (7,)), ((3, 5), (5,)), ((2, 3, 17), (3, 17)), ((1, 5, 7), (7,)), ((4, 1), (1,)),
         ((2, 3, 4, 5), (4, 5)), ((3, 33), 33), ((2, 3, 5), (2, 3, 5)), ((2, 1, 3, 1, 5), (3, 1, 5))]
AFFINE = ["weight+bias", "weight", "bias", "none"]


def shape_of(ns):
    return (ns,) if isinstance(ns, int) else ns


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,ns", CASES)
def test_layer_norm_matches_torch(shape, ns, affine, dtype, rng):
    arrays = dict(
        input=(rng.standard_normal(shape) * 1.5 + 0.3).astype(dtype),
        weight=rng.uniform(0.5, 1.5, shape_of(ns)).astype(dtype) if "weight" in affine else None,
        bias=rng.standard_normal(shape_of(ns)).astype(dtype) if "bias" in affine else None,
    )
    check_op("layer_norm", arrays, dict(normalized_shape=ns, eps=1e-5), dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_large_offset(dtype, rng):
    arrays = dict(input=(rng.standard_normal((4, 129)) * 0.1 + 1000.0).astype(dtype),
                  weight=rng.uniform(0.5, 1.5, 129).astype(dtype),
                  bias=rng.standard_normal(129).astype(dtype))
    check_op("layer_norm", arrays, dict(normalized_shape=(129,), eps=1e-5), dtype, rng)
