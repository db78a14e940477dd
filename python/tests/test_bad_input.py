# test_bad_input.py — issue 5's bad input for the Python module and the CLI: objects that
# are not arrays, NaN/Inf eps and momentum, zero-size tensors (as PyTorch: empty output, running
# statistics kept), the skip_nonfinite_update guard, concurrent calls from Python threads, and
# malformed command-line arguments (exit status 2 and a message naming the value).
import math
import os
import re
import subprocess
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import normkit as nk

F32 = np.float32


def x3(dtype=F32, shape=(4, 3, 5)):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def expect_unchanged(exc, pattern, fn, *args, running=(), **kwargs):
    before = [r.copy() for r in running]
    with pytest.raises(exc, match=pattern):
        fn(*args, **kwargs)
    for r, b in zip(running, before):
        np.testing.assert_array_equal(r, b)


# ---- objects that are not arrays -----------------------------------------------------------
NOT_ARRAYS = {"None": None, "str": "abc", "dict": {"a": 1}, "float": 1.5, "object": object(),
              "bytes": b"\x00\x01", "0-d array": np.array(1.0, F32)}
FORWARDS = {
    "batch_norm": lambda x: nk.batch_norm(x, None, None, training=True),
    "instance_norm": lambda x: nk.instance_norm(x),
    "group_norm": lambda x: nk.group_norm(x, 1),
    "layer_norm": lambda x: nk.layer_norm(x, 5),
    "rms_norm": lambda x: nk.rms_norm(x, 5),
    "normalize": lambda x: nk.normalize(x, 0),
    "weight_norm": lambda x: nk.weight_norm(x, np.ones(1, F32), None),
}


@pytest.mark.parametrize("name,what", [(n, w) for n in sorted(FORWARDS) for w in sorted(NOT_ARRAYS)
                                       if (n, w) != ("weight_norm", "0-d array")])  # valid there
def test_input_that_is_not_an_array(name, what):
    # A clear TypeError or ValueError naming the op, never a crash or a silent result.
    with pytest.raises((TypeError, ValueError), match=re.escape(f"[{name}]")):
        FORWARDS[name](NOT_ARRAYS[what])


def test_torch_tensor_input_is_refused_by_name():
    with pytest.raises(TypeError, match=r"\[layer_norm\] input .* is not supported"):
        nk.layer_norm(torch.ones(2, 5), 5)


@pytest.mark.parametrize("bad", ["abc", 2.5, None, [1, "a"], {"x": 1}])
def test_int_arguments_that_are_not_ints(bad):
    with pytest.raises(TypeError):
        nk.layer_norm(x3(), bad)
    with pytest.raises(TypeError):
        nk.normalize(x3(), bad if bad is not None else "x")


@pytest.mark.parametrize("bad", ["abc", 2.5, None])
def test_num_groups_not_an_int(bad):
    with pytest.raises(TypeError):
        nk.group_norm(x3(), bad)


@pytest.mark.parametrize("field", ["weight", "bias", "running_mean"])
@pytest.mark.parametrize("bad", ["abc", 1.5, {"a": 1}])
def test_parameters_that_are_not_arrays(field, bad):
    kwargs = dict(running_mean=None, running_var=None, training=True)
    if field == "running_mean":
        kwargs.update(running_mean=bad, running_var=np.ones(3, F32))
    else:
        kwargs[field] = bad
    with pytest.raises(TypeError, match=re.escape("[batch_norm]")):
        nk.batch_norm(x3(), **kwargs)


@pytest.mark.parametrize("bad", ["0.1", None, [0.1]])
def test_scalars_of_the_wrong_type(bad):
    with pytest.raises(TypeError):
        nk.batch_norm(x3(), None, None, training=True, momentum=bad)
    with pytest.raises(TypeError):
        nk.layer_norm(x3(), 5, eps=bad)


