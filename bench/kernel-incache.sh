#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bash bench/kernel-incache.sh [KiB per source, default 96]: builds bench/kernel_incache.cc against the core
# addon's objects (npm run build first) and prints JSON lines: in-cache GB/s per dtype, N and SIMD level.
set -euo pipefail
cd "$(dirname "$0")/.."
obj=build/Release/obj.target/soup_core/native/core
for o in interp interp_scalar interp_avx2 interp_avx512 interp_avx512bf16 thread_pool; do
  [ -f "$obj/$o.o" ] || { echo "missing $obj/$o.o: run npm run build first" >&2; exit 1; }
done
exe=$(mktemp -d)/kernel_incache
g++ -std=c++20 -O2 -Inative bench/kernel_incache.cc "$obj"/{interp,interp_scalar,interp_avx2,interp_avx512,interp_avx512bf16,thread_pool}.o -lpthread -o "$exe"
"$exe" "${1:-96}"
rm -rf "$(dirname "$exe")"
