"""The seeded, equal-budget-tuned study: bootstrap verdicts, seeds as a spec axis, Optuna tuning (resumable), the
whole `benchmark darcy` pipeline on tiny grids."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from mano_pde.errors import UserInputError
from mano_pde.experiments import ExperimentSpec, load_spec, plan_runs
from mano_pde.experiments.statistics import ONE_SEED, compare, paired_bootstrap, seed_interval

optuna = pytest.importorskip("optuna")

_MANO = {"hidden_channels": 8, "n_layers": 1, "window_size": 4, "n_heads": 2}
_FNO = {"hidden_channels": 8, "n_modes": [4, 4], "n_layers": 1}

SEEDED_RECORD = {
    "name": "tiny-seeded",
    "seeds": [0, 1],
    "data": {
        "train": {
            "path": "data/train.nc",
            "generate": {"n_samples": 14, "resolution": 17, "seed": 0, "face_average": "arithmetic"},
        },
        "test": {
            "path": "data/test.nc",
            "generate": {"n_samples": 5, "resolution": 17, "seed": 1, "face_average": "arithmetic"},
        },
    },
    "train": {
        "data": "train",
        "test_data": "test",
        "resolutions": [9],
        "n_train": [10],
        "n_val": 4,
        "n_test": 5,
        "epochs": 2,
        "batch_size": 4,
        "lr": 1e-3,
    },
    "tuning": {
        "models": ["mano", "fno"],
        "trials": 2,
        "epochs": 1,
        "max_parameters": 20_000,
        "space": {
            "mano": {"hidden_channels": [8], "n_layers": [1], "window_size": [4], "factor": [2]},
            # width 64 is over the cap: pruned before training, not counted as a trial
            "fno": {"hidden_channels": [8, 64], "n_modes": [4], "n_layers": [1], "batch_size": [4]},
        },
    },
    "compare": {"model": "mano", "zero_shot": [17]},
    "models": {"mano": {"model": "mano", "kwargs": _MANO}, "fno": {"model": "fno", "kwargs": _FNO}},
    "arms": {
        "single": {"models": ["mano", "fno"], "evaluate": {"data": "test", "resolutions": [9, 17], "n_test": 5}},
        "multi": {
            "models": ["mano"],
            "train": {"resolutions": [9, 17], "n_train": [10, 3]},
            "evaluate": {"data": "test", "resolutions": [9, 17], "n_test": 5},
        },
    },
}


# ---------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_clearly_better_worse_and_within_noise():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.03, 0.05, size=(3, 64))  # 3 seeds x 64 samples
    better = paired_bootstrap(base - 0.01, base + rng.normal(0, 1e-4, base.shape))
    assert better["verdict"] == "better" and better["high"] < 0
    assert better["low"] <= better["difference"] <= better["high"]
    assert better["difference"] == pytest.approx(-0.01, abs=1e-4)
    assert paired_bootstrap(base + 0.01, base)["verdict"] == "worse"
    # two sides from the same distribution (independent noise larger than any shift): within noise
    a = base + rng.normal(0, 0.01, base.shape)
    b = base + rng.normal(0, 0.01, base.shape)
    same = paired_bootstrap(a, b)
    assert same["verdict"] == "within noise" and same["low"] < 0 < same["high"]
    # a constant difference on every seed and sample: the interval is that difference exactly
    const = paired_bootstrap(base + 0.002, base, paired_seeds=True)
    assert const["low"] == pytest.approx(0.002) and const["high"] == pytest.approx(0.002)
    # deterministic (seeded); another bootstrap seed moves the interval a little
    assert paired_bootstrap(a, b) == same and paired_bootstrap(a, b, seed=5)["low"] != same["low"]


def test_bootstrap_resamples_seeds():
    """A seed-to-seed spread larger than the gap makes it `within noise` although every seed's samples agree."""
    samples = np.linspace(0.03, 0.05, 40)
    left = np.stack([samples + s for s in (-0.01, 0.0, 0.01)])  # seeds spread by ±0.01 around the right side's
    right = np.stack([samples - 0.001 + s for s in (0.012, -0.012, 0.0)])
    assert paired_bootstrap(left, right)["verdict"] == "within noise"
    # ignoring the seeds (one row each: the seed means) would call the same 0.001 gap significant
    assert paired_bootstrap(left.mean(0), right.mean(0))["verdict"] == "worse"


