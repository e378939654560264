"""The demo and example 03 are experiment specs run by the one runner: tiny end-to-end run, reuse, refusal."""

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

from mano_pde.demo import DemoConfig, demo_spec, run_demo
from mano_pde.errors import UserInputError
from mano_pde.experiments import plan_runs

TINY_DEMO = DemoConfig(
    data_resolution=17,
    train_resolution=9,
    test_resolutions=(9, 17),
    n_train=8,
    n_test=4,
    epochs=1,
    batch_size=4,
    models={
        "mano": {"hidden_channels": 8, "n_layers": 1, "window_size": 4, "n_heads": 2},
        "fno": {"hidden_channels": 8, "n_modes": [4, 4], "n_layers": 1},
    },
)


def test_demo_runs_reuses_and_refuses_another_configuration(tmp_path):
    out = tmp_path / "demo"
    table = run_demo(out, workers=1, progress=False, config=TINY_DEMO)
    assert "| mano |" in table and "| fno |" in table and "resample" in table and "ref-grid" in table
    assert (out / "darcy_17.nc").is_file() and (out / "results" / "results.json").is_file()
    first = json.loads((out / "experiment.json").read_text())
    assert {k: v["status"] for k, v in first["runs"].items()} == {"demo/mano": "new", "demo/fno": "new"}
    assert {v["dir"] for v in first["runs"].values()} == {str(out / "runs" / "mano"), str(out / "runs" / "fno")}

    # a rerun reuses the finished runs and gives the same table
    assert run_demo(out, workers=1, progress=False, config=TINY_DEMO) == table
    again = json.loads((out / "experiment.json").read_text())
    assert {v["status"] for v in again["runs"].values()} == {"finished"}

    # --epochs N after a default run: the finished 1-epoch run is not passed off as an N-epoch one
    refused = r"runs/mano holds another run than demo/mano of this experiment \(epochs: saved 1, wanted 3\)"
    with pytest.raises(UserInputError, match=refused):
        run_demo(out, epochs=3, workers=1, progress=False, config=TINY_DEMO)


def test_demo_spec_matches_its_config():
    spec = demo_spec(TINY_DEMO)
    (entry,) = spec.data.values()
    assert entry.generate == {"n_samples": 12, "resolution": 17, "seed": 0}
    assert spec.arms["demo"].evaluate.resolutions == [9, 17] and spec.arms["demo"].run_dir == "runs/{model}"


def test_example_03_is_a_spec(tmp_path):
    path = Path(__file__).parents[1] / "examples" / "03_zero_shot_resolution.py"
    module_spec = importlib.util.spec_from_file_location("example_03", path)
    example = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(example)
    args = argparse.Namespace(
        data=None, train_resolution=17, test_resolutions=[17, 33], n_train=16, n_test=4, epochs=2, output=str(tmp_path)
    )
    runs = plan_runs(example.zero_shot_spec(args), tmp_path)
    assert [r.run_dir for r in runs] == [tmp_path / "mano", tmp_path / "fno"]
    assert all(r.config.data == str(tmp_path / "darcy_129.nc") and r.config.epochs == 2 for r in runs)
    # a user's file is used as it is, never generated over
    args.data = str(tmp_path / "missing.nc")
    spec = example.zero_shot_spec(args)
    assert spec.data["data"].generate is None
