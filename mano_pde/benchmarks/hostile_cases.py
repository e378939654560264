"""The catalogue of ``mano-pde benchmark hostile-inputs``: every hostile input the sweep tries, and its expectation.

:func:`catalogue` returns the cases (:class:`~mano_pde.benchmarks.hostile_harness.Case`) in groups:

1. one case per item of issue 21 (planted links, escaping spec paths, ``--overwrite`` with values float32 cannot
   hold, non-finite hyperparameters, NaN weights, replaced data on ``--resume``, 2×2 grids, hand-edited and damaged
   run files, damaged netCDF chunks, pickled shards, a malformed scheduler address, ``create_model`` and
   ``Run.predict`` inputs, the solvers' maps), reproducing the issue's own commands where it gives them;
2. a grid over every numeric option of ``generate``, ``train``, ``evaluate``, ``import``, ``info`` and
   ``benchmark darcy``: ``nan``, ``inf``, ``-inf``, ``-1``, ``0``, a huge value (``1e300``, or ``2**70`` for ints)
   and a non-number, each given as ``--option=VALUE`` so that argparse passes ``-inf`` on as a value;
3. every path option: missing, a folder where a file is expected, a trailing slash, an existing output, a symbolic
   link to the victim file, an output in a missing folder, a file as the output's folder;
4. damaged data files (truncated, empty, random bytes, wrong variables, NaN/inf, ``a <= 0``, 2×2 grid, attributes
   that lie, unknown schema, no samples, a damaged compressed chunk, an unfinished file) for every reader;
5. damaged run files for ``evaluate`` (refused) and ``train --resume`` (restored from the verified state);
6. experiment specs for ``benchmark darcy --spec`` (tiny: 4 samples at 9², one epoch; the cases that must be
   refused are refused before any training);
7. the Python API: ``create_model``, ``Run.predict``, ``DarcyConfig``/``TrainConfig`` types, the solvers.

Expectations are what a demanding user would expect: a valid but unusual input succeeds, nonsense is refused.
Where the choice is debatable the case says so in its ``note`` (and ``either`` accepts both a clear refusal and a
correct result).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .hostile_harness import FIXTURE_TRAIN, FIXTURE_TRAIN_MANO, VICTIM, Case

__all__ = ["catalogue"]

Setup = Callable[[Path], "str | None"]

GEN = ("generate", "--n-samples", "3", "--resolution", "9", "--seed", "1", "--no-progress")
TRAIN = FIXTURE_TRAIN
EVAL = ("evaluate", "run", "--data", "data.nc", "--resolutions", "9", "17", "--no-plots")
IMPORT = ("import", "src.mat", "--no-progress")
SPEC = ("benchmark", "darcy", "--spec", "spec.toml", "--no-progress")
HUGE_INT = str(2**70)
HUGE_FLOAT = "1e300"
ISSUE = "issue 21: "


# ------------------------------------------------------------------------------------------ setups
def _chain(*setups: Setup) -> Setup:
    def setup(d: Path) -> str | None:
        for s in setups:
            reason = s(d)
            if reason:
                return reason
        return None

    return setup


def _link(name: str, target: str) -> Setup:
    """Plant a symbolic link ``name -> target`` (relative to the case folder)."""

    def setup(d: Path) -> None:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).symlink_to(target)

    return setup


def _write(name: str, content: bytes | str) -> Setup:
    def setup(d: Path) -> None:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        (d / name).write_bytes(data)

    return setup


def _folder(name: str, *files: str) -> Setup:
    """A folder holding the user's files (``files``, each with known content)."""

    def setup(d: Path) -> None:
        (d / name).mkdir(parents=True, exist_ok=True)
        for f in files:
            (d / name / f).write_text(f"the user's {f}\n")

    return setup


def _copy(src: str, dst: str) -> Setup:
    def setup(d: Path) -> None:
        (d / dst).write_bytes((d / src).read_bytes())

    return setup


def _hard_link(name: str, target: str) -> Setup:
    def setup(d: Path) -> None:
        os.link(d / target, d / name)

    return setup


def _fifo(name: str) -> Setup:
    def setup(d: Path) -> None:
        os.mkfifo(d / name)

    return setup


def _read_only(name: str) -> Setup:
    """A read-only folder; skipped where chmod does not stop writes (root)."""

    def setup(d: Path) -> str | None:
        (d / name).mkdir()
        os.chmod(d / name, 0o555)
        if os.access(d / name, os.W_OK):
            return "running as root (or with CAP_DAC_OVERRIDE): a read-only folder does not stop writes here"
        return None

    return setup


def _damage(name: str, how: str) -> Setup:
    """Damage a file: truncated, empty, random bytes, one digit changed, or replaced by ``how`` itself."""

    def setup(d: Path) -> None:
        import numpy as np

        path = d / name
        data = path.read_bytes()
        if how == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "random":
            path.write_bytes(np.random.default_rng(7).bytes(max(len(data), 4096)))
        elif how == "digit":
            text = data.decode()
            i = next(i for i, c in enumerate(text) if c in "123456789" and i > len(text) // 3)
            path.write_text(text[:i] + str(int(text[i]) % 9 + 1) + text[i + 1 :])
        elif how == "drop-row":
            lines = data.decode().splitlines(keepends=True)
            path.write_text("".join(lines[:1] + lines[2:]) if len(lines) > 2 else lines[0])
        elif how == "bad-cell":
            lines = data.decode().splitlines(keepends=True)
            cells = lines[-1].split(",")
            cells[1] = "abc"
            path.write_text("".join(lines[:-1]) + ",".join(cells))
        else:
            path.write_text(how)

    return setup


def _edit_json(name: str, change: Callable[[Any], Any]) -> Setup:
    def setup(d: Path) -> None:
        record = json.loads((d / name).read_text())
        record = change(record) or record
        (d / name).write_text(json.dumps(record))

    return setup


def _remove(*names: str) -> Setup:
    def setup(d: Path) -> None:
        for n in names:
            (d / n).unlink()

    return setup


def _nan_weights(run: str) -> Setup:
    """A consistent run (digests recorded again) whose weights hold one NaN."""

    def setup(d: Path) -> None:
        import torch

        from mano_pde.models import load_model, save_model
        from mano_pde.training.manifest import read_manifest, write_manifest

        folder = d / run
        model = load_model(folder)
        state = model.state_dict()
        name = next(k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point())
        with torch.no_grad():
            state[name].view(-1)[0] = float("nan")
        save_model(model, folder, record={"train_resolutions": [17]})
        manifest = read_manifest(folder)
        write_manifest(folder, manifest.epoch, manifest.data)

    return setup


# --- data files: variants of the fixture data.nc
def _variant(dst: str, change: Callable[[Any], Any], src: str = "data.nc") -> Setup:
    def setup(d: Path) -> None:
        import xarray as xr

        with xr.open_dataset(d / src) as ds:
            ds = ds.load()
        ds = change(ds) or ds
        for v in ds.variables.values():
            v.encoding = {}
        ds.to_netcdf(d / dst, engine="netcdf4")

    return setup


def _set_value(var: str, index: Any, value: float) -> Callable[[Any], None]:
    def change(ds: Any) -> None:
        ds[var].values[index] = value

    return change


def _set_attr(key: str, value: Any) -> Callable[[Any], None]:
    def change(ds: Any) -> None:
        ds.attrs[key] = value

    return change


def _drop_attr(key: str) -> Callable[[Any], None]:
    def change(ds: Any) -> None:
        del ds.attrs[key]

    return change


def _renamed(ds: Any) -> Any:
    return ds.rename({"a": "k", "u": "p"})


def _no_samples(ds: Any) -> Any:
    return ds.isel(sample=slice(0, 0))


def _grid_2x2(dst: str) -> Setup:
    def setup(d: Path) -> None:
        import numpy as np
        import xarray as xr

        from mano_pde.data.schema import COMPLETE_ATTR, SCHEMA

        ds = xr.Dataset(
            {"a": (("sample", "y", "x"), np.full((6, 2, 2), 2.0)), "u": (("sample", "y", "x"), np.zeros((6, 2, 2)))},
            coords={"x": np.linspace(0, 1, 2), "y": np.linspace(0, 1, 2)},
            attrs={COMPLETE_ATTR: "yes", "mano_pde_schema": SCHEMA, "resolution": 2, "n_samples": 6},
        )
        ds.to_netcdf(d / dst, engine="netcdf4")

    return setup


def _damaged_chunk(dst: str) -> Setup:
    """``data.nc`` with sample 1 of ``a`` (one zlib-compressed chunk) overwritten: ``NetCDF: HDF error``."""

    def setup(d: Path) -> None:
        import h5py

        data = bytearray((d / "data.nc").read_bytes())
        with h5py.File(d / "data.nc", "r") as f:
            info = f["a"].id.get_chunk_info(1)
        for i in range(info.byte_offset + 2, info.byte_offset + info.size):
            data[i] ^= 0xFF
        (d / dst).write_bytes(bytes(data))

    return setup


#: Damaged data files: name -> setup writing ``bad.nc`` in the case folder (from its ``data.nc``).
BAD_DATA: dict[str, Setup] = {
    "truncated": _chain(_copy("data.nc", "bad.nc"), _damage("bad.nc", "truncated")),
    "empty": _write("bad.nc", b""),
    "random-bytes": _chain(_copy("data.nc", "bad.nc"), _damage("bad.nc", "random")),
    "not-netcdf-text": _write("bad.nc", "a,u\n1,2\n"),
    "wrong-variables": _variant("bad.nc", _renamed),
    "nan-in-u": _variant("bad.nc", _set_value("u", (5, 8, 8), float("nan"))),
    "inf-in-a": _variant("bad.nc", _set_value("a", (5, 0, 0), float("inf"))),
    "negative-a": _variant("bad.nc", _set_value("a", (5, 3, 3), -3.0)),
    "zero-a": _variant("bad.nc", _set_value("a", (0, 3, 3), 0.0)),
    "grid-2x2": _grid_2x2("bad.nc"),
    "attrs-resolution": _variant("bad.nc", _set_attr("resolution", 65)),
    "attrs-n-samples": _variant("bad.nc", _set_attr("n_samples", 60)),
    "schema-99": _variant("bad.nc", _set_attr("mano_pde_schema", "mano_pde.darcy/99")),
    "zero-samples": _variant("bad.nc", _no_samples),
    "damaged-chunk": _damaged_chunk("bad.nc"),
    "unfinished": _variant("bad.nc", _drop_attr("mano_pde_complete")),
}


# ------------------------------------------------------------------------------------------ validators
def _valid_data(name: str, nonzero_u: bool = True, **attrs: Any) -> Callable[[Path, Path, str], str | None]:
    """The output is a complete Darcy file: finite values, ``a > 0``, ``u`` not all zero, the given attributes."""

    def check(d: Path, fixtures: Path, stdout: str) -> str | None:
        import netCDF4
        import numpy as np

        with netCDF4.Dataset(d / name) as ds:
            a, u = np.asarray(ds["a"][:]), np.asarray(ds["u"][:])
            got = {k: ds.getncattr(k) if k in ds.ncattrs() else None for k in attrs}
        if not (np.isfinite(a).all() and np.isfinite(u).all()):
            return f"{name} holds NaN or infinite values"
        if not (a > 0).all():
            return f"{name} holds a permeability <= 0"
        if nonzero_u and not np.abs(u).max() > 0:
            return f"{name} holds u = 0 everywhere"
        wrong = {k: (got[k], v) for k, v in attrs.items() if str(got[k]) != str(v)}
        return f"{name}: attributes (got, wanted) {wrong}" if wrong else None

    return check


def _valid_run(name: str) -> Callable[[Path, Path, str], str | None]:
    """A complete run: finite weights, a log of finite numbers, every recorded digest matching."""

    def check(d: Path, fixtures: Path, stdout: str) -> str | None:
        import math

        import torch

        from mano_pde.training.runs import run_is_intact

        state = torch.load(d / name / "model_state_dict.pt", weights_only=True)
        bad = [k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())]
        if bad:
            return f"{name}: weights hold NaN or inf ({bad[:3]})"
        rows = (d / name / "log.csv").read_text().splitlines()[1:]
        if not rows or any(not math.isfinite(float(c)) for r in rows for c in r.split(",") if c):
            return f"{name}/log.csv holds no rows or a non-finite number"
        return None if run_is_intact(d / name) else f"{name} does not match the digests of its run.json"

    return check


