"""``mano-pde benchmark crash-sweep``: kill real commands at random instants, damage their files, rerun, compare.

Each trial starts one command in a subprocess of its own session (``generate`` with one or two workers,
``generate --overwrite`` over another valid file, ``train``, ``evaluate``, and ``experiment``: a tiny seeded
study spec run by ``benchmark darcy --spec``), sends ``SIGKILL``, ``SIGTERM`` or ``SIGINT`` to its main process
after a random delay (uniform up to 95 % of the fastest uninterrupted wall time seen so far for that command;
50-120 % of it in a trial that damages a file, so that there are files to damage and some runs finish first),
and optionally damages one of the files it left (a shard; any file of a run folder — resume states, weights,
``model_config.json``, ``normalizers.json``, ``config.json``, ``log.csv``, ``run.json``; a result file:
truncated, emptied, random bytes or one flipped bit). Then the same command is rerun (``train`` with
``--resume``) until it finishes, and the trial checks:

``refused``
    the rerun exited with an error although the interrupted run could be resumed (without damage) — a valid
    resume refused. With damage a clear refusal (exit status 2, one line) is allowed and counted apart;
``mismatch``
    the finished output differs from the uninterrupted reference (data arrays and attributes but ``history``;
    trained weights bit for bit; evaluation errors) — a corrupted state accepted;
``leftover``
    temporary files (``*.tmp``), ``.parts`` folders or lock files remain after the successful rerun;
``orphan``
    processes of the killed command's session are still alive after it ended (pool workers, trackers);
``slow stop``
    the main process took longer than :data:`SLOW_STOP_S` to exit after ``SIGINT``/``SIGTERM``;
``false advice``
    the interrupted command advised a rerun that then did not finish the work (it was refused), or advised a
    rerun although its output was already complete.

A healthy package shows zeros in all six columns. Sizes are tiny (9-33 point grids), so a trial takes a
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
COMMANDS = ("generate", "generate-2", "generate-overwrite", "train", "evaluate", "experiment")
#: Seconds within which a command must exit after SIGINT or SIGTERM.
SLOW_STOP_S = 2.5
#: Files of a run folder a trial may damage.
RUN_FILES = (
    "train_state.pt",
    "train_state.prev.pt",
    "model_state_dict.pt",
    "model_config.json",
    "normalizers.json",
    "config.json",
    "log.csv",
    "run.json",
)
ADVICE = "rerun the same command to resume"
#: The columns that must be zero.
BAD = ("refused", "mismatch", "leftover", "orphan", "slow_stop", "false_advice")

#: The ``experiment`` command's spec: 2 seeds × (FNO, MANO), one arm evaluated at its training grid and 2× finer.
EXPERIMENT_SPEC = """name = "crash-sweep"
description = "tiny seeded study killed at random by mano-pde benchmark crash-sweep"
seeds = [0, 1]

[data.train]
path = "data/train.nc"
generate = { n_samples = 14, resolution = 17, seed = 0, face_average = "arithmetic" }

[data.test]
path = "data/test.nc"
generate = { n_samples = 4, resolution = 17, seed = 1, face_average = "arithmetic" }

[train]
data = "train"
test_data = "test"
resolutions = [9]
n_train = [10]
n_val = 4
n_test = 4
epochs = 2
batch_size = 4
lr = 0.001

[compare]
model = "mano"
zero_shot = [17]

[models.fno]
model = "fno"
kwargs = { hidden_channels = 8, n_modes = [4, 4], n_layers = 1 }

[models.mano]
model = "mano"
kwargs = { hidden_channels = 8, n_layers = 1, n_heads = 2, window_size = 4 }

