# test_errors.py — every error case of the core issue (item 8), for each function and its
# _backward twin: the exception type, a message naming the op and the offending value, and
# running statistics and every array passed in left untouched.
import re

import numpy as np
import pytest

import normkit as nk

F32 = np.float32


def ones(*shape, dtype=F32):
    return np.ones(shape, dtype)


def x3(dtype=F32):
    return np.random.default_rng(0).standard_normal((4, 3, 5)).astype(dtype)


def expect(exc, pattern, fn, *args, running=(), **kwargs):
    """fn(*args, **kwargs) raises exc matching pattern; `running` arrays are unchanged."""
    before = [r.copy() for r in running]
    with pytest.raises(exc, match=pattern):
        fn(*args, **kwargs)
    for r, b in zip(running, before):
        np.testing.assert_array_equal(r, b)


def running_stats(c=3, dtype=F32):
    return np.full(c, 0.25, dtype), np.full(c, 2.0, dtype)


# ---- rank too low ------------------------------------------------------------------------
@pytest.mark.parametrize("name,args", [
    ("batch_norm", (None, None)), ("instance_norm", ()), ("group_norm", (1,))])
@pytest.mark.parametrize("backward", [False, True])
def test_rank_too_low(name, args, backward):
    op = name + ("_backward" if backward else "")
    x = ones(5)
    call = (x, x) if backward else (x,)
    expect(ValueError, re.escape(f"[{name}]") + r".*rank >= 2.*shape 5 of rank 1",
           getattr(nk, op), *call, *args)


def test_rank_too_low_keeps_running_stats():
    rm, rv = running_stats(5)
    expect(ValueError, r"\[batch_norm\].*rank 1", nk.batch_norm, ones(5), rm, rv, training=True,
           running=(rm, rv))
    expect(ValueError, r"\[instance_norm\].*rank 1", nk.instance_norm, ones(5), rm, rv,
           running=(rm, rv))


def test_instance_norm_needs_spatial_elements():
    rm, rv = running_stats()
    expect(ValueError, r"\[instance_norm\] expected more than 1 spatial element.*2x3",
           nk.instance_norm, ones(2, 3), rm, rv, running=(rm, rv))


# ---- channel count not matching weight / bias / running statistics -------------------------
@pytest.mark.parametrize("what", ["weight", "bias", "running_mean", "running_var"])
@pytest.mark.parametrize("name", ["batch_norm", "instance_norm"])
@pytest.mark.parametrize("backward", [False, True])
def test_channel_count_mismatch(name, what, backward):
    rm, rv = running_stats()
    args = dict(running_mean=rm, running_var=rv, weight=ones(3), bias=ones(3))
    wrong = np.full(4, 0.5, F32)
    args[what] = wrong
    x, dy = x3(), x3()
    kept = [rm, rv, wrong, x, dy]
    extra = dict(training=True) if name == "batch_norm" else {}
    call = (dy, x) if backward else (x,)
    expect(ValueError, re.escape(f"[{name}] {what} has 4 elements, expected 3"),
           getattr(nk, name + ("_backward" if backward else "")), *call, **args, **extra, running=kept)


@pytest.mark.parametrize("what", ["weight", "bias"])
@pytest.mark.parametrize("backward", [False, True])
def test_group_norm_channel_count_mismatch(what, backward):
    args = {what: ones(4)}
    x, dy = x3(), x3()
    call = (dy, x) if backward else (x,)
    expect(ValueError, re.escape(f"[group_norm] {what} has 4 elements, expected 3"),
           getattr(nk, "group_norm" + ("_backward" if backward else "")), *call, 3, **args,
           running=(args[what], x, dy))


def test_channel_count_mismatch_backward():
    rm, rv = running_stats()
    expect(ValueError, re.escape("[batch_norm] running_var has 5 elements, expected 3"),
           nk.batch_norm_backward, x3(), x3(), rm, ones(5), running=(rm,))