def _valid_results(name: str, h1_null: tuple[int, ...] = ()) -> Callable[[Path, Path, str], str | None]:
    """Finite errors in ``results.json`` (``rel_h1_mean`` null exactly on the grids ``h1_null``), marked complete."""

    def check(d: Path, fixtures: Path, stdout: str) -> str | None:
        import math

        records = json.loads((d / name / "results.json").read_text())["records"]
        if not records or not (d / name / "results.complete.json").is_file():
            return f"{name}: no records, or results.complete.json missing"
        for r in records:
            if not math.isfinite(r["rel_l2_mean"]):
                return f"{name}: rel_l2_mean {r['rel_l2_mean']} at grid {r['test_resolution']}"
            h1 = r.get("rel_h1_mean")
            if (h1 is None) != (r["test_resolution"] in h1_null) or (h1 is not None and not math.isfinite(h1)):
                return f"{name}: rel_h1_mean {h1} at grid {r['test_resolution']}"
        return None

    return check


def _same_as_fixture(*names: str) -> Callable[[Path, Path, str], str | None]:
    """Files restored exactly (``run/normalizers.json`` equals the fixture's), weights compared as tensors."""

    def check(d: Path, fixtures: Path, stdout: str) -> str | None:
        for name in names:
            if name.endswith(".pt"):
                import torch

                got = torch.load(d / name, weights_only=True)
                want = torch.load(fixtures / name, weights_only=True)
                if got.keys() != want.keys() or not all(torch.equal(got[k], want[k]) for k in got):
                    return f"{name} differs from the run's verified weights"
            elif (d / name).read_bytes() != (fixtures / name).read_bytes():
                return f"{name} was not restored (differs from the run's own file)"
        return None

    return check


def _both(*checks: Callable[[Path, Path, str], str | None]) -> Callable[[Path, Path, str], str | None]:
    def check(d: Path, fixtures: Path, stdout: str) -> str | None:
        for c in checks:
            problem = c(d, fixtures, stdout)
            if problem:
                return problem
        return None

    return check


def _untouched(*names: str) -> Callable[[Path, Path, str], str | None]:
    """The user's files inside an output folder kept their content."""

    def check(d: Path, fixtures: Path, stdout: str) -> str | None:
        for name in names:
            path = d / name
            if not path.is_file() or path.read_text() != f"the user's {path.name}\n":
                return f"the user's file {name} inside the output was changed or removed"
        return None

    return check


def _result(test: Callable[[dict], str | None]) -> Callable[[Path, Path, str], str | None]:
    """A Python case prints ``RESULT {json}``; ``test`` judges it."""

    def check(d: Path, fixtures: Path, stdout: str) -> str | None:
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            return "the snippet printed no RESULT line"
        return test(json.loads(lines[-1][len("RESULT ") :]))

    return check


def _stdout_has(*words: str) -> Callable[[Path, Path, str], str | None]:
    def check(d: Path, fixtures: Path, stdout: str) -> str | None:
        missing = [w for w in words if w not in stdout]
        return f"the output does not mention {missing}" if missing else None

    return check


