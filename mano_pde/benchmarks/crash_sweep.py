"""``mano-pde benchmark crash-sweep``: kill real commands at random instants, damage their files, rerun, compare.

Each trial starts one command in a subprocess of its own session (``generate`` with one or two workers,
``train``, ``evaluate``), sends ``SIGKILL``, ``SIGTERM`` or ``SIGINT`` to its main process after a random delay
(uniform up to 95 % of the fastest uninterrupted wall time seen so far for that command), and optionally
damages one of the files it left (a shard, the resume state, a result file: truncated, emptied, random bytes
or one flipped bit). Then the same command is rerun (``train`` with ``--resume``) until it finishes, and the
trial checks:

``refused``
    the rerun exited with an error although the interrupted run could be resumed (without damage) — a valid
    resume refused. With damage a clear refusal (exit status 2, one line) is allowed and counted apart;
``mismatch``
    the finished output differs from the uninterrupted reference (data arrays and attributes but ``history``;
    trained weights bit for bit; evaluation errors) — a corrupted state accepted;
``leftover``
    temporary files (``*.tmp``), ``.parts`` folders or lock files remain after the successful rerun;
``orphan``
    processes of the killed command's session are still alive after it ended (pool workers, trackers).

A healthy package shows zeros in all four columns. Sizes are tiny (9-33 point grids), so a trial takes a
few seconds, most of it Python and torch start-up.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mano_pde.errors import UserInputError

__all__ = ["add_arguments", "run", "crash_sweep"]

log = logging.getLogger(__name__)

SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}
DAMAGES = ("none", "truncated", "empty", "random bytes", "bit flip")
COMMANDS = ("generate", "generate-2", "train", "evaluate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, default=40, help="number of trials (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the trial plan")
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    parser.add_argument("--damage-rate", type=float, default=0.3, help="share of trials that damage a file")
    parser.add_argument("--workdir", help="keep the trials here (default: a temporary folder, removed)")
    parser.add_argument("--json", metavar="FILE", help="write every trial as JSON")


def run(args: argparse.Namespace) -> int:
    if args.trials < 1:
        raise UserInputError(f"--trials must be >= 1, got {args.trials}")
    if not 0.0 <= args.damage_rate <= 1.0:
        raise UserInputError(f"--damage-rate must be in [0, 1], got {args.damage_rate}")
    result = crash_sweep(args.trials, args.seed, tuple(args.commands), args.damage_rate, args.workdir)
    print(result["markdown"])
    if args.json:
        from mano_pde.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(result["trials"], indent=2) + "\n")
    bad = sum(result["totals"][k] for k in ("refused", "mismatch", "leftover", "orphan"))
    return 1 if bad else 0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mano_pde.cli", *args]


def _commands(work: Path, name: str, out: Path) -> tuple[list[str], list[str]]:
    """(first run, rerun) argument lists of one command writing ``out``."""
    data = work / "ref" / "data.nc"
    if name.startswith("generate"):
        workers = ["--workers", "2"] if name == "generate-2" else []
        argv = _cli(
            *("generate", "--n-samples", "24", "--resolution", "33", "--chunk-size", "2", "--seed", "5"),
            *(*workers, "--no-progress", "-o", str(out)),
        )
        return argv, argv
    if name == "train":
        argv = _cli(
            *("train", "--data", str(data), "--resolution", "17", "--n-train", "16", "--n-test", "4", "--epochs", "4"),
            *("--batch-size", "4", "--model", "fno", "--hidden-channels", "8", "--n-modes", "6", "--no-progress"),
            *("-o", str(out)),
        )
        return argv, [*argv, "--resume"]
    argv = _cli("evaluate", str(work / "ref" / "run"), "--data", str(data), "--resolutions", "17", "33", "-o", str(out))
    return argv, argv


def _references(work: Path, commands: tuple[str, ...]) -> dict[str, tuple[Path, float]]:
    """Uninterrupted outputs and their wall times (evaluate needs the trained run, training the data)."""
    ref = work / "ref"
    ref.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, float]] = {}
    need = 3 if "evaluate" in commands else 2 if "train" in commands else 1
    for name, target in (("generate", ref / "data.nc"), ("train", ref / "run"), ("evaluate", ref / "results"))[:need]:
        argv, _ = _commands(work, name, target)
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out[name] = (target, time.perf_counter() - t0)
    out["generate-2"] = out["generate"]
    return out


def _session_alive(pgid: int) -> list[int]:
    alive = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            alive.append(int(p.name))
    return alive


def _damage_candidates(name: str, out: Path) -> list[Path]:
    if name.startswith("generate"):
        return sorted(out.with_name(out.name + ".parts").glob("chunk_*.npz"))
    if name == "train":
        return [p for p in (out / "train_state.pt", out / "train_state.prev.pt") if p.is_file()]
    return [p for p in (out / "results.json", out / "results.complete.json") if p.is_file()]


def _apply_damage(path: Path, how: str, rng: random.Random) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random bytes":
        path.write_bytes(rng.randbytes(max(len(data), 64)))
    elif how == "bit flip" and data:
        i = rng.randrange(len(data))
        path.write_bytes(data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :])


def _same_output(name: str, out: Path, ref: Path) -> bool:
    if name.startswith("generate"):
        import xarray as xr

        from mano_pde.data import open_darcy

        with open_darcy(out) as got, open_darcy(ref) as want:
            same = got.drop_attrs().identical(want.drop_attrs())
            attrs = ({k: v for k, v in d.attrs.items() if k != "history"} for d in (got, want))
            return bool(same) and next(attrs) == next(attrs) and isinstance(got, xr.Dataset)
    if name == "train":
        import torch

        a = torch.load(out / "model_state_dict.pt", weights_only=True)
        b = torch.load(ref / "model_state_dict.pt", weights_only=True)
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    keys = ("run", "test_resolution", "method", "rel_l2_mean", "rel_h1_mean")

    def records(p: Path) -> list:
        return [[r[k] for k in keys] for r in json.loads((p / "results.json").read_text())["records"]]

    return records(out) == records(ref) and (out / "results.complete.json").is_file()


def _leftovers(name: str, out: Path) -> list[str]:
    folder = out.parent if name.startswith("generate") else out
    found = [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".lock")) or p.name.endswith(".parts")]
    return sorted(found)


def _trial(work: Path, k: int, plan: dict[str, Any], refs: dict[str, tuple[Path, float]]) -> dict[str, Any]:
    name, sig, delay, damage = plan["command"], plan["signal"], plan["delay_s"], plan["damage"]
    tdir = work / f"trial{k:03d}"
    tdir.mkdir()
    out = tdir / ("data.nc" if name.startswith("generate") else "out")
    first, again = _commands(work, name, out)
    t0 = time.perf_counter()
    proc = subprocess.Popen(first, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        proc.wait(timeout=delay)
        finished_first = True
    except subprocess.TimeoutExpired:
        finished_first = False
        os.kill(proc.pid, SIGNALS[sig])  # the main process only: what a job manager or the OOM killer does
        proc.wait()
    deadline = time.monotonic() + 10
    while (alive := _session_alive(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    record = {**plan, "trial": k, "first_rc": proc.returncode, "killed": not finished_first, "orphans": alive}
    record["first_wall_s"] = round(time.perf_counter() - t0, 3)
    for pid in alive:  # do not let them disturb the next trials
        os.kill(pid, signal.SIGKILL)
    damaged = None
    if damage != "none":
        candidates = _damage_candidates(name, out)
        if candidates:
            rng = random.Random(plan["damage_seed"])
            damaged = rng.choice(candidates)
            _apply_damage(damaged, damage, rng)
    record["damaged_file"] = damaged.name if damaged else None
    if finished_first and proc.returncode == 0 and damaged is None:  # nothing to resume (generate would refuse)
        rerun = subprocess.CompletedProcess(again, 0, "", "")
    else:
        rerun = subprocess.run(again, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    record["rerun_rc"] = rerun.returncode
    record["rerun_error"] = rerun.stderr.strip().splitlines()[-1] if rerun.returncode and rerun.stderr else ""
    # a signal that arrived after generate had renamed its complete file into place (e.g. during interpreter
    # exit, rc -15): the rerun's "already exists" is then right, nothing was left to resume
    finished = name.startswith("generate") and rerun.returncode == 2 and "already exists" in rerun.stderr
    record["finished_before_signal"] = finished
    record["refused"] = rerun.returncode != 0 and not (damaged and rerun.returncode == 2) and not finished
    record["clear_refusal"] = bool(damaged) and rerun.returncode == 2 and len(rerun.stderr.strip().splitlines()) == 1
    ok = rerun.returncode == 0 or finished
    record["mismatch"] = ok and not _same_output(name, out, refs[name][0])
    record["leftover"] = _leftovers(name, out) if ok else []
    return record


def crash_sweep(
    trials: int, seed: int, commands: tuple[str, ...], damage_rate: float, workdir: str | None = None
) -> dict[str, Any]:
    """Run the sweep (see the module docstring); returns ``{"trials", "totals", "markdown"}``."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mano-crash-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        refs = _references(work, commands)
        # the delay is drawn below the fastest uninterrupted wall time seen so far (the reference, or a trial
        # that finished before its signal), so that most trials are really interrupted
        fastest = {name: wall for name, (_, wall) in refs.items()}
        rng = random.Random(seed)
        records = []
        for k in range(trials):
            name = commands[k % len(commands)]
            plan = {
                "command": name,
                "signal": rng.choice(list(SIGNALS)),
                "delay_s": round(rng.uniform(0.1, 0.95 * fastest[name]), 3),
                "damage": rng.choice(DAMAGES[1:]) if rng.random() < damage_rate else "none",
                "damage_seed": rng.randrange(2**31),
            }
            records.append(_trial(work, k, plan, refs))
            if not records[-1]["killed"] and records[-1]["first_rc"] == 0:
                fastest[name] = min(fastest[name], records[-1]["first_wall_s"])
            log.info("trial %d: %s", k, records[-1])
    finally:
        if not workdir:
            shutil.rmtree(work, ignore_errors=True)
    totals = {
        "trials": len(records),
        "killed": sum(r["killed"] for r in records),
        "damaged": sum(bool(r["damaged_file"]) for r in records),
        "clear_refusal": sum(r["clear_refusal"] for r in records),
        "refused": sum(r["refused"] for r in records),
        "mismatch": sum(r["mismatch"] for r in records),
        "leftover": sum(bool(r["leftover"]) for r in records),
        "orphan": sum(bool(r["orphans"]) for r in records),
    }
    return {"trials": records, "totals": totals, "markdown": _markdown(records, totals, seed)}


