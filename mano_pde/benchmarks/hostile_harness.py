"""The machinery of ``mano-pde benchmark hostile-inputs``: cases, fixtures, one run, and the strict classifier.

A :class:`Case` is one hostile input: a command line of ``mano-pde`` (run as ``python -m mano_pde.cli`` in a
subprocess) or a small Python snippet (run in a subprocess too), the fixtures it needs copied into a fresh case
folder, an optional setup (plant a link, damage a file), the output(s) the user named, and what a demanding user
expects (``refuse``: exit 2 with one clear line; ``succeed``: exit 0 and, optionally, a validator of the output;
``either``: a clear refusal or a correct result).

Every case folder also holds a sentinel ``victim.txt`` outside the named outputs. The folder is snapshot (path ->
SHA-256 of a file, the target of a link, or the kind of a folder or special file) before and after the command,
and :func:`classify` judges the difference, the exit status and the messages (see :data:`VERDICTS`). The case
catalogue lives in :mod:`mano_pde.benchmarks.hostile_cases`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Case",
    "Outcome",
    "VERDICTS",
    "PROBLEMS",
    "VICTIM",
    "VICTIM_TEXT",
    "FIXTURE_TRAIN",
    "HARNESS_ERROR",
    "build_fixtures",
    "classify",
    "refusal_message",
    "run_case",
    "snapshot",
]

log = logging.getLogger(__name__)

#: The sentinel every case folder holds outside the named outputs: any change to it is a security finding.
VICTIM = "victim.txt"
VICTIM_TEXT = "the user's own file: no mano-pde command may change it\n"

#: Verdicts, worst first: a case gets the first that applies (its other findings are kept in ``flags``).
PROBLEMS = (
    "security",
    "data loss",
    "silent wrong",
    "traceback",
    "timeout",
    "refused valid",
    "unclear message",
    "leftover",
)
#: A case whose setup or run failed inside the harness (a bug of the sweep, not of the command): counted apart.
HARNESS_ERROR = "harness error"
VERDICTS = (*PROBLEMS, "correct result", "clear refusal", "skipped", HARNESS_ERROR)

#: The training command of the fixture run (``fixtures/run``), relative to a case folder: ``data.nc`` there is a
#: copy of the fixture data, so ``FIXTURE_TRAIN + --resume -o run`` resumes the copied run with its own config.
FIXTURE_TRAIN = (
    *("train", "--model", "fno", "--data", "data.nc", "--resolution", "17", "--n-train", "4", "--n-test", "2"),
    *("--epochs", "1", "--batch-size", "2", "--hidden-channels", "4", "--n-modes", "4", "--n-layers", "1"),
    "--no-progress",
)
#: The MANO fixture run (``fixtures/mano``).
FIXTURE_TRAIN_MANO = (
    *("train", "--model", "mano", "--data", "data.nc", "--resolution", "17", "--n-train", "4", "--n-test", "2"),
    *("--epochs", "1", "--batch-size", "2", "--hidden-channels", "8", "--n-heads", "2", "--n-layers", "1"),
    *("--window-size", "4", "--no-progress"),
)

Validator = Callable[[Path, Path, str], "str | None"]


@dataclass(frozen=True)
class Case:
    """One hostile input and what a demanding user expects of it.

    Attributes
    ----------
    id : str
        ``group/what``, e.g. ``generate/lock-symlink``; the group is the command (or ``api``, ``spec``, ``cli``).
    argv : tuple of str
        Arguments of ``mano-pde`` (run in the case folder). Empty for a Python case.
    code : str, optional
        A Python snippet run in the case folder instead of the CLI. An exception whose class (or a base class) is
        named in ``errors`` is a refusal (exit 2, its message on one line); any other one is a traceback.
    expect : {"refuse", "succeed", "either"}
        ``refuse``: exit 2 with one clear line on stderr; ``succeed``: exit 0 (and ``validate`` passes);
        ``either``: one of the two, whichever the package chooses, as long as it is clean.
    outputs : tuple of str
        The outputs the user named (paths relative to the case folder). Everything else must stay as it was;
        the lock file, ``.parts`` folder and temporaries beside an output may exist while the command runs.
    needs : tuple of str
        Fixtures copied into the case folder (names of :data:`FIXTURES`).
    setup : callable, optional
        ``setup(case_dir)`` prepares the hostile state; it returns a reason to skip the case, or None.
    validate : callable, optional
        ``validate(case_dir, fixtures_dir, stdout)`` for a command that exited 0: a description of what is wrong
        with the output, or None.
    mentions : tuple of str
        Words a refusal's message must contain (case-insensitive): it names the problem the case is about.
    errors : tuple of str
        Exception class names that count as a refusal of a Python case.
    hold_lock : tuple of (str, str), optional
        ``(output, command)``: the harness holds that output's lock while the case runs (another writer).
    timeout : float, optional
        Per-case timeout (default: the sweep's).
    note : str
        Why the case exists (e.g. the issue 21 item it reproduces) or why its expectation was chosen.
    """

    id: str
    argv: tuple[str, ...] = ()
    code: str | None = None
    expect: str = "refuse"
    outputs: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    setup: Callable[[Path], str | None] | None = None
    validate: Validator | None = None
    mentions: tuple[str, ...] = ()
    errors: tuple[str, ...] = ("UserInputError", "FileNotFoundError", "FileExistsError")
    hold_lock: tuple[str, str] | None = None
    timeout: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.expect not in ("refuse", "succeed", "either"):
            raise ValueError(f"{self.id}: expect must be refuse, succeed or either, got {self.expect!r}")
        if bool(self.argv) == (self.code is not None):
            raise ValueError(f"{self.id}: give argv or code, not both")

    @property
    def group(self) -> str:
        return self.id.split("/", 1)[0]

    def command_line(self) -> list[str]:
        """The subprocess's argument list."""
        if self.code is None:
            return [sys.executable, "-m", "mano_pde.cli", *self.argv]
        return [sys.executable, "-c", _API_WRAPPER.format(allowed=tuple(self.errors), code=self.code)]


#: Runs a Python case: the listed exception classes are refusals (exit 2, one line), anything else propagates.
_API_WRAPPER = """\
import sys
ALLOWED = {allowed!r}
try:
    exec(compile({code!r}, "<case>", "exec"), {{"__name__": "__case__"}})
except Exception as exc:
    if any(c.__name__ in ALLOWED for c in type(exc).__mro__):
        print(type(exc).__name__ + ": " + " ".join(str(exc).split()), file=sys.stderr)
        sys.exit(2)
    raise
"""


@dataclass
class Outcome:
    """What a case did: exit status, output streams, the folder before and after, the validator's finding."""

    rc: int | None
    stdout: str = ""
    stderr: str = ""
    before: dict[str, tuple] = field(default_factory=dict)
    after: dict[str, tuple] = field(default_factory=dict)
    timed_out: bool = False
    invalid: str | None = None  # the validator's finding (exit 0 only)
    wall_s: float = 0.0


# ------------------------------------------------------------------------------------------ snapshots
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): relative path -> ``("file", sha256)``, ``("link",
    target)``, ``("dir",)`` or ``("special", mode)`` (FIFOs and the like are never opened)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                try:
                    out[rel] = ("file", _sha256(path))
                except OSError as exc:  # unreadable: still an entry whose change we see
                    out[rel] = ("file", f"unreadable {exc.errno}")
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode))
    return out


