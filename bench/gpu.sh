#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One script for a GPU machine (H100/H200 with PyTorch, CMake, nvcc; no Node needed). From the repo root:
#     bash bench/gpu.sh            # writes under $OUT (default /tmp/soup-gpu-out), prints one table last
# Steps (each under its own timeout; the whole run is sized for < 8 minutes):
#   1. build native/cuda standalone (CMake; plain nvcc if CMake cannot), sm_90 only, and dump its SASS
#   2. native/tests/soup_cuda_tests: kernel + pipeline vs CPU references, every size and dtype
#   3. bench/gpu_torch.py: D2D copy ceiling; kernel GB/s for N=2,4,8 bf16/fp32 at 1 GiB per source and
#      16384 small tensors; torch._foreach_mul/_foreach_add_ and eager sum(l*t) on the same buffers
#   4. soup_cuda_bench: a 4 x 1 GiB file merge against plain read / write / host-link times
#   5. libtorch: the kernels on CUDA at::Tensors (torch_cuda_check.cc) and the training core
#      (native/torch) compiled against the pip torch, linked as cpp_extension does; PPO steps on the
#      GPU when native/torch/tools/ppo_check.cc exists (contract: docs/cuda.md)
# Files under $OUT (at most 8): log.txt env.json tests.json kernels.json file_merge.json ppo.json sass_sm90.txt
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/soup-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
T0=$(date +%s)
say() { echo "[gpu.sh +$(( $(date +%s) - T0 ))s] $*"; }
# Every step's timeout is capped by what is left of a 465 s budget, so the whole script ends in < 8 min.
BUDGET=${SOUP_GPU_BUDGET_S:-465}
cap() { local left=$(( BUDGET - ($(date +%s) - T0) )); [ "$left" -lt 5 ] && left=5; [ "$1" -lt "$left" ] && echo "$1" || echo "$left"; }
PY=${PYTHON:-python3}
JOBS=$(nproc)
B=${SOUP_CUDA_BUILD:-/tmp/soup-build-cuda}