def test_bootstrap_refuses_bad_input():
    with pytest.raises(UserInputError, match="same samples"):
        paired_bootstrap(np.ones((2, 4)), np.ones((2, 5)))
    with pytest.raises(UserInputError, match="paired seeds"):
        paired_bootstrap(np.ones((2, 4)), np.ones((3, 4)), paired_seeds=True)
    with pytest.raises(UserInputError, match="non-finite"):
        paired_bootstrap([[np.nan, 1.0]], [[1.0, 1.0]])


def test_seed_interval_on_known_cases():
    """Student t over the seed means: paired (n − 1 df) and Welch (Welch–Satterthwaite df), by hand."""
    samples = np.linspace(0.03, 0.05, 8)
    left = np.stack([samples + d for d in (1.0, 2.0, 3.0)])  # seed means differ from the right side's by 1, 2, 3
    right = np.stack([samples] * 3)
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2) × sd 1 / √3
    paired = seed_interval(left, right, paired_seeds=True)
    assert paired["seed_df"] == 2
    assert paired["seed_low"] == pytest.approx(2 - half) and paired["seed_high"] == pytest.approx(2 + half)
    # unpaired, and the right side has no spread: Welch gives the same 2 df and interval
    welch = seed_interval(left, right)
    assert welch["seed_df"] == pytest.approx(2)
    assert welch["seed_low"] == pytest.approx(2 - half) and welch["seed_high"] == pytest.approx(2 + half)
    assert seed_interval(left[:1], right[:1], paired_seeds=True) is None and seed_interval(left, right[:1]) is None
    with pytest.raises(UserInputError, match="same samples"):
        seed_interval(left, right[:, :4])


def test_a_difference_is_claimed_only_when_seeds_and_bootstrap_agree():
    samples = np.linspace(0.03, 0.05, 64)
    right = np.stack([samples] * 3)
    # every seed 0.001 to 0.003 worse: the bootstrap (seed factor from 3 draws) says worse, the t interval over 3
    # seeds (mean 0.002, sd 0.001, t 4.30) contains 0
    left = np.stack([samples + d for d in (0.001, 0.002, 0.003)])
    spread = compare(left, right, paired_seeds=True)
    assert spread["bootstrap_verdict"] == "worse" and spread["seed_low"] < 0 < spread["seed_high"]
    assert spread["verdict"] == "within noise"
    # a steady gap on every seed: both agree
    steady = compare(right - 0.01, right + np.array([[0.0], [1e-4], [-1e-4]]))
    assert steady["bootstrap_verdict"] == "better" and steady["seed_high"] < 0 and steady["verdict"] == "better"
    one = compare(left[:1], right[:1], paired_seeds=True)
    assert one["verdict"] == ONE_SEED and one["seed_low"] is None and one["bootstrap_verdict"] == "worse"


def test_bootstrap_alone_overclaims_with_three_seeds():
    """Seeded null simulation (no true difference; seed spread 0.004 and per-sample noise 0.003 around shared test
    samples, 3 seeds × 64 samples per side): the bootstrap interval alone excludes 0 far more often than 5 %;
    `compare`, which also asks the seed t interval, stays at about the nominal rate. The module docstring quotes
    this test."""
    rng = np.random.default_rng(0)
    reps = 120
    for paired in (False, True):
        boot = both = 0
        for r in range(reps):
            samples = rng.uniform(0.02, 0.06, 64)
            seed_left = rng.normal(0, 0.004, (3, 1))
            seed_right = seed_left + rng.normal(0, 0.004, (3, 1)) if paired else rng.normal(0, 0.004, (3, 1))
            left = samples + seed_left + rng.normal(0, 0.003, (3, 64))
            right = samples + seed_right + rng.normal(0, 0.003, (3, 64))
            c = compare(left, right, paired_seeds=paired, n_boot=400, seed=r)
            boot += c["bootstrap_verdict"] != "within noise"
            both += c["verdict"] != "within noise"
        assert boot / reps > 0.12, (paired, boot / reps)
        assert both / reps <= 0.06, (paired, both / reps)


