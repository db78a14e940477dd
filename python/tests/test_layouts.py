# test_layouts.py — arrays of any strides: channels-last and transposed inputs are read in
# place and the outputs share their strides; gapped, reversed, broadcast, misaligned and
# read-only views give the same answers as contiguous copies.
import threading
import tracemalloc

import numpy as np
import pytest

import normkit as nk
from torch_reference import DTYPES, check_op


def channels_last(rng, shape, dtype):
    """An (N, C, *spatial) view of an (N, *spatial, C) buffer."""
    n, c, *spatial = shape
    buf = (rng.standard_normal((n, *spatial, c)) * 1.5 + 0.3).astype(dtype)
    perm = (0, len(shape) - 1, *range(1, len(shape) - 1))
    return buf.transpose(perm)


CL_CASES = [
    ("batch_norm", (3, 5, 4, 3), dict(training=True)),
    ("batch_norm", (2, 3, 3, 5, 4), dict(training=True)),
    ("instance_norm", (2, 5, 4, 3), {}),
    ("instance_norm", (2, 3, 3, 5, 4), {}),
    ("group_norm", (2, 6, 5, 3), dict(num_groups=3)),
    ("group_norm", (2, 6, 3, 5, 4), dict(num_groups=2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dy_layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("op,shape,params", CL_CASES)
def test_channels_last(op, shape, params, dy_layout, dtype, rng):
    x = channels_last(rng, shape, dtype)
    assert not x.flags.c_contiguous
    c = shape[1]
    arrays = dict(input=x, weight=rng.uniform(0.5, 1.5, c).astype(dtype),
                  bias=rng.standard_normal(c).astype(dtype))
    if op != "group_norm":
        arrays.update(running_mean=np.zeros(c, dtype), running_var=np.ones(c, dtype))
    y, grads = check_op(op, arrays, params, dtype, rng)
    assert y.strides == x.strides
    dy = channels_last(rng, shape, dtype) if dy_layout == "channels_last" else \
        rng.standard_normal(shape).astype(dtype)
    gi = getattr(nk, op + "_backward")(dy, **arrays, **params)[0]
    assert gi.strides == x.strides
    gi_ref = getattr(nk, op + "_backward")(np.ascontiguousarray(dy), **dict(arrays, input=np.ascontiguousarray(x)),
                                           **params)[0]
    np.testing.assert_allclose(gi, gi_ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_channels_last_is_not_copied(rng):
    # Peak allocation during the call: the output only (a copied input would double it).
    x = channels_last(rng, (8, 32, 32, 32), np.float32)
    gapped = np.empty((8, 32, 32, 64), np.float32)[..., ::2].transpose(0, 3, 1, 2)
    gapped[...] = x
    peaks = []
    for a in (x, gapped):
        tracemalloc.start()
        y = nk.batch_norm(a, None, None, training=True)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        del y
    assert peaks[0] < 1.5 * x.nbytes, peaks  # in place
    assert peaks[1] >= 2 * x.nbytes, peaks   # the measurement does see a copy


@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_layer_norm_keeps_strides(dtype, rng):
    x = rng.standard_normal((7, 5, 3)).astype(dtype).T  # (3, 5, 7), Fortran order
    w = rng.uniform(0.5, 1.5, 7).astype(dtype)
    y, grads = check_op("layer_norm", dict(input=x, weight=w, bias=None), dict(normalized_shape=7),
                        dtype, rng)
    assert y.strides == x.strides and grads[0].strides == x.strides


def views(rng, dtype):
    base = (rng.standard_normal((6, 8, 10)) + 0.5).astype(dtype)
    record = np.zeros((6, 4, 5), dtype=[("a", np.int8), ("x", dtype)], )  # packed: odd strides
    record["x"] = base[:, :4, :5]
    raw = np.zeros(base.nbytes + 1, np.uint8)[1:].view(dtype).reshape(base.shape)  # misaligned
    raw[...] = base
    readonly = base.copy()
    readonly.setflags(write=False)
    return {
        "gapped": base[:, ::2, 1::3],
        "reversed": base[::-1, :, ::-1],
        "broadcast": np.broadcast_to(base[:1], (4, 8, 10)),
        "packed_record": record["x"],
        "misaligned": raw,
        "readonly": readonly,
        "sliced_transposed": base.transpose(2, 0, 1)[:, 1:5],
    }


VIEW_NAMES = ["gapped", "reversed", "broadcast", "packed_record", "misaligned", "readonly",
              "sliced_transposed"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", VIEW_NAMES)
def test_views_match_torch(view, dtype, rng):
    x = views(rng, dtype)[view]
    c = x.shape[1]
    wb = dict(weight=rng.uniform(0.5, 1.5, c).astype(dtype), bias=rng.standard_normal(c).astype(dtype))
    check_op("batch_norm", dict(input=x, running_mean=np.zeros(c, dtype), running_var=np.ones(c, dtype), **wb),
             dict(training=True), dtype, rng)
    check_op("group_norm", dict(input=x, **wb), dict(num_groups=1), dtype, rng)
    check_op("layer_norm", dict(input=x, weight=None, bias=None), dict(normalized_shape=x.shape[-1]), dtype, rng)
    check_op("rms_norm", dict(input=x, weight=None), dict(normalized_shape=x.shape[-2:], eps=1e-6), dtype, rng)
    check_op("weight_norm", dict(v=x, g=np.ones((x.shape[0], 1, 1), dtype)), dict(dim=0), dtype, rng)
    # Same answer, to the last bit, as the contiguous copy when the plan is the same.
    y = nk.layer_norm(x, x.shape[-1])
    np.testing.assert_allclose(y, nk.layer_norm(np.ascontiguousarray(x), x.shape[-1]),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_parameters_and_gradients(dtype, rng):
    x = rng.standard_normal((4, 6, 5)).astype(dtype)
    w = rng.uniform(0.5, 1.5, 12).astype(np.float64)[::2]  # strided, other dtype: converted
    b = rng.standard_normal((6, 1)).astype(np.float16)       # any shape with C elements
    dy = rng.standard_normal((5, 6, 4)).astype(dtype).T      # another layout than x
    y = nk.group_norm(x, 2, w, b)
    y_ref = nk.group_norm(x, 2, w.astype(dtype).copy(), b.astype(dtype).reshape(-1))
    np.testing.assert_array_equal(y, y_ref)
    gi, gw, gb = nk.group_norm_backward(dy, x, 2, w, b)
    gi2, gw2, gb2 = nk.group_norm_backward(np.ascontiguousarray(dy), x, 2, w.astype(dtype).copy(),
                                           b.astype(dtype).reshape(-1))
    np.testing.assert_array_equal(gi, gi2)
    np.testing.assert_array_equal(gw, gw2)
    np.testing.assert_array_equal(gb.reshape(-1), gb2)
    assert gw.shape == w.shape and gb.shape == b.shape and gb.dtype == dtype


def test_empty_batch(rng):
    x = np.zeros((0, 3, 4), np.float32)
    assert nk.layer_norm(x, 4).shape == x.shape
    assert nk.group_norm(x, 3).shape == x.shape


def test_threads_give_identical_results(rng):
    x = rng.standard_normal((16, 64, 33)).astype(np.float32)
    n = nk.get_num_threads()
    try:
        nk.set_num_threads(1)
        one = [nk.batch_norm(x, None, None, training=True), nk.group_norm(x, 8), nk.layer_norm(x, 33)]
        nk.set_num_threads(2)
        two = [nk.batch_norm(x, None, None, training=True), nk.group_norm(x, 8), nk.layer_norm(x, 33)]
    finally:
        nk.set_num_threads(n)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_concurrent_python_threads(rng):
    # The GIL is released during compute: calls from several threads are safe and exact.
    xs = [rng.standard_normal((8, 16, 17)).astype(np.float64) for _ in range(4)]
    expected = [nk.layer_norm(x, 17) for x in xs]
    got = [None] * 4

    def work(i):
        for _ in range(20):
            got[i] = nk.layer_norm(xs[i], 17)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