# Scalars are converted by the module itself: a wrong type is a TypeError and a value beyond
# int64 / double a ValueError, both starting with "[op]" (not pybind11's generic errors).
@pytest.mark.parametrize("call,op,what", [
    (lambda: nk.layer_norm(x3(), 2**70), "layer_norm", "normalized_shape=1180591620717411303424"),
    (lambda: nk.layer_norm(x3(), (3, 2**70)), "layer_norm", "does not fit in int64"),
    (lambda: nk.normalize(x3(), 2**70), "normalize", "reduce_axes=1180591620717411303424"),
    (lambda: nk.group_norm(x3(), 2**70), "group_norm", "num_groups=1180591620717411303424"),
    (lambda: nk.rms_norm(x3(), -(2**64)), "rms_norm", "does not fit in int64"),
    (lambda: nk.weight_norm(x3(), np.ones(4, F32), 2**70), "weight_norm", "dim="),
    (lambda: nk.layer_norm(x3(), 5, eps=10**400), "layer_norm", "out of the range of a double"),
])
def test_integers_beyond_int64_are_value_errors_naming_the_op(call, op, what):
    with pytest.raises(ValueError, match=re.escape(f"[{op}]")) as e:
        call()
    assert what in str(e.value)


@pytest.mark.parametrize("call,op", [
    (lambda: nk.layer_norm(x3(), 5, eps="1"), "layer_norm"),
    (lambda: nk.batch_norm(x3(), None, None, training=True, momentum="0.1"), "batch_norm"),
    (lambda: nk.group_norm(x3(), "1"), "group_norm"),
    (lambda: nk.group_norm(x3(), 1.0), "group_norm"),
    (lambda: nk.rms_norm(x3(), 5, eps=[1e-6]), "rms_norm"),
    (lambda: nk.instance_norm(x3(), eps=None), "instance_norm"),
])
def test_scalars_of_the_wrong_type_name_the_op(call, op):
    with pytest.raises(TypeError, match=re.escape(f"[{op}]")):
        call()


def test_scalars_that_are_numbers_still_work():
    x = x3()
    ref = nk.layer_norm(x, 5, eps=1e-5)
    np.testing.assert_array_equal(nk.layer_norm(x, np.int64(5), eps=np.float64(1e-5)), ref)
    np.testing.assert_array_equal(nk.group_norm(x, np.int32(3), eps=0), nk.group_norm(x, 3, eps=0.0))


# ---- NaN / Inf scalars ---------------------------------------------------------------------
@pytest.mark.parametrize("eps", [math.nan, math.inf, -math.inf])
def test_non_finite_eps(eps):
    rm, rv = np.zeros(3, F32), np.ones(3, F32)
    shown = re.escape(f"[batch_norm] eps=")
    expect_unchanged(ValueError, shown, nk.batch_norm, x3(), rm, rv, training=True, eps=eps,
                     running=(rm, rv))
    expect_unchanged(ValueError, r"\[instance_norm\] eps=", nk.instance_norm, x3(), rm, rv,
                     eps=eps, running=(rm, rv))
    for name, call in [("group_norm", lambda: nk.group_norm(x3(), 3, eps=eps)),
                       ("layer_norm", lambda: nk.layer_norm(x3(), 5, eps=eps)),
                       ("rms_norm", lambda: nk.rms_norm(x3(), 5, eps=eps)),
                       ("normalize", lambda: nk.normalize(x3(), 2, eps=eps)),
                       ("layer_norm", lambda: nk.layer_norm_backward(x3(), x3(), 5, eps=eps))]:
        with pytest.raises(ValueError, match=re.escape(f"[{name}] eps=")):
            call()


@pytest.mark.parametrize("momentum", [math.nan, math.inf, -math.inf])
def test_non_finite_momentum(momentum):
    rm, rv = np.zeros(3, F32), np.ones(3, F32)
    expect_unchanged(ValueError, r"\[batch_norm\] momentum=", nk.batch_norm, x3(), rm, rv,
                     training=True, momentum=momentum, running=(rm, rv))
    expect_unchanged(ValueError, r"\[instance_norm\] momentum=", nk.instance_norm, x3(), rm, rv,
                     momentum=momentum, running=(rm, rv))