# ------------------------------------------------------------------------------------------ classification
_TEMP = re.compile(r"^\..+\.\d+\.tmp$")
_LOG_LINE = re.compile(r"^(INFO|DEBUG) [\w.]+: ")


def _is_temporary(rel: str) -> bool:
    """A lock file, ``.parts`` folder (or anything in one) or ``.NAME.PID.tmp`` temporary (or anything in one)."""
    parts = rel.split("/")
    return any(p.endswith((".lock", ".parts")) or _TEMP.match(p) for p in parts)


def _zone(rel: str, outputs: tuple[str, ...]) -> str:
    """``output`` (a named output or inside one), ``beside`` (its lock, ``.parts`` or temporaries) or ``outside``."""
    for out in outputs:
        out = out.rstrip("/")
        if rel == out or rel.startswith(out + "/"):
            return "output"
        folder, _, base = out.rpartition("/")
        prefix = folder + "/" if folder else ""
        if not rel.startswith(prefix):
            continue
        first = rel[len(prefix) :].split("/", 1)[0]
        if first in (base + ".lock", base + ".parts") or re.match(rf"^\.{re.escape(base)}(\.parts)?\.\d+\.tmp$", first):
            return "beside"
    return "outside"


def refusal_message(stderr: str) -> tuple[str | None, str]:
    """The one line of a refusal and what is unclear about it (``""`` when it is clear).

    Ignored: log records at INFO/DEBUG level (``INFO mano_pde.x: ...``, the CLI's default verbosity) and
    argparse's usage block before its error line. What remains must be exactly one non-empty line; its message
    (after ``mano-pde CMD: error:`` or ``ExceptionName:``) must be at least 20 characters and more than a bare
    exception repr such as ``KeyError: 'x'``.
    """
    lines = [line for line in stderr.splitlines() if line.strip() and not _LOG_LINE.match(line)]
    if lines and lines[0].startswith("usage:"):
        lines = lines[1:]
        while lines and lines[0].startswith(" "):
            lines = lines[1:]
    if len(lines) != 1:
        return (lines[-1] if lines else None), f"stderr holds {len(lines)} lines, not one"
    line = lines[0].strip()
    message = line.split(": error: ", 1)[1] if ": error: " in line else line.split(": ", 1)[-1]
    if len(message) < 20:
        return line, f"the message {message!r} is too short to name the problem"
    if re.fullmatch(r"(\w+(Error|Exception)?: )?'?[^\s']*'?", message) or re.fullmatch(r"'[^']*'", message):
        return line, f"the message {message!r} is a bare exception repr"
    return line, ""


