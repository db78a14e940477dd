#!/usr/bin/env bash
# run.sh MODE — the consumer checks CTest runs (cmake/consumer_tests.cmake sets the NORMKIT_*
# variables): install into a temp prefix, then consume it with find_package, pkg-config
# (g++ and gcc lines), Python from a clean environment, and check the exported symbols.
# With NORMKIT_HAS_SYNC=ON (normkit built with MPI), libnormkit_sync.a and normkit::sync too.
set -euo pipefail
mode=$1
: "${NORMKIT_BUILD_DIR:?}" "${NORMKIT_PREFIX:?}" "${NORMKIT_LIBDIR:?}" "${NORMKIT_SOURCE_DIR:?}"
: "${NORMKIT_WORK_DIR:?}" "${NORMKIT_VERSION:?}"
libdir=$NORMKIT_PREFIX/$NORMKIT_LIBDIR
work=$NORMKIT_WORK_DIR/$mode
here=$NORMKIT_SOURCE_DIR/tests/consumer
fail() { echo "consumer_$mode: $*" >&2; exit 1; }

case $mode in
  install)
    rm -rf "$NORMKIT_PREFIX"
    "${CMAKE_COMMAND:-cmake}" --install "$NORMKIT_BUILD_DIR" --prefix "$NORMKIT_PREFIX" >/dev/null
    for f in include/normkit/normkit.hpp include/normkit/normkit.h "$NORMKIT_LIBDIR/libnormkit.so" \
             "$NORMKIT_LIBDIR/libnormkit.a" "$NORMKIT_LIBDIR/pkgconfig/normkit.pc" \
             "$NORMKIT_LIBDIR/cmake/normkit/normkitConfig.cmake" \
             "$NORMKIT_LIBDIR/cmake/normkit/normkitConfigVersion.cmake"; do
      [ -e "$NORMKIT_PREFIX/$f" ] || fail "missing $f"
    done
    if [ "${NORMKIT_HAS_SYNC:-OFF}" = ON ]; then
      [ -e "$libdir/libnormkit_sync.a" ] || fail "missing $NORMKIT_LIBDIR/libnormkit_sync.a"
    fi
    echo "installed into $NORMKIT_PREFIX:"; (cd "$NORMKIT_PREFIX" && find . -type f | sort)
    ;;
  cmake)
    rm -rf "$work"
    "${CMAKE_COMMAND:-cmake}" -S "$here/cmake" -B "$work" -G "${CMAKE_GENERATOR:-Ninja}" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$NORMKIT_PREFIX"
    "${CMAKE_COMMAND:-cmake}" --build "$work" -j2
    loads=$(ldd "$work/consumer_shared")  # (not piped into grep -q: pipefail + SIGPIPE)
    [[ $loads == *"$libdir/libnormkit.so"* ]] || fail "consumer_shared does not load $libdir/libnormkit.so"
    "$work/consumer_shared"
    "$work/consumer_static"
    if [ "${NORMKIT_HAS_SYNC:-OFF}" = ON ]; then  # one MPI process (singleton), root allowed
      [ -x "$work/consumer_sync" ] || fail "normkit was built with MPI but normkit::sync was not found"
      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "$work/consumer_sync"
    fi
    ;;
  pkgconfig)
    rm -rf "$work" && mkdir -p "$work"
    export PKG_CONFIG_PATH=$libdir/pkgconfig
    v=$(pkg-config --modversion normkit)
    [ "$v" = "$NORMKIT_VERSION" ] || fail "pkg-config says version $v, expected $NORMKIT_VERSION"
    set -x
    # -std=c++20 is the user's to give: normkit.pc also serves C programs (the gcc line below).
    g++ -std=c++20 -O2 "$here/main.cpp" $(pkg-config --cflags --libs normkit) \
      -Wl,-rpath,"$libdir" -o "$work/consumer_cxx"
    gcc -std=c99 -O2 -Wall -Werror "$NORMKIT_SOURCE_DIR/tests/c/test_c_api.c" \
      $(pkg-config --cflags --libs normkit) -lm -Wl,-rpath,"$libdir" -o "$work/consumer_c"
    set +x
    "$work/consumer_cxx"
    "$work/consumer_c"
    ;;
  python)
    [ -n "${NORMKIT_PYDIR:-}" ] || fail "the Python module was not built"
    py=${NORMKIT_PYTHON:-/usr/bin/python3}
    site=$NORMKIT_PREFIX/$NORMKIT_PYDIR
    env -i PATH=/usr/bin PYTHONPATH="$site" "$py" -c '
import sys, numpy as np, normkit
assert normkit.__file__.startswith(sys.argv[1]), normkit.__file__
x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
y = normkit.layer_norm(x, (3, 4))
assert y.dtype == np.float32 and abs(float(y.mean())) < 1e-5, y
print("python: normkit from", normkit.__file__, "layer_norm ok")' "$site"
    ;;
  symbols)
    so=$libdir/libnormkit.so
    syms=$(nm -D --defined-only "$so" | awk '{print $3}' | c++filt)
    echo "$(echo "$syms" | wc -l) symbols exported by $so"
    for want in 'normkit_layer_norm_forward_f32' 'normkit_last_error' \
                'void normkit::layer_norm_forward<float, float>(' 'void normkit::layer_norm_forward<normkit::bfloat16, float>(' 'normkit::BatchNorm<double>::forward(' \
                'normkit::ReductionPlan::build(' 'normkit::recommend(' 'typeinfo for normkit::Error'; do
      grep -qF "$want" <<<"$syms" || fail "libnormkit.so does not export $want"
    done
    leaked=$(echo "$syms" | grep -E 'normkit::(detail|engine|reference)::|^hwy::|\(anonymous namespace\)' || true)
    [ -z "$leaked" ] || fail "internal symbols exported: $(echo "$leaked" | head -5)"
    ;;
  *) fail "unknown mode" ;;
esac
echo "consumer_$mode: ok"
