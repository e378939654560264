"""Process start-up settings of the ``mano-pde`` commands: glibc's ``malloc`` tuned for large tensors; an opt-in
for OpenMP threads that sleep instead of spinning while they wait (machines shared with other jobs).

:func:`configure_process` applies the allocator setting (:func:`configure_allocator`); :func:`configure_threads`
is not part of it (below).

The rule for a process-wide default
-----------------------------------
A setting is made by :func:`configure_process` only if, on an idle machine, it slows no model of the registry by
more than 5 % against a plain process (training steps and inference, 33², 129² and 513², 1 and 2 threads) and
speeds up at least one of them by more than 10 %. ``mano-pde benchmark settings`` measures that matrix
(:mod:`mano_pde.benchmarks.settings`); the figures are in BENCHMARKS.md ("Start-up settings against a plain
process").

Allocator: why
--------------
glibc serves every allocation above its mmap threshold (dynamic, at most 32 MB by default) with fresh
``mmap`` pages and returns them to the kernel on ``free``. PyTorch's CPU allocator is plain ``malloc``, so a
tensor above the threshold is page-faulted and zero-filled again on every call: a 64-channel activation is
4 MB at 128 x 128 (reused from the heap) but 67 MB at 512 x 512 (faulted every time), and MANO's time grows
far faster than its work from 128² to 512² (BENCHMARKS.md, "Scaling", "Supplementary: glibc's default
allocator"). PyTorch's CPU performance guide gets the same effect from jemalloc or tcmalloc.

Allocator: what
---------------
:func:`configure_allocator` calls glibc's ``mallopt`` (through :mod:`ctypes`, no extra dependency) with the
settings of one named profile (:data:`PROFILES`):

* ``"tuned"`` (the default of the ``mano-pde`` processes): the settings of ``"no-mmap"``. Measured
  (BENCHMARKS.md, "Start-up settings, bf16 and compiled MANO"): ``no-mmap``, ``threshold`` and ``no-mmap-thp``
  each cut the CPU time of a 512² MANO call by about 1.8x against glibc's defaults and could not be told apart;
  ``no-mmap`` had the lowest peak of the three.
* ``"no-mmap"``: ``M_MMAP_MAX = 0`` (no allocation is served by ``mmap``: freed tensors of every size are
  reused from the heap) and ``M_TRIM_THRESHOLD = 2**31 - 1`` (freed memory at the top of the heap is kept,
  up to 2 GiB, instead of being returned to the kernel after every call). The ``mallopt`` equivalent of
  ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647``.
* ``"threshold"``: ``M_MMAP_THRESHOLD = 1 GiB`` and the same trim threshold (allocations above 1 GiB are
  still ``mmap``ed and returned at once).
* ``"no-mmap-thp"``: ``"no-mmap"`` plus PyTorch's transparent-huge-page allocation
  (``THP_MEM_ALLOC_ENABLE=1``, tensors of 2 MB and more aligned to 2 MB and ``madvise``d as huge pages;
  read by PyTorch at its first allocation, so it applies only if torch has not allocated yet).
* ``"default"``: glibc's defaults, nothing set (the opt-out).

The cost: the process keeps the memory it freed (its resident set stays at its peak instead of shrinking
between calls), and its peak can be somewhat higher than with ``mmap`` (the heap can fragment).

OpenMP threads (opt-in, not a default)
--------------------------------------
PyTorch's CPU kernels run on GNU OpenMP (``libgomp``), whose idle threads spin for a while (300,000 polls) at every
barrier before they sleep. On a machine whose cores are busy with other processes, a spinning thread holds a core
that the thread with the remaining work needs: under load average 7-15 on 2 cores, MANO inference at 128² with 2
spinning threads used 2.7-12.6x the CPU time of sleeping ones. On an **idle** machine the same setting costs far
more than it saves (an FNO training step at 33² took 5.5x as long, MANO's 1.5x), so it failed the rule above and
is no longer made by :func:`configure_process`. :func:`configure_threads` sets ``OMP_WAIT_POLICY=PASSIVE`` for a
script that runs beside other jobs; so does starting Python with ``OMP_WAIT_POLICY=PASSIVE``. ``libgomp`` reads
the variable when it is loaded, i.e. when torch is first imported: the function applies only if torch is not
imported yet, and not if the environment already sets ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``.

Where it applies
----------------
Only where it is asked for: ``mano-pde``'s ``main()`` (train, evaluate, demo, generate, benchmarks, also
under ``torchrun``) and the measuring child processes of ``mano-pde benchmark scaling`` call
:func:`configure_process` at start-up. **Importing** ``mano_pde`` (or any of its modules) changes no
process-global state; a library user who wants the same behaviour calls ``mano_pde.process.configure_process()``
at the start of the script (before large tensors exist), or starts Python with ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=2147483647``.

The environment variable ``MANO_PDE_ALLOCATOR`` chooses the profile of a process (``default`` opts out,
``tuned`` is the default). Nothing is set, whatever the profile, when the environment already tunes glibc
``malloc`` (a ``MALLOC_*_`` variable or ``glibc.malloc`` in ``GLIBC_TUNABLES``: the user's choice wins),
when another allocator is preloaded (``LD_PRELOAD`` naming jemalloc, tcmalloc or mimalloc) and off glibc
Linux. What was done is logged at debug level (``mano-pde -vv``) and returned by :func:`allocator_state`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from typing import Any

from .errors import UserInputError

logger = logging.getLogger(__name__)

__all__ = [
    "ENV_VAR",
    "PROFILES",
    "allocator_state",
    "configure_allocator",
    "configure_process",
    "configure_threads",
    "malloc_info",
    "threads_state",
]

#: Environment variable naming the allocator profile of a ``mano-pde`` process (default ``"tuned"``).
ENV_VAR = "MANO_PDE_ALLOCATOR"

# mallopt parameters (glibc <malloc.h>)
_M_PARAMS = {"M_TRIM_THRESHOLD": -1, "M_TOP_PAD": -2, "M_MMAP_THRESHOLD": -3, "M_MMAP_MAX": -4, "M_ARENA_MAX": -8}
_INT_MAX = 2**31 - 1  # mallopt takes an int

_NO_MMAP = {"M_MMAP_MAX": 0, "M_TRIM_THRESHOLD": _INT_MAX}

#: Named allocator profiles: ``mallopt`` settings and environment variables (module docstring).
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "tuned": {"mallopt": dict(_NO_MMAP), "env": {}},
    "no-mmap": {"mallopt": dict(_NO_MMAP), "env": {}},
    "threshold": {"mallopt": {"M_MMAP_THRESHOLD": 2**30, "M_TRIM_THRESHOLD": _INT_MAX}, "env": {}},
    "no-mmap-thp": {"mallopt": dict(_NO_MMAP), "env": {"THP_MEM_ALLOC_ENABLE": "1"}},
    "default": {"mallopt": {}, "env": {}},
}

_PRELOADED_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

_state: dict[str, Any] | None = None
_threads_state: dict[str, Any] | None = None

#: Variables by which the environment already decides how OpenMP threads wait.
_OMP_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc on Linux (else ``None``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018 - the symbol must exist
    except (AttributeError, OSError, ValueError):
        return None
    return libc


def _environment_override() -> str | None:
    """Why the environment already decides the allocator (``None``: it does not)."""
    tuned = sorted(k for k in os.environ if k.startswith("MALLOC_") and k.endswith("_"))
    if tuned:
        return f"the environment sets {', '.join(tuned)}"
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES sets glibc.malloc tunables"
    preload = os.environ.get("LD_PRELOAD", "")
    hit = [name for name in _PRELOADED_ALLOCATORS if name in preload]
    if hit:
        return f"LD_PRELOAD loads {hit[0]}"
    return None


def configure_allocator(profile: str | None = None) -> dict[str, Any]:
    """Set this process's ``malloc`` behaviour for large tensors (once; later calls return the first result).

    Call it at the start of a process, before large tensors exist (allocations made before keep their
    place). The ``mano-pde`` command calls it at start-up; importing the package never does.

    Parameters
    ----------
    profile : str, optional
        A name in :data:`PROFILES`. Default: the ``MANO_PDE_ALLOCATOR`` environment variable, else
        ``"tuned"``. An unknown name in the environment variable is logged as a warning and nothing is set.

    Returns
    -------
    dict
        ``{"profile": str, "mallopt": {name: value, ...} (what was set), "env": {...} (variables set),
        "skipped": str or None (why nothing was set)}``, also returned by :func:`allocator_state`.

    Raises
    ------
    UserInputError
        If ``profile`` is given and is not a name in :data:`PROFILES`.
    """
    global _state
    if profile is not None and profile not in PROFILES:  # refused even after an earlier call configured the process
        raise UserInputError(f"unknown allocator profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if _state is not None:
        return dict(_state)
    name = profile if profile is not None else os.environ.get(ENV_VAR, "").strip() or "tuned"
    state: dict[str, Any] = {"profile": name, "mallopt": {}, "env": {}, "skipped": None}
    if name not in PROFILES:
        logger.warning(
            "%s=%s is not an allocator profile (%s); glibc's defaults are kept", ENV_VAR, name, ", ".join(PROFILES)
        )
        state["skipped"] = f"unknown profile {name!r}"
    elif not PROFILES[name]["mallopt"] and not PROFILES[name]["env"]:
        state["skipped"] = "profile 'default': glibc's defaults"
    elif (reason := _environment_override()) is not None:
        state["skipped"] = reason
    elif (libc := _glibc()) is None:
        state["skipped"] = "not glibc on Linux"
    else:
        for key, value in PROFILES[name]["env"].items():
            if key == "THP_MEM_ALLOC_ENABLE" and "torch" in sys.modules:
                logger.debug("torch is already imported: %s=%s may come too late", key, value)
            os.environ[key] = value
            state["env"][key] = value
        for key, value in PROFILES[name]["mallopt"].items():
            if libc.mallopt(_M_PARAMS[key], value) == 1:
                state["mallopt"][key] = value
            else:
                logger.warning("mallopt(%s, %s) was refused by glibc", key, value)
    if state["skipped"]:
        logger.debug("allocator: nothing set (%s)", state["skipped"])
    else:
        logger.debug("allocator profile %r: mallopt %s, environment %s", name, state["mallopt"], state["env"])
    _state = state
    return dict(state)


def allocator_state() -> dict[str, Any] | None:
    """What :func:`configure_allocator` did in this process (``None``: it was not called)."""
    return None if _state is None else dict(_state)


def malloc_info() -> dict[str, int] | None:
    """glibc's ``mallinfo2()`` counters of the main heap and mmapped chunks (``None`` off glibc or before 2.33).

    ``hblkhd`` is the number of bytes in ``mmap``ed chunks, ``arena`` the bytes of the heaps obtained with
    ``brk``/heap ``mmap``s; useful to see where a large allocation went.
    """
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {name: int(getattr(info, name)) for name, _ in _MallInfo2._fields_}


def configure_threads() -> dict[str, Any]:
    """Make OpenMP threads sleep instead of spinning while they wait (``OMP_WAIT_POLICY=PASSIVE``; once).

    An opt-in for a machine whose cores other jobs share; on an idle machine it makes training several times
    slower (module docstring), which is why :func:`configure_process` does not call it. Must run before torch is
    imported (``libgomp`` reads the variable when it is loaded); does nothing if
    torch is already imported or the environment sets ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``.

    Returns
    -------
    dict
        ``{"env": {...} (variables set), "skipped": str or None}``, also returned by :func:`threads_state`.
    """
    global _threads_state
    if _threads_state is not None:
        return dict(_threads_state)
    state: dict[str, Any] = {"env": {}, "skipped": None}
    given = [k for k in _OMP_WAIT_VARS if k in os.environ]
    if given:
        state["skipped"] = f"the environment sets {', '.join(given)}"
    elif "torch" in sys.modules:
        state["skipped"] = "torch (and its OpenMP runtime) is already loaded"
    else:
        os.environ["OMP_WAIT_POLICY"] = state["env"]["OMP_WAIT_POLICY"] = "PASSIVE"
    logger.debug("OpenMP wait policy: %s", state["skipped"] or "OMP_WAIT_POLICY=PASSIVE")
    _threads_state = state
    return dict(state)


def threads_state() -> dict[str, Any] | None:
    """What :func:`configure_threads` did in this process (``None``: it was not called)."""
    return None if _threads_state is None else dict(_threads_state)


def configure_process(profile: str | None = None) -> dict[str, Any]:
    """The start-up settings of a ``mano-pde`` process: :func:`configure_allocator` (``profile``). Call it first
    thing in a script, before large tensors exist.

    OpenMP's wait policy is left alone (:func:`configure_threads` is the opt-in for shared machines; module
    docstring, "The rule for a process-wide default").

    Returns
    -------
    dict
        ``{"allocator": ...}``: :func:`configure_allocator`'s result.
    """
    return {"allocator": configure_allocator(profile)}
