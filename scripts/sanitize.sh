#!/usr/bin/env bash
# sanitize.sh — builds the library and the GoogleTest suite with AddressSanitizer +
# UndefinedBehaviorSanitizer (NORMKIT_SANITIZE) in build-asan and runs it; any report fails.
# Only what the C++ tests need is built (no Python, CLI, bench) to keep CI on 2 cores short.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${NORMKIT_ASAN_BUILD:-build-asan}
# The SIMD targets this CPU cannot run are not built here: without AVX-512, Highway's AVX3
# target (HWY_AVX3 | HWY_AVX3_DL = 384) would be compiled under the sanitizers and never run
# (tests/test_targets.cpp runs every target the CPU supports: AVX2, SSE4, the fallback).
# SSSE3 (4096) is left out too: the same 16-byte vectors, loops and tails as SSE4, so the
# same memory accesses for the sanitizers to check; the Release suite runs it. Every
# target is built with NORMKIT_ASAN_ALL_TARGETS=1.
flags=""
if [ "${NORMKIT_ASAN_ALL_TARGETS:-0}" != 1 ]; then
  disabled=4096
  grep -qw avx512f /proc/cpuinfo 2>/dev/null || disabled=$((disabled | 384))
  flags="-DHWY_DISABLED_TARGETS=$disabled"
fi
# -O1: what the sanitizer documentation recommends, and quicker to compile than -O2.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_CXX_FLAGS="$flags" \
  -DNORMKIT_SANITIZE=ON -DNORMKIT_BUILD_PYTHON=OFF -DNORMKIT_BUILD_TOOLS=OFF -DNORMKIT_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target normkit_tests -j "$(nproc)"
# LeakSanitizer is on too: the suite must not leak.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$build/normkit_tests" --gtest_brief=1 "$@"
echo "sanitize: normkit_tests passed under ASan + UBSan"