def classify(case: Case, outcome: Outcome) -> tuple[str, list[str], dict[str, Any]]:
    """Judge one outcome strictly: ``(verdict, flags, details)``.

    ``flags`` lists every problem found (:data:`PROBLEMS`), the verdict is the worst of them, else ``correct
    result`` (exit 0) or ``clear refusal`` (exit 2). The rules:

    security
        an entry outside the named outputs (and their lock, ``.parts`` and temporaries) was created, changed or
        deleted — the victim file included;
    data loss
        the command failed and an entry that existed before (not a lock or temporary) changed or vanished;
    silent wrong
        exit 0 where the case expects a refusal, or the validator found the output wrong;
    traceback
        ``Traceback`` on stderr, or an exit status other than 0 and 2;
    timeout
        still running at the case's timeout (killed);
    refused valid
        exit 2 where the case expects success;
    unclear message
        exit 2 but not one line, a message under 20 characters, a bare exception repr, or a message that does not
        mention the case's words;
    leftover
        the command failed and new entries remain in or beside its outputs, or it succeeded and locks,
        ``.parts`` or temporaries remain (not judged after a timeout: the kill may leave resumable state).
    """
    before, after, rc = outcome.before, outcome.after, outcome.rc
    created = sorted(set(after) - set(before))
    deleted = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    flags: list[str] = []
    details: dict[str, Any] = {}
    outside = [p for p in (*created, *changed, *deleted) if _zone(p, case.outputs) == "outside"]
    if outside:
        flags.append("security")
        details["outside"] = outside[:20]
    ok = rc == 0 and not outcome.timed_out
    if not ok:
        lost = [
            p
            for p in (*changed, *deleted)
            if _zone(p, case.outputs) != "outside" and not _is_temporary(p) and before[p][0] != "dir"
        ]
        if lost:
            flags.append("data loss")
            details["lost"] = lost[:20]
    if ok and case.expect == "refuse":
        flags.append("silent wrong")
        details["why"] = "exit 0, but this input must be refused"
    elif ok and outcome.invalid:
        flags.append("silent wrong")
        details["why"] = outcome.invalid
    if "Traceback" in outcome.stderr or (rc not in (0, 2) and not outcome.timed_out):
        flags.append("traceback")
    if outcome.timed_out:
        flags.append("timeout")
    if rc == 2 and not outcome.timed_out:
        if case.expect == "succeed":
            flags.append("refused valid")
        line, unclear = refusal_message(outcome.stderr)
        missing = [w for w in case.mentions if line is None or w.lower() not in line.lower()]
        if missing and not unclear:
            unclear = f"the message does not mention {missing}"
        if unclear:
            flags.append("unclear message")
            details["unclear"] = unclear
    new = [p for p in created if _zone(p, case.outputs) != "outside"]
    left = [p for p in new if _is_temporary(p)] if ok else [] if outcome.timed_out else new  # a kill may leave state
    if left:
        flags.append("leftover")
        details["left"] = left[:20]
    flags = [p for p in PROBLEMS if p in flags]
    if flags:
        return flags[0], flags, details
    return ("correct result" if ok else "clear refusal"), flags, details


