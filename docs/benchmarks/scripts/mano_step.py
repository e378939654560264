"""One MANO configuration timed in this process: the script behind the batch_max_points choice (BENCHMARKS.md,
"Level-batched multipole attention"). Not a benchmark command: run it in fresh processes, interleaved, e.g.

    for r in 1 2 3; do for b in 16383 16384; do
      BMP=$b GOMP_SPINCOUNT=300000 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 \
        python docs/benchmarks/scripts/mano_step.py 128 train
    done; done

Arguments: grid side (33 or 65: the demo's MANO, batch 4; else width 64, batch 1) and ``train`` or ``inference``.
Environment: ``BMP`` sets ``MultipoleAttention.batch_max_points``; ``T`` torch threads (default 2); ``R`` timed
calls (default 15). Prints the fastest and the median call in ms and the process's peak RSS.
"""

import os
import resource
import sys
import time

import torch
from neuralop.losses import LpLoss

from mano_pde.layers.multipole_attention import MultipoleAttention
from mano_pde.models import create_model

torch.set_num_threads(int(os.environ.get("T", "2")))
n, mode = int(sys.argv[1]), sys.argv[2]
if os.environ.get("BMP"):
    MultipoleAttention.batch_max_points = int(os.environ["BMP"])
torch.manual_seed(0)
if n in (33, 65):
    kw = dict(hidden_channels=32, n_layers=4, window_size=8, n_heads=4, mlp_ratio=4.0, position_bias=True)
    kw, batch = {**kw, "image_size": 33}, 4
else:
    kw, batch = dict(hidden_channels=64, n_layers=4, n_heads=4, window_size=8), 1
net = create_model("mano", in_channels=1, out_channels=1, **kw)
x, y = torch.randn(batch, 1, n, n), torch.randn(batch, 1, n, n)
opt, loss = torch.optim.Adam(net.parameters(), 1e-3), LpLoss(d=2, p=2, reduction="sum")
if mode != "train":
    net.eval()


def step() -> None:
    if mode == "train":
        opt.zero_grad()
        loss(net(x), y).backward()
        opt.step()
    else:
        with torch.no_grad():
            net(x)


for _ in range(3):
    step()
times = []
for _ in range(int(os.environ.get("R", "15"))):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
times.sort()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"{times[0] * 1e3:.1f} {times[len(times) // 2] * 1e3:.1f} maxrss {peak} MB")