# ---- environment ------------------------------------------------------------------------------------
NVCC=${CUDACXX:-$(command -v nvcc || true)}
[ -z "$NVCC" ] && for c in /usr/local/cuda/bin/nvcc /usr/local/cuda-13.0/bin/nvcc; do [ -x "$c" ] && NVCC=$c && break; done
NVCC=$(readlink -f "$NVCC" 2>/dev/null || echo "$NVCC")  # a /usr/local/bin link: headers and libs live beside the real one
CUDA_HOME_GUESS=$(dirname "$(dirname "$NVCC")")
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
TORCH_DIR=$($PY -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)
TORCH_VER=$($PY -c 'import torch; print(torch.__version__)' 2>/dev/null)
ABI=$($PY -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null || echo 1)
NVCC_VER=$("$NVCC" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')
say "GPU: $GPU, driver $DRIVER; torch $TORCH_VER ($TORCH_DIR); nvcc $NVCC_VER ($NVCC); $JOBS cores"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem,temperature.gpu --format=csv 2>/dev/null

# ---- 1. build -----------------------------------------------------------------------------------------
say "1. build native/cuda (sm_90)"
BUILT=cmake
if ! timeout $(cap 240) bash -c "cmake -S native/cuda -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DSOUP_CUDA_VARIANTS=ON -DCMAKE_CUDA_COMPILER=$NVCC >$B.configure.log 2>&1 && cmake --build $B -j $JOBS --target soup_cuda soup_cuda_tests soup_cuda_bench soup_cuda_capi"; then
  say "CMake build failed (tail of the configure log below); building with plain nvcc instead"
  tail -20 $B.configure.log 2>/dev/null
  BUILT=nvcc
  mkdir -p $B/tests
  F="-O3 -std=c++17 -DSOUP_CUDA_VARIANTS -gencode arch=compute_90,code=sm_90 -Xcompiler -fPIC -Inative/cuda"
  timeout $(cap 240) bash -c "
    $NVCC $F -c native/cuda/interpolate.cu -o $B/interpolate.o &&
    $NVCC $F -c native/cuda/device.cc -o $B/device.o &&
    $NVCC $F -c native/cuda/pipeline.cc -o $B/pipeline.o &&
    ar rcs $B/libsoup_cuda.a $B/interpolate.o $B/device.o $B/pipeline.o &&
    $NVCC $F -Xcompiler -ffp-contract=off native/tests/cuda_interpolate_test.cc $B/libsoup_cuda.a -o $B/tests/soup_cuda_tests &&
    $NVCC $F native/tests/cuda_bench.cc $B/libsoup_cuda.a -o $B/tests/soup_cuda_bench &&
    $NVCC $F -shared native/cuda/capi.cc $B/libsoup_cuda.a -o $B/libsoup_cuda_capi.so" || say "nvcc build failed too"
fi
SASS="not dumped"
CUOBJDUMP=$(command -v cuobjdump || echo "$CUDA_HOME_GUESS/bin/cuobjdump")
if [ -x "$CUOBJDUMP" ] && [ -f $B/libsoup_cuda.a ]; then
  "$CUOBJDUMP" --dump-sass $B/libsoup_cuda.a > "$B/sass_all.txt" 2>&1
  # Keep the bf16->bf16 and f32->f32 kernels only (the file must come back under 16 MiB).
  awk '/Function : .*soup_interpolate_multi_cuda/{keep = ($0 ~ /BF16ES2_|F32ES2_/)} keep' "$B/sass_all.txt" > "$OUT/sass_sm90.txt"
  SASS="$(grep -c 'LDG.E.128' $B/sass_all.txt) LDG.E.128, $(grep -c 'STG.E.128' $B/sass_all.txt) STG.E.128, $(grep -cE 'LDL|STL' $B/sass_all.txt) LDL/STL (local memory), $(grep -c 'FFMA' $B/sass_all.txt) FFMA in 32 kernels (2 variants)"
fi
say "SASS: $SASS"
cat > "$OUT/env.json" <<EOF
{"gpu": "$GPU", "driver": "$DRIVER", "torch": "$TORCH_VER", "nvcc": "$NVCC_VER", "build": "$BUILT", "sass": "$SASS"}
EOF

# ---- libtorch compiles start now, in the background (CPU work while the GPU steps run) ------------------
TORCH_BG=""
if [ -n "$TORCH_DIR" ] && [ -f $B/libsoup_cuda.a ]; then
  CUDART=$(ls "$CUDA_HOME_GUESS"/lib64/libcudart_static.a "$CUDA_HOME_GUESS"/lib/libcudart_static.a "$CUDA_HOME_GUESS"/targets/x86_64-linux/lib/libcudart_static.a /usr/local/cuda/lib64/libcudart_static.a 2>/dev/null | head -1)
  CUDA_INC=$(ls -d "$CUDA_HOME_GUESS"/include "$CUDA_HOME_GUESS"/targets/x86_64-linux/include /usr/local/cuda/include 2>/dev/null | head -1)
  TF="-O2 -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=$ABI -I$TORCH_DIR/include -I$TORCH_DIR/include/torch/csrc/api/include -Inative -Inative/cuda -I$CUDA_INC"
  TL="-L$TORCH_DIR/lib -Wl,-rpath,$TORCH_DIR/lib -Wl,--no-as-needed -ltorch -ltorch_cuda -ltorch_cpu -lc10_cuda -lc10 -Wl,--as-needed"
  ( timeout 300 g++ $TF native/tests/torch_cuda_check.cc $B/libsoup_cuda.a ${CUDART:--lcudart} -lpthread -ldl -lrt $TL -o $B/torch_cuda_check > $B/torch_check_build.log 2>&1 ) &
  TORCH_BG="$TORCH_BG $!"
  for f in native/torch/*.cc; do
    ( timeout 300 g++ $TF -fsyntax-only "$f" > "$B/syntax_$(basename "$f").log" 2>&1 || echo "$f" >> $B/syntax_failed.txt ) &
    TORCH_BG="$TORCH_BG $!"
  done
  if [ -f native/torch/tools/ppo_check.cc ]; then
    ( timeout 300 g++ $TF native/torch/*.cc native/torch/tools/ppo_check.cc $TL -o $B/ppo_check > $B/ppo_build.log 2>&1 ) &
    TORCH_BG="$TORCH_BG $!"
  fi
fi

# ---- 2. kernel tests ----------------------------------------------------------------------------------
say "2. soup_cuda_tests"
LINE="not built"
if [ -x $B/tests/soup_cuda_tests ]; then
  timeout $(cap 150) $B/tests/soup_cuda_tests > $B/tests.txt 2>&1; RC=$?
  cat $B/tests.txt
  LINE="$(tail -1 $B/tests.txt) (exit $RC)"
fi
$PY -c 'import json,sys; json.dump({"line": sys.argv[1]}, open(sys.argv[2], "w"))' "$LINE" "$OUT/tests.json"

# ---- 3. kernel vs torch -------------------------------------------------------------------------------
say "3. kernel vs torch (_foreach, eager) on the same buffers"
if [ -f $B/libsoup_cuda_capi.so ]; then
  PYTHONUNBUFFERED=1 timeout $(cap 200) $PY bench/gpu_torch.py --lib $B/libsoup_cuda_capi.so --out "$OUT/kernels.json" || say "gpu_torch.py failed or timed out"
fi

# ---- 4. file merge ------------------------------------------------------------------------------------
say "4. file merge, 4 x 1 GiB bf16"
if [ -x $B/tests/soup_cuda_bench ]; then
  timeout $(cap 120) $B/tests/soup_cuda_bench --dir /tmp/soup_bench --n 4 --mib 1024 --json "$OUT/file_merge.json" || say "soup_cuda_bench failed or timed out"
  rm -rf /tmp/soup_bench
fi

# ---- 5. libtorch (CUDA) -------------------------------------------------------------------------------
say "5. libtorch CUDA: kernels on at::Tensors; training core compile; PPO steps"
PPO_LINE="not run (no torch or no build)"
if [ -n "$TORCH_BG" ]; then
  # Wait for the background compiles, no longer than the budget allows.
  WAIT_UNTIL=$(( $(date +%s) + $(cap 200) ))
  for p in $TORCH_BG; do while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$WAIT_UNTIL" ]; do sleep 1; done; done
  if [ -x $B/torch_cuda_check ]; then
    timeout $(cap 60) $B/torch_cuda_check || say "torch_cuda_check failed"
  else
    say "torch_cuda_check did not build against pip torch:"; tail -15 $B/torch_check_build.log
  fi
  CORE_OK=yes
  [ -f $B/syntax_failed.txt ] && CORE_OK="no: $(tr '\n' ' ' < $B/syntax_failed.txt)" && tail -15 $B/syntax_*.log
  say "training core (native/torch/*.cc) compiles against torch $TORCH_VER: $CORE_OK"
  PPO_LINE="training core compiles against torch $TORCH_VER: $CORE_OK; native/torch/tools/ppo_check.cc absent"
  if [ -f native/torch/tools/ppo_check.cc ]; then
    if [ -x $B/ppo_check ]; then
      timeout $(cap 60) $B/ppo_check --device cpu --steps 3 > $B/ppo_cpu.json && timeout $(cap 60) $B/ppo_check --device cuda --steps 3 > $B/ppo_cuda.json
      # fp32 on the GPU too (--autocast 0): isolates bf16 rounding from device bugs in the comparison.
      timeout $(cap 60) $B/ppo_check --device cuda --steps 3 --autocast 0 > $B/ppo_cuda32.json
      PPO_LINE=$($PY - $B/ppo_cpu.json $B/ppo_cuda.json $B/ppo_cuda32.json <<'PYEOF'
import json, sys
try:
    c, g = (json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:3])
    d = max(abs(a - b) / max(1e-6, abs(a)) for a, b in zip(c["losses"], g["losses"]))
    extra = ""
    try:
        g32 = json.loads(open(sys.argv[3]).read().strip().splitlines()[-1])
        d32 = max(abs(a - b) / max(1e-6, abs(a)) for a, b in zip(c["losses"], g32["losses"]))
        extra = f"; fp32 on cuda {g32['seconds']:.2f} s, max rel. loss diff {d32:.2e}"
    except Exception:
        extra = "; fp32 cuda run missing"
    print(f"{g['steps']} steps on {g['device']} (bf16 matmuls: {g.get('autocast')}): {g['seconds']:.2f} s (cpu {c['seconds']:.2f} s); max rel. loss diff vs cpu {d:.2e}{extra}")
except Exception as e:
    print(f"ppo_check output unreadable: {e}")
PYEOF
)
    else
      PPO_LINE="ppo_check.cc did not build against torch $TORCH_VER"; tail -15 $B/ppo_build.log
    fi
  fi
  for p in $TORCH_BG; do kill "$p" 2>/dev/null; done
fi
say "PPO: $PPO_LINE"
$PY -c 'import json,sys; json.dump({"line": sys.argv[1]}, open(sys.argv[2], "w"))' "$PPO_LINE" "$OUT/ppo.json"

say "done"
$PY bench/gpu_torch.py --summary "$OUT"
sleep 1  # let tee flush the table into $OUT/log.txt
