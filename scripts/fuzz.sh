#!/usr/bin/env bash
# fuzz.sh — builds fuzz/fuzz_ops.cpp with clang's libFuzzer (+ ASan, UBSan) against a
# clang-built, instrumented normkit in build-fuzz, then fuzzes for a bounded time starting
# from the committed corpus (fuzz/corpus, read-only: new inputs go to build-fuzz/corpus).
# Usage: scripts/fuzz.sh [seconds, default 60]. A crash or property violation fails.
# The instrumented build compiles the SIMD code for AVX2 and the portable fallback only
# (HWY_DISABLED_TARGETS 6528 = SSSE3 | SSE4 | AVX3 | AVX3_DL: targets this machine class does
# not run, or would not pick): clang with ASan took over 18 minutes for the SIMD file's every
# target at 60f18cd, most of CI's 30 (it is now split by storage type: src/engine/rows_simd_*.cpp). HWY_FUZZ_DISABLED=0 builds them all.
# fuzz_ops.cpp runs float32 and float64 only, so the float16 and bfloat16 files are compiled
# for the scalar target alone (NORMKIT_HALF_SCALAR_ONLY): their AVX2 code took 289 and 215 s
# of this build at 5d18ff5 (the scalar-only float16 file 16 s), code the fuzzer never runs;
# the ASan stage (scripts/sanitize.sh) runs the half types on every target it builds.
# NORMKIT_FUZZ_HALF_SIMD=1 builds their SIMD code here too.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${NORMKIT_FUZZ_BUILD:-build-fuzz}
CC=${CC_FUZZ:-clang} CXX=${CXX_FUZZ:-clang++} cmake -S . -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNORMKIT_SANITIZE=ON \
  "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link -DHWY_DISABLED_TARGETS=${HWY_FUZZ_DISABLED:-6528}" \
  -DNORMKIT_HALF_SCALAR_ONLY="$([ "${NORMKIT_FUZZ_HALF_SIMD:-0}" = 1 ] && echo OFF || echo ON)" \
  -DNORMKIT_BUILD_TESTS=OFF -DNORMKIT_BUILD_PYTHON=OFF -DNORMKIT_BUILD_TOOLS=OFF \
  -DNORMKIT_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target normkit normkit_reference -j "$(nproc)"
"${CXX_FUZZ:-clang++}" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Iinclude -Isrc fuzz/fuzz_ops.cpp "$build/libnormkit.a" "$build/libnormkit_reference.a" \
  -lhwy -fopenmp -o "$build/fuzz_ops"
mkdir -p "$build/corpus" "$build/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
# A fixed seed (NORMKIT_FUZZ_SEED to change it): the same inputs in the same order on every
# run, so a CI failure can be replayed; the committed corpus grows with each input found.
"$build/fuzz_ops" -seed="${NORMKIT_FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=512 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/" "$build/corpus" fuzz/corpus
echo "fuzz: no crash or property violation in ${seconds}s"
