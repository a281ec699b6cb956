#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bash bench/kernel-incache.sh [KiB per source, default 96]: builds bench/kernel_incache.cc against the core
# addon's objects (npm run build first) and prints JSON lines: in-cache GB/s per dtype, N and SIMD level.
exec bash "$(dirname "$0")/kernel-harness.sh" kernel_incache "${1:-96}"