# ---------------------------------------------------------------------------------------------- spec
def test_seeds_are_a_spec_axis_and_specs_without_seeds_are_unchanged(tmp_path):
    spec = ExperimentSpec.from_dict(SEEDED_RECORD)
    runs = plan_runs(spec, tmp_path)
    assert [(r.label, r.config.seed) for r in runs if r.key == "fno"] == [
        ("single/fno/seed0", 0),
        ("single/fno/seed1", 1),
    ]
    assert runs[0].run_dir == tmp_path / "runs" / "single" / "mano" / "seed0"
    # a spec without seeds: the one run per model, in the folder it always had, with train.seed
    cpu = load_spec("darcy-cpu")
    (fno,) = [r for r in plan_runs(cpu, tmp_path) if r.label == "single/fno"]
    assert fno.seed is None and fno.run_dir == tmp_path / "runs" / "single" / "fno" and fno.config.seed == 0
    bad = copy.deepcopy(SEEDED_RECORD)
    bad["train"]["seed"] = 3
    with pytest.raises(UserInputError, match="train.seed and seeds both given"):
        ExperimentSpec.from_dict(bad)
    bad = copy.deepcopy(SEEDED_RECORD)
    bad["tuning"]["space"]["fno"]["window_size"] = [4]
    with pytest.raises(UserInputError, match=r"unknown parameter\(s\) \['window_size'\]"):
        ExperimentSpec.from_dict(bad)
    shipped = load_spec("darcy-seeded")
    assert shipped.seeds == [0, 1, 2] and shipped.tuning.max_parameters == 150_000
    assert shipped.arms["multi"].train == {"resolutions": [33, 65], "n_train": [256, 32]}
    # the published choices of the search: every family tuned, within the cap, chosen on validation
    for key in shipped.tuning.models:
        tuned = shipped.models[key].tuned
        assert tuned and tuned["trials"] == 16 and tuned["n_parameters"] <= 150_000, key
        assert set(shipped.models[key].train) == {"lr", "batch_size"}


# ---------------------------------------------------------------------------------------------- tuning
def test_tuning_resumes_after_a_kill(tmp_path):
    from mano_pde.experiments import ensure_data
    from mano_pde.experiments.tuning import STORAGE, tune_model

    record = copy.deepcopy(SEEDED_RECORD)
    record["tuning"]["trials"] = 1
    spec = ExperimentSpec.from_dict(record)
    ensure_data(spec, tmp_path, runs=plan_runs(spec, tmp_path), workers=1, progress=False)
    first = tune_model(spec, "mano", tmp_path, device="cpu", progress=False)
    assert first["tuned"]["complete"] == 1
    url = f"sqlite:///{tmp_path / 'tuning' / STORAGE}"
    # a kill in the middle of the next trial: a trial left RUNNING in the storage, its run folder half written
    study = optuna.load_study(study_name="mano", storage=url)
    killed = study.ask()
    killed.suggest_float("lr", 3e-4, 5e-3, log=True)
    record["tuning"]["trials"] = 2
    spec = ExperimentSpec.from_dict(record)
    chosen = tune_model(spec, "mano", tmp_path, device="cpu", progress=False)
    trials = optuna.load_study(study_name="mano", storage=url).trials
    states = [t.state.name for t in trials]
    assert states[:2] == ["COMPLETE", "FAIL"] and states[2] == "COMPLETE" and len(trials) == 3  # numbers go on
    assert trials[2].params["lr"] == killed.params["lr"]  # the interrupted trial ran again with its parameters
    assert chosen["tuned"]["complete"] == 2 and chosen["tuned"]["interrupted"] == 1
    # a finished search is read back, not run again
    again = tune_model(spec, "mano", tmp_path, device="cpu", progress=False)
    assert again == chosen and len(optuna.load_study(study_name="mano", storage=url).trials) == 3


