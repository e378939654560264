#!/usr/bin/env bash
# README's first command from a fresh clone of main, timed: install (fresh venv) + mano-pde demo.
set -eu
D=/tmp/democlone
rm -rf $D; git clone -q "${REPO:-/work/main}" $D; cd $D
python3 -m venv .venv; . .venv/bin/activate
python -m pip install -q --upgrade pip > /dev/null 2>&1
uptime
t0=$(date +%s.%N)
python -m pip install -q "torch==2.13.0" -e . > /tmp/demo_install.log 2>&1
t1=$(date +%s.%N)
mano-pde demo --no-progress > /tmp/demo_out.log 2>&1
t2=$(date +%s.%N)
echo "install $(echo "$t1 - $t0" | bc) s; demo $(echo "$t2 - $t1" | bc) s; total $(echo "$t2 - $t0" | bc) s"
uptime
cat /tmp/demo_out.log | tail -12
