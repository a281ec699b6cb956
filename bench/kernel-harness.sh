#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bash bench/kernel-harness.sh NAME [args…]: builds bench/NAME.cc against the core addon's kernel objects
# (npm run build first), runs it with the given arguments and removes the binary. Shared by
# bench/kernel-incache.sh and bench/kernel-stream.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
shift
obj=build/Release/obj.target/soup_core/native/core
for o in interp interp_scalar interp_avx2 interp_avx512 interp_avx512bf16 thread_pool; do
  [ -f "$obj/$o.o" ] || { echo "missing $obj/$o.o: run npm run build first" >&2; exit 1; }
done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
g++ -std=c++20 -O2 -Inative "bench/$name.cc" "$obj"/{interp,interp_scalar,interp_avx2,interp_avx512,interp_avx512bf16,thread_pool}.o -lpthread -o "$dir/$name"
"$dir/$name" "$@"
