"""``mano-pde benchmark hostile-inputs``: the classifier judges known outcomes right, and real cases run through
the harness (a planted lock link, a valid generate, a missing file, and Python cases that misbehave on purpose).

Independent of the catalogue's size: only a handful of cases run.
"""

from __future__ import annotations

import json

import pytest

from mano_pde.benchmarks.hostile_cases import catalogue
from mano_pde.benchmarks.hostile_harness import FIXTURES, VICTIM, Case, Outcome, classify, refusal_message
from mano_pde.benchmarks.hostile_inputs import hostile_sweep, markdown, select_cases
from mano_pde.cli import main

REFUSE = Case("test/refuse", ("generate",), outputs=("out.nc",))
SUCCEED = Case("test/succeed", ("generate",), expect="succeed", outputs=("out.nc",))
CLEAR = "mano-pde generate: error: the lock file out.nc.lock is a symbolic link; remove it and rerun\n"
VICTIM_BEFORE = {VICTIM: ("file", "aaa")}


def _verdict(case: Case, rc: int, before: dict, after: dict, stderr: str = CLEAR, **kw) -> tuple[str, list[str]]:
    verdict, flags, _ = classify(case, Outcome(rc, "", stderr, before, after, **kw))
    return verdict, flags


# ------------------------------------------------------------------------------------------ the classifier
def test_a_changed_victim_or_a_file_outside_the_output_is_security():
    assert _verdict(REFUSE, 2, VICTIM_BEFORE, {VICTIM: ("file", "bbb")})[0] == "security"
    after = {**VICTIM_BEFORE, "elsewhere": ("dir",), "elsewhere/x": ("file", "c")}
    assert _verdict(SUCCEED, 0, VICTIM_BEFORE, {**after, "out.nc": ("file", "d")})[0] == "security"
    assert _verdict(REFUSE, 2, {**VICTIM_BEFORE, "link": ("link", VICTIM)}, VICTIM_BEFORE)[0] == "security"
    # the output itself, its lock, .parts and temporaries beside it are not outside
    inside = {**VICTIM_BEFORE, "out.nc": ("file", "d")}
    assert _verdict(SUCCEED, 0, VICTIM_BEFORE, inside) == ("correct result", [])


def test_what_a_failed_command_leaves_is_a_leftover_and_what_it_changes_is_data_loss():
    for left in ("out.nc.lock", ".out.nc.4242.tmp", "out.nc.parts", "out.nc"):
        assert _verdict(REFUSE, 2, VICTIM_BEFORE, {**VICTIM_BEFORE, left: ("file", "x")}) == ("leftover", ["leftover"])
    before = {**VICTIM_BEFORE, "out.nc": ("file", "good")}
    assert _verdict(REFUSE, 2, before, {**VICTIM_BEFORE, "out.nc": ("file", "inf")})[0] == "data loss"
    assert _verdict(REFUSE, 2, before, VICTIM_BEFORE)[0] == "data loss"
    # a success may create its output, not leave its lock or temporaries
    done = {**VICTIM_BEFORE, "out.nc": ("file", "new")}
    assert _verdict(SUCCEED, 0, VICTIM_BEFORE, {**done, "out.nc.lock": ("file", "")})[0] == "leftover"
    assert _verdict(SUCCEED, 0, VICTIM_BEFORE, {**done, "out.nc.parts": ("dir",)})[0] == "leftover"


def test_exit_0_on_an_expected_refusal_or_a_failed_validator_is_silent_wrong():
    assert _verdict(REFUSE, 0, VICTIM_BEFORE, VICTIM_BEFORE, stderr="") == ("silent wrong", ["silent wrong"])
    assert _verdict(SUCCEED, 0, VICTIM_BEFORE, VICTIM_BEFORE, invalid="holds NaN")[0] == "silent wrong"
    either = Case("test/either", ("generate",), expect="either")
    assert _verdict(either, 0, VICTIM_BEFORE, VICTIM_BEFORE)[0] == "correct result"
    assert _verdict(either, 2, VICTIM_BEFORE, VICTIM_BEFORE)[0] == "clear refusal"


