"""Provenance of every result: package versions, machine, time and command, collected in one place.

Data files (:mod:`mano_pde.data.schema`), training runs (``versions.json``), evaluations and benchmarks all
record what shaped them through these functions, so the same fact is spelled the same way everywhere.
Standard library only; torch is imported only by :func:`torch_info`.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from typing import Any

__all__ = [
    "DATA_DISTRIBUTIONS",
    "MODEL_DISTRIBUTIONS",
    "utc_now",
    "package_versions",
    "machine_info",
    "torch_info",
    "run_versions",
]

#: The distributions that shape a data file.
DATA_DISTRIBUTIONS = ("mano-pde", "numpy", "scipy", "netCDF4", "xarray")
#: The distributions that shape a trained model or an evaluation.
MODEL_DISTRIBUTIONS = ("mano-pde", "neuraloperator", "numpy", "scipy", "xarray", "netCDF4")


def utc_now() -> str:
    """The current UTC time in ISO 8601 (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def package_versions(distributions: tuple[str, ...] = DATA_DISTRIBUTIONS) -> dict[str, str]:
    """``{"python": ..., distribution: version or "not installed"}``."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in distributions:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _first_line(path: str, prefix: str) -> str | None:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU model, core count, RAM (GiB), OS and load average of this machine."""
    info: dict[str, Any] = {
        "cpu_model": _first_line("/proc/cpuinfo", "model name") or platform.processor(),
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    mem = _first_line("/proc/meminfo", "MemTotal:")
    if mem:
        info["ram_gb"] = round(int(mem.split()[0]) / 2**20, 1)
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every OS
        pass
    return info


def torch_info(device: Any = None) -> dict[str, str]:
    """torch version, its thread count and, for a CUDA ``device``, the GPU and CUDA version."""
    import torch

    out = {"torch": torch.__version__, "torch_num_threads": str(torch.get_num_threads())}
    if device is not None:
        out["device"] = str(device)
        if torch.device(device).type == "cuda":
            out["cuda_device_name"] = torch.cuda.get_device_name(device)
            out["cuda"] = str(torch.version.cuda)
    return out


def run_versions(device: Any = None) -> dict[str, str]:
    """Versions of everything that shapes a trained model or an evaluation (``versions.json`` of a run)."""
    import torch

    versions = package_versions(MODEL_DISTRIBUTIONS)
    out = {"python": versions.pop("python"), "platform": platform.platform(), "torch": torch.__version__}
    out.update(versions)
    info = torch_info(device)
    out.update({k: v for k, v in info.items() if k not in ("torch", "torch_num_threads")})
    out["torch_num_threads"] = info["torch_num_threads"]
    return out
