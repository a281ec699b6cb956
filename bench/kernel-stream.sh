#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bash bench/kernel-stream.sh [MiB per source, default 512] [reps, default 11]: builds bench/kernel_stream.cc
# against the core addon's objects (npm run build first) and prints JSON lines: the soup kernel out of
# cache (fp32 and bf16, N = 2, 4, 8) and the read probe, each as GB/s and as a fraction of the triad.
# Needs 12 streams of the given size in memory (6 GiB at 512 MiB). `bash bench/kernel-stream.sh 1024 9 >
# bench/results/kernel-stream.jsonl` refreshes the canonical results file (docs/benchmarks.md).
exec bash "$(dirname "$0")/kernel-harness.sh" kernel_stream "${1:-512}" "${2:-11}"