# ------------------------------------------------------------------------------------------ fixtures
def _cli(cwd: Path, *argv: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mano_pde.cli", *argv], cwd=cwd, env=child_env(), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fixture command mano-pde {' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")


def _fixture_data(fx: Path) -> None:
    _cli(fx, "generate", "--n-samples", "6", "--resolution", "17", "--seed", "1", "--no-progress", "-o", "data.nc")


def _fixture_other(fx: Path) -> None:
    _cli(fx, "generate", "--n-samples", "6", "--resolution", "17", "--seed", "2", "--no-progress", "-o", "other.nc")


def _fixture_run(fx: Path) -> None:
    _cli(fx, *FIXTURE_TRAIN, "-o", "run")


def _fixture_mano(fx: Path) -> None:
    _cli(fx, *FIXTURE_TRAIN_MANO, "-o", "mano")


def _fixture_results(fx: Path) -> None:
    _cli(fx, "evaluate", "run", "--data", "data.nc", "--resolutions", "9", "17", "--no-plots", "-o", "results")


def _arrays(path: Path) -> tuple[Any, Any]:
    import netCDF4
    import numpy as np

    with netCDF4.Dataset(path) as ds:
        return np.asarray(ds["a"][:]), np.asarray(ds["u"][:])


def _fixture_mat(fx: Path) -> None:
    import scipy.io

    a, u = _arrays(fx / "data.nc")
    scipy.io.savemat(fx / "src.mat", {"coeff": a, "sol": u})


def _fixture_mask(fx: Path) -> None:
    import torch

    a, u = _arrays(fx / "data.nc")
    torch.save({"x": torch.from_numpy(a > a.mean()), "y": torch.from_numpy(u)}, fx / "mask.pt")


#: name -> (builder, fixtures it needs first). Built once per sweep, in ``WORK/fixtures``, with relative paths.
FIXTURES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "data.nc": (_fixture_data, ()),
    "other.nc": (_fixture_other, ()),
    "run": (_fixture_run, ("data.nc",)),
    "mano": (_fixture_mano, ("data.nc",)),
    "results": (_fixture_results, ("run", "data.nc")),
    "src.mat": (_fixture_mat, ("data.nc",)),
    "mask.pt": (_fixture_mask, ("data.nc",)),
}


def build_fixtures(folder: Path, names: set[str]) -> None:
    """Build the fixtures ``names`` (and what they need) in ``folder`` unless they are there already."""
    folder.mkdir(parents=True, exist_ok=True)

    def build(name: str) -> None:
        builder, deps = FIXTURES[name]
        for dep in deps:
            build(dep)
        if not (folder / name).exists():
            t0 = time.perf_counter()
            builder(folder)
            log.info("fixture %s built in %.1f s", name, time.perf_counter() - t0)

    for name in sorted(names):
        build(name)


