# test_api.py — the module's surface: docstrings, torch.nn.functional's positional order
# and keyword names, dtypes of results, None for absent gradients.
import inspect

import numpy as np
import pytest
import torch.nn.functional as F

import normkit as nk

FUNCTIONS = ["batch_norm", "instance_norm", "group_norm", "layer_norm", "rms_norm", "weight_norm",
             "normalize"]


def test_docstrings():
    assert nk.__doc__ and "torch.nn.functional" in nk.__doc__
    assert nk.__version__
    for name in FUNCTIONS:
        for f in (getattr(nk, name), getattr(nk, name + "_backward")):
            assert f.__doc__ and len(f.__doc__) > 80, f


def sample_values(c=3):
    rng = np.random.default_rng(1)
    return dict(input=rng.standard_normal((4, c, 5)).astype(np.float32),
                running_mean=np.zeros(c, np.float32), running_var=np.ones(c, np.float32),
                weight=np.ones(c, np.float32), bias=np.zeros(c, np.float32), training=True,
                momentum=0.1, eps=1e-5, use_input_stats=True, num_groups=1)


@pytest.mark.parametrize("name", ["batch_norm", "instance_norm", "group_norm", "layer_norm"])
def test_same_signature_as_torch(name):
    params = list(inspect.signature(getattr(F, name)).parameters)
    values = sample_values()
    values["normalized_shape"] = (5,)
    if name == "layer_norm":
        values["weight"], values["bias"] = np.ones(5, np.float32), np.zeros(5, np.float32)
    kwargs = {p: values[p] for p in params}
    by_keyword = getattr(nk, name)(**kwargs)
    kwargs = {p: values[p] for p in params}
    by_position = getattr(nk, name)(*kwargs.values())
    np.testing.assert_array_equal(by_keyword, by_position)
    grads = getattr(nk, name + "_backward")(np.ones_like(values["input"]), **kwargs)
    assert len(grads) == 3


def test_rms_and_weight_norm_signatures():
    x = np.ones((2, 3), np.float64)
    nk.rms_norm(input=x, normalized_shape=(3,), weight=np.ones(3), eps=None, unit_offset=True)
    with pytest.raises(TypeError):
        nk.rms_norm(x, (3,), None, None, True)  # unit_offset is keyword-only
    nk.weight_norm(v=x, g=np.ones((2, 1)), dim=0)
    gv, gg = nk.weight_norm_backward(grad_output=x, v=x, g=np.ones((2, 1)), dim=0)
    assert gg.shape == (2, 1)
    gv, gg = nk.weight_norm_backward(grad_output=x, v=x, g=np.array(2.0), dim=None)
    assert gg.shape == ()
    nk.normalize(input=x, reduce_axes=(1,), weight=np.ones(2), bias=None, affine_axes=(0,),
                 statistic="l2", eps=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_result_dtypes_and_absent_gradients(dtype):
    x = np.random.default_rng(2).standard_normal((3, 4, 5)).astype(dtype)
    assert nk.layer_norm(x, 5).dtype == dtype
    assert nk.layer_norm(x, 5, np.ones(5, np.float16)).dtype == dtype
    gi, gw, gb = nk.layer_norm_backward(x, x, 5, None, np.zeros(5))
    assert gi.dtype == dtype and gw is None and gb.dtype == dtype
    gi, gw = nk.rms_norm_backward(x, x, 5)
    assert gi.dtype == dtype and gw is None
    gi, gw, gb = nk.batch_norm_backward(x, x, None, None, training=True)
    assert gw is None and gb is None