# ---- group counts ------------------------------------------------------------------------
@pytest.mark.parametrize("groups,pattern", [
    (0, r"\[group_norm\] num_groups=0 must be positive"),
    (-2, r"\[group_norm\] num_groups=-2 must be positive"),
    (4, r"\[group_norm\] num_channels=10 is not divisible by num_groups=4"),
])
def test_group_norm_bad_num_groups(groups, pattern):
    expect(ValueError, pattern, nk.group_norm, ones(2, 10, 3), groups)
    expect(ValueError, pattern, nk.group_norm_backward, ones(2, 10, 3), ones(2, 10, 3), groups)


@pytest.mark.parametrize("shape,groups,shown", [((2, 4), 4, "2x4"), ((1, 6, 1, 1), 6, "1x6x1x1")])
def test_group_norm_one_value_per_group(shape, groups, shown):
    pattern = r"\[group_norm\] expected more than 1 value per group.*" + shown + f".*num_groups={groups}"
    x, dy, w = ones(*shape), ones(*shape), ones(shape[1])
    expect(ValueError, pattern, nk.group_norm, x, groups, w, running=(x, w))
    expect(ValueError, pattern, nk.group_norm_backward, dy, x, groups, w, running=(dy, x, w))


# ---- normalized_shape ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("ns,shown", [((3, 4), "3x4"), ((4,), "4"), ((2, 4, 3, 5), "2x4x3x5")])
def test_normalized_shape_mismatch(name, ns, shown):
    pattern = re.escape(f"[{name}] normalized_shape={shown} does not match") + r".*4x3x5"
    expect(ValueError, pattern, getattr(nk, name), x3(), ns)
    expect(ValueError, pattern, getattr(nk, name + "_backward"), x3(), x3(), ns)


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
def test_normalized_shape_weight_mismatch(name):
    expect(ValueError, re.escape(f"[{name}] weight has 4 elements, expected 5"),
           getattr(nk, name), x3(), (5,), ones(4))


# ---- training BatchNorm with one value per channel -----------------------------------------
@pytest.mark.parametrize("shape,shown", [((1, 3), "1x3"), ((1, 3, 1, 1), "1x3x1x1"), ((1, 3, 1), "1x3x1")])
def test_batch_norm_one_value_per_channel(shape, shown):
    rm, rv = running_stats()
    expect(ValueError, r"\[batch_norm\] expected more than 1 value per channel.*" + shown,
           nk.batch_norm, ones(*shape), rm, rv, training=True, running=(rm, rv))
    expect(ValueError, r"\[batch_norm\] expected more than 1 value per channel.*" + shown,
           nk.batch_norm, ones(*shape), None, None, training=True)
    x, dy = ones(*shape), ones(*shape)
    expect(ValueError, r"\[batch_norm\] expected more than 1 value per channel.*" + shown,
           nk.batch_norm_backward, dy, x, rm, rv, training=True, running=(rm, rv, x, dy))


def test_batch_norm_one_value_per_channel_is_fine_in_eval():
    rm, rv = running_stats()
    y = nk.batch_norm(ones(1, 3), rm, rv, training=False)
    np.testing.assert_allclose(y, (1 - 0.25) / np.sqrt(2.0 + 1e-5) * ones(1, 3), rtol=1e-6)


# ---- eps < 0 -------------------------------------------------------------------------------
EPS_CALLS = {
    "batch_norm": lambda x, eps, rm, rv: nk.batch_norm(x, rm, rv, training=True, eps=eps),
    "instance_norm": lambda x, eps, rm, rv: nk.instance_norm(x, rm, rv, eps=eps),
    "group_norm": lambda x, eps, rm, rv: nk.group_norm(x, 3, eps=eps),
    "layer_norm": lambda x, eps, rm, rv: nk.layer_norm(x, (5,), eps=eps),
    "rms_norm": lambda x, eps, rm, rv: nk.rms_norm(x, (5,), eps=eps),
    "normalize": lambda x, eps, rm, rv: nk.normalize(x, (2,), eps=eps),
    "batch_norm_bwd": lambda x, eps, rm, rv: nk.batch_norm_backward(x, x, rm, rv, eps=eps),
    "instance_norm_bwd": lambda x, eps, rm, rv: nk.instance_norm_backward(x, x, rm, rv, eps=eps),
    "group_norm_bwd": lambda x, eps, rm, rv: nk.group_norm_backward(x, x, 3, eps=eps),
    "layer_norm_bwd": lambda x, eps, rm, rv: nk.layer_norm_backward(x, x, 5, eps=eps),
    "rms_norm_bwd": lambda x, eps, rm, rv: nk.rms_norm_backward(x, x, (5,), eps=eps),
}


