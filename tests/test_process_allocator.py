"""Start-up allocator settings (mano_pde.process): set by ``mano-pde``'s main(), never by an import."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mano_pde import process
from mano_pde.errors import UserInputError

GLIBC = process.malloc_info() is not None
needs_glibc = pytest.mark.skipif(not GLIBC, reason="mallopt/mallinfo2 need glibc >= 2.33 on Linux")

# In a fresh interpreter: where does a 64 MB malloc go (mmapped chunk or heap)? hblkhd counts mmapped bytes.
_PROBE = """
import ctypes, json, sys
from mano_pde import process

def big_malloc_is_mmapped():
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    before = process.malloc_info()["hblkhd"]
    ptr = libc.malloc(64 << 20)
    mmapped = process.malloc_info()["hblkhd"] - before >= 64 << 20
    libc.free(ptr)
    return mmapped
"""


def _clean_env(**extra: str) -> dict[str, str]:
    drop = {process.ENV_VAR, "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in drop}
    env.pop("GLIBC_TUNABLES", None)
    env.update(extra)
    return env


def _run(code: str, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE + code], capture_output=True, text=True, check=True, env=_clean_env(**env)
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_glibc
def test_importing_the_package_sets_nothing_and_main_sets_the_tuned_profile():
    code = """
import mano_pde, mano_pde.models, mano_pde.training, mano_pde.evaluation, mano_pde.cli, mano_pde.demo
import mano_pde.benchmarks.scaling, torch
import os
after_import = {"state": process.allocator_state(), "mmapped": big_malloc_is_mmapped(),
                "omp": [process.threads_state(), os.environ.get("OMP_WAIT_POLICY")]}
from mano_pde import cli
code = cli.main(["info", "/nonexistent/file.nc"])  # fails fast (exit 2) after the start-up settings
print(json.dumps({"import": after_import, "code": code, "state": process.allocator_state(),
                  "mmapped": big_malloc_is_mmapped()}))
"""
    res = _run(code)
    assert res["import"] == {"state": None, "mmapped": True, "omp": [None, None]}  # glibc's defaults: 64 MB -> mmap
    assert res["code"] == 2
    assert res["state"]["profile"] == "tuned" and res["state"]["skipped"] is None
    assert res["state"]["mallopt"] == process.PROFILES["tuned"]["mallopt"]
    assert res["mmapped"] is False  # served from the heap now


@needs_glibc
def test_opt_out_and_user_environment_win():
    code = """
state = process.configure_allocator()
print(json.dumps({"state": state, "mmapped": big_malloc_is_mmapped()}))
"""
    res = _run(code, MANO_PDE_ALLOCATOR="default")
    assert res["state"]["profile"] == "default" and res["state"]["mallopt"] == {} and res["mmapped"] is True
    res = _run(code, MALLOC_ARENA_MAX_="2")  # the user tunes malloc himself: nothing is set on top
    assert res["state"]["mallopt"] == {} and "MALLOC_ARENA_MAX_" in res["state"]["skipped"] and res["mmapped"]
    res = _run(code, MANO_PDE_ALLOCATOR="threshold")  # 1 GiB threshold: 64 MB from the heap
    assert res["state"]["mallopt"]["M_MMAP_THRESHOLD"] == 2**30 and res["mmapped"] is False


def test_unknown_profiles():
    with pytest.raises(UserInputError, match="unknown allocator profile 'jemalloc'"):
        process.configure_allocator("jemalloc")
    code = "import json; from mano_pde import process; print(json.dumps(process.configure_allocator()))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_clean_env(MANO_PDE_ALLOCATOR="x")
    )
    state = json.loads(out.stdout)
    assert state["mallopt"] == {} and "unknown profile 'x'" in state["skipped"]
    assert "MANO_PDE_ALLOCATOR=x is not an allocator profile" in out.stderr  # a warning, the process goes on


def test_main_leaves_openmp_waiting_alone_and_configure_threads_is_an_opt_in():
    """OMP_WAIT_POLICY=PASSIVE failed the start-up rule on an idle machine (BENCHMARKS.md): main() does not set it;
    configure_threads() still does, for scripts that share the cores with other jobs."""
    main_code = """
import os
from mano_pde import cli
cli.main(["info", "/nonexistent/file.nc"])
import torch
print(json.dumps({"threads": process.threads_state(), "policy": os.environ.get("OMP_WAIT_POLICY")}))
"""
    assert _run(main_code) == {"threads": None, "policy": None}
    opt_in = """
import os
state = process.configure_threads()
import torch  # libgomp reads OMP_WAIT_POLICY now
print(json.dumps({"threads": state, "policy": os.environ.get("OMP_WAIT_POLICY")}))
"""
    res = _run(opt_in)
    assert res == {"threads": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}, "skipped": None}, "policy": "PASSIVE"}
    res = _run(opt_in, GOMP_SPINCOUNT="300000")  # the user's choice (here libgomp's default spinning) wins
    assert res["policy"] is None and "GOMP_SPINCOUNT" in res["threads"]["skipped"]
    late = _run("import torch\nprint(json.dumps(process.configure_threads()))")  # too late once torch is loaded
    assert late["env"] == {} and "already loaded" in late["skipped"]
