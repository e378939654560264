"""The Darcy study runs end to end on a tiny configuration and writes its BENCHMARKS.md section."""

import copy
import csv
import json
from collections import Counter

import pytest

from mano_pde.benchmarks.darcy import MARK_BEGIN, MARK_END, run_study, run_tuning, update_benchmarks
from mano_pde.data import open_darcy
from mano_pde.errors import UserInputError
from mano_pde.experiments import ExperimentSpec, load_spec, plan_runs, run_status
from mano_pde.experiments.report import experiment_markdown, learning_curve

_MANO = {"hidden_channels": 8, "n_layers": 1, "window_size": 4, "n_heads": 2}
_FNO = {"hidden_channels": 8, "n_modes": [4, 4], "n_layers": 1}

#: The CPU study's shape at a tiny size: train file with a validation block, a test file of another seed, arms
#: `single`, `multi` (a mix of grids, MANO only) and an optional tuning arm, a periodic-grid baseline, the targets.
TINY_RECORD = {
    "name": "tiny",
    "data": {
        "train": {
            "path": "data/train.nc",
            "generate": {"n_samples": 16, "resolution": 33, "seed": 0, "face_average": "arithmetic"},
        },
        "test": {
            "path": "data/test.nc",
            "generate": {"n_samples": 6, "resolution": 33, "seed": 1, "face_average": "arithmetic"},
        },
    },
    "train": {
        "data": "train",
        "test_data": "test",
        "resolutions": [9],
        "n_train": [12],
        "n_val": 4,
        "n_test": 6,
        "epochs": 1,
        "batch_size": 4,
        "lr": 1e-3,
        "scheduler": "cosine",
    },
    "models": {
        "mano": {"model": "mano", "kwargs": _MANO},
        # a second MANO run with other options, labelled by its key (the registry model is named inside)
        "mano-bias": {"model": "mano", "kwargs": {**_MANO, "position_bias": True}},
        "fno": {"model": "fno", "kwargs": _FNO},
        "fno-periodic-grid": {"model": "fno", "kwargs": {**_FNO, "positional_embedding": "grid"}},
        "tune-a": {"model": "fno", "kwargs": _FNO},
    },
    "arms": {
        "single": {
            "models": ["mano", "mano-bias", "fno", "fno-periodic-grid"],
            "evaluate": {"data": "test", "resolutions": [9, 17, 33], "n_test": 6},
        },
        "multi": {
            "models": ["mano"],
            "train": {"resolutions": [9, 17], "n_train": [12, 4]},
            "evaluate": {"data": "test", "resolutions": [9, 17, 33], "n_test": 6},
        },
        "tune": {"models": ["tune-a"], "train": {"epochs": 2}, "optional": True},
    },
    "targets": [
        {
            "label": "error at 9² ≤ FNO's",
            "arm": "single",
            "left": {"model": "mano", "method": "direct", "grid": 9},
            "right": {"run": "fno", "method": "direct", "grid": 9},
        },
        {
            "label": "ref-grid error at 33² ≤ 1.2 × its 9² error",
            "arm": "single",
            "left": {"model": "mano", "method": "ref-grid", "grid": 33},
            "right": {"run": "self", "method": "direct", "grid": 9},
            "factor": 1.2,
        },
    ],
}
TINY = ExperimentSpec.from_dict(TINY_RECORD)