def _markdown(records: list[dict], totals: dict[str, int], seed: int) -> str:
    lines = [
        f"crash sweep: {totals['trials']} trials (seed {seed}); signal to the main process after a random delay, "
        "optional damage of one file, then rerun to completion",
        "",
        "| command | trials | killed | damaged | clear refusal (damaged) | refused | mismatch | leftover | orphan |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["command"] for r in records):
        rs = [r for r in records if r["command"] == name]
        lines.append(
            f"| {name} | {len(rs)} | {sum(r['killed'] for r in rs)} | {sum(bool(r['damaged_file']) for r in rs)} | "
            f"{sum(r['clear_refusal'] for r in rs)} | {sum(r['refused'] for r in rs)} | "
            f"{sum(r['mismatch'] for r in rs)} | {sum(bool(r['leftover']) for r in rs)} | "
            f"{sum(bool(r['orphans']) for r in rs)} |"
        )
    t = totals
    lines.append(
        f"| **all** | {t['trials']} | {t['killed']} | {t['damaged']} | {t['clear_refusal']} | {t['refused']} | "
        f"{t['mismatch']} | {t['leftover']} | {t['orphan']} |"
    )
    bad = [r for r in records if r["refused"] or r["mismatch"] or r["leftover"] or r["orphans"]]
    for r in bad:
        lines.append(
            f"- trial {r['trial']} ({r['command']}, SIG{r['signal']} at {r['delay_s']} s, damage {r['damage']} "
            f"of {r['damaged_file']}): rerun rc {r['rerun_rc']} {r['rerun_error']!r}, mismatch {r['mismatch']}, "
            f"leftover {r['leftover']}, orphans {r['orphans']}"
        )
    return "\n".join(lines)