def child_env() -> dict[str, str]:
    """The environment of a case: this ``mano_pde`` first on ``PYTHONPATH``, a non-interactive plot backend."""
    import mano_pde

    root = str(Path(mano_pde.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["MPLBACKEND"] = "Agg"
    return env


# ------------------------------------------------------------------------------------------ one case
def _prepare(case: Case, case_dir: Path, fixtures: Path) -> str | None:
    if case_dir.exists():
        remove_tree(case_dir)
    case_dir.mkdir(parents=True)
    for name in case.needs:
        src = fixtures / name
        if src.is_dir():
            shutil.copytree(src, case_dir / name, symlinks=True)
        else:
            shutil.copy2(src, case_dir / name)
    (case_dir / VICTIM).write_text(VICTIM_TEXT)
    return case.setup(case_dir) if case.setup is not None else None


def _run(argv: list[str], cwd: Path, timeout: float) -> tuple[int | None, str, str, bool]:
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err, False
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the case's own session: its workers too
        out, err = proc.communicate()
        return proc.returncode, out, err, True


def run_case(case: Case, case_dir: Path, fixtures: Path, timeout: float = 120.0) -> dict[str, Any]:
    """Prepare the case folder, run the case, classify it; returns the case's record (JSON-able)."""
    record: dict[str, Any] = {"id": case.id, "group": case.group, "expect": case.expect, "note": case.note}
    record["argv"] = ["mano-pde", *case.argv] if case.code is None else ["python", "-c", case.code]
    try:
        skip = _prepare(case, case_dir, fixtures)
    except Exception as exc:  # noqa: BLE001 - one broken setup must not end the sweep
        log.exception("%s: the setup failed", case.id)
        error = f"the setup failed: {type(exc).__name__}: {exc}"
        record.update(verdict=HARNESS_ERROR, flags=[], details={"error": error}, rc=None, wall_s=0.0, last_stderr="")
        return record
    if skip:
        record.update(verdict="skipped", flags=[], details={"skipped": skip}, rc=None, wall_s=0.0, last_stderr="")
        return record
    with contextlib.ExitStack() as stack:
        if case.hold_lock is not None:
            from mano_pde.data._output import output_lock

            path, command = case.hold_lock
            stack.enter_context(output_lock(Path(os.path.abspath(case_dir / path)), command))
        before = snapshot(case_dir)
        t0 = time.perf_counter()
        rc, out, err, timed_out = _run(case.command_line(), case_dir, case.timeout or timeout)
        wall = time.perf_counter() - t0
        after = snapshot(case_dir)
    outcome = Outcome(rc, out, err, before, after, timed_out, None, wall)
    if rc == 0 and not timed_out:
        outcome.invalid = _validate(case, case_dir, fixtures, out)
    verdict, flags, details = classify(case, outcome)
    lines = [line for line in err.splitlines() if line.strip()]
    record.update(
        verdict=verdict,
        flags=flags,
        details=details,
        rc=rc,
        wall_s=round(wall, 2),
        last_stderr=lines[-1] if lines else "",
        stderr_tail=lines[-12:],
    )
    return record


def _validate(case: Case, case_dir: Path, fixtures: Path, stdout: str) -> str | None:
    """The case's validator, after the generic check of every successful command: no NaN or inf printed."""
    if re.search(r"(?<![\w.])[-+]?(nan|inf)(?![\w.])", stdout, re.I):
        return "the printed output holds nan or inf"
    if case.validate is None:
        return None
    try:
        return case.validate(case_dir, fixtures, stdout)
    except Exception as exc:  # noqa: BLE001 - an output the validator cannot read is a wrong output
        return f"the output cannot be checked: {type(exc).__name__}: {exc}"


def remove_tree(path: Path) -> None:
    """``shutil.rmtree`` that first makes read-only folders (a case's setup) writable again."""

    def fix(func, p, exc_info) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o755)
            os.chmod(p, 0o755)
        with contextlib.suppress(OSError):
            func(p)

    shutil.rmtree(path, onerror=fix)


def to_json(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, indent=2) + "\n"
