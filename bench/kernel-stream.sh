#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bash bench/kernel-stream.sh [MiB per source, default 512] [reps, default 11]: builds bench/kernel_stream.cc
# against the core addon's objects (npm run build first) and prints JSON lines: the soup kernel out of
# cache (fp32 and bf16, N = 2, 4, 8) and the read probe, each as GB/s and as a fraction of the triad.
# Needs 12 streams of the given size in memory (6 GiB at 512 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
obj=build/Release/obj.target/soup_core/native/core
for o in interp interp_scalar interp_avx2 interp_avx512 interp_avx512bf16 thread_pool; do
  [ -f "$obj/$o.o" ] || { echo "missing $obj/$o.o: run npm run build first" >&2; exit 1; }
done
exe=$(mktemp -d)/kernel_stream
g++ -std=c++20 -O2 -Inative bench/kernel_stream.cc "$obj"/{interp,interp_scalar,interp_avx2,interp_avx512,interp_avx512bf16,thread_pool}.o -lpthread -o "$exe"
"$exe" "${1:-512}" "${2:-11}"
rm -rf "$(dirname "$exe")"
