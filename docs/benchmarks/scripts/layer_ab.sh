#!/usr/bin/env bash
# MANO before vs after a layer change, fresh processes, trees interleaved, ROUNDS rounds (BENCHMARKS.md,
# "Level-batched multipole attention"). BASE and NEW are checkouts of the two commits (git worktree add);
# GRIDS picks the configurations: 33 = the demo's MANO (hidden 32, 4 blocks, MLP ratio 4, position bias),
# batch 4; 128 = the scaling benchmark's MANO (width 64), batch 1.
# Same start-up settings on both sides: the tuned allocator (both trees' default) and libgomp's default waiting
# (GOMP_SPINCOUNT=300000 is libgomp's default; it also keeps older trees' children from setting OMP_WAIT_POLICY).
# Summary: python docs/benchmarks/scripts/summarize_ab.py "$OUT"
set -u
BASE=${BASE:?checkout of the old commit} NEW=${NEW:?checkout of the new commit} OUT=${OUT:?output folder}
ROUNDS=${ROUNDS:-5} GRIDS=${GRIDS:-"33 128"}
DEMO='{"mano": {"hidden_channels": 32, "n_layers": 4, "window_size": 8, "n_heads": 4, "mlp_ratio": 4.0, "position_bias": true}}'
for r in $(seq 1 "$ROUNDS"); do
  for tree in "$BASE" "$NEW"; do
    label=$([ "$tree" = "$BASE" ] && echo wt-base || echo main)
    for n in $GRIDS; do
      if [ "$n" = 33 ]; then extra=(--batch-size 4 --model-kwargs "$DEMO"); else extra=(--batch-size 1); fi
      GOMP_SPINCOUNT=300000 PYTHONPATH=$tree python -m mano_pde.benchmarks.scaling --models mano --resolutions "$n" \
        "${extra[@]}" --modes train inference --no-gemm --time-budget 5 --repeats 10 \
        --output-dir "$OUT/$label/$n/r$r" > /dev/null 2>&1
    done
    echo "round $r $label done, load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
