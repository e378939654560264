#!/usr/bin/env bash
# Every example, in an empty folder, with the clone's venv of demo_clone.sh (the code of /work/main at the clone).
set -u
. /tmp/democlone/.venv/bin/activate
W=/tmp/examples_run; rm -rf $W; mkdir -p $W; cd $W
uptime
for e in 01_generate_darcy 02_train 03_zero_shot_resolution; do
  /usr/bin/time -f "$e wall %e s maxrss %M KB" python /tmp/democlone/examples/$e.py > $W/$e.out 2> $W/$e.err
  tail -1 $W/$e.err
done
uptime