[arms.single]
models = ["fno", "mano"]
evaluate = { data = "test", resolutions = [9, 17], n_test = 4 }
"""


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
    bad = sum(result["totals"][k] for k in BAD)
    return 1 if bad else 0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mano_pde.cli", *args]


def _commands(work: Path, name: str, out: Path) -> tuple[list[str], list[str]]:
    """(first run, rerun) argument lists of one command writing ``out``."""
    data = work / "ref" / "data.nc"
    if name.startswith("generate"):
        extra = {"generate-2": ["--workers", "2"], "generate-overwrite": ["--overwrite"]}.get(name, [])
        argv = _cli(
            *("generate", "--n-samples", "24", "--resolution", "33", "--chunk-size", "2", "--seed", "5"),
            *(*extra, "--no-progress", "-o", str(out)),
        )
        return argv, argv
    if name == "experiment":
        argv = _cli("benchmark", "darcy", "--spec", str(work / "ref" / "spec.toml"), "--no-progress", "-o", str(out))
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
    (ref / "spec.toml").write_text(EXPERIMENT_SPEC)
    steps = [("generate", ref / "data.nc")]  # every other command reads this file
    if "train" in commands or "evaluate" in commands:
        steps.append(("train", ref / "run"))
    if "evaluate" in commands:
        steps.append(("evaluate", ref / "results"))
    if "experiment" in commands:
        steps.append(("experiment", ref / "experiment"))
    for name, target in steps:
        argv, _ = _commands(work, name, target)
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out[name] = (target, time.perf_counter() - t0)
    out["generate-2"] = out["generate-overwrite"] = out["generate"]
    if "generate-overwrite" in commands:  # the valid file each trial's `generate --overwrite` replaces
        argv, _ = _commands(work, "generate", ref / "other.nc")
        subprocess.run([*argv[:-2], "--seed", "6", *argv[-2:]], check=True, stdout=subprocess.DEVNULL)
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
        return [p for p in (out / f for f in RUN_FILES) if p.is_file()]
    if name == "experiment":
        names = {*RUN_FILES, "results.json", "results.complete.json"}
        return sorted(p for p in out.rglob("*") if p.is_file() and (p.name in names or p.name.startswith("chunk_")))
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
    if name == "experiment":  # every seeded run's weights, and the study's records
        import torch

        for w in sorted(ref.rglob("model_state_dict.pt")):
            a = torch.load(out / w.relative_to(ref), weights_only=True)
            b = torch.load(w, weights_only=True)
            if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
                return False
        keys = ("arm", "run", "seed", "test_resolution", "method", "rel_l2_per_sample")

        def study(p: Path) -> list:
            return sorted(
                json.dumps([r[k] for k in keys]) for r in json.loads((p / "study.json").read_text())["records"]
            )

        return study(out) == study(ref) and (out / "study.md").is_file()

    def records(p: Path) -> list:
        return [[r[k] for k in keys] for r in json.loads((p / "results.json").read_text())["records"]]

    return records(out) == records(ref) and (out / "results.complete.json").is_file()


def _leftovers(name: str, out: Path) -> list[str]:
    folder = out.parent if name.startswith("generate") else out
    found = [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith((".tmp", ".lock", ".parts")) or (p.name.startswith(".") and ".tmp" in p.name)
    ]
    return sorted(found)


def _trial(work: Path, k: int, plan: dict[str, Any], refs: dict[str, tuple[Path, float]]) -> dict[str, Any]:
    name, sig, delay, damage = plan["command"], plan["signal"], plan["delay_s"], plan["damage"]
    tdir = work / f"trial{k:03d}"
    tdir.mkdir()
    out = tdir / ("data.nc" if name.startswith("generate") else "out")
    if name == "generate-overwrite":
        shutil.copyfile(work / "ref" / "other.nc", out)
    first, again = _commands(work, name, out)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            first,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            # as typed at a terminal: SIGINT not ignored, even when the sweep itself runs under `nohup ... &`
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        stop_s = None
        try:
            proc.wait(timeout=delay)
            finished_first = True
        except subprocess.TimeoutExpired:
            finished_first = False
            os.kill(proc.pid, SIGNALS[sig])  # the main process only: what a job manager or the OOM killer does
            t_signal = time.perf_counter()
            proc.wait()
            stop_s = time.perf_counter() - t_signal
        err.seek(0)
        first_err = err.read().decode(errors="replace")
    deadline = time.monotonic() + 10
    while (alive := _session_alive(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    record = {**plan, "trial": k, "first_rc": proc.returncode, "killed": not finished_first, "orphans": alive}
    record["first_wall_s"] = round(time.perf_counter() - t0, 3)
    record["stop_s"] = None if stop_s is None else round(stop_s, 3)
    record["slow_stop"] = stop_s is not None and sig != "KILL" and stop_s > SLOW_STOP_S
    advised = ADVICE in first_err
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
    # advice that did not work: the advised rerun was refused (no damage in between), or the output was complete
    record["false_advice"] = advised and ((rerun.returncode != 0 and not damaged) or finished)
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
            sig = rng.choice(list(SIGNALS))
            damage = rng.choice(DAMAGES[1:]) if rng.random() < damage_rate else "none"
            damage_seed = rng.randrange(2**31)
            # a trial that damages a file waits longer, so that there are files to damage (and some runs finish
            # first: a damaged finished output must be repaired or refused too)
            lo, hi = (0.5, 1.2) if damage != "none" else (0.0, 0.95)
            delay = rng.uniform(max(0.1, lo * fastest[name]), hi * fastest[name])
            plan = {"command": name, "signal": sig, "delay_s": round(delay, 3), "damage": damage}
            plan["damage_seed"] = damage_seed
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
        "slow_stop": sum(r["slow_stop"] for r in records),
        "false_advice": sum(r["false_advice"] for r in records),
    }
    return {"trials": records, "totals": totals, "markdown": _markdown(records, totals, seed)}


def _markdown(records: list[dict], totals: dict[str, int], seed: int) -> str:
    lines = [
        f"crash sweep: {totals['trials']} trials (seed {seed}); signal to the main process after a random delay, "
        "optional damage of one file, then rerun to completion",
        "",
        "| command | trials | killed | damaged | clear refusal (damaged) | refused | mismatch | leftover | orphan "
        "| slow stop | false advice | slowest stop (INT/TERM) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(label: str, rs: list[dict]) -> str:
        stops = [r["stop_s"] for r in rs if r["stop_s"] is not None and r["signal"] != "KILL"]
        return (
            f"| {label} | {len(rs)} | {sum(r['killed'] for r in rs)} | {sum(bool(r['damaged_file']) for r in rs)} | "
            f"{sum(r['clear_refusal'] for r in rs)} | {sum(r['refused'] for r in rs)} | "
            f"{sum(r['mismatch'] for r in rs)} | {sum(bool(r['leftover']) for r in rs)} | "
            f"{sum(bool(r['orphans']) for r in rs)} | {sum(r['slow_stop'] for r in rs)} | "
            f"{sum(r['false_advice'] for r in rs)} | " + (f"{max(stops):.2f} s" if stops else "–") + " |"
        )

    for name in dict.fromkeys(r["command"] for r in records):
        lines.append(row(name, [r for r in records if r["command"] == name]))
    lines.append(row("**all**", records))
    bad = [r for r in records if any(r[k] for k in ("refused", "mismatch", "leftover", "orphans", *BAD[4:]))]
    for r in bad:
        lines.append(
            f"- trial {r['trial']} ({r['command']}, SIG{r['signal']} at {r['delay_s']} s, damage {r['damage']} "
            f"of {r['damaged_file']}): rerun rc {r['rerun_rc']} {r['rerun_error']!r}, mismatch {r['mismatch']}, "
            f"leftover {r['leftover']}, orphans {r['orphans']}, stop {r['stop_s']} s, "
            f"false advice {r['false_advice']}"
        )
    return "\n".join(lines)
