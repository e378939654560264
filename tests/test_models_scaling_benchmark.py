"""The scaling benchmark's machinery (tiny sizes; the real numbers live in BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from mano_pde import process
from mano_pde.benchmarks import scaling
from mano_pde.errors import UserInputError

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
    rec, gemm = data["records"]  # the configuration, then the GEMM throughput of its shapes
    assert gemm["mode"] == "gemm" and gemm["status"] == "ok" and gemm["gflops"] > 0
    assert rec["status"] == "ok" and rec["model"] == "mano" and rec["resolution"] == 8
    if process.malloc_info() is not None and not process._environment_override():  # glibc: start-up default
        assert rec["allocator"]["profile"] == "tuned"
        assert rec["allocator"]["mallopt"] == process.PROFILES["tuned"]["mallopt"]
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


def test_bf16_variant_and_flops_in_process():
    rec = scaling.measure_config(
        "mano", 16, "train", repeats=1, threads=1, device="cpu", model_kwargs=TINY_MANO, precision="bf16"
    )
    assert rec["status"] == "ok" and rec["variant"] == "bf16" and not rec["compiled"]
    assert rec["flops"]["train"] > 2 * rec["flops"]["forward"] > 0
    with pytest.raises(UserInputError, match="precision"):
        scaling.measure_config("mano", 16, "train", device="cpu", model_kwargs=TINY_MANO, precision="fp16")


def test_gemm_throughput_of_manos_shapes():
    rec = scaling.measure_gemm("mano", 16, threads=1, model_kwargs=TINY_MANO, min_time=0.01, square=64)
    assert rec["status"] == "ok" and rec["gflops"] > 0 and rec["square_gflops"] > 0
    assert [g["name"] for g in rec["gemms"]][:2] == ["Q/K/V projection", "Q K^T per window"]
    assert scaling.measure_gemm("fno", 16, threads=1, square=64)["status"] == "n/a"


def test_report_with_variants_speedups_and_gflops():
    flops = {"forward": 2e9, "train": 6e9}
    records = []
    for mode in scaling.MODES:
        for variant, t in (("fp32", 1.0), ("bf16", 0.5), ("fp32-compiled", 0.8), ("bf16-compiled", 0.4)):
            for n, scale in ((128, 1), (512, 16)):
                extra = {"variant": variant, "precision": variant.split("-")[0], "flops": flops}
                if variant.endswith("compiled"):
                    extra["compile_s"] = 30.0
                records.append(_rec("mano", mode, n, t * scale, **extra))
    for precision, g in (("fp32", 8.0), ("bf16", 20.0)):
        for n in (128, 512):
            records.append(
                dict(
                    model="mano",
                    mode="gemm",
                    resolution=n,
                    n_points=n * n,
                    variant=precision,
                    status="ok",
                    gflops=g,
                    square_gflops=2 * g,
                    precision=precision,
                )
            )
    ratios = {t["quantity"]: t for t in scaling.scaling_ratios(records)}
    assert ratios["MANO train speed-up of bf16 over eager fp32 at 128^2"]["value"] == pytest.approx(2.0)
    assert "compile time 30.0 s" in ratios["MANO train speed-up of compiled over eager fp32 at 128^2"]["detail"]
    # train: 6 GFLOP in 1 s = 6 GFLOP/s of 8 (fp32 GEMM); bf16: 12 of 20
    assert ratios["MANO train achieved / GEMM throughput (fp32) at 128^2 [eager fp32]"]["value"] == pytest.approx(0.75)
    assert ratios["MANO train achieved / GEMM throughput (bf16) at 128^2 [bf16]"]["value"] == pytest.approx(0.6)
    assert ratios["MANO inference time growth 128^2 -> 512^2 (grid points: 16x) [bf16]"]["value"] == pytest.approx(16)
    settings = dict(
        models=["mano"],
        resolutions=[128, 512],
        modes=list(scaling.MODES),
        batch_size=1,
        repeats=3,
        timeout_s=10,
        threads=2,
        device="cpu",
        model_kwargs={},
        variants=["fp32", "bf16", "fp32-compiled", "bf16-compiled"],
    )
    result = {"records": records, "machine": {}, "settings": settings, "started": "s", "finished": "f", "command": "c"}
    md = scaling.format_report(result)
    assert "| n x n | mano eager fp32 | mano bf16 | mano compiled | mano bf16+compiled |" in md
    assert "**train, speed-up over eager fp32 (time ratio)**" in md and "| 128x128 | 2.00x | 1.25x | 2.50x |" in md
    assert "**train, compile time [s]" in md and "| 128x128 | 30.0 | 30.0 |" in md
    # GFLOP per call, achieved per variant, GEMM fp32/bf16 (shapes, square), share of the same precision's GEMM
    assert "| 128x128 | 6.00 | 6.0 | 12.0 | 7.5 | 15.0 | 8.0 | 20.0 | 16.0 | 40.0 | 75 % | 60 % | 94 % | 75 % |" in md


@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="torch.compile's inductor backend needs a C++ compiler on the CPU; none on PATH",
)
def test_compiled_variant_states_its_compile_time():
    tiny = {"hidden_channels": 4, "n_layers": 1, "n_heads": 1, "window_size": 4}
    rec = scaling.measure_config(
        "mano", 8, "inference", repeats=1, threads=1, device="cpu", model_kwargs=tiny, compile=True
    )
    assert rec["status"] == "ok" and rec["compiled"] and rec["variant"] == "fp32-compiled"
    assert rec["compile_s"] > 0 and rec["warmup_s"] >= rec["compile_s"] + rec["time_s"] - 1e-9
    assert "compiled: reset after the first" in rec["memory_method"] and rec["peak_mem_mb"] >= 0


def test_rounds_merge_to_the_fastest_call():
    from mano_pde.benchmarks.scaling.driver import _merge_rounds

    a = _rec("mano", "train", 128, 2.0, mem=300, compiled=True, compile_s=40.0, times_s=[2.0, 2.5])
    b = _rec("mano", "train", 128, 1.5, mem=320, compiled=True, compile_s=3.0, times_s=[1.5, 1.7])
    merged = _merge_rounds([a, b])
    assert merged["time_s"] == 1.5 and merged["peak_mem_mb"] == 300 and merged["rounds"] == 2
    assert merged["times_s"] == [2.0, 2.5, 1.5, 1.7]
    assert merged["compile_s"] == 40.0 and merged["compile_s_rounds"] == [40.0, 3.0]  # the cold first round
    timeout = {"model": "mano", "mode": "train", "resolution": 512, "status": "timeout"}
    assert _merge_rounds([timeout, dict(timeout)])["status"] == "timeout"