def test_tiny_study_end_to_end(tmp_path):
    summary = run_study(TINY, tmp_path / "study", workers=1, progress=False)
    recs = summary["records"]
    counts = Counter((r["arm"], r["run"], r["method"]) for r in recs)
    assert {r["model"] for r in recs if r["run"] == "mano-bias"} == {"mano"}
    assert counts == {
        ("single", "mano-bias", "direct"): 3,
        ("single", "mano-bias", "resample"): 2,
        ("single", "mano-bias", "ref-grid"): 2,
        ("single", "mano", "direct"): 3,
        ("single", "mano", "resample"): 2,  # 17², 33²
        ("single", "mano", "ref-grid"): 2,  # above the training grid only
        ("single", "fno", "direct"): 3,
        ("single", "fno", "resample"): 2,
        ("single", "fno-periodic-grid", "direct"): 3,
        ("single", "fno-periodic-grid", "resample"): 2,
        ("multi", "mano", "direct"): 3,  # fno is not in the multi arm
        ("multi", "mano", "resample"): 1,  # from the finest training grid (17²): 33² only
        ("multi", "mano", "ref-grid"): 1,  # above the finest training grid (17²) only
    }
    # the optional tuning arm does not run by default
    assert set(summary["parameters"]) == {"mano", "mano-bias", "fno", "fno-periodic-grid"}
    assert not (tmp_path / "study" / "runs" / "tune").exists()
    saved = json.loads((tmp_path / "study" / "study.json").read_text())
    data = saved["config"]["data"]
    assert data["train"]["generate"]["seed"] != data["test"]["generate"]["seed"]
    assert saved["runs"]["single/mano"]["status"] == "new" and len(saved["runs"]["single/mano"]["config_digest"]) == 64
    assert summary["eval_wall_s"] > 0 and summary["data"]["generation_s"] > 0
    md = experiment_markdown(summary, ["docs/darcy-study/single-error_vs_resolution.png"])
    assert md == experiment_markdown(saved, ["docs/darcy-study/single-error_vs_resolution.png"])  # from the JSON too
    assert (tmp_path / "study" / "study.md").read_text() == experiment_markdown(summary) + "\n"
    assert "![single-error_vs_resolution](docs/darcy-study/single-error_vs_resolution.png)" in md
    assert "Wall time of the whole experiment" in md
    assert "`train`: 16 samples at 33² (seed 0;" in md and "`test`: 6 samples at 33² (seed 1;" in md
    assert "arm `single`: 12 at 9²; arm `multi`: 12 at 9² + 4 at 17²" in md
    assert "| single | mano |" in md and "| ref-grid |" in md and "| multi | fno |" not in md
    # the spec's targets, checked against the numbers (met or missed, never absent)
    m0 = next(
        r["rel_l2_mean"]
        for r in recs
        if (r["arm"], r["run"], r["method"], r["test_resolution"]) == ("single", "mano", "direct", 9)
    )
    f0 = next(
        r["rel_l2_mean"]
        for r in recs
        if (r["arm"], r["run"], r["method"], r["test_resolution"]) == ("single", "fno", "direct", 9)
    )
    verdict = "met" if m0 <= f0 else "**missed**"
    assert f"- {verdict}: `mano` error at 9² ≤ FNO's ({m0:.4f} vs {f0:.4f})" in md
    assert "`mano-bias` ref-grid error at 33² ≤ 1.2 × its 9² error" in md
    assert "| single | mano-bias |" in md
    assert "Coordinates: direct error with neuralop's periodic grid embedding" in md and "| fno | " in md
    assert (tmp_path / "study" / "results" / "learning_curves.png").stat().st_size > 0
    # train and test sets come from different files with different seeds
    assert summary["data"]["train"] != summary["data"]["test"]

    # validation split: samples 12-15 of the training file; learning curves in every run's log.csv
    with open_darcy(summary["data"]["train"]) as ds:
        assert ds.sizes["sample"] == 12 + 4
    assert set(summary["validation"]) == {
        "single/mano",
        "single/mano-bias",
        "single/fno",
        "single/fno-periodic-grid",
        "multi/mano",
    }
    for key, v in summary["validation"].items():
        run_dir = tmp_path / "study" / "runs" / key
        with open(run_dir / "log.csv", newline="") as fh:
            header = next(csv.reader(fh))
        assert not any(h.startswith("test_") for h in header)  # the test file is scored once, at the end
        curve = learning_curve(run_dir)
        assert v["learning_curve"] == curve and curve["epoch"] == [1]
        assert v["val_samples"] == [12, 16] and v["best_val_epoch"] == 1
    assert list(learning_curve(tmp_path / "study" / "runs" / "multi" / "mano")) == [
        "epoch",
        "train_loss",
        "val_rel_l2_9",
        "val_rel_l2_17",
    ]
    assert "| single | mano | 1 |" in md and "best val epoch" in md

    bench = tmp_path / "BENCHMARKS.md"
    bench.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    update_benchmarks(bench, md)
    update_benchmarks(bench, "second version")
    text = bench.read_text()
    assert text.count(MARK_BEGIN) == 1 and text.count(MARK_END) == 1
    assert "second version" in text and "| single | mano |" not in text and "kept" in text

    # rerunning reuses data and finished runs (resumable study): no retraining, same numbers
    again = run_study(TINY, tmp_path / "study", workers=1, progress=False)
    assert [r["rel_l2_mean"] for r in again["records"]] == [r["rel_l2_mean"] for r in recs]
    assert {v["status"] for v in again["runs"].values()} == {"finished"}
    assert again["train_wall_s"] == summary["train_wall_s"]  # from the runs' logs, not this invocation
    assert again["data"]["generation_s"] == summary["data"]["generation_s"]  # recorded when the files were made
    assert again["validation"] == summary["validation"]

    # a training file made for a larger validation split is reported, not silently reused
    bigger = copy.deepcopy(TINY_RECORD)
    bigger["data"]["train"]["generate"]["n_samples"] = 20
    with pytest.raises(UserInputError, match="holds 16 samples but the tiny experiment needs 20"):
        run_study(ExperimentSpec.from_dict(bigger), tmp_path / "study", workers=1, progress=False)
    # ... and a file of another seed too
    other = copy.deepcopy(TINY_RECORD)
    other["data"]["test"]["generate"]["seed"] = 5
    with pytest.raises(UserInputError, match=r"test\.nc \(data\.test\) was made with other generator parameters"):
        run_study(ExperimentSpec.from_dict(other), tmp_path / "study", workers=1, progress=False)
    # a finished run folder is never reused for another configuration: the error names the difference
    longer = TINY.select(epochs=2)
    with pytest.raises(UserInputError, match=r"runs/single/mano holds another run than single/mano .*epochs: saved 1"):
        run_study(longer, tmp_path / "study", workers=1, progress=False)