# ---------------------------------------------------------------------------------------------- pipeline
def test_whole_seeded_pipeline_tiny(tmp_path):
    from mano_pde.benchmarks.darcy import run_benchmark

    spec = ExperimentSpec.from_dict(SEEDED_RECORD)
    out = tmp_path / "study"
    summary = run_benchmark(spec, out, workers=1, device="cpu", progress=False, write_spec=tmp_path / "chosen.toml")
    # tuning records: the SQLite storage, the table of trials, the chosen configurations in a resolved spec
    tuning = out / "tuning"
    assert (tuning / "optuna.sqlite3").is_file() and (tuning / "chosen.json").is_file()
    csv_text = (tuning / "trials.csv").read_text()
    assert csv_text.startswith("model,trial,state,note,") and "over the parameter cap" in csv_text
    chosen = json.loads((tuning / "chosen.json").read_text())
    assert chosen["fno"]["kwargs"]["hidden_channels"] == 8 and chosen["fno"]["tuned"]["complete"] >= 1
    assert chosen["fno"]["tuned"]["not_trained"] >= 1  # the over-cap width was sampled and never trained
    assert all(not (p / "final_metrics.json").exists() for p in (tuning / "runs").rglob("trial-*"))  # no test score
    resolved = load_spec(out / "study-spec.toml")
    assert (tmp_path / "chosen.toml").read_text() == (out / "study-spec.toml").read_text()
    assert "# chosen by the search: trial #" in (out / "study-spec.toml").read_text()
    assert resolved.models["fno"].kwargs == chosen["fno"]["kwargs"] and resolved.models["fno"].tuned is not None
    assert resolved.models["mano"].train["lr"] == chosen["mano"]["train"]["lr"]
    # final runs: one per model, arm and seed, trained with the chosen configuration and the seed
    labels = set(summary["runs"])
    assert labels == {
        f"{a}/{m}/seed{s}" for a, m in [("single", "mano"), ("single", "fno"), ("multi", "mano")] for s in (0, 1)
    }
    cfg = summary["runs"]["single/fno/seed1"]["config"]
    assert cfg["seed"] == 1 and cfg["model_kwargs"] == chosen["fno"]["kwargs"]
    assert cfg["lr"] == chosen["fno"]["train"]["lr"]
    # per-run evaluation with per-sample errors, records labelled by model key and seed
    recs = summary["records"]
    assert {(r["arm"], r["run"], r["seed"]) for r in recs} >= {("single", "fno", 1), ("multi", "mano", 0)}
    assert all(len(r["rel_l2_per_sample"]) == 5 for r in recs)
    r0 = recs[0]
    assert np.mean(r0["rel_l2_per_sample"]) == pytest.approx(r0["rel_l2_mean"])
    assert (out / "results" / "single" / "fno" / "seed0" / "results.complete.json").is_file()
    # the test file is scored once per final run: by its evaluation, not also by the trainer after the last epoch
    run_dirs = [Path(v["dir"]) for v in summary["runs"].values()]
    assert run_dirs and all(not (d / "final_metrics.json").exists() for d in run_dirs)
    val = summary["validation"]["single/fno/seed1"]  # the validation summary comes from the run's log instead
    assert val["epoch"] == 2 and val["best_val_epoch"] in (1, 2) and "val_rel_l2_9" in val
    assert not any(k.startswith("test_") for k in val)
    # the report: verdict table with intervals, mean ± std over seeds, the long-enough check, tuning records
    md = (out / "study.md").read_text()
    assert "| single | mano vs fno at 9² |" in md and "| single | mano ref-grid vs its resample at 17² |" in md
    assert "| multi | mano direct vs its resample at 17² |" not in md  # 17² is a training grid of the multi arm
    assert " ± " in md and "Long enough?" in md and "### Tuning records" in md and "over the parameter cap" in md
    assert any(v in md for v in ("**better**", "**worse**", "**within noise**"))
    assert "Ranking on validation — search: " in md and "model seeds [0, 1]" in md
    # rerun: nothing trains, tunes or evaluates again; same numbers
    again = run_benchmark(spec, out, workers=1, device="cpu", progress=False)
    assert {v["status"] for v in again["runs"].values()} == {"finished"} and again["eval_wall_s"] == 0.0
    assert [r["rel_l2_per_sample"] for r in again["records"]] == [r["rel_l2_per_sample"] for r in recs]
    # the resolved spec runs as it is (no tuning left to do) into the same folder
    resolved_run = run_benchmark(resolved, out, workers=1, device="cpu", progress=False)
    assert [r["rel_l2_mean"] for r in resolved_run["records"]] == [r["rel_l2_mean"] for r in recs]


