"""The scaling benchmark's machinery (tiny sizes; the real numbers live in BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import json

import pytest

from mano_pde.benchmarks import scaling

TINY_MANO = {"hidden_channels": 8, "n_layers": 1, "n_heads": 2, "window_size": 4}


@pytest.mark.parametrize("mode", ["inference", "train"])
def test_measure_config_in_process(mode):
    rec = scaling.measure_config("mano", 16, mode, repeats=2, threads=1, device="cpu", model_kwargs=TINY_MANO)
    assert rec["status"] == "ok"
    assert rec["time_s"] > 0 and rec["cpu_time_s"] > 0 and rec["peak_mem_mb"] >= 0
    assert rec["levels"] == 4 and rec["params"] > 0  # the authors' rule: floor(log2 16) = 4 and rec["threads"] == 1
    assert len(rec["times_s"]) == 2


def _rec(model, mode, n, t, mem=10.0, params=1000, **extra):
    return dict(
        model=model,
        mode=mode,
        resolution=n,
        n_points=n * n,
        status="ok",
        time_s=t,
        cpu_time_s=t,
        peak_mem_mb=mem,
        params=params,
        **extra,
    )


def test_targets_and_report(tmp_path):
    records = []
    for mode in scaling.MODES:
        records += [
            _rec("mano", mode, 128, 1.0, mem=100),
            _rec("mano", mode, 256, 4.0, mem=400),
            _rec("mano", mode, 512, 20.0, mem=1500),  # time 20x: missed; memory 15x: met
            _rec("fno", mode, 128, 0.5),
            _rec("global-attention", mode, 128, 10.0),
        ]
    records.append(_rec("global-attention", "inference", 256, 300.0))  # 75x: met
    records.append(
        dict(model="global-attention", mode="train", resolution=256, n_points=256**2, status="timeout", error="x")
    )
    ratios = {t["quantity"]: t for t in scaling.scaling_ratios(records)}
    assert ratios["MANO inference time growth 128^2 -> 512^2 (grid points: 16x)"]["value"] == pytest.approx(20)
    assert ratios["MANO train peak memory growth 128^2 -> 512^2 (grid points: 16x)"]["value"] == pytest.approx(15)
    assert ratios["global attention time / MANO time at 256^2 (inference)"]["value"] == pytest.approx(75)
    timed_out = ratios["global attention time / MANO time at 256^2 (train)"]
    assert timed_out["value"] is None and "timeout" in timed_out["detail"]
    fno = ratios["MANO training step time / `fno`'s at 128^2"]
    assert fno["value"] == pytest.approx(2.0)

    result = {
        "records": records,
        "machine": scaling.machine_info(),
        "settings": dict(
            models=["mano", "fno", "global-attention"],
            resolutions=[128, 256, 512],
            modes=list(scaling.MODES),
            batch_size=1,
            repeats=3,
            timeout_s=10,
            threads=1,
            device="cpu",
            model_kwargs={},
        ),
        "started": "s",
        "finished": "f",
        "command": "cmd",
        "ratios": list(ratios.values()),
    }
    md = scaling.format_report(result)
    assert "| 512x512 | 20000.0 | -- | -- |" in md
    assert "timeout" in md and "Ratios:" in md and "20.0x" in md
    assert "**met**" not in md and "MISSED" not in md  # measurements only: verdicts live in BENCHMARKS.md
    scaling.plot(records, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_extrapolation_skips_hopeless_sizes():
    done = [_rec("g", "inference", 64, 1.0), _rec("g", "inference", 128, 16.0)]  # time ~ N^2
    predicted, slope = scaling._extrapolate(done, 256)
    assert slope == pytest.approx(2.0) and predicted == pytest.approx(256.0)
    assert scaling._parse_model("fno-small=fno") == ("fno-small", "fno")
    assert scaling._parse_model("mano") == ("mano", "mano")


def test_cli_contract_runs_each_configuration_in_a_fresh_process(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    scaling.add_arguments(parser)
    args = parser.parse_args(
        [
            "--models",
            "mano",
            "--resolutions",
            "8",
            "--modes",
            "inference",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--model-kwargs",
            json.dumps({"mano": TINY_MANO}),
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert scaling.run(args) == 0
    data = json.loads((tmp_path / "scaling.json").read_text())
    (rec,) = data["records"]
    assert rec["status"] == "ok" and rec["model"] == "mano" and rec["resolution"] == 8
    assert rec["malloc_env"] == scaling.HEAP_ALLOCATOR_ENV  # the child got the allocator setting
    assert data["settings"]["threads"] == 1 and "torch" in data["machine"]
    assert (tmp_path / "scaling.png").exists() and (tmp_path / "scaling.md").exists()
    assert "| 8x8 |" in capsys.readouterr().out


def test_timeout_is_reported_and_larger_sizes_skipped(tmp_path):
    result = scaling.run_scaling_benchmark(
        models=["mano"],
        resolutions=[8, 16],
        modes=["inference"],
        timeout=0.2,  # the child cannot even import torch in time
        threads=1,
        device="cpu",
        model_kwargs={"mano": TINY_MANO},
        output_dir=None,
    )
    statuses = [r["status"] for r in result["records"]]
    assert statuses == ["timeout", "skipped"]
    assert "timeout" in result["markdown"]
