"""Summarise layer_ab.sh: per (grid, mode) the fastest call of each tree over the rounds, medians, ratios.

Usage: ``python docs/benchmarks/scripts/summarize_ab.py OUT`` with OUT the folder layer_ab.sh wrote
(``OUT/<tree>/<grid>/r<round>/scaling.json``).
"""

import glob
import json
import statistics
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "/work/runs/issue19/layer"
rows: dict[tuple, dict[str, list]] = {}
for path in glob.glob(f"{root}/*/*/r*/scaling.json"):
    tree = path.split("/")[-4]
    with open(path) as fh:
        records = json.load(fh)["records"]
    for rec in records:
        if rec.get("status") == "ok" and rec.get("mode") in ("train", "inference"):
            rows.setdefault((rec["resolution"], rec["mode"]), {}).setdefault(tree, []).append(rec)
print(
    "| grid | mode | rounds | before: fastest / median (ms) | after (ms) | speed-up fastest | speed-up median |"
    " peak MB before / after |"
)
print("|---|---|---|---|---|---|---|---|")
for (n, mode), trees in sorted(rows.items()):
    before, after = trees.get("wt-base", []), trees.get("main", [])
    if not before or not after:
        continue
    bt = [r["time_s"] * 1e3 for r in before]
    at = [r["time_s"] * 1e3 for r in after]
    bm = min(r["peak_mem_mb"] for r in before)
    am = min(r["peak_mem_mb"] for r in after)
    print(
        f"| {n}² | {mode} | {len(bt)}/{len(at)} | {min(bt):.1f} / {statistics.median(bt):.1f} | "
        f"{min(at):.1f} / {statistics.median(at):.1f} | {min(bt) / min(at):.2f}× | "
        f"{statistics.median(bt) / statistics.median(at):.2f}× | {bm:.0f} / {am:.0f} |"
    )