# ---- zero-size tensors: as PyTorch, but never NaN in the running statistics ---------------------
@pytest.mark.parametrize("shape", [(0, 3, 5), (0, 3), (2, 3, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch_norm(shape, dtype):
    x = np.zeros(shape, dtype)
    rm, rv = np.full(3, 0.5, dtype), np.full(3, 2.0, dtype)
    y = nk.batch_norm(x, rm, rv, training=True)
    assert y.shape == shape and y.dtype == dtype
    np.testing.assert_array_equal(rm, np.full(3, 0.5, dtype))
    np.testing.assert_array_equal(rv, np.full(3, 2.0, dtype))
    gi, gw, gb = nk.batch_norm_backward(x, x, None, None, np.ones(3, dtype), np.zeros(3, dtype),
                                        training=True)
    assert gi.shape == shape
    np.testing.assert_array_equal(gw, np.zeros(3, dtype))
    np.testing.assert_array_equal(gb, np.zeros(3, dtype))


def test_empty_instance_norm_keeps_running_stats_where_torch_writes_nan():
    x = np.zeros((0, 3, 4), F32)
    rm, rv = np.zeros(3, F32), np.ones(3, F32)
    assert nk.instance_norm(x, rm, rv).shape == (0, 3, 4)
    np.testing.assert_array_equal(rm, np.zeros(3, F32))
    np.testing.assert_array_equal(rv, np.ones(3, F32))
    trm, trv = torch.zeros(3), torch.ones(3)
    F.instance_norm(torch.from_numpy(x), trm, trv, use_input_stats=True)
    assert torch.isnan(trm).all(), "PyTorch 1.13 poisons them; if this changes, update the docs"


@pytest.mark.parametrize("call,torch_call", [
    (lambda x: nk.layer_norm(x, 5), lambda t: F.layer_norm(t, (5,))),
    (lambda x: nk.group_norm(x, 3), lambda t: F.group_norm(t, 3)),
    (lambda x: nk.rms_norm(x, 5), None),
    (lambda x: nk.normalize(x, (1, 2)), None),
])
def test_empty_outputs_match_torch_shapes(call, torch_call):
    x = np.zeros((0, 3, 5), F32)
    y = call(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    if torch_call is not None:
        assert tuple(torch_call(torch.from_numpy(x)).shape) == y.shape


@pytest.mark.parametrize("shape,dim", [((0, 1, 1), 0), ((2, 0, 3), 0), ((3, 0), 1), ((0, 3), None)])
def test_empty_weight_norm_returns_empty(shape, dim):
    # An empty v gives an empty w (and an empty or zero dg), as for every other op. PyTorch
    # 1.13 agrees where g has elements (w empty); where v.shape[dim] == 0, so that g has none,
    # torch._weight_norm dies with SIGFPE and norm_except_dim raises, so there is no PyTorch
    # answer to copy: the empty result is the one consistent with the rest.
    v = np.zeros(shape, F32)
    g = np.ones(1 if dim is None else shape[dim], F32)
    w = nk.weight_norm(v, g, dim)
    assert w.shape == v.shape and w.dtype == v.dtype
    dv, dg = nk.weight_norm_backward(np.zeros(shape, F32), v, g, dim)
    assert dv.shape == v.shape
    assert dg.shape == g.shape and not dg.any()
    if g.size:
        gt = torch.ones([1 if i != dim else n for i, n in enumerate(shape)] if dim is not None
                        else [1] * len(shape))
        assert tuple(torch._weight_norm(torch.from_numpy(v), gt, -1 if dim is None else dim).shape) == shape


# ---- the guard against poisoned running statistics ------------------------------------------
@pytest.mark.parametrize("name", ["batch_norm", "instance_norm"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_skip_nonfinite_update(name, bad):
    x = x3()
    x[1, 2, 3] = bad
    rm, rv = np.full(3, 0.5, F32), np.full(3, 2.0, F32)
    kwargs = {"training": True} if name == "batch_norm" else {}
    y, skipped = getattr(nk, name)(x, rm, rv, **kwargs, skip_nonfinite_update=True)
    assert skipped is True and y.shape == x.shape
    np.testing.assert_array_equal(rm, np.full(3, 0.5, F32))
    np.testing.assert_array_equal(rv, np.full(3, 2.0, F32))
    # Off by default, as PyTorch: the non-finite statistic is folded in.
    out = getattr(nk, name)(x, rm, rv, **kwargs)
    assert isinstance(out, np.ndarray)
    assert not np.isfinite(rv[2])


def test_skip_nonfinite_update_on_a_clean_batch_is_a_no_op():
    x = x3()
    rm1, rv1 = np.zeros(3, F32), np.ones(3, F32)
    rm2, rv2 = rm1.copy(), rv1.copy()
    y1, skipped = nk.batch_norm(x, rm1, rv1, training=True, skip_nonfinite_update=True)
    y2 = nk.batch_norm(x, rm2, rv2, training=True)
    assert skipped is False
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(rm1, rm2)
    np.testing.assert_array_equal(rv1, rv2)


def test_skip_nonfinite_update_is_keyword_only():
    with pytest.raises(TypeError):
        nk.batch_norm(x3(), None, None, None, None, True, 0.1, 1e-5, True)


# ---- concurrent calls from Python threads (the GIL is released inside) -----------------------
def test_threads_give_the_same_bits_as_alone():
    xs = [x3(shape=(64, 256)) * (i + 1) + i for i in range(4)]
    alone = [nk.layer_norm(x, 256) for x in xs]
    results = [[None] * 5 for _ in xs]

    def work(i):
        for r in range(5):
            results[i][r] = nk.layer_norm(xs[i], 256)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, per in enumerate(results):
        for y in per:
            assert y.tobytes() == alone[i].tobytes()


# ---- the command-line program ------------------------------------------------------------
def find_cli():
    here = os.path.dirname(nk.__file__)  # <build>/python
    for path in (os.environ.get("NORMKIT_CLI", ""), os.path.join(here, "..", "normkit")):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


CLI = find_cli()
USAGE_ERRORS = [
    ("explain --shape 3,,4", "entry 2 is empty"),
    ("explain --shape 2,-1", "size=-1 must be >= 1"),
    ("explain --shape 0,3", "size=0 must be >= 1"),
    ("explain --shape 99999999999999999999,2", "does not fit in int64"),
    ("explain --shape 4294967296,4294967296", "overflows int64"),
    ("explain --shape 9223372036854775807,2", "overflows int64"),
    ("explain --shape a,b", "'a' is not an integer"),
    ("explain --shape 3.5,2", "'3.5' is not an integer"),
    ("explain --shape ,", "entry 1 is empty"),
    ("explain --shape", "--shape"),
    ("explain --groups 0", "num_groups=0"),
    ("explain --groups -3", "num_groups=-3"),
    ("explain --groups abc", "abc"),
    ("explain --shape 4,6 --groups 4", "num_channels=6 is not divisible by num_groups=4"),
    ("explain --shape 5", "rank=1"),
    ("explain --groups 99999999999999999999", "--groups='99999999999999999999' does not fit in int64"),
    ("explain --groups 3.5", "'3.5' is not an integer"),
    ("guide --arch cnn --batch 0", "batch_size=0"),
    ("guide --arch cnn --batch -5", "batch_size=-5"),
    ("guide --batch 0", "batch"),  # a bad value must not be ignored when --arch is absent
    ("guide --arch cnn --batch 1e99", "1e99"),
    ("guide --arch cnn --batch 99999999999999999999", "--batch='99999999999999999999' does not fit in int64"),
    ("guide --batch 99999999999999999999", "does not fit in int64"),
    ("guide --arch", "--arch"),
    ("tour --reps 0", "reps=0"),
    ("tour --threads -2", "threads=-2"),
    ("study --quick --batches 0", "batch=0"),
    ("study --quick --jobs 0", "jobs=0"),
    ("study --quick --epochs -1", "epochs=-1"),
    ("study --quick --lr nan", "lr=nan"),
    ("study --quick --groups 0", "groups=0"),
    ("study --quick --norms xx", "norm=xx"),
    ("study --quick --train-subset -5", "train_subset=-5 must be >= 0"),
    ("study --quick --test-subset -1", "test_subset=-1 must be >= 0"),
    ("study --quick --train-subset 99999999999999999999", "does not fit in int64"),
    ("study --quick --test-subset 4294967296", "--test-subset='4294967296' is out of range"),
    ("study --quick --max-error nan", "max_error=nan must lie in [0, 1)"),
    ("study --quick --max-error -1", "max_error=-1 must lie in [0, 1)"),
    ("study --quick --max-error 1", "max_error=1 must lie in [0, 1)"),
    ("study --quick --max-error abc", "--max-error='abc' is not a number"),
]


if CLI:  # built with NORMKIT_BUILD_TOOLS (the default); otherwise there is nothing to test
    @pytest.mark.parametrize("args,needle", USAGE_ERRORS, ids=[a for a, _ in USAGE_ERRORS])
    def test_cli_usage_errors(args, needle, tmp_path):
        # A usage error is reported at once (before any work), with status 2 and the value named.
        r = subprocess.run([CLI, *args.split()], capture_output=True, text=True, timeout=15,
                           cwd=tmp_path)
        assert r.returncode == 2, f"{args}: exit {r.returncode}\n{r.stdout[-500:]}{r.stderr[-500:]}"
        assert needle in r.stdout + r.stderr, f"{args}: {r.stderr[-500:]}"
        assert not os.listdir(tmp_path), f"{args}: wrote {os.listdir(tmp_path)} before failing"
