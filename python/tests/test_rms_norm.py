# test_rms_norm.py — normkit.rms_norm (LLaMA and Gemma (1+w) forms) and its backward
# against RMSNorm composed from torch ops (torch 1.13 has no F.rms_norm).
import numpy as np
import pytest

from torch_reference import DTYPES, check_op

CASES = [((7,), (7,)), ((3, 5), (5,)), ((2, 3, 17), (3, 17)), ((1, 5, 7), 7), ((4, 1), (1,)),
         ((2, 3, 4, 33), (4, 33))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("unit_offset", [False, True])
@pytest.mark.parametrize("eps", [None, 1e-6])
@pytest.mark.parametrize("with_weight", [True, False])
@pytest.mark.parametrize("shape,ns", CASES)
def test_rms_norm_matches_torch(shape, ns, with_weight, eps, unit_offset, dtype, rng):
    wshape = (ns,) if isinstance(ns, int) else ns
    arrays = dict(
        input=(rng.standard_normal(shape) * 1.5 + 0.3).astype(dtype),
        weight=(rng.standard_normal(wshape) * 0.5 + (0 if unit_offset else 1)).astype(dtype)
        if with_weight else None,
    )
    params = dict(normalized_shape=ns, eps=eps, unit_offset=unit_offset)
    # eps unset is the machine epsilon of normkit's dtype, also when torch runs in float64.
    torch_params = dict(params, eps=float(np.finfo(dtype).eps) if eps is None else eps)
    check_op("rms_norm", arrays, params, dtype, rng, torch_params)