# ------------------------------------------------------------------------------------------ argv helpers
def _without(argv: tuple[str, ...], flag: str) -> list[str]:
    """``argv`` without ``flag`` and its values (our base command lines hold no values starting with '-')."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == flag:
            i += 1
            while i < len(argv) and not argv[i].startswith("-"):
                i += 1
            continue
        out.append(argv[i])
        i += 1
    return out


def _with(argv: tuple[str, ...], flag: str, *values: str) -> tuple[str, ...]:
    """``argv`` with ``flag`` set to ``values`` (replacing its earlier value)."""
    return (*_without(argv, flag), flag, *values)


# ------------------------------------------------------------------------------------------ 1. issue 21
def _issue_cases() -> list[Case]:
    gen_out = (*GEN, "-o", "out.nc")
    victim_safe = "never written through the link"
    return [
        # security
        Case("generate/i21-lock-symlink", gen_out, outputs=("out.nc",), setup=_link("out.nc.lock", VICTIM),
             mentions=("symbolic link",), note=ISSUE + "a planted link at OUT.nc.lock was truncated and written"),
        Case("import/i21-lock-symlink", (*IMPORT, "-o", "out.nc"), outputs=("out.nc",), needs=("src.mat",),
             setup=_link("out.nc.lock", VICTIM), mentions=("symbolic link",), note=ISSUE + victim_safe),
        Case("train/lock-symlink", (*TRAIN, "-o", "newrun"), outputs=("newrun",), needs=("data.nc",),
             setup=_link("newrun.lock", VICTIM), mentions=("symbolic link",), note="run folders are locked too"),
        Case("spec/i21-run-dir-escapes", (*SPEC, "-o", "study"), outputs=("study",),
             setup=_spec_setup(lambda r, d: _arm(r).update(run_dir="../../../escaped_{arm}/{model}")),
             mentions=("run_dir",), note=ISSUE + "run_dir = '../../../escaped_{arm}/{model}' wrote outside -o"),
        Case("spec/i21-run-dir-absolute", (*SPEC, "-o", "study"), outputs=("study",),
             setup=_spec_setup(lambda r, d: _arm(r).update(run_dir=str(d / "escaped" / "{model}"))),
             mentions=("run_dir",), note=ISSUE + "an absolute run_dir (here inside the case folder, outside -o)"),
        # data loss
        Case("generate/i21-overwrite-float32-overflow",
             (*GEN, "--overwrite", "--high", "1e45", "--low", "1e40", "-o", "good.nc"), outputs=("good.nc",),
             setup=_copy("data.nc", "good.nc"), needs=("data.nc",), mentions=("float32",),
             note=ISSUE + "the valid good.nc was replaced by the all-inf file before the check"),
        Case("generate/overwrite-forcing-1e300", (*GEN, "--overwrite", "--forcing", "1e300", "-o", "good.nc"),
             outputs=("good.nc",), setup=_copy("data.nc", "good.nc"), needs=("data.nc",),
             note=ISSUE + "a non-finite result file was left under the final name"),
        # silent wrong results
        Case("train/i21-lr-inf", (*TRAIN, "--lr", "inf", "-o", "newrun"), outputs=("newrun",), needs=("data.nc",),
             mentions=("lr",), note=ISSUE + "all weights inf, test error nan, exit 0"),
        Case("train/i21-gamma-nan-step", (*TRAIN, "--scheduler", "step", "--gamma", "nan", "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), mentions=("gamma",), note=ISSUE + "lr nan, exit 0"),
        Case("evaluate/i21-nan-weights", (*EVAL, "-o", "res"), outputs=("res",), needs=("run", "data.nc"),
             setup=_nan_weights("run"), mentions=("NaN",), note=ISSUE + "printed nan ± nan with exit 0"),
        Case("train/i21-second-train-same-output", (*TRAIN, "-o", "newrun"), outputs=("newrun",), needs=("data.nc",),
             hold_lock=("newrun", "train"), mentions=("another",),
             note=ISSUE + "two train commands on one -o both exited 0"),
        Case("generate/second-writer", gen_out, outputs=("out.nc",), hold_lock=("out.nc", "generate"),
             mentions=("another",), note="a second generate on a path being written"),
        Case("train/i21-resume-other-seed-data", (*TRAIN, "--resume", "-o", "run"), outputs=("run",),
             needs=("run", "data.nc", "other.nc"), setup=_copy("other.nc", "data.nc"), mentions=("seed",),
             note=ISSUE + "resume continued on another seed's data with the old normalisers"),
        Case("import/i21-grid-2x2", ("import", "two.mat", "--no-progress", "-o", "out.nc"), outputs=("out.nc",),
             setup=_mat("two.mat", lambda np: {"coeff": np.full((3, 2, 2), 2.0), "sol": np.zeros((3, 2, 2))}),
             mentions=("3 points",), note=ISSUE + "2x2 grids passed import, info, open_darcy and train"),
        Case("train/i21-grid-2x2", (*_with(_with(TRAIN, "--resolution", "2"), "--data", "bad.nc"), "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), setup=BAD_DATA["grid-2x2"], note=ISSUE + "2x2 grid"),
        Case("evaluate/i21-config-resolutions-str", (*EVAL, "-o", "res"), outputs=("res",), needs=("run", "data.nc"),
             setup=_edit_json("run/config.json", lambda c: c.update(resolutions="17")), mentions=("resolutions",),
             note=ISSUE + "'resolutions': '17' was read as [1, 7]"),
        Case("evaluate/i21-config-claims-other-grid", (*EVAL, "-o", "res"), outputs=("res",),
             needs=("run", "data.nc"), setup=_edit_json("run/config.json", lambda c: c.update(resolutions=[9])),
             mentions=("config.json",), note=ISSUE + "results were labelled with the grid config.json claimed"),
        Case("generate/i21-forcing-1e-300", (*GEN, "--forcing", "1e-300", "-o", "out.nc"), outputs=("out.nc",),
             mentions=("forcing",), note=ISSUE + "wrote u = 0 (float32 underflow) with exit 0"),
        Case("generate/i21-output-trailing-slash", (*GEN, "-o", "newdir/"), outputs=("newdir",),
             mentions=("folder",), note=ISSUE + "-o newdir/ wrote a file named newdir"),
        Case("spec/i21-target-unknown-model", (*SPEC, "-o", "study"), outputs=("study",),
             setup=_spec_setup(lambda r, d: r.update(targets=[_target(left={"model": "nope"})])),
             mentions=("nope",), note=ISSUE + "a target naming a model not in the spec was dropped without a word"),
        Case("solvers/i21-piecewise-all-nan", code=_SOLVERS + "piecewise_constant_map(np.full((4, 4), np.nan))",
             errors=("ValueError", "TypeError"), note=ISSUE + "an all-NaN field gave a finite permeability"),
        Case("solvers/i21-lognormal-overflow", code=_SOLVERS + "print(lognormal_map(np.full((3, 3), 800.0)))",
             errors=("ValueError", "TypeError"), note=ISSUE + "all-inf with only numpy's warning"),
        Case("api/i21-tfno-rank-0.0", code=_TFNO.format(rank="0.0"), note=ISSUE + "rank=0.0 silently became 1"),
        Case("api/i21-tfno-rank-minus-0.5", code=_TFNO.format(rank="-0.5"), note=ISSUE + "scipy's root-finder error"),
        Case("api/i21-predict-permeability-negative", code=_PREDICT.format(a="-np.ones((2, 1, 17, 17), 'f4')"),
             needs=("run",), mentions=("<= 0",), note=ISSUE + "Run.predict accepted a permeability <= 0"),
        # raw tracebacks
        Case("info/i21-damaged-chunk", ("info", "bad.nc"), needs=("data.nc",), setup=BAD_DATA["damaged-chunk"],
             mentions=("bad.nc",), note=ISSUE + "RuntimeError: NetCDF: HDF error without the file's name"),
        Case("train/i21-damaged-chunk", (*_with(TRAIN, "--data", "bad.nc"), "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), setup=BAD_DATA["damaged-chunk"], mentions=("bad.nc",), note=ISSUE + "HDF error"),
        Case("generate/i21-forcing-1e300-then-rerun", (*GEN, "--forcing", "1e300", "-o", "out.nc"),
             outputs=("out.nc",), note=ISSUE + "the non-finite file was left under the final name"),
        Case("train/i21-weight-decay-nan", (*TRAIN, "--weight-decay", "nan", "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), mentions=("weight_decay",), note=ISSUE + "torch ValueError"),
        Case("train/i21-weight-decay-negative", (*TRAIN, "--weight-decay=-0.1", "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), mentions=("weight_decay",), note=ISSUE + "torch ValueError"),
        Case("train/i21-step-size-0", (*TRAIN, "--scheduler", "step", "--step-size", "0", "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), mentions=("step_size",),
             note=ISSUE + "ZeroDivisionError, partial run folder left"),
        Case("train/i21-seed-2**70", (*TRAIN, "--seed", HUGE_INT, "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), mentions=("seed",), note=ISSUE + "overflow traceback"),
        Case("train/i21-read-only-output", (*TRAIN, "-o", "ro/run"), outputs=("ro/run",), needs=("data.nc",),
             setup=_read_only("ro"), mentions=("writable",), note=ISSUE + "raw OSError"),
        Case("generate/read-only-output", (*GEN, "-o", "ro/out.nc"), outputs=("ro/out.nc",), setup=_read_only("ro"),
             mentions=("writable",)),
        Case("import/read-only-output", (*IMPORT, "-o", "ro/out.nc"), outputs=("ro/out.nc",), needs=("src.mat",),
             setup=_read_only("ro"), mentions=("writable",)),
        Case("evaluate/read-only-output", (*EVAL, "-o", "ro/res"), outputs=("ro/res",), needs=("run", "data.nc"),
             setup=_read_only("ro"), mentions=("writable",)),
        Case("train/i21-h1-at-3", (*_with(TRAIN, "--resolution", "3"), "--loss", "h1", "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), mentions=("h1",), note=ISSUE + "IndexError of the H1 metric"),
        Case("evaluate/i21-h1-at-3-keeps-other-grids", (*_with(EVAL, "--resolutions", "3", "9", "17"), "-o", "res"),
             expect="succeed", outputs=("res",), needs=("run", "data.nc"), validate=_valid_results("res", (3,)),
             note=ISSUE + "IndexError at 3², the other grids lost"),
        Case("evaluate/i21-config-lr-str", (*EVAL, "-o", "res"), outputs=("res",), needs=("run", "data.nc"),
             setup=_edit_json("run/config.json", lambda c: c.update(lr="0.001")), mentions=("lr",),
             note=ISSUE + "'<' not supported between 'str' and 'int' without the key"),
        Case("spec/i21-wrong-type-n-test", (*SPEC, "-o", "study"), outputs=("study",),
             setup=_spec_setup(lambda r, d: r["train"].update(n_test="3")), mentions=("n_test",),
             note=ISSUE + "a type error without the key's name"),
        Case("evaluate/i21-normalizers-two-channels", (*EVAL, "-o", "res"), outputs=("res",),
             needs=("run", "data.nc"), setup=_edit_json("run/normalizers.json", _two_channels),
             mentions=("normalizers.json",), note=ISSUE + "a model-shape traceback without the file's name"),
        Case("generate/i21-pickled-shard", (*_with(GEN, "--n-samples", "4"), "--chunk-size", "2", "-o", "out.nc"),
             expect="succeed", outputs=("out.nc",), setup=_pickled_shard(), validate=_valid_data("out.nc"),
             note=ISSUE + "a pickled .npy shard in .parts: a raw allow_pickle=False ValueError (the shard must be "
             "computed again)"),
        Case("generate/i21-scheduler-not-an-address", (*GEN, "--scheduler", "not-an-address", "-o", "out.nc"),
             outputs=("out.nc",), timeout=60, mentions=("not-an-address",),
             note=ISSUE + "the right message, then a 60 s stall and a traceback from Client.__del__"),
        Case("api/i21-predict-missing-channel", code=_PREDICT.format(a="np.ones((2, 17, 17), 'f4')"),
             needs=("run",), mentions=("[2, 17, 17]",), note=ISSUE + "reported a shape the user never passed"),
        Case("api/i21-predict-numpy", code=_PREDICT.format(a="np.full((2, 1, 17, 17), 5.0, 'f4')"), expect="succeed",
             needs=("run",), validate=_result(_finite_prediction((2, 1, 17, 17))),
             note=ISSUE + "a numpy array raised AttributeError: .to"),
        Case("api/i21-predict-too-few-sample-ids",
             code=_PREDICT.format(a="np.ones((3, 1, 17, 17), 'f4'), sample_ids=[4]"), needs=("run",),
             mentions=("sample_ids",), note=ISSUE + "IndexError"),
        Case("api/i21-predict-zero-samples", code=_PREDICT.format(a="np.ones((0, 1, 17, 17), 'f4')"),
             needs=("run",), mentions=("no samples",), note=ISSUE + "torch.cat's ValueError"),
        # damaged run files (input damage, not kills)
        Case("train/i21-resume-normalizers-digit", (*TRAIN, "--resume", "-o", "run"), expect="succeed",
             outputs=("run",), needs=("run", "data.nc"), setup=_damage("run/normalizers.json", "digit"),
             validate=_both(_valid_run("run"), _same_as_fixture("run/normalizers.json")),
             note=ISSUE + "one changed digit was used silently by --resume: restored from the verified state"),
        Case("evaluate/i21-normalizers-digit", (*EVAL, "-o", "res"), outputs=("res",), needs=("run", "data.nc"),
             setup=_damage("run/normalizers.json", "digit"), mentions=("normalizers.json",),
             note=ISSUE + "one changed digit was used silently by evaluate"),
        Case("evaluate/i21-normalizers-other-json", (*EVAL, "-o", "res"), outputs=("res",), needs=("run", "data.nc"),
             setup=_damage("run/normalizers.json", '{"x": 1}'), mentions=("normalizers.json",),
             note=ISSUE + "another valid JSON file: a raw KeyError: 'x'"),
        Case("train/i21-resume-normalizers-other-json", (*TRAIN, "--resume", "-o", "run"), expect="succeed",
             outputs=("run",), needs=("run", "data.nc"), setup=_damage("run/normalizers.json", '{"x": 1}'),
             validate=_both(_valid_run("run"), _same_as_fixture("run/normalizers.json")), note=ISSUE + "KeyError"),
        Case("train/i21-resume-log-row-missing", (*TRAIN, "--resume", "-o", "run"), expect="succeed",
             outputs=("run",), needs=("run", "data.nc"), setup=_damage("run/log.csv", "drop-row"),
             validate=_both(_valid_run("run"), _same_as_fixture("run/log.csv")),
             note=ISSUE + "a missing row was dropped silently"),
        Case("train/i21-resume-log-bad-cell", (*TRAIN, "--resume", "-o", "run"), expect="succeed",
             outputs=("run",), needs=("run", "data.nc"), setup=_damage("run/log.csv", "bad-cell"),
             validate=_both(_valid_run("run"), _same_as_fixture("run/log.csv")), note=ISSUE + "a raw ValueError"),
        Case("evaluate/i21-log-row-missing", (*EVAL, "-o", "res"), outputs=("res",), needs=("run", "data.nc"),
             setup=_damage("run/log.csv", "drop-row"), mentions=("log.csv",), note=ISSUE + "log damage"),
        Case("train/i21-resume-finished-damaged-weights", (*TRAIN, "--resume", "-o", "run"), expect="succeed",
             outputs=("run",), needs=("run", "data.nc"), setup=_damage("run/model_state_dict.pt", "random"),
             validate=_both(_valid_run("run"), _same_as_fixture("run/model_state_dict.pt")),
             note=ISSUE + "--resume exited 0 without rewriting damaged weights"),
        Case("train/i21-resume-finished-damaged-model-config", (*TRAIN, "--resume", "-o", "run"), expect="succeed",
             outputs=("run",), needs=("run", "data.nc"), setup=_damage("run/model_config.json", "random"),
             validate=_valid_run("run"), note=ISSUE + "--resume exited 0 without rewriting model_config.json"),
        Case("evaluate/i21-damaged-weights", (*EVAL, "-o", "res"), outputs=("res",), needs=("run", "data.nc"),
             setup=_damage("run/model_state_dict.pt", "random"), mentions=("model_state_dict.pt",)),
    ]  # fmt: skip


def _mat(name: str, arrays: Callable[[Any], dict]) -> Setup:
    def setup(d: Path) -> None:
        import numpy as np
        import scipy.io

        scipy.io.savemat(d / name, arrays(np))

    return setup


def _changed_mat(name: str, var: str, index: tuple[int, ...], value: float) -> Setup:
    """The fixture ``src.mat`` with one value of ``var`` changed (the rest a valid FNO-paper file)."""

    def setup(d: Path) -> None:
        import scipy.io

        arrays = {k: v for k, v in scipy.io.loadmat(d / "src.mat").items() if k in ("coeff", "sol")}
        arrays[var][index] = value
        scipy.io.savemat(d / name, arrays)

    return setup


def _two_channels(norms: dict) -> None:
    norms["x"]["mean"], norms["x"]["std"] = [1.0, 2.0], [1.0, 1.0]


def _pickled_shard() -> Setup:
    """Shards of an interrupted ``generate`` (4 samples, chunks of 2) whose second shard holds pickled objects and
    whose manifest records that shard's digest (damage that also updated the manifest)."""

    def setup(d: Path) -> None:
        import io

        import numpy as np

        from mano_pde.data import DarcyConfig
        from mano_pde.data import generate as generate_module
        from mano_pde.files import sha256_bytes

        real = generate_module.DarcyWriter

        def interrupted(*args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt

        generate_module.DarcyWriter = interrupted
        try:
            generate_module.generate_darcy(
                DarcyConfig(n_samples=4, resolution=9, seed=1), d / "out.nc", chunk_size=2, progress=False
            )
        except KeyboardInterrupt:
            pass
        finally:
            generate_module.DarcyWriter = real
        parts = d / "out.nc.parts"
        shard = sorted(parts.glob("chunk_*.npz"))[-1]
        buf = io.BytesIO()
        np.savez(buf, a=np.array([{"x": 1}], dtype=object), u=np.zeros((2, 9, 9), "f4"))
        shard.write_bytes(buf.getvalue())
        manifest = json.loads((parts / "manifest.json").read_text())
        index = str(int(shard.stem.split("_")[1]))
        manifest["shards"][index]["sha256"] = sha256_bytes(buf.getvalue())
        (parts / "manifest.json").write_text(json.dumps(manifest))

    return setup


# ------------------------------------------------------------------------------------------ 2. numeric grid
def _grid_values(kind: type) -> dict[str, str]:
    huge = HUGE_FLOAT if kind is float else HUGE_INT
    return {"nan": "nan", "inf": "inf", "-inf": "-inf", "-1": "-1", "0": "0", "huge": huge, "text": "abc"}


def _numeric_cases() -> list[Case]:
    """Every numeric option × (nan, inf, -inf, -1, 0, huge, a non-number): refused unless listed otherwise."""
    gen = dict(base=GEN, out=("-o", "out.nc"), outputs=("out.nc",), needs=(), valid=_valid_data("out.nc"))
    train = dict(base=TRAIN, out=("-o", "newrun"), outputs=("newrun",), needs=("data.nc",), valid=_valid_run("newrun"))
    mano = dict(train, base=FIXTURE_TRAIN_MANO)
    evaluate = dict(
        base=EVAL, out=("-o", "res"), outputs=("res",), needs=("run", "data.nc"), valid=_valid_results("res")
    )
    imp = dict(base=("import", "mask.pt", "--grid", "node", "--no-progress"), out=("-o", "out.nc"),
               outputs=("out.nc",), needs=("mask.pt",), valid=_valid_data("out.nc"))  # fmt: skip
    info = dict(base=("info", "data.nc"), out=(), outputs=(), needs=("data.nc",), valid=None)
    spec = dict(base=SPEC, out=("-o", "study"), outputs=("study",), needs=(), valid=None, setup=_spec_setup(None))
    zero_u = _valid_data("out.nc", nonzero_u=False)
    grid: list[tuple[str, dict, str, type, tuple, dict]] = [
        # command, base, flag, type, extra options, expectations other than "refuse"
        ("generate", gen, "--n-samples", int, (), {}),
        ("generate", gen, "--resolution", int, (), {}),
        ("generate", gen, "--seed", int, (), {"0": "succeed", "huge": "either"}),
        ("generate", gen, "--alpha", float, (), {}),
        ("generate", gen, "--tau", float, (), {}),
        ("generate", gen, "--high", float, (), {}),
        ("generate", gen, "--low", float, (), {}),
        ("generate", gen, "--sigma", float, ("--map", "lognormal"), {"-1": "succeed", "0": "either"}),
        ("generate", gen, "--forcing", float, (), {"-1": "succeed", "0": "either"}),
        ("generate", gen, "--workers", int, (), {"huge": "either"}),
        ("generate", gen, "--dask-workers", int, (), {}),
        ("generate", gen, "--chunk-size", int, (), {"huge": "either"}),
        ("train", train, "--epochs", int, (), {}),
        ("train", train, "--n-test", int, (), {}),
        ("train", train, "--n-val", int, (), {"0": "succeed"}),
        ("train", train, "--n-train", int, (), {}),
        ("train", train, "--resolution", int, (), {}),
        ("train", train, "--batch-size", int, (), {"huge": "either"}),
        ("train", train, "--step-size", int, ("--scheduler", "step"), {"huge": "either"}),
        ("train", train, "--seed", int, (), {"0": "succeed"}),
        ("train", train, "--lr", float, (), {}),
        ("train", train, "--weight-decay", float, (), {"0": "succeed"}),
        ("train", train, "--gamma", float, ("--scheduler", "step"), {"huge": "either"}),
        ("train", train, "--hidden-channels", int, (), {}),
        ("train", train, "--n-layers", int, (), {}),
        ("train", train, "--n-modes", int, (), {}),
        ("train", mano, "--n-heads", int, (), {}),
        ("train", mano, "--window-size", int, (), {}),
        ("evaluate", evaluate, "--resolutions", int, (), {}),
        ("evaluate", evaluate, "--n-test", int, (), {}),
        ("evaluate", evaluate, "--batch-size", int, (), {"huge": "either"}),
        ("import", imp, "--high", float, (), {}),
        ("import", imp, "--low", float, (), {}),
        ("info", info, "--resolution", int, (), {}),
        ("spec", spec, "--epochs", int, (), {}),
        ("spec", spec, "--workers", int, (), {"huge": "either"}),
    ]
    notes = {
        ("--alpha", "huge"): "debatable: the field's spectrum underflows to 0 (every sample the same constant a)",
        ("--tau", "huge"): "debatable: the field's variance underflows to 0 (every sample the same constant a)",
        ("--forcing", "0"): "f = 0 gives u = 0 exactly: a clear refusal or an honest all-zero file",
        ("--sigma", "0"): "sigma = 0 gives a = 1 everywhere: valid but degenerate",
        ("--seed", "huge"): "numpy seeds take any non-negative int; then the file must record the seed exactly",
        ("--gamma", "huge"): "a decay factor > 1 that one epoch never applies",
        ("--workers", "huge"): "more workers than chunks: capped (a correct file) or refused",
        ("--n-samples", "huge"): "debatable: a count no disk holds; refused up front, or it runs until the timeout",
        ("--epochs", "huge"): "a count no run finishes: refused up front (epochs <= 10**6, TrainConfig's bound)",
    }
    cases = []
    for command, spec_, flag, kind, extra, expect in grid:
        for name, value in _grid_values(kind).items():
            how = expect.get(name, "refuse")
            valid = spec_["valid"]
            if flag == "--seed" and command == "generate" and name != "text":
                valid = _valid_data("out.nc", seed=value)
            if flag == "--forcing" and name == "0":
                valid = zero_u
            base = _without(spec_["base"], flag)
            cases.append(
                Case(
                    f"{command}/{flag.lstrip('-')}={name}",
                    (*base, *extra, f"{flag}={value}", *spec_["out"]),
                    expect=how,
                    outputs=spec_["outputs"],
                    needs=spec_["needs"],
                    setup=spec_.get("setup"),
                    validate=valid if how != "refuse" else None,
                    timeout=60 if name == "huge" else None,
                    note=notes.get((flag, name), ""),
                )
            )
    return cases


# ------------------------------------------------------------------------------------------ 3. paths
def _path_cases() -> list[Case]:
    out_nc = ("out.nc",)
    gen = GEN
    imp = IMPORT
    t = TRAIN
    cases = [
        # generate -o
        Case("generate/valid", (*gen, "-o", "out.nc"), expect="succeed", outputs=out_nc,
             validate=_valid_data("out.nc", seed=1)),
        Case("generate/output-exists", (*gen, "-o", "good.nc"), outputs=("good.nc",), needs=("data.nc",),
             setup=_copy("data.nc", "good.nc"), mentions=("already exists",)),
        Case("generate/output-exists-overwrite", (*gen, "--overwrite", "-o", "good.nc"), expect="succeed",
             outputs=("good.nc",), needs=("data.nc",), setup=_copy("data.nc", "good.nc"),
             validate=_valid_data("good.nc", seed=1, resolution=9)),
        Case("generate/output-is-folder", (*gen, "--overwrite", "-o", "out.nc"), outputs=out_nc,
             setup=_folder("out.nc", "keep.txt"), mentions=("folder",)),
        Case("generate/output-symlink-to-victim", (*gen, "-o", "link.nc"), outputs=("link.nc",),
             setup=_link("link.nc", VICTIM)),
        Case("generate/output-symlink-to-victim-overwrite", (*gen, "--overwrite", "-o", "link.nc"), expect="either",
             outputs=("link.nc",), setup=_link("link.nc", VICTIM),
             note="replacing the link itself is fine; writing its target is not"),
        Case("generate/output-dangling-symlink", (*gen, "-o", "link.nc"), expect="either", outputs=("link.nc",),
             setup=_link("link.nc", "elsewhere/new.nc"), note="a dangling link: never create its target"),
        Case("generate/output-in-missing-folder", (*gen, "-o", "missing/sub/out.nc"), expect="succeed",
             outputs=("missing",), validate=_valid_data("missing/sub/out.nc")),
        Case("generate/output-folder-is-a-file", (*gen, "-o", f"{VICTIM}/out.nc"), outputs=(f"{VICTIM}/out.nc",)),
        Case("generate/output-empty", (*gen, "-o", ""), outputs=()),
        Case("generate/output-dot", (*gen, "-o", "."), outputs=()),
        Case("generate/lock-hard-link", (*gen, "-o", "out.nc"), outputs=out_nc, setup=_hard_link("out.nc.lock", VICTIM),
             mentions=("hard link",)),
        Case("generate/lock-fifo", (*gen, "-o", "out.nc"), outputs=out_nc, setup=_fifo("out.nc.lock"),
             mentions=("not a regular file",)),
        Case("generate/lock-is-folder", (*gen, "-o", "out.nc"), outputs=out_nc, setup=_folder("out.nc.lock", "k.txt"),
             mentions=("folder",)),
        Case("generate/parts-symlink-to-folder", (*gen, "-o", "out.nc"), expect="either", outputs=out_nc,
             setup=_chain(_folder("elsewhere", "keep.txt"), _link("out.nc.parts", "elsewhere")),
             note="a planted OUT.nc.parts link: never write shards (or delete files) through it"),
        Case("generate/parts-is-a-file", (*gen, "-o", "out.nc"), expect="either", outputs=out_nc,
             setup=_write("out.nc.parts", "the user's notes\n")),
        Case("generate/stale-parts-other-parameters", (*_with(gen, "--seed", "2"), "-o", "out.nc"), expect="either",
             outputs=out_nc, setup=_pickled_shard(), validate=_valid_data("out.nc", seed=2),
             note="shards of another seed: refuse (naming --overwrite) or start over, never mix"),
        Case("generate/preset-unknown", (*gen, "--preset", "nope", "-o", "out.nc"), outputs=out_nc,
             mentions=("preset",)),
        Case("generate/map-unknown", (*gen, "--map", "bogus", "-o", "out.nc"), outputs=out_nc),
        Case("generate/dtype-float16", (*gen, "--dtype", "float16", "-o", "out.nc"), outputs=out_nc),
        Case("generate/float64", (*gen, "--dtype", "float64", "-o", "out.nc"), expect="succeed", outputs=out_nc,
             validate=_valid_data("out.nc")),
        Case("generate/resolution-float", (*_with(gen, "--resolution", "9.5"), "-o", "out.nc"), outputs=out_nc),
        Case("generate/high-equals-low", (*gen, "--high", "3", "--low", "3", "-o", "out.nc"), expect="either",
             outputs=out_nc, validate=_valid_data("out.nc"), note="a constant permeability: valid, degenerate"),
        Case("generate/high-below-low", (*gen, "--high", "3", "--low", "12", "-o", "out.nc"), expect="either",
             outputs=out_nc, validate=_valid_data("out.nc"), note="the map's values swapped: unusual but valid"),
        Case("generate/contrast-1e13", (*gen, "--high", "1e13", "--low", "1", "-o", "out.nc"), outputs=out_nc,
             mentions=("limit",)),
        Case("generate/lognormal-sigma-40", (*gen, "--map", "lognormal", "--sigma", "40", "-o", "out.nc"),
             outputs=out_nc),
        Case("generate/lognormal-sigma-1000", (*gen, "--map", "lognormal", "--sigma", "1000", "-o", "out.nc"),
             outputs=out_nc),
        Case("generate/forcing-1e-36", (*gen, "--forcing", "1e-36", "-o", "out.nc"), outputs=out_nc,
             mentions=("underflows",)),
        Case("generate/forcing-1e38-tiny-a", (*gen, "--forcing", "1e38", "--high", "1e-30", "--low", "1e-31", "-o",
             "out.nc"), outputs=out_nc, mentions=("overflows",)),
        Case("generate/forcing-1e-310-float64", (*gen, "--forcing", "1e-310", "--dtype", "float64", "-o", "out.nc"),
             outputs=out_nc),
        Case("generate/resolution-100001", (*_with(gen, "--resolution", "100001"), "--n-samples=1", "-o", "out.nc"),
             outputs=out_nc, mentions=("memory",)),
        Case("generate/workers-2", (*gen, "--workers", "2", "-o", "out.nc"), expect="succeed", outputs=out_nc,
             validate=_valid_data("out.nc")),
        Case("generate/scheduler-unknown-host", (*gen, "--scheduler", "tcp://nonexistent.invalid:8786", "-o",
             "out.nc"), outputs=out_nc, timeout=60),
        Case("generate/scheduler-and-workers", (*gen, "--scheduler", "tcp://127.0.0.1:1", "--dask-workers", "2", "-o",
             "out.nc"), outputs=out_nc, timeout=60, note="two cluster options at once"),
        Case("generate/abbreviated-option", (*gen, "--n-sample", "3", "-o", "out.nc"), outputs=out_nc,
             note="argparse abbreviation of --n-samples: accepted as the same option", expect="succeed",
             validate=_valid_data("out.nc")),
        Case("generate/unknown-option", (*gen, "--bogus", "1", "-o", "out.nc"), outputs=out_nc),
        # import
        Case("import/valid-mat", (*imp, "-o", "out.nc"), expect="succeed", outputs=out_nc, needs=("src.mat",),
             validate=_valid_data("out.nc")),
        Case("import/valid-mask-pt", ("import", "mask.pt", "--grid", "node", "--no-progress", "-o", "out.nc"),
             expect="succeed", outputs=out_nc, needs=("mask.pt",), validate=_valid_data("out.nc")),
        Case("import/src-missing", ("import", "nope.mat", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             mentions=("nope.mat",)),
        Case("import/src-is-folder", ("import", "srcdir", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             setup=_folder("srcdir", "a.txt")),
        Case("import/src-empty", ("import", "e.mat", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             setup=_write("e.mat", b"")),
        Case("import/src-random-bytes", ("import", "r.mat", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             needs=("src.mat",), setup=_chain(_copy("src.mat", "r.mat"), _damage("r.mat", "random"))),
        Case("import/src-truncated", ("import", "t.mat", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             needs=("src.mat",), setup=_chain(_copy("src.mat", "t.mat"), _damage("t.mat", "truncated")),
             mentions=("truncated",)),
        Case("import/src-wrong-variables", ("import", "w.mat", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             setup=_mat("w.mat", lambda np: {"foo": np.ones((3, 9, 9)), "bar": np.ones((3, 9, 9))})),
        Case("import/src-nan", ("import", "n.mat", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             needs=("src.mat",), setup=_changed_mat("n.mat", "coeff", (2, 4, 4), float("nan"))),
        Case("import/src-negative-permeability", ("import", "n.mat", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             needs=("src.mat",), setup=_changed_mat("n.mat", "coeff", (2, 4, 4), -3.0)),
        Case("import/src-nan-pressure", ("import", "n.mat", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             needs=("src.mat",), setup=_changed_mat("n.mat", "sol", (1, 4, 4), float("inf"))),
        Case("import/src-shape-mismatch", ("import", "m.mat", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             setup=_mat("m.mat", lambda np: {"coeff": np.ones((3, 9, 9)), "sol": np.ones((2, 9, 9))})),
        Case("import/src-our-netcdf", ("import", "data.nc", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             needs=("data.nc",), expect="either", note="already in the schema: refuse clearly or copy it correctly",
             validate=_valid_data("out.nc")),
        Case("import/src-pickled-pt", ("import", "p.pt", "--no-progress", "-o", "out.nc"), outputs=out_nc,
             setup=_pickled_pt("p.pt"), note="torch.load(weights_only=True) must refuse objects; no code runs"),
        Case("import/output-exists", (*imp, "-o", "good.nc"), outputs=("good.nc",), needs=("src.mat", "data.nc"),
             setup=_copy("data.nc", "good.nc"), mentions=("already exists",)),
        Case("import/output-exists-overwrite", (*imp, "--overwrite", "-o", "good.nc"), expect="succeed",
             outputs=("good.nc",), needs=("src.mat", "data.nc"), setup=_copy("data.nc", "good.nc"),
             validate=_valid_data("good.nc")),
        Case("import/output-is-folder", (*imp, "--overwrite", "-o", "out.nc"), outputs=out_nc, needs=("src.mat",),
             setup=_folder("out.nc", "keep.txt"), mentions=("folder",)),
        Case("import/output-trailing-slash", (*imp, "-o", "newdir/"), outputs=("newdir",), needs=("src.mat",),
             mentions=("folder",)),
        Case("import/output-symlink-to-victim", (*imp, "-o", "link.nc"), outputs=("link.nc",), needs=("src.mat",),
             setup=_link("link.nc", VICTIM)),
        Case("import/output-in-missing-folder", (*imp, "-o", "missing/sub/out.nc"), expect="succeed",
             outputs=("missing",), needs=("src.mat",), validate=_valid_data("missing/sub/out.nc")),
        Case("import/output-folder-is-a-file", (*imp, "-o", f"{VICTIM}/out.nc"), outputs=(f"{VICTIM}/out.nc",),
             needs=("src.mat",)),
        Case("import/output-same-as-src", (*imp, "--overwrite", "-o", "src.mat"), outputs=("src.mat",),
             needs=("src.mat",), expect="either", note="replacing the source by its import: refuse or finish cleanly"),
        Case("import/grid-unknown", (*imp, "--grid", "hex", "-o", "out.nc"), outputs=out_nc, needs=("src.mat",)),
        # info
        Case("info/valid", ("info", "data.nc"), expect="succeed", needs=("data.nc",), validate=_stdout_has("17")),
        Case("info/valid-view-9", ("info", "data.nc", "--resolution", "9"), expect="succeed", needs=("data.nc",),
             validate=_stdout_has("9")),
        Case("info/via-symlink", ("info", "link.nc"), expect="succeed", needs=("data.nc",),
             setup=_link("link.nc", "data.nc"), validate=_stdout_has("17")),
        Case("info/missing", ("info", "nope.nc"), mentions=("nope.nc",)),
        Case("info/folder", ("info", "dir.nc"), setup=_folder("dir.nc", "a.txt")),
        Case("info/resolution-unreachable", ("info", "data.nc", "--resolution", "13"), needs=("data.nc",),
             mentions=("13",)),
        Case("info/fifo", ("info", "f.nc"), setup=_fifo("f.nc"), timeout=30, note="a FIFO must not hang the reader"),
        # train paths
        Case("train/valid", (*t, "-o", "newrun"), expect="succeed", outputs=("newrun",), needs=("data.nc",),
             validate=_valid_run("newrun")),
        Case("train/valid-mano", (*FIXTURE_TRAIN_MANO, "-o", "newrun"), expect="succeed", outputs=("newrun",),
             needs=("data.nc",), validate=_valid_run("newrun")),
        Case("train/lr-1e-6", (*t, "--lr", "1e-6", "-o", "newrun"), expect="succeed", outputs=("newrun",),
             needs=("data.nc",), validate=_valid_run("newrun"), note="valid but unusual"),
        Case("train/data-missing", (*_with(t, "--data", "nope.nc"), "-o", "newrun"), outputs=("newrun",),
             mentions=("nope.nc",)),
        Case("train/data-is-folder", (*_with(t, "--data", "dir.nc"), "-o", "newrun"), outputs=("newrun",),
             setup=_folder("dir.nc", "a.txt")),
        Case("train/test-data-other-seed", (*t, "--test-data", "other.nc", "-o", "newrun"), expect="succeed",
             outputs=("newrun",), needs=("data.nc", "other.nc"), validate=_valid_run("newrun"),
             note="an independent test file"),
        Case("train/test-data-missing", (*t, "--test-data", "nope.nc", "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), mentions=("nope.nc",)),
        Case("train/output-trailing-slash", (*t, "-o", "newrun/"), expect="succeed", outputs=("newrun",),
             needs=("data.nc",), validate=_valid_run("newrun"), note="a run is a folder: the slash is right"),
        Case("train/output-existing-run-without-resume", (*t, "-o", "run"), outputs=("run",), needs=("run", "data.nc"),
             mentions=("--resume",)),
        Case("train/output-is-a-file", (*t, "-o", "notes.txt"), outputs=("notes.txt",), needs=("data.nc",),
             setup=_write("notes.txt", "the user's notes\n")),
        Case("train/output-folder-of-user-files", (*t, "-o", "mine"), outputs=("mine",), needs=("data.nc",),
             setup=_folder("mine", "log.csv", "notes.txt"), mentions=("not a mano-pde run",)),
        Case("train/output-empty-folder", (*t, "-o", "empty"), expect="succeed", outputs=("empty",),
             needs=("data.nc",), setup=_folder("empty"), validate=_valid_run("empty")),
        Case("train/output-symlink-to-victim", (*t, "-o", "link"), outputs=("link",), needs=("data.nc",),
             setup=_link("link", VICTIM)),
        Case("train/output-symlink-to-user-folder", (*t, "-o", "link"), outputs=("link",), needs=("data.nc",),
             setup=_chain(_folder("elsewhere", "keep.txt"), _link("link", "elsewhere"))),
        Case("train/output-in-missing-folder", (*t, "-o", "missing/sub/run"), expect="succeed", outputs=("missing",),
             needs=("data.nc",), validate=_valid_run("missing/sub/run")),
        Case("train/output-folder-is-a-file", (*t, "-o", f"{VICTIM}/run"), outputs=(f"{VICTIM}/run",),
             needs=("data.nc",)),
        Case("train/resume-no-run-yet", (*t, "--resume", "-o", "newrun"), expect="either", outputs=("newrun",),
             needs=("data.nc",), validate=_valid_run("newrun"), note="nothing to resume: start it or refuse clearly"),
        Case("train/resume-finished", (*t, "--resume", "-o", "run"), expect="succeed", outputs=("run",),
             needs=("run", "data.nc"), validate=_both(_valid_run("run"), _same_as_fixture("run/model_state_dict.pt"))),
        Case("train/resume-other-lr", (*t, "--lr", "0.01", "--resume", "-o", "run"), outputs=("run",),
             needs=("run", "data.nc"), mentions=("lr",)),
        Case("train/resume-other-model", (*_with(t, "--model", "tfno"), "--resume", "-o", "run"), outputs=("run",),
             needs=("run", "data.nc")),
        Case("train/data-same-as-output", (*_with(t, "--data", "data.nc"), "-o", "data.nc"), outputs=("data.nc",),
             needs=("data.nc",), note="-o names the training file itself"),
        Case("train/model-unknown", (*_with(t, "--model", "nope"), "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",)),
        Case("train/device-banana", (*t, "--device", "banana", "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), mentions=("banana",)),
        Case("train/device-cuda-absent", (*t, "--device", "cuda", "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), expect="either", validate=_valid_run("newrun"), note="no GPU here: refuse clearly"),
        Case("train/n-train-two-values-one-grid", (*_with(t, "--n-train", "4", "4"), "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), mentions=("n-train",)),
        Case("train/resolution-twice", (*t, "--resolution", "17", "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), mentions=("distinct",)),
        Case("train/resolution-unreachable", (*_with(t, "--resolution", "13"), "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), mentions=("13",)),
        Case("train/resolution-3-l2", (*_with(t, "--resolution", "3"), "-o", "newrun"), expect="either",
             outputs=("newrun",), needs=("data.nc",), validate=_valid_run("newrun"),
             note="3 points per direction is the documented minimum"),
        Case("train/multi-resolution", (*t, "--resolution", "9", "-o", "newrun"), expect="succeed",
             outputs=("newrun",), needs=("data.nc",), validate=_valid_run("newrun")),
        Case("train/samples-overlap", (*_with(t, "--n-train", "5"), "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), mentions=("overlap",)),
        Case("train/n-val-overlaps-test", (*t, "--n-val", "1", "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",)),
        Case("train/constant-pressure", (*_with(t, "--data", "u0.nc"), "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), setup=_variant("u0.nc", _set_value("u", slice(None), 0.0)),
             mentions=("standard deviation",)),
        Case("train/model-arg-bool-maybe", (*FIXTURE_TRAIN_MANO, "--model-arg", "position_bias=maybe", "-o",
             "newrun"), outputs=("newrun",), needs=("data.nc",), mentions=("position_bias",)),
        Case("train/model-arg-unknown-key", (*t, "--model-arg", "windw_size=4", "-o", "newrun"), outputs=("newrun",),
             needs=("data.nc",), mentions=("windw_size",)),
        Case("train/model-arg-nan-ratio", (*FIXTURE_TRAIN_MANO, "--model-arg", "mlp_ratio=nan", "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), mentions=("mlp_ratio",)),
        Case("train/model-arg-no-equals", (*t, "--model-arg", "hidden_channels", "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",)),
        Case("train/model-arg-given-twice", (*t, "--model-arg", "hidden_channels=8", "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), mentions=("twice",)),
        Case("train/model-arg-in-channels-2", (*t, "--model-arg", "in_channels=2", "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), mentions=("in_channels",)),
        Case("train/model-arg-lists", (*_without(t, "--n-modes"), "--model-arg", "n_modes=a,b", "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), mentions=("n_modes",)),
        Case("train/mano-mlp-one-unit", (*FIXTURE_TRAIN_MANO, "--model-arg", "mlp_ratio=0.01", "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), mentions=("mlp_ratio",)),
        Case("train/mano-heads-not-dividing", (*_with(FIXTURE_TRAIN_MANO, "--n-heads", "3"), "-o", "newrun"),
             outputs=("newrun",), needs=("data.nc",), mentions=("divisible",)),
        # evaluate paths
        Case("evaluate/valid", (*EVAL, "-o", "res"), expect="succeed", outputs=("res",), needs=("run", "data.nc"),
             validate=_valid_results("res")),
        Case("evaluate/valid-two-runs", ("evaluate", "run", "mano", *EVAL[2:], "-o", "res"), expect="succeed",
             outputs=("res",), needs=("run", "mano", "data.nc"), validate=_valid_results("res")),
        Case("evaluate/data-other-seed", (*_with(EVAL, "--data", "other.nc"), "-o", "res"), expect="succeed",
             outputs=("res",), needs=("run", "other.nc"), validate=_valid_results("res"),
             note="another file of the same generator is a legitimate test set"),
        Case("evaluate/test-overlaps-training", (*EVAL, "--n-test", "5", "-o", "res"), outputs=("res",),
             needs=("run", "data.nc"), mentions=("trained on",)),
        Case("evaluate/run-missing", ("evaluate", "nope", *EVAL[2:], "-o", "res"), outputs=("res",),
             needs=("data.nc",), mentions=("nope",)),
        Case("evaluate/run-is-a-file", ("evaluate", VICTIM, *EVAL[2:], "-o", "res"), outputs=("res",),
             needs=("data.nc",)),
        Case("evaluate/run-empty-folder", ("evaluate", "empty", *EVAL[2:], "-o", "res"), outputs=("res",),
             needs=("data.nc",), setup=_folder("empty")),
        Case("evaluate/run-given-twice", ("evaluate", "run", "run", *EVAL[2:], "-o", "res"), outputs=("res",),
             needs=("run", "data.nc"), mentions=("twice",)),
        Case("evaluate/data-missing", (*_with(EVAL, "--data", "nope.nc"), "-o", "res"), outputs=("res",),
             needs=("run",), mentions=("nope.nc",)),
        Case("evaluate/data-is-folder", (*_with(EVAL, "--data", "dir.nc"), "-o", "res"), outputs=("res",),
             needs=("run",), setup=_folder("dir.nc", "a.txt")),
        Case("evaluate/resolution-2", (*_with(EVAL, "--resolutions", "2"), "-o", "res"), outputs=("res",),
             needs=("run", "data.nc"), mentions=("3 points",)),
        Case("evaluate/resolution-unreachable", (*_with(EVAL, "--resolutions", "13"), "-o", "res"), outputs=("res",),
             needs=("run", "data.nc"), mentions=("reachable",)),
        Case("evaluate/output-existing-results", (*EVAL, "-o", "results"), expect="succeed", outputs=("results",),
             needs=("run", "data.nc", "results"), validate=_valid_results("results"),
             note="evaluating again replaces the earlier results"),
        Case("evaluate/output-folder-of-user-files", (*EVAL, "-o", "mine"), expect="succeed", outputs=("mine",),
             needs=("run", "data.nc"), setup=_folder("mine", "notes.txt"),
             validate=_both(_valid_results("mine"), _untouched("mine/notes.txt"))),
        Case("evaluate/output-is-a-file", (*EVAL, "-o", "notes.txt"), outputs=("notes.txt",),
             needs=("run", "data.nc"), setup=_write("notes.txt", "the user's notes\n")),
        Case("evaluate/output-symlink-to-victim", (*EVAL, "-o", "link"), outputs=("link",), needs=("run", "data.nc"),
             setup=_link("link", VICTIM)),
        Case("evaluate/output-trailing-slash", (*EVAL, "-o", "res/"), expect="succeed", outputs=("res",),
             needs=("run", "data.nc"), validate=_valid_results("res")),
        Case("evaluate/output-in-missing-folder", (*EVAL, "-o", "missing/sub/res"), expect="succeed",
             outputs=("missing",), needs=("run", "data.nc"), validate=_valid_results("missing/sub/res")),
        Case("evaluate/output-folder-is-a-file", (*EVAL, "-o", f"{VICTIM}/res"), outputs=(f"{VICTIM}/res",),
             needs=("run", "data.nc")),
        Case("evaluate/with-plots", (*_without(EVAL, "--no-plots"), "-o", "res"), expect="succeed", outputs=("res",),
             needs=("run", "data.nc"), validate=_valid_results("res")),
        Case("evaluate/device-banana", (*EVAL, "--device", "banana", "-o", "res"), outputs=("res",),
             needs=("run", "data.nc"), mentions=("banana",)),
        Case("evaluate/interpolation-unknown", (*EVAL, "--interpolation", "nearest", "-o", "res"), outputs=("res",),
             needs=("run", "data.nc")),
        # the CLI itself
        Case("cli/no-command", ("--verbose",)),
        Case("cli/unknown-command", ("bogus",)),
        Case("cli/benchmark-unknown", ("benchmark", "bogus")),
    ]  # fmt: skip
    return cases


def _pickled_pt(name: str) -> Setup:
    """A ``.pt`` file holding a pickled object besides its tensors (``torch.load(weights_only=True)`` refuses it)."""

    def setup(d: Path) -> None:
        import fractions

        import torch

        torch.save({"x": torch.ones(3, 9, 9), "y": torch.ones(3, 9, 9), "obj": fractions.Fraction(1, 3)}, d / name)

    return setup


# ------------------------------------------------------------------------------------------ 4. damaged data
def _bad_data_cases() -> list[Case]:
    """Every damage for ``info`` and ``train --data``; a selection for ``train --test-data`` and ``evaluate --data``
    (the same reader: checking every damage again there would only repeat those cases)."""
    test_data = ("truncated", "wrong-variables", "nan-in-u", "damaged-chunk")
    eval_data = (*test_data, "random-bytes", "negative-a", "attrs-resolution", "unfinished")
    cases = []
    for name, setup in BAD_DATA.items():
        cases.append(Case(f"info/data-{name}", ("info", "bad.nc"), needs=("data.nc",), setup=setup))
        train = (*_with(TRAIN, "--data", "bad.nc"), "-o", "newrun")
        cases.append(Case(f"train/data-{name}", train, outputs=("newrun",), needs=("data.nc",), setup=setup))
        if name in test_data:
            test = (*TRAIN, "--test-data", "bad.nc", "-o", "newrun")
            cases.append(Case(f"train/test-data-{name}", test, outputs=("newrun",), needs=("data.nc",), setup=setup))
        if name in eval_data:
            argv = (*_with(EVAL, "--data", "bad.nc"), "-o", "res")
            cases.append(Case(f"evaluate/data-{name}", argv, outputs=("res",), needs=("run", "data.nc"), setup=setup))
    return cases


# ------------------------------------------------------------------------------------------ 5. damaged runs
def _run_file_cases() -> list[Case]:
    """Each damage of a run file: ``evaluate`` refuses it naming the file; ``train --resume`` restores it."""
    damages: list[tuple[str, Setup, str, str]] = [
        # name, setup, resume expectation, words the evaluate refusal names
        ("config-invalid-json", _damage("run/config.json", "{not json"), "either", "config.json"),
        ("config-digit", _damage("run/config.json", "digit"), "either", "config.json"),
        ("config-n-test-str", _edit_json("run/config.json", lambda c: c.update(n_test="1")), "either", "n_test"),
        ("config-n-train-bool", _edit_json("run/config.json", lambda c: c.update(n_train=[True])), "either", "n_train"),
        ("config-unknown-key", _edit_json("run/config.json", lambda c: c.update(bogus=1)), "either", "bogus"),
        ("config-list", _damage("run/config.json", "[1, 2]"), "either", "config.json"),
        ("config-missing", _remove("run/config.json"), "either", "config.json"),
        ("normalizers-invalid-bytes", _write("run/normalizers.json", b"\xff\xfe"), "succeed", "normalizers.json"),
        ("normalizers-std-0", _edit_json("run/normalizers.json", _set_std(0.0)), "succeed", "normalizers.json"),
        ("normalizers-std-negative", _edit_json("run/normalizers.json", _set_std(-1.0)), "succeed", "normalizers.json"),
        ("normalizers-missing", _remove("run/normalizers.json"), "succeed", "normalizers.json"),
        ("model-config-invalid-json", _damage("run/model_config.json", "[1, 2"), "succeed", "model_config.json"),
        ("weights-truncated", _damage("run/model_state_dict.pt", "truncated"), "succeed", "model_state_dict.pt"),
        ("weights-empty", _damage("run/model_state_dict.pt", "empty"), "succeed", "model_state_dict.pt"),
        ("weights-missing", _remove("run/model_state_dict.pt"), "succeed", "model_state_dict"),
        ("log-bad-cell", _damage("run/log.csv", "bad-cell"), "succeed", "log.csv"),
        ("log-empty", _damage("run/log.csv", "empty"), "succeed", "log.csv"),
        ("run-json-list", _damage("run/run.json", "[1, 2]"), "succeed", "run.json"),
        ("run-json-random", _damage("run/run.json", "random"), "succeed", "run.json"),
    ]
    restored = "the resume state is verified: the file is restored from it"
    cases = []
    for name, setup, resume, words in damages:
        cases.append(_evaluate_run(name, setup, mentions=(words,)))
        note = restored if resume == "succeed" else restored + ", or a clear refusal for a file it does not hold"
        cases.append(_resume(name, setup, resume, note))
    states = [
        ("state-random", _damage("run/train_state.pt", "random")),
        ("state-truncated", _damage("run/train_state.pt", "truncated")),
        ("state-index-random", _damage("run/train_state.json", "random")),
        ("state-missing", _remove("run/train_state.pt")),
        ("state-and-index-missing", _remove("run/train_state.pt", "run/train_state.json")),
    ]
    for name, setup in states:
        cases.append(_resume(name, setup, "either", "no valid state of a 1-epoch run: a clear refusal or a retraining"))
        cases.append(_evaluate_run(name, setup, "either", note="evaluate reads the weights, not the resume state"))
    cases.append(
        Case(
            "evaluate/mano-nan-weights",
            ("evaluate", "mano", *EVAL[2:], "-o", "res"),
            outputs=("res",),
            needs=("mano", "data.nc"),
            setup=_nan_weights("mano"),
            mentions=("NaN",),
        )
    )
    return cases


def _resume(name: str, setup: Setup, expect: str, note: str) -> Case:
    """``train --resume`` of the fixture run after ``setup`` damaged it."""
    return Case(f"train/resume-{name}", (*TRAIN, "--resume", "-o", "run"), expect=expect, outputs=("run",),
                needs=("run", "data.nc"), setup=setup, validate=_valid_run("run"), note=note)  # fmt: skip


def _evaluate_run(
    name: str, setup: Setup, expect: str = "refuse", mentions: tuple[str, ...] = (), note: str = ""
) -> Case:
    """``evaluate`` of the fixture run after ``setup`` damaged it."""
    valid = _valid_results("res") if expect != "refuse" else None
    return Case(f"evaluate/run-{name}", (*EVAL, "-o", "res"), expect=expect, outputs=("res",),
                needs=("run", "data.nc"), setup=setup, validate=valid, mentions=mentions, note=note)  # fmt: skip


def _set_std(value: float) -> Callable[[dict], None]:
    def change(norms: dict) -> None:
        norms["y"]["std"] = [value]

    return change


# ------------------------------------------------------------------------------------------ 6. specs
def _spec_record() -> dict[str, Any]:
    """A tiny valid spec: 4 samples at 9², one FNO trained one epoch, evaluated at 9²."""
    return {
        "name": "hostile",
        "data": {"d": {"path": "data/d.nc", "generate": {"n_samples": 4, "resolution": 9}}},
        "train": {"data": "d", "resolutions": [9], "n_train": [2], "n_test": 1, "epochs": 1, "batch_size": 2},
        "models": {"fno": {"model": "fno", "kwargs": {"hidden_channels": 4, "n_modes": [4, 4], "n_layers": 1}}},
        "arms": {"a": {"models": ["fno"], "evaluate": {"data": "d", "resolutions": [9]}}},
    }


def _arm(record: dict) -> dict:
    return record["arms"]["a"]


def _target(**sides: dict) -> dict:
    left = {"run": "fno", "method": "direct", "grid": 9, **sides.get("left", {})}
    if "model" in left:
        left.pop("run")
    right = {"run": "self", "method": "resample", "grid": 9, **sides.get("right", {})}
    return {"label": "t", "arm": "a", "left": left, "right": right}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {v!r}")


def to_toml(record: dict[str, Any]) -> str:
    """A spec record as TOML (every table inline): enough for the sweep's hand-made specs."""
    return "".join(f"{json.dumps(str(k))} = {_toml_value(v)}\n" for k, v in record.items())


def _spec_setup(change: Callable[[dict, Path], Any] | None, text: str | None = None) -> Setup:
    """Write ``spec.toml``: the tiny spec changed by ``change(record, case_dir)``, or ``text`` as it is."""

    def setup(d: Path) -> None:
        if text is not None:
            (d / "spec.toml").write_text(text)
            return
        record = _spec_record()
        if change is not None:
            change(record, d)
        (d / "spec.toml").write_text(to_toml(record))

    return setup


def _spec_cases() -> list[Case]:
    study = ("study",)

    def spec(name: str, change: Callable[[dict, Path], Any], *mentions: str, **kw: Any) -> Case:
        return Case(f"spec/{name}", (*SPEC, "-o", "study"), outputs=study, setup=_spec_setup(change),
                    mentions=mentions, **kw)  # fmt: skip

    def models_key(key: str) -> Callable[[dict, Path], None]:
        def change(r: dict, d: Path) -> None:
            r["models"] = {key: r["models"]["fno"]}
            _arm(r)["models"] = [key]

        return change

    def study_link(r: dict, d: Path) -> None:
        (d / "elsewhere").mkdir()
        (d / "study").mkdir()
        (d / "study" / "runs").symlink_to("../elsewhere")
        _arm(r)["run_dir"] = "runs/{model}"

    return [
        Case("spec/valid-tiny", (*SPEC, "-o", "study"), expect="succeed", outputs=study, setup=_spec_setup(None),
             validate=_spec_done("study"), timeout=300, note="the only spec case that trains (one epoch at 9²)"),
        Case("spec/reads-shared-data-outside", (*SPEC, "-o", "study"), expect="succeed", outputs=study,
             needs=("data.nc",), setup=_spec_setup(lambda r, d: r["data"].update(d={"path": "../data.nc"})),
             validate=_spec_done("study"), timeout=300, note="a file a spec only reads may live anywhere"),
        spec("run-dir-dotdot-after-model", lambda r, d: _arm(r).update(run_dir="runs/{model}/../../.."), "run_dir"),
        spec("run-dir-bad-template", lambda r, d: _arm(r).update(run_dir="runs/{model}/{0}"), "template"),
        spec("run-dir-without-model", lambda r, d: _arm(r).update(run_dir="runs/x"), "{model}"),
        spec("evaluate-output-escapes", lambda r, d: _arm(r)["evaluate"].update(output="../results"), "output"),
        spec("data-path-escapes", lambda r, d: r["data"]["d"].update(path="../outside.nc"), "path"),
        spec("data-path-absolute", lambda r, d: r["data"]["d"].update(path=str(d / "abs.nc")), "path"),
        spec("models-key-escapes", models_key("../../escaped"), "cannot name a folder"),
        spec("models-key-slash", models_key("a/b"), "cannot name a folder"),
        spec("models-key-dotdot", models_key(".."), "cannot name a folder"),
        spec("link-inside-study-leads-out", study_link, "not inside",
             note="a link inside -o must not lead the runs out of it"),
        spec("target-unknown-run", lambda r, d: r.update(targets=[_target(left={"run": "nope"})]), "nope"),
        spec("target-grid-str", lambda r, d: r.update(targets=[_target(left={"grid": "9"})]), "grid"),
        spec("target-unknown-arm", lambda r, d: r.update(targets=[{**_target(), "arm": "zz"}]), "zz"),
        spec("arm-models-str", lambda r, d: _arm(r).update(models="fno"), "models"),
        spec("arm-unknown-model", lambda r, d: _arm(r).update(models=["nope"]), "nope"),
        spec("train-lr-str", lambda r, d: r["train"].update(lr="fast"), "lr"),
        spec("train-lr-nan", lambda r, d: r["train"].update(lr=float("nan")), "lr"),
        spec("train-epochs-0", lambda r, d: r["train"].update(epochs=0), "epochs"),
        spec("train-resolutions-int", lambda r, d: r["train"].update(resolutions=9), "resolutions"),
        spec("train-data-unknown", lambda r, d: r["train"].update(data="nope"), "nope"),
        spec("generate-n-samples-0", lambda r, d: r["data"]["d"]["generate"].update(n_samples=0), "n_samples"),
        spec("generate-unknown-key", lambda r, d: r["data"]["d"]["generate"].update(bogus=1), "bogus"),
        spec("model-unknown-registry", lambda r, d: r["models"]["fno"].update(model="nope"), "nope"),
        spec("model-kwargs-bad", lambda r, d: r["models"]["fno"]["kwargs"].update(hidden_channels=0),
             "hidden_channels"),
        spec("unknown-top-key", lambda r, d: r.update(bogus=1), "bogus"),
        spec("seeds-str", lambda r, d: r.update(seeds="0"), "seeds"),
        spec("seeds-negative", lambda r, d: r.update(seeds=[-1]), "seeds"),
        spec("tuning-trials-0", lambda r, d: r.update(tuning={"models": ["fno"], "trials": 0}), "trials"),
        spec("name-missing", lambda r, d: r.pop("name"), "name"),
        Case("spec/invalid-toml", (*SPEC, "-o", "study"), outputs=study, setup=_spec_setup(None, "name = [\n"),
             mentions=("TOML",)),
        Case("spec/missing", ("benchmark", "darcy", "--spec", "nope.toml", "-o", "study"), outputs=study,
             mentions=("nope.toml",)),
        Case("spec/is-a-folder", ("benchmark", "darcy", "--spec", "dir.toml", "-o", "study"), outputs=study,
             setup=_folder("dir.toml", "a.txt")),
        Case("spec/unknown-shipped-name", ("benchmark", "darcy", "--spec", "nope", "-o", "study"), outputs=study,
             mentions=("nope",)),
        Case("spec/models-unknown", (*SPEC, "--models", "nope", "-o", "study"), outputs=study,
             setup=_spec_setup(None), mentions=("nope",)),
        Case("spec/arms-unknown", (*SPEC, "--arms", "nope", "-o", "study"), outputs=study, setup=_spec_setup(None),
             mentions=("nope",)),
        Case("spec/output-is-a-file", (*SPEC, "-o", "notes.txt"), outputs=("notes.txt",),
             setup=_chain(_spec_setup(None), _write("notes.txt", "the user's notes\n"))),
        Case("spec/update-benchmarks-is-folder", (*SPEC, "--update-benchmarks", "bdir", "-o", "study"),
             outputs=("study", "bdir", "docs"), setup=_chain(_spec_setup(None), _folder("bdir", "keep.txt")),
             timeout=300, note="an unusable --update-benchmarks target (its plots go to docs/darcy-study beside "
             "it): refused, best before the study runs"),
    ]  # fmt: skip


def _spec_done(name: str) -> Callable[[Path, Path, str], str | None]:
    def check(d: Path, fixtures: Path, stdout: str) -> str | None:
        if not (d / name / "study.json").is_file() or not (d / name / "study.md").is_file():
            return f"{name}/study.json or study.md missing"
        return _valid_results(f"{name}/results/a")(d, fixtures, stdout)

    return check


# ------------------------------------------------------------------------------------------ 7. the Python API
_SOLVERS = "import numpy as np\nfrom solvers import *\n"
_TFNO = (
    "from mano_pde.models import create_model\ncreate_model('tfno', rank={rank}, hidden_channels=4, n_modes=[4, 4])\n"
)
_PREDICT = (
    "import json\nimport numpy as np\nimport torch\nfrom mano_pde.training import load_run\n"
    "p = load_run('run').predict({a})\n"
    "print('RESULT ' + json.dumps({{'shape': list(p.shape), 'finite': bool(torch.isfinite(p).all())}}))\n"
)


def _finite_prediction(shape: tuple[int, ...]) -> Callable[[dict], str | None]:
    def test(r: dict) -> str | None:
        if r["shape"] != list(shape):
            return f"prediction of shape {r['shape']}, expected {list(shape)}"
        return None if r["finite"] else "the prediction holds NaN or inf"

    return test


def _api_cases() -> list[Case]:
    model = "from mano_pde.models import create_model\nm = create_model({args})\nprint('RESULT {{}}')\n"
    solver_errors = ("ValueError", "TypeError")

    def api(name: str, code: str, **kw: Any) -> Case:
        return Case(f"api/{name}", code=code, **kw)

    def predict(name: str, a: str, expect: str = "refuse", shape: tuple[int, ...] = (), **kw: Any) -> Case:
        valid = _result(_finite_prediction(shape)) if expect != "refuse" else None
        return api(f"predict-{name}", _PREDICT.format(a=a), expect=expect, needs=("run",), validate=valid, **kw)

    def solver(name: str, code: str, expect: str = "refuse", **kw: Any) -> Case:
        return Case(f"solvers/{name}", code=_SOLVERS + code, expect=expect, errors=solver_errors, **kw)

    ones = "np.ones((9, 9))"
    solved = (
        "u = solve_darcy({a}{extra})\nok = bool(np.isfinite(u).all() and u[1:-1, 1:-1].min() > 0)\n"
        "print('RESULT ' + str(ok).lower())"
    )

    def positive(r: Any) -> str | None:
        return None if r is True else "u is not finite and positive inside"

    return [
        api("tfno-rank-0", _TFNO.format(rank="0")),
        api("tfno-rank-minus-3", _TFNO.format(rank="-3")),
        api("tfno-rank-nan", _TFNO.format(rank="float('nan')")),
        api("tfno-rank-0.5", _TFNO.format(rank="0.5") + "print('RESULT {}')", expect="succeed"),
        api("create-model-unknown", model.format(args="'nope'"), mentions=("nope",)),
        api("create-model-bad-kwarg", model.format(args="'fno', bogus=1"), mentions=("bogus",)),
        api("create-model-str-width", model.format(args="'fno', hidden_channels='8'"), mentions=("hidden_channels",)),
        api("create-model-float-width", model.format(args="'fno', hidden_channels=8.5"), mentions=("hidden_channels",)),
        api("create-model-bool-width", model.format(args="'fno', hidden_channels=True"),
            mentions=("hidden_channels",)),
        api("create-model-nan-width", model.format(args="'fno', hidden_channels=float('nan')")),
        api("create-model-huge-width", model.format(args=f"'fno', hidden_channels={HUGE_INT}"), timeout=60),
        api("create-model-modes-0", model.format(args="'fno', n_modes=[0, 0]"), mentions=("n_modes",)),
        api("create-model-heads-3", model.format(args="'mano', n_heads=3"), mentions=("n_heads",)),
        api("create-model-dropout-1.5", model.format(args="'window-attention', dropout=1.5"), mentions=("dropout",)),
        api("create-model-position-bias-str", model.format(args="'mano', position_bias='False'"),
            mentions=("position_bias",)),
        api("create-model-valid", model.format(args="'mano', hidden_channels=8, n_heads=2, n_layers=1"),
            expect="succeed"),
        predict("numpy-float64", "np.full((2, 1, 17, 17), 5.0)", "succeed", (2, 1, 17, 17)),
        predict("torch-float64", "torch.full((2, 1, 17, 17), 5.0, dtype=torch.float64)", "succeed", (2, 1, 17, 17)),
        predict("zero-shot-33", "np.full((1, 1, 33, 33), 5.0, 'f4')", "succeed", (1, 1, 33, 33)),
        predict("coarse-9", "np.full((1, 1, 9, 9), 5.0, 'f4')", "succeed", (1, 1, 9, 9)),
        predict("two-channels", "np.ones((1, 2, 17, 17), 'f4')", mentions=("[1, 2, 17, 17]",)),
        predict("non-square", "np.ones((1, 1, 17, 9), 'f4')", mentions=("17, 9",)),
        predict("grid-2x2", "np.ones((1, 1, 2, 2), 'f4')"),
        predict("zero-permeability", "np.zeros((1, 1, 17, 17), 'f4')", mentions=("<= 0",)),
        predict("nan", "np.full((1, 1, 17, 17), np.nan, 'f4')", mentions=("NaN",)),
        predict("inf", "np.full((1, 1, 17, 17), np.inf, 'f4')", mentions=("NaN or infinite",)),
        predict("list", "[[1.0]]"),
        predict("int-array", "np.full((1, 1, 17, 17), 5)", "either", (1, 1, 17, 17),
                note="integers are real numbers: converted, or refused clearly"),
        predict("complex", "np.ones((1, 1, 17, 17), complex)"),
        predict("batch-size-0", "np.ones((1, 1, 17, 17), 'f4'), batch_size=0", mentions=("batch_size",)),
        predict("sample-ids-too-many", "np.ones((1, 1, 17, 17), 'f4'), sample_ids=[1, 2]", mentions=("sample_ids",)),
        predict("1d", "np.ones(17, 'f4')"),
        api("load-run-missing", "from mano_pde.training import load_run\nload_run('nope')", mentions=("nope",)),
        api("load-run-data-file", "from mano_pde.training import load_run\nload_run('data.nc')", needs=("data.nc",)),
        api("generate-trailing-slash", "from mano_pde.data import DarcyConfig, generate_darcy\n"
            "generate_darcy(DarcyConfig(n_samples=2, resolution=5), 'newdir/', progress=False)", outputs=("newdir",),
            mentions=("folder",)),
        api("darcy-config-resolution-bool", "from mano_pde.data import DarcyConfig\nDarcyConfig(resolution=True)"),
        api("darcy-config-n-samples-2.5", "from mano_pde.data import DarcyConfig\nDarcyConfig(n_samples=2.5)"),
        api("darcy-config-n-samples-str", "from mano_pde.data import DarcyConfig\nDarcyConfig(n_samples='3')",
            mentions=("'3' (str)",), note="the message must show that the 3 was a string"),
        api("darcy-config-map-unknown", "from mano_pde.data import DarcyConfig\nDarcyConfig(permeability_map='x')"),
        api("train-config-resolutions-str", "from mano_pde.training import TrainConfig\n"
            "TrainConfig(model='fno', data='data.nc', resolutions='17', n_train=[4])", mentions=("resolutions",)),
        api("train-config-resolutions-float", "from mano_pde.training import TrainConfig\n"
            "TrainConfig(model='fno', data='data.nc', resolutions=[17.5], n_train=[4])", mentions=("resolutions",)),
        api("train-config-lr-str", "from mano_pde.training import TrainConfig\n"
            "TrainConfig(model='fno', data='data.nc', resolutions=[17], n_train=[4], lr='0.001')", mentions=("lr",)),
        api("train-config-model-unknown", "from mano_pde.training import TrainConfig\n"
            "TrainConfig(model='nope', data='data.nc', resolutions=[17], n_train=[4])", mentions=("nope",)),
        api("open-darcy-nan", "from mano_pde.data import open_darcy\nopen_darcy('bad.nc')", needs=("data.nc",),
            setup=BAD_DATA["nan-in-u"], mentions=("NaN",)),
        api("load-arrays-damaged-chunk", "from mano_pde.data import load_arrays\nload_arrays('bad.nc')",
            needs=("data.nc",), setup=BAD_DATA["damaged-chunk"], mentions=("damaged",)),
        api("open-darcy-resolution-33.5", "from mano_pde.data import open_darcy\nopen_darcy('data.nc', 33.5)",
            needs=("data.nc",), mentions=("integer",)),
        solver("lognormal-nan-field", "lognormal_map(np.array([[np.nan, 0.0], [0.0, 0.0]]))"),
        solver("lognormal-underflow", "lognormal_map(np.full((3, 3), -800.0))"),
        solver("lognormal-sigma-nan", "lognormal_map(np.ones((3, 3)), float('nan'))"),
        solver("piecewise-high-nan", "piecewise_constant_map(np.ones((3, 3)), high=float('nan'))"),
        solver("piecewise-low-negative", "piecewise_constant_map(np.ones((3, 3)), low=-1.0)"),
        solver("piecewise-inf-field", "piecewise_constant_map(np.full((3, 3), np.inf))"),
        solver("grf-alpha-nan", "sample_grf(9, np.random.default_rng(0), alpha=float('nan'))"),
        solver("grf-tau-0", "sample_grf(9, np.random.default_rng(0), tau=0.0)"),
        solver("grf-s-0", "sample_grf(0, np.random.default_rng(0))"),
        solver("solve-nan", "solve_darcy(np.full((9, 9), np.nan))"),
        solver("solve-negative", "solve_darcy(-np.ones((9, 9)))"),
        solver("solve-zero", "solve_darcy(np.zeros((9, 9)))"),
        solver("solve-non-square", "solve_darcy(np.ones((9, 8)))"),
        solver("solve-2x2", "solve_darcy(np.ones((2, 2)))"),
        solver("solve-f-nan", f"solve_darcy({ones}, float('nan'))"),
        solver("solve-f-wrong-shape", f"solve_darcy({ones}, np.ones((5, 5)))"),
        solver("solve-masked", f"solve_darcy(np.ma.masked_array({ones}, mask=np.eye(9, dtype=bool)))"),
        solver("solve-tiny-a", "solve_darcy(np.full((9, 9), 1e-300))"),
        solver("solve-huge-a", "solve_darcy(np.full((9, 9), 1e300))"),
        solver("solve-contrast-1e13", "a = np.ones((9, 9)); a[4, 4] = 1e13\nsolve_darcy(a)"),
        solver("solve-permc-bogus", f"solve_darcy({ones}, permc_spec='BOGUS')"),
        solver("solve-face-bogus", f"solve_darcy({ones}, face='bogus')"),
        solver("solve-valid", solved.format(a=ones, extra=""), "succeed", validate=_result(positive)),
        solver("solve-valid-list-input", solved.format(a="[[1.0] * 9] * 9", extra=""), "either",
               validate=_result(positive), note="a nested list is array-like: solved, or refused clearly"),
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------ the catalogue
def catalogue() -> list[Case]:
    """Every case of the sweep, ids unique (checked)."""
    cases = [
        *_issue_cases(),
        *_numeric_cases(),
        *_path_cases(),
        *_bad_data_cases(),
        *_run_file_cases(),
        *_spec_cases(),
        *_api_cases(),
    ]
    seen: set[str] = set()
    for c in cases:
        if c.id in seen:
            raise ValueError(f"duplicate case id {c.id}")
        seen.add(c.id)
    return cases