@pytest.mark.parametrize("name", sorted(EPS_CALLS))
@pytest.mark.parametrize("eps,shown", [(-1e-3, "-0.001"), (-1.0, "-1"), (float("nan"), "nan")])
def test_negative_eps(name, eps, shown):
    rm, rv = running_stats()
    x = x3()
    op = name.replace("_bwd", "")
    expect(ValueError, re.escape(f"[{op}") + r"[a-z_]*\] eps=" + re.escape(shown),
           EPS_CALLS[name], x, eps, rm, rv, running=(rm, rv, x))


# ---- momentum outside [0, 1] when it is used -----------------------------------------------
@pytest.mark.parametrize("momentum,shown", [(-0.1, "-0.1"), (1.5, "1.5"), (2.0, "2")])
def test_momentum_out_of_range(momentum, shown):
    rm, rv = running_stats()
    expect(ValueError, re.escape(f"[batch_norm] momentum={shown} must lie in [0, 1]"),
           nk.batch_norm, x3(), rm, rv, training=True, momentum=momentum, running=(rm, rv))
    expect(ValueError, re.escape(f"[instance_norm] momentum={shown} must lie in [0, 1]"),
           nk.instance_norm, x3(), rm, rv, momentum=momentum, running=(rm, rv))


def test_momentum_unused_is_not_checked():
    # No running statistics to update (or eval): momentum plays no part, as in PyTorch.
    rm, rv = running_stats()
    nk.batch_norm(x3(), rm, rv, training=False, momentum=5.0)
    nk.batch_norm(x3(), None, None, training=True, momentum=5.0)
    nk.instance_norm(x3(), momentum=5.0)


# ---- dtypes --------------------------------------------------------------------------------
BAD_INPUTS = {
    "int64": lambda: np.ones((4, 3, 5), np.int64),
    "float128": lambda: np.ones((4, 3, 5), np.longdouble),  # float16 is supported (test_half.py)
    "object": lambda: np.ones((4, 3, 5), object),
    "list": lambda: np.ones((4, 3, 5)).tolist(),
    "bool": lambda: np.ones((4, 3, 5), bool),
    "complex128": lambda: np.ones((4, 3, 5), np.complex128),
}
CALLS = {
    "batch_norm": lambda x, rm, rv: nk.batch_norm(x, rm, rv, training=True),
    "instance_norm": lambda x, rm, rv: nk.instance_norm(x, rm, rv),
    "group_norm": lambda x, rm, rv: nk.group_norm(x, 3),
    "layer_norm": lambda x, rm, rv: nk.layer_norm(x, 5),
    "rms_norm": lambda x, rm, rv: nk.rms_norm(x, 5),
    "normalize": lambda x, rm, rv: nk.normalize(x, 1),
    "batch_norm_backward": lambda x, rm, rv: nk.batch_norm_backward(x, x, rm, rv),
    "instance_norm_backward": lambda x, rm, rv: nk.instance_norm_backward(x, x),
    "group_norm_backward": lambda x, rm, rv: nk.group_norm_backward(x, x, 3),
    "layer_norm_backward": lambda x, rm, rv: nk.layer_norm_backward(x, x, 5),
    "rms_norm_backward": lambda x, rm, rv: nk.rms_norm_backward(x, x, 5),
    "normalize_backward": lambda x, rm, rv: nk.normalize_backward(x, x, 1),
}