def test_tuning_kill_mid_trial_resumes_its_training(tmp_path, monkeypatch):
    """A kill after a trial's first epoch: the rerun queues the same parameters, finds the trial's run folder and
    trains only the missing epoch (the epoch already trained is reported to Optuna from the verified resume state,
    so a damaged log.csv does not stop the search)."""
    import mano_pde.training
    from mano_pde.experiments import ensure_data
    from mano_pde.experiments.report import learning_curve
    from mano_pde.experiments.tuning import STORAGE, tune_model

    record = copy.deepcopy(SEEDED_RECORD)
    record["tuning"].update(trials=1, epochs=2)
    spec = ExperimentSpec.from_dict(record)
    ensure_data(spec, tmp_path, runs=plan_runs(spec, tmp_path), workers=1, progress=False)
    real_train = mano_pde.training.train
    epochs_trained = []

    def killed_after_one_epoch(config, output, **kw):
        def on_epoch(row):
            epochs_trained.append(row["epoch"])
            kw["on_epoch"](row)
            raise KeyboardInterrupt  # the process dies right after the epoch's files are saved

        return real_train(config, output, **{**kw, "on_epoch": on_epoch})

    monkeypatch.setattr(mano_pde.training, "train", killed_after_one_epoch)
    with pytest.raises(KeyboardInterrupt):
        tune_model(spec, "fno", tmp_path, device="cpu", progress=False)
    monkeypatch.setattr(mano_pde.training, "train", real_train)
    # the epoch already trained is replayed from the verified resume state, not from log.csv (damaged here)
    (trial_dir,) = (tmp_path / "tuning" / "runs" / "fno").iterdir()
    (trial_dir / "log.csv").write_text("epoch,train_loss,val_rel_l2_9\n1,garbage,0.5\n")
    chosen = tune_model(spec, "fno", tmp_path, device="cpu", progress=False)
    study = optuna.load_study(study_name="fno", storage=f"sqlite:///{tmp_path / 'tuning' / STORAGE}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 1 and chosen["tuned"]["interrupted"] == 1 and chosen["tuned"]["complete"] == 1
    assert sorted(done[0].intermediate_values) == [1, 2]
    (run_dir,) = (tmp_path / "tuning" / "runs" / "fno").iterdir()  # the same folder, resumed
    assert learning_curve(run_dir)["epoch"] == [1, 2] and epochs_trained == [1]


def test_diverging_trial_fails_and_the_search_goes_on(tmp_path, monkeypatch):
    """A trial whose weights become non-finite (NonFiniteWeightsError, like a non-finite loss) is recorded as failed
    and the search goes on; the trial left running by an earlier search that died of it is queued once, fails, and
    is not queued again."""
    import mano_pde.training
    from mano_pde.experiments import ensure_data
    from mano_pde.experiments.tuning import STORAGE, tune_model
    from mano_pde.training.trainer import NonFiniteTrainingError, NonFiniteWeightsError

    assert issubclass(NonFiniteWeightsError, NonFiniteTrainingError)
    record = copy.deepcopy(SEEDED_RECORD)
    record["tuning"].update(trials=2, epochs=1)
    spec = ExperimentSpec.from_dict(record)
    ensure_data(spec, tmp_path, runs=plan_runs(spec, tmp_path), workers=1, progress=False)
    (tmp_path / "tuning").mkdir()
    url = f"sqlite:///{tmp_path / 'tuning' / STORAGE}"
    study = optuna.create_study(study_name="mano", storage=url, direction="minimize")
    left_running = study.ask()  # an earlier search stopped by the divergence: the trial stayed RUNNING
    bad_lr = left_running.suggest_float("lr", 3e-4, 5e-3, log=True)
    real_train = mano_pde.training.train
    calls = []

    def diverging(config, output, **kw):
        calls.append(config.lr)
        if config.lr == bad_lr:
            raise NonFiniteWeightsError("the weights (w) became NaN or infinite in epoch 1; training stopped")
        return real_train(config, output, **kw)

    monkeypatch.setattr(mano_pde.training, "train", diverging)
    chosen = tune_model(spec, "mano", tmp_path, device="cpu", progress=False)
    trials = optuna.load_study(study_name="mano", storage=url).trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert trials[1].params["lr"] == bad_lr and trials[1].user_attrs["note"] == "non-finite weights"
    assert chosen["tuned"]["failed"] == 1 and chosen["tuned"]["interrupted"] == 1 and chosen["tuned"]["complete"] == 1
    again = tune_model(spec, "mano", tmp_path, device="cpu", progress=False)
    assert again == chosen and len(optuna.load_study(study_name="mano", storage=url).trials) == 3
    assert calls.count(bad_lr) == 1


def test_seeded_evaluation_is_reused_only_when_intact_and_of_the_same_data(tmp_path):
    """results.json must match the SHA-256 its marker recorded (a damaged or edited file is evaluated again, without
    a JSON error) and have been scored on the data file now used."""
    import shutil

    from mano_pde.experiments import ensure_data
    from mano_pde.experiments.runner import data_paths, evaluate_run, evaluation_dir
    from mano_pde.training import train

    record = copy.deepcopy(SEEDED_RECORD)
    record["train"]["epochs"] = 1
    spec = ExperimentSpec.from_dict(record)
    runs = plan_runs(spec, tmp_path, device="cpu")
    ensure_data(spec, tmp_path, runs=runs, workers=1, progress=False)
    run = next(r for r in runs if r.label == "single/fno/seed0")
    train(run.config, run.run_dir, progress=False)
    evaluation, test = spec.arms["single"].evaluate, data_paths(spec, tmp_path)["test"]
    first, seconds = evaluate_run(run, test, evaluation, tmp_path, device="cpu")
    assert seconds > 0 and {r["run"] for r in first} == {"fno"}
    assert evaluate_run(run, test, evaluation, tmp_path, device="cpu") == (first, 0.0)  # intact: reused
    results = evaluation_dir(run, evaluation, tmp_path) / "results.json"
    text = results.read_text()
    for damaged in (text[: len(text) // 2], text.replace('"n_test": 5', '"n_test": 5 ', 1)):
        results.write_text(damaged)  # cut short, or edited (still JSON) after the marker was written
        again, seconds = evaluate_run(run, test, evaluation, tmp_path, device="cpu")
        assert seconds > 0 and [r["rel_l2_per_sample"] for r in again] == [r["rel_l2_per_sample"] for r in first]
    copy_of_test = shutil.copy(test, tmp_path / "other-test.nc")
    _, seconds = evaluate_run(run, copy_of_test, evaluation, tmp_path, device="cpu")
    assert seconds > 0  # another data file: scored again
    assert evaluate_run(run, copy_of_test, evaluation, tmp_path, device="cpu")[1] == 0.0


# ---------------------------------------------------------------------------------------------- reports
def _study_summary(nan_in: str | None = None) -> dict:
    """A seeded study's summary (two models, two seeds, one arm); ``nan_in`` gives one model a non-finite
    per-sample error (a test field of zero norm)."""
    config = {"epochs": 1, "resolutions": [9], "n_train": [4], "n_val": 2, "batch_size": 4, "lr": 1e-3}
    config.update(weight_decay=0.0, scheduler="cosine", loss="l2", seed=0)
    records, runs, wall = [], {}, {}
    for model, base in (("mano", 0.1), ("fno", 0.2)):
        for seed in (0, 1):
            errors = [base + 0.01 * (seed + i) for i in range(4)]
            if model == nan_in and seed == 0:
                errors[2] = float("nan")
            records.append(
                {
                    "arm": "single",
                    "run": model,
                    "seed": seed,
                    "method": "direct",
                    "test_resolution": 9,
                    "train_resolutions": [9],
                    "rel_l2_per_sample": errors,
                    "rel_l2_mean": float(np.mean(errors)),
                    "test_indices": [10, 13],
                }
            )
            runs[f"single/{model}/seed{seed}"] = {"config": config}
            wall[f"single/{model}/seed{seed}"] = 60.0 * (1 + seed)  # 1 and 2 min: 1.5 min per seed
    return {
        "config": {
            "seeds": [0, 1],
            "data": {"train": {"path": "train.nc"}},
            "models": {"mano": {"model": "mano", "kwargs": {}}, "fno": {"model": "fno", "kwargs": {}}},
            "arms": {"single": {"models": ["mano", "fno"], "evaluate": {"data": "train", "resolutions": [9]}}},
            "compare": {"model": "mano"},
        },
        "command": "mano-pde benchmark darcy",
        "date": "today",
        "versions": {},
        "parameters": {"mano": 100, "fno": 200},
        "output": "study",
        "data": {"generation_s": 0.0},
        "runs": runs,
        "train_wall_s": wall,
        "validation": {},
        "eval_wall_s": 0.0,
        "total_wall_s": 0.0,
        "records": records,
    }


def test_study_report_skips_a_comparison_over_non_finite_errors():
    from mano_pde.experiments.report import NOT_FINITE, comparisons, study_markdown

    assert [c["verdict"] for c in comparisons(_study_summary())] == ["better"]
    summary = _study_summary(nan_in="fno")
    (entry,) = comparisons(summary)
    assert entry["not_computed"] == NOT_FINITE == "not computed (non-finite per-sample errors)"
    md = study_markdown(summary)
    assert "| single | mano vs fno at 9² | – | – | not computed (non-finite per-sample errors) | – |" in md
    assert "| single | mano | 100 | 1.5 min | direct |" in md


def test_tuning_report_of_a_seeded_spec_reads_the_seeded_train_times():
    from mano_pde.experiments.report import tuning_markdown

    md = tuning_markdown(_study_summary(), "single")
    assert "| 100 | 1.5 min |" in md and "| 200 | 1.5 min |" in md


def test_a_resolved_spec_describes_exactly_the_runs_it_was_resolved_for(tmp_path):
    """The spec written after the search (study-spec.toml, or published over the shipped spec) must plan the same
    runs as the spec in memory: a None keyword (MANO's tiling windows had window_stride=None) was dropped by the
    TOML writer, so a rerun from the written spec refused the runs trained before as 'another run'."""
    from mano_pde.experiments.search_spaces import model_kwargs
    from mano_pde.experiments.spec import ModelSpec
    from mano_pde.experiments.tuning import apply_tuning, spec_to_toml

    base = {"window_size": 8, "hidden_channels": 8, "lr": 1e-3, "batch_size": 2}
    tiled, _ = model_kwargs("mano", {**base, "window_overlap": False})
    overlapping, train = model_kwargs("mano", {**base, "window_overlap": True})
    assert "window_stride" not in tiled and overlapping["window_stride"] == 4 and train == {"lr": 1e-3, "batch_size": 2}
    with pytest.raises(UserInputError, match=r"kwargs \['window_stride'\] set to None; leave a keyword out"):
        ModelSpec(model="mano", kwargs={"window_stride": None})
    spec = ExperimentSpec.from_dict(SEEDED_RECORD)
    tuned = {"trial": 0, "trials": 2, "epochs_per_trial": 1, "max_parameters": 20_000, "val_rel_l2": 0.5}
    chosen = {
        "mano": {"model": "mano", "kwargs": {**_MANO, **tiled}, "train": {"lr": 1e-3}, "tuned": tuned},
        "fno": {"model": "fno", "kwargs": dict(_FNO), "train": {"batch_size": 2}, "tuned": tuned},
    }
    resolved = apply_tuning(spec, chosen)
    path = tmp_path / "study-spec.toml"
    path.write_text(spec_to_toml(resolved, "resolved"))
    again = load_spec(path)
    before = [(r.label, r.config.digest()) for r in plan_runs(resolved, tmp_path)]
    assert before == [(r.label, r.config.digest()) for r in plan_runs(again, tmp_path)]