def test_tracebacks_timeouts_and_unclear_or_wrong_refusals():
    trace = "Traceback (most recent call last):\n  File x\nZeroDivisionError: division by zero\n"
    assert _verdict(REFUSE, 1, VICTIM_BEFORE, VICTIM_BEFORE, stderr=trace)[0] == "traceback"
    assert _verdict(REFUSE, -9, VICTIM_BEFORE, VICTIM_BEFORE, stderr="")[0] == "traceback"
    assert _verdict(REFUSE, -9, VICTIM_BEFORE, VICTIM_BEFORE, stderr="", timed_out=True)[0] == "timeout"
    assert _verdict(SUCCEED, 2, VICTIM_BEFORE, VICTIM_BEFORE)[0] == "refused valid"
    for stderr in ("mano-pde info: error: KeyError: 'x'\n", "mano-pde info: error: 'x'\n", CLEAR + CLEAR, ""):
        assert _verdict(REFUSE, 2, VICTIM_BEFORE, VICTIM_BEFORE, stderr=stderr)[0] == "unclear message", stderr
    named = Case("test/named", ("generate",), mentions=("hard link",))
    assert _verdict(named, 2, VICTIM_BEFORE, VICTIM_BEFORE)[0] == "unclear message"
    # argparse's usage block and the CLI's INFO log records are not extra lines
    usage = "usage: mano-pde generate [-h]\n   [--seed SEED]\nmano-pde generate: error: argument --seed: invalid int\n"
    assert refusal_message(usage)[1] == ""
    assert refusal_message("INFO mano_pde.data.generate: solved 3 samples\n" + CLEAR)[1] == ""
    assert refusal_message("WARNING mano_pde.x: something\n" + CLEAR)[1] == "stderr holds 2 lines, not one"


# ------------------------------------------------------------------------------------------ the harness, for real
def test_real_cases_through_the_harness(tmp_path):
    chosen = [c for c in catalogue() if c.id in ("generate/i21-lock-symlink", "generate/valid", "info/missing")]
    misbehaving = [
        Case("test/writes-the-victim", code=f"open({VICTIM!r}, 'w').write('x')", expect="succeed"),
        Case(
            "test/leaves-a-temporary",
            code="open('.out.nc.1.tmp', 'w')\nraise FileExistsError('out.nc already exists: choose another output')",
            outputs=("out.nc",),
        ),  # fmt: skip
        Case("test/raw-traceback", code="raise RuntimeError('boom')"),
        Case("test/accepts-nonsense", code="pass"),
        Case("test/bare-key-error", code="from mano_pde.errors import UserInputError\nraise UserInputError('x')"),
    ]
    result = hostile_sweep([*chosen, *misbehaving], tmp_path / "work", timeout=60)
    got = {r["id"]: r["verdict"] for r in result["cases"]}
    assert got == {
        "generate/i21-lock-symlink": "clear refusal",
        "generate/valid": "correct result",
        "info/missing": "clear refusal",
        "test/writes-the-victim": "security",
        "test/leaves-a-temporary": "leftover",
        "test/raw-traceback": "traceback",
        "test/accepts-nonsense": "silent wrong",
        "test/bare-key-error": "unclear message",
    }, result["markdown"]
    lock = next(r for r in result["cases"] if r["id"] == "generate/i21-lock-symlink")
    assert "is a symbolic link" in lock["last_stderr"]
    case_dir = tmp_path / "work" / "cases" / "generate__i21-lock-symlink"
    assert (case_dir / VICTIM).read_text().startswith("the user's own file") and (case_dir / "out.nc.lock").is_symlink()
    assert result["totals"]["security"] == 1 and result["totals"]["cases"] == 8
    table = markdown(result["cases"], result["totals"])
    assert "| generate | 2 | 1 | 1 | 0 |" in table and "`test/raw-traceback` **traceback**" in table


def test_the_command_lists_and_filters_cases(tmp_path, capsys):
    assert main(["benchmark", "hostile-inputs", "--list", "--only", "lock-symlink"]) == 0
    ids = [line.split("\t")[0] for line in capsys.readouterr().out.split("\n") if line]
    assert "generate/i21-lock-symlink" in ids and all("lock-symlink" in i for i in ids)
    assert main(["benchmark", "hostile-inputs", "--only", "no-such-case"]) == 2
    assert "selects no case" in capsys.readouterr().err
    out = tmp_path / "cases.json"
    assert main(["benchmark", "hostile-inputs", "--only", "info/missing", "--json", str(out)]) == 0
    assert [r["verdict"] for r in json.loads(out.read_text())] == ["clear refusal"]


def test_the_catalogue_is_well_formed():
    cases = catalogue()
    assert len({c.id for c in cases}) == len(cases)
    assert {n for c in cases for n in c.needs} <= set(FIXTURES)
    assert all(c.expect in ("refuse", "succeed", "either") and "/" in c.id for c in cases)
    assert select_cases("i21-lock-symlink")  # issue 21's first item is in it
    with pytest.raises(ValueError, match="give argv or code"):
        Case("x/y")
