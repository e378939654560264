"""``mano-pde benchmark hostile-inputs``: the hostile-input sweep of issue 21 as one reproducible command.

Every case (:mod:`mano_pde.benchmarks.hostile_cases`: about 640 of them) runs a real ``mano-pde`` command, or a
small Python snippet of the API, in a subprocess, in a fresh folder holding copies of the fixtures it needs (a
17² data file of seed 1 and one of seed 2, a one-epoch FNO run and MANO run, a finished evaluation, import
sources; built once per sweep) and a sentinel ``victim.txt``. The folder is snapshot before and after, and each
case is judged strictly and automatically (:func:`mano_pde.benchmarks.hostile_harness.classify`):

``security``        something outside the output(s) the user named was created, changed or deleted;
``data loss``       a failed command changed or removed a file that existed before;
``silent wrong``    exit 0 for an input that must be refused, or an output that fails its check (NaN, labels);
``traceback``       a Python traceback, or an exit status other than 0 and 2;
``timeout``         still running at the per-case timeout;
``refused valid``   a valid input refused;
``unclear message`` a refusal that is not one line naming the problem;
``leftover``        a failed command left new files, or a successful one left locks, ``.parts`` or temporaries;

else ``correct result`` or ``clear refusal``. A case that cannot run here (a read-only folder when running as
root) is ``skipped`` with its reason; a case whose setup failed is a ``harness error`` (a bug of the sweep). The
report is a markdown table per command group and a list of every case that is neither a correct result nor a clear
refusal (id, command, last line of stderr). A healthy package shows zeros in every problem column. Most cases are
refused before any work: a case costs about one start of Python (and torch, 2-5 s); the cases that accept a huge
count (``--epochs``, ``--n-samples``) run until their 60 s timeout.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mano_pde.errors import UserInputError

from .hostile_cases import catalogue
from .hostile_harness import HARNESS_ERROR, PROBLEMS, VERDICTS, Case, build_fixtures, remove_tree, run_case, to_json

__all__ = ["add_arguments", "run", "hostile_sweep", "select_cases"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir", help="keep the fixtures and case folders here (default: a temporary folder, removed)"
    )
    parser.add_argument("--json", metavar="FILE", help="write every case (command, verdict, findings) as JSON")
    parser.add_argument("--only", metavar="SUBSTRING", help="run only the cases whose id contains SUBSTRING")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case (default 120)")
    parser.add_argument("--list", action="store_true", help="print the case ids and exit")


def run(args: argparse.Namespace) -> int:
    cases = select_cases(args.only)
    if args.list:
        print("\n".join(f"{c.id}\t{c.expect}" for c in cases))
        return 0
    if not args.timeout > 0 or args.timeout == float("inf"):
        raise UserInputError(f"--timeout must be a finite number of seconds > 0, got {args.timeout}")
    if args.workdir and Path(args.workdir).exists() and not Path(args.workdir).is_dir():
        raise UserInputError(f"--workdir {args.workdir} is a file; give a folder")
    result = hostile_sweep(cases, args.workdir, args.timeout)
    print(result["markdown"])
    if args.json:
        from mano_pde.files import atomic_write_text

        atomic_write_text(Path(args.json), to_json(result["cases"]))
    return 1 if any(result["totals"][p] for p in (*PROBLEMS, HARNESS_ERROR)) else 0


def select_cases(only: str | None = None) -> list[Case]:
    """The catalogue, narrowed to the ids containing ``only``; refuses a filter that selects nothing."""
    cases = catalogue()
    if only:
        cases = [c for c in cases if only in c.id]
        if not cases:
            raise UserInputError(f"--only {only!r} selects no case; see --list for the ids")
    return cases


def _folder_name(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", case_id.replace("/", "__"))


def hostile_sweep(cases: list[Case], workdir: str | Path | None = None, timeout: float = 120.0) -> dict[str, Any]:
    """Run ``cases`` (see the module docstring); returns ``{"cases", "totals", "markdown"}``.

    Parameters
    ----------
    cases : list of Case
        From :func:`select_cases`.
    workdir : path-like, optional
        Where the fixtures (``fixtures/``) and case folders (``cases/<id>/``) are kept; default a temporary
        folder, removed at the end.
    timeout : float
        Seconds per case (cases may set their own).
    """
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mano-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        fixtures = work / "fixtures"
        build_fixtures(fixtures, {n for c in cases for n in c.needs})
        for k, case in enumerate(cases):
            case_dir = work / "cases" / _folder_name(case.id)
            record = run_case(case, case_dir, fixtures, timeout)
            records.append(record)
            log.info("%d/%d %s: %s (%.1f s) %s", k + 1, len(cases), case.id, record["verdict"], record["wall_s"],
                     record["details"] or "")  # fmt: skip
            if not workdir:
                remove_tree(case_dir)
    finally:
        if not workdir:
            shutil.rmtree(work, ignore_errors=True)
    totals = {v: sum(r["verdict"] == v for r in records) for v in VERDICTS}
    totals["cases"] = len(records)
    totals["wall_s"] = round(time.perf_counter() - t0, 1)
    return {"cases": records, "totals": totals, "markdown": markdown(records, totals)}


_COLUMNS = ("correct result", "clear refusal", *PROBLEMS, "skipped", HARNESS_ERROR)


def markdown(records: list[dict[str, Any]], totals: dict[str, Any]) -> str:
    """The report: one row per command group (each case counted once, by its verdict), then every problem case."""
    lines = [
        f"hostile-input sweep: {totals['cases']} cases in {totals['wall_s']} s; each case counted once, by its worst "
        "finding (security > data loss > silent wrong > traceback > timeout > refused valid > unclear message > "
        "leftover)",
        "",
        "| group | cases | " + " | ".join(_COLUMNS) + " |",
        "|---" * (len(_COLUMNS) + 2) + "|",
    ]
    for group in dict.fromkeys(r["group"] for r in records):
        rs = [r for r in records if r["group"] == group]
        lines.append(
            f"| {group} | {len(rs)} | " + " | ".join(str(sum(r["verdict"] == c for r in rs)) for c in _COLUMNS) + " |"
        )
    lines.append(f"| **all** | {totals['cases']} | " + " | ".join(str(totals[c]) for c in _COLUMNS) + " |")
    bad = [r for r in records if r["verdict"] in (*PROBLEMS, HARNESS_ERROR)]
    if bad:
        lines += ["", "Cases that are neither a correct result nor a clear refusal:", ""]
    for r in bad:
        argv = (
            " ".join(r["argv"]) if r["argv"][:1] != ["python"] else "python -c <" + r["argv"][2].splitlines()[-1] + ">"
        )
        lines.append(
            f"- `{r['id']}` **{r['verdict']}** ({', '.join(r['flags'])}; exit {r['rc']}, expected {r['expect']}): "
            f"`{argv}` — {r['last_stderr'][:300]!r} {r['details'] or ''}"
        )
    skipped = [r for r in records if r["verdict"] == "skipped"]
    if skipped:
        lines += ["", f"Skipped: {', '.join(r['id'] for r in skipped)} ({skipped[0]['details']['skipped']})"]
    return "\n".join(lines)
