"""The Darcy study runs end to end on a tiny configuration and writes its BENCHMARKS.md section."""

import csv
import dataclasses
import json
from collections import Counter

import pytest

from mano_pde.benchmarks.darcy import (
    CPU_STUDY,
    MARK_BEGIN,
    MARK_END,
    StudyConfig,
    learning_curve,
    run_study,
    study_markdown,
    train_file_samples,
    update_benchmarks,
)
from mano_pde.data import open_darcy

TINY = StudyConfig(
    name="tiny",
    data_resolution=33,
    n_train=12,
    n_test=6,
    train_resolution=9,
    test_resolutions=[9, 17, 33],
    multi_resolutions=[9, 17],
    multi_n_train=[12, 4],
    epochs=1,
    batch_size=4,
    lr=1e-3,
    scheduler="cosine",
    n_val=4,
    models={
        "mano": {"hidden_channels": 8, "n_layers": 1, "window_size": 4, "n_heads": 2},
        # a second MANO run with other options, labelled by its key (the registry model is named inside)
        "mano-bias": {
            "model": "mano",
            "hidden_channels": 8,
            "n_layers": 1,
            "window_size": 4,
            "n_heads": 2,
            "position_bias": True,
        },
        "fno": {"hidden_channels": 8, "n_modes": [4, 4], "n_layers": 1},
        "fno-periodic-grid": {
            "model": "fno",
            "hidden_channels": 8,
            "n_modes": [4, 4],
            "n_layers": 1,
            "positional_embedding": "grid",
        },
    },
    multi_models=["mano"],
)


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
        ("multi", "mano", "direct"): 3,  # fno is not in multi_models
        ("multi", "mano", "resample"): 1,  # from the finest training grid (17²): 33² only
        ("multi", "mano", "ref-grid"): 1,  # above the finest training grid (17²) only
    }
    assert summary["parameters"]["mano"] > 0 and summary["parameters"]["fno"] > 0
    saved = json.loads((tmp_path / "study" / "study.json").read_text())
    assert saved["config"]["train_seed"] != saved["config"]["test_seed"]
    assert summary["eval_wall_s"] > 0 and summary["data"]["generation_s"] > 0
    md = study_markdown(summary, ["docs/darcy-study/single-error_vs_resolution.png"])
    assert "![single-error_vs_resolution](docs/darcy-study/single-error_vs_resolution.png)" in md
    assert "Wall time of the whole study" in md
    assert "| single | mano |" in md and "| ref-grid |" in md and "| multi | fno |" not in md
    assert "`mano` error at 9² ≤ FNO's" in md and "`mano-bias` ref-grid error at 33² ≤ 1.2 × its 9² error" in md
    assert "| single | mano-bias |" in md
    assert "Coordinates: direct error with neuralop's periodic grid embedding" in md and "| fno | " in md
    assert (tmp_path / "study" / "results" / "learning_curves.png").stat().st_size > 0
    # train and test sets come from different files with different seeds
    assert summary["data"]["train"] != summary["data"]["test"]

    # validation split: samples 12-15 of the training file; learning curves in every run's log.csv
    with open_darcy(summary["data"]["train"]) as ds:
        assert ds.sizes["sample"] == train_file_samples(TINY) == 12 + 4
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
    assert again["train_wall_s"] == summary["train_wall_s"]  # from the runs' logs, not this invocation
    assert again["data"]["generation_s"] == summary["data"]["generation_s"]  # recorded when the files were made
    assert again["validation"] == summary["validation"]

    # a training file made for a smaller validation split is reported, not silently reused
    with pytest.raises(ValueError, match="holds 16 samples but the tiny study needs 20"):
        run_study(dataclasses.replace(TINY, n_val=8), tmp_path / "study", workers=1, progress=False)


def test_study_configs_hold_out_validation_data():
    assert CPU_STUDY.n_val == 32 and train_file_samples(CPU_STUDY) == 256 + 32


def test_tuning_compares_variants_on_validation_only(tmp_path):
    from mano_pde.benchmarks.darcy import run_tuning

    small = {"hidden_channels": 8, "n_layers": 1, "window_size": 4, "n_heads": 2}
    cfg = dataclasses.replace(
        TINY,
        tuning={"t-a": {"model": "mano", **small}, "t-b": {"model": "mano", **small, "level_rule": "window"}},
        tuning_epochs=1,
    )
    summary = run_tuning(cfg, tmp_path / "tune", workers=1, progress=False)
    assert set(summary["validation"]) == {"tune/t-a", "tune/t-b"}
    md = (tmp_path / "tune" / "tuning.md").read_text()
    assert "| t-b |" in md and "best val epoch" in md and "test_rel_l2" not in md
    assert (tmp_path / "tune" / "results" / "tuning_curves.png").stat().st_size > 0
    with pytest.raises(ValueError, match="own keys"):
        run_tuning(dataclasses.replace(cfg, tuning={"mano": small}), tmp_path / "x", workers=1, progress=False)