def test_run_status_one_rule(tmp_path):
    """New -> resume (interrupted: fewer epochs in the verified state) -> finished; a damaged state resumes."""
    from mano_pde.training import train

    spec = TINY.select(arms=["single"], models=["fno"])
    out = tmp_path / "exp"
    (run,) = plan_runs(spec, out)
    assert run_status(run) == "new"
    run_study(spec, out, workers=1, progress=False)
    assert run_status(run) == "finished"
    assert "Targets" not in (out / "study.md").read_text()  # the targets name MANO runs: none ran, no empty list
    (run.run_dir / "final_metrics.json").unlink()  # a run with a validation split is finished once it is scored
    assert run_status(run) == "resume"
    train(run.config, run.run_dir, resume=True, progress=False)
    assert run_status(run) == "finished"
    (run.run_dir / "train_state.pt").write_bytes(b"damaged")
    (run.run_dir / "train_state.prev.pt").unlink(missing_ok=True)
    assert run_status(run) == "resume"


def test_shipped_specs_load_and_plan(tmp_path):
    cpu = load_spec("darcy-cpu")
    assert cpu.default_arms() == ["single", "multi"] and cpu.arms["tune"].optional
    assert cpu.train["n_val"] == 32 and cpu.data["train"].generate["n_samples"] == 256 + 32
    runs = plan_runs(cpu, tmp_path)
    assert {(r.arm, r.key) for r in runs} >= {("single", "global-attention-periodic-grid"), ("multi", "fno")}
    assert all(r.config.test_data.endswith("darcy_129_test_seed1.nc") for r in runs)
    full = load_spec("darcy-full")
    assert full.train["resolutions"] == [85] and full.arms["single"].evaluate.resolutions == [85, 141, 211, 421]
    # the shipped specs are package data (they must be in the wheel: pyproject's package-data)
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "specs/*.toml" in pyproject["tool"]["setuptools"]["package-data"]["mano_pde.experiments"]


@pytest.mark.parametrize(
    "change, phrase",
    [
        (lambda r: r["arms"]["single"]["models"].append("vit"), "arm 'single' trains unknown model"),
        (lambda r: r["train"].update(data="nope"), "train.data = 'nope' names no entry of data"),
        (lambda r: r["arms"]["single"].update(colour="red"), r"unknown key\(s\) \['colour'\] in arms.single"),
        (lambda r: r["targets"][0].update(arm="triple"), "names unknown arm 'triple'"),
        (lambda r: r["targets"][0]["right"].pop("grid"), "each side needs run .*, method and grid"),
    ],
)
def test_bad_specs_are_named(change, phrase):
    record = copy.deepcopy(TINY_RECORD)
    change(record)
    with pytest.raises(UserInputError, match=phrase):
        ExperimentSpec.from_dict(record)


def test_spec_file_errors(tmp_path):
    with pytest.raises(UserInputError, match="no experiment spec 'darcy-gpu'; shipped specs"):
        load_spec("darcy-gpu")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(UserInputError, match="is not a valid TOML experiment spec"):
        load_spec(bad)
    with pytest.raises(UserInputError, match=r"unknown model\(s\) \['vit'\]"):
        TINY.select(models=["vit"])
    with pytest.raises(UserInputError, match="epochs"):
        TINY.select(epochs=0)


def test_tuning_compares_variants_on_validation_only(tmp_path):
    summary = run_tuning(TINY, tmp_path / "tune", workers=1, progress=False)
    assert set(summary["validation"]) == {"tune/tune-a"} and summary["records"] == []
    assert summary["validation"]["tune/tune-a"]["epoch"] == 2  # the arm's own epochs
    md = (tmp_path / "tune" / "tuning.md").read_text()
    assert "| tune-a |" in md and "best val epoch" in md and "test_rel_l2" not in md
    assert (tmp_path / "tune" / "results" / "tuning_curves.png").stat().st_size > 0
    with pytest.raises(UserInputError, match="has no tuning arm 'tuning'"):
        run_tuning(TINY, tmp_path / "x", arm="tuning", workers=1, progress=False)
