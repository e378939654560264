"""The command line derives its options from the configuration dataclasses and the model catalogue."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from mano_pde.cli import build_parser, main
from mano_pde.commands.options import add_field_options, field_values
from mano_pde.model_catalogue import MODEL_NAMES
from mano_pde.training.config import TrainConfig


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_every_train_config_field_is_a_documented_train_option():
    actions = {a.dest: a for a in _subparser("train")._actions}
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f"TrainConfig.{f.name} has no metadata['help'] (its --help text)"
        if f.name == "model_kwargs":  # from the model options and --model-arg
            continue
        assert f.name in actions, f"TrainConfig.{f.name} is not an option of mano-pde train"
        assert actions[f.name].help.startswith(f.metadata["help"])
    assert actions["model"].choices == MODEL_NAMES
    assert actions["amp_bf16"].option_strings == ["--bf16"]
    assert actions["resolutions"].option_strings == ["--resolution"]


def test_the_model_catalogue_is_the_registry():
    from mano_pde.models import list_models

    assert list_models() == sorted(MODEL_NAMES)


@dataclasses.dataclass
class _Toy:
    sizes: list[int]
    compile: bool = False
    checks: bool = True
    label: str | None = dataclasses.field(default=None, metadata={"help": "a label", "choices": ("a", "b")})
    rate: float = 0.5
    grids: list[int] = dataclasses.field(default_factory=lambda: [3], metadata={"repeat": True, "flag": "--grid"})
    extra: dict = dataclasses.field(default_factory=dict)


def _toy_parse(argv: list[str]) -> _Toy:
    parser = argparse.ArgumentParser()
    add_field_options(parser, _Toy, skip=("extra",))
    return _Toy(**field_values(_Toy, parser.parse_args(argv), skip=("extra",)))


def test_fields_become_options_by_type():
    """A bool field is a flag without any code for it (what a new TrainConfig field such as ``compile`` gets)."""
    assert _toy_parse(["--sizes", "1", "2"]) == _Toy(sizes=[1, 2])
    toy = _toy_parse(["--sizes", "4", "--compile", "--no-checks", "--label", "b", "--rate", "2", "--grid", "5"])
    assert toy == _Toy(sizes=[4], compile=True, checks=False, label="b", rate=2.0, grids=[5])
    assert _toy_parse(["--sizes", "1", "--grid", "5", "--grid", "7"]).grids == [5, 7]  # the default is replaced
    for bad in (["--compile"], ["--sizes", "1", "--label", "c"], ["--sizes", "x"], ["--sizes", "1", "--compile=1"]):
        with pytest.raises(SystemExit):
            _toy_parse(bad)


def test_a_field_without_a_command_line_form_must_be_skipped():
    with pytest.raises(TypeError, match=r"_Toy.extra .* has no command-line form"):
        add_field_options(argparse.ArgumentParser(), _Toy)


def test_train_options_build_the_config(monkeypatch, tmp_path):
    import mano_pde.training

    seen = []

    def fake_train(config: TrainConfig, out, resume: bool = False, progress: bool = True) -> Path:
        seen.append((config, resume, progress))
        (tmp_path / "log.csv").write_text("epoch\n")
        return tmp_path

    monkeypatch.setattr(mano_pde.training, "train", fake_train)
    argv = ["train", "--model", "fno", "--data", "d.nc", "--resolution", "17", "--resolution", "33"]
    argv += ["--n-train", "8", "4", "--n-test", "5", "--test-data", "t.nc", "--n-val", "3", "--epochs", "7"]
    argv += ["--batch-size", "4", "--lr", "0.01", "--weight-decay", "0", "--scheduler", "step", "--step-size", "3"]
    argv += ["--gamma", "0.25", "--loss", "h1", "--seed", "5", "--device", "cpu", "--bf16", "--hidden-channels", "8"]
    argv += ["--n-modes", "6", "--model-arg", "norm=none", "-o", str(tmp_path), "--resume", "--no-progress"]
    assert main(argv) == 0
    expected = TrainConfig(
        model="fno",
        data="d.nc",
        resolutions=[17, 33],
        n_train=[8, 4],
        n_test=5,
        test_data="t.nc",
        n_val=3,
        epochs=7,
        batch_size=4,
        lr=0.01,
        weight_decay=0.0,
        scheduler="step",
        step_size=3,
        gamma=0.25,
        loss="h1",
        seed=5,
        device="cpu",
        amp_bf16=True,
        model_kwargs={"hidden_channels": 8, "n_modes": [6, 6], "norm": None},
    )
    assert seen == [(expected, True, False)]
    seen.clear()
    assert main(["train", "--model", "mano", "--data", "d.nc", "--resolution", "9", "--n-train", "3", "-o", "r"]) == 0
    assert seen == [(TrainConfig(model="mano", data="d.nc", resolutions=[9], n_train=[3]), False, True)]


def test_generate_options_are_the_darcy_config_fields_over_the_preset():
    from mano_pde.data.presets import DarcyConfig, get_preset

    actions = {a.dest: a for a in _subparser("generate")._actions}
    for f in dataclasses.fields(DarcyConfig):
        assert f.metadata.get("help") and f.name in actions, f"DarcyConfig.{f.name} is not a documented option"
    assert actions["permeability_map"].option_strings == ["--map"]
    assert actions["face_average"].choices == ("harmonic", "arithmetic")
    parser = build_parser()
    args = parser.parse_args(
        ["generate", "-o", "x.nc", "--preset", "fno-darcy", "--n-samples", "4", "--map", "lognormal"]
    )
    given = field_values(DarcyConfig, args)
    assert given == {"n_samples": 4, "permeability_map": "lognormal"}  # the rest is the preset's
    assert get_preset("fno-darcy").replace(**given) == DarcyConfig(
        n_samples=4, resolution=421, permeability_map="lognormal", face_average="arithmetic"
    )