@pytest.mark.parametrize("bad", sorted(BAD_INPUTS))
@pytest.mark.parametrize("name", sorted(CALLS))
def test_wrong_input_dtype(name, bad):
    rm, rv = running_stats()
    shown = "type=list" if bad == "list" else f"dtype={bad}"
    expect(TypeError, re.escape(f"[{name}] input {shown} is not supported"),
           CALLS[name], BAD_INPUTS[bad](), rm, rv, running=(rm, rv))


@pytest.mark.parametrize("bad", ["int64", "float128", "list"])
def test_weight_norm_wrong_dtype(bad):
    shown = "type=list" if bad == "list" else f"dtype={bad}"
    v = BAD_INPUTS[bad]()  # (4, 3, 5)
    g = ones(4, 1, 1)
    expect(TypeError, re.escape(f"[weight_norm] v {shown} is not supported"), nk.weight_norm, v, g)
    expect(TypeError, re.escape(f"[weight_norm_backward] v {shown} is not supported"),
           nk.weight_norm_backward, x3(), v, g)


def test_wrong_parameter_dtype():
    expect(TypeError, re.escape("[batch_norm] weight dtype=int64 is not supported"),
           nk.batch_norm, x3(), None, None, np.ones(3, np.int64))
    expect(TypeError, re.escape("[layer_norm] bias type=list is not supported"),
           nk.layer_norm, x3(), 5, None, [0.0] * 5)
    expect(TypeError, re.escape("[weight_norm] g dtype=int64 is not supported"),
           nk.weight_norm, x3(), np.ones(4, np.int64))
    expect(TypeError, re.escape("[layer_norm_backward] grad_output dtype=int32 is not supported"),
           nk.layer_norm_backward, np.ones((4, 3, 5), np.int32), x3(), 5)


# ---- running statistics that cannot be updated in place -----------------------------------
def test_running_stats_of_another_dtype():
    rm, rv = running_stats(dtype=np.float64)
    expect(TypeError, re.escape("[batch_norm] running_mean dtype=float64 does not match input dtype=float32"),
           nk.batch_norm, x3(), rm, rv, training=True, running=(rm, rv))


def test_running_stats_read_only():
    rm, rv = running_stats()
    rv.setflags(write=False)
    expect(ValueError, re.escape("[instance_norm] running_var is read-only"),
           nk.instance_norm, x3(), rm, rv, running=(rm, rv))
    # Only read (eval): read-only and other float dtypes are fine.
    nk.batch_norm(x3(), rm.astype(np.float64), rv, training=False)


def test_running_stats_not_contiguous():
    rm = np.zeros(6, F32)[::2]
    rv = np.ones(3, F32)
    expect(ValueError, re.escape("[batch_norm] running_mean is not contiguous"),
           nk.batch_norm, x3(), rm, rv, training=True, running=(rm, rv))


# ---- the rest of the argument checks -------------------------------------------------------
def test_grad_output_shape_mismatch():
    expect(ValueError, re.escape("[layer_norm_backward] grad_output shape=2x3x5 does not match input shape=4x3x5"),
           nk.layer_norm_backward, ones(2, 3, 5), x3(), 5)


def test_weight_norm_errors():
    expect(ValueError, re.escape("[weight_norm] g has 3 elements, expected 4"),
           nk.weight_norm, x3(), ones(3))
    expect(ValueError, r"\[weight_norm\] dim=5 is out of range", nk.weight_norm, x3(), ones(4), 5)


def test_normalize_errors():
    expect(ValueError, re.escape("[normalize] reduce axis 5 is out of range for rank 3"),
           nk.normalize, x3(), (5,))
    expect(ValueError, re.escape("[normalize] reduce axis 1 is repeated"), nk.normalize, x3(), (1, 1))
    expect(ValueError, re.escape("[normalize] statistic='std' is not one of"),
           nk.normalize, x3(), 1, statistic="std")
    expect(ValueError, re.escape("[normalize] weight has 3 elements, expected 5"),
           nk.normalize, x3(), 1, ones(3), affine_axes=(2,))
