#!/usr/bin/env bash
# Scaling table with today's layer (issue 19): 2 threads, batch 1, 32..512 (global attention to 128).
set -u
cd /work/wt-new
uptime
PYTHONPATH=/work/wt-new python -m mano_pde.cli benchmark scaling --models mano window-attention fno fno-small=fno --resolutions 32 64 128 256 512 \
  --time-budget 20 --no-gemm --output-dir /work/runs/issue19/scaling
PYTHONPATH=/work/wt-new python -m mano_pde.cli benchmark scaling --models global-attention --resolutions 32 64 128 --time-budget 20 --no-gemm \
  --output-dir /work/runs/issue19/scaling_global
uptime
