"""`mano-pde benchmark settings`: the rule's verdicts, and each variant's settings reach (only) its own child."""

from __future__ import annotations

import pytest

from mano_pde.benchmarks.settings import MAX_SLOWDOWN, MIN_SPEEDUP, judge, run_settings


def _rec(model, n, mode, threads, variant, t, status="ok"):
    return {
        "model": model,
        "resolution": n,
        "mode": mode,
        "threads": threads,
        "variant": variant,
        "time_s": t,
        "status": status,
        "batch_size": 1,
    }


def test_judge_applies_the_rule():
    plain = [_rec("fno", 33, "train", 1, "plain", 1.0), _rec("mano", 33, "train", 1, "plain", 1.0)]
    ok = judge(plain + [_rec("fno", 33, "train", 1, "a", 0.8), _rec("mano", 33, "train", 1, "a", 1.04)])
    assert ok["a"]["passes"] and ok["a"]["best"]["ratio"] == pytest.approx(0.8)
    too_slow = judge(plain + [_rec("fno", 33, "train", 1, "b", 0.5), _rec("mano", 33, "train", 1, "b", 1.06)])
    assert not too_slow["b"]["passes"] and too_slow["b"]["slower_than_rule"] == [["mano", 33, "train", 1]]
    no_gain = judge(plain + [_rec("fno", 33, "train", 1, "c", 1.0), _rec("mano", 33, "train", 1, "c", 0.95)])
    assert not no_gain["c"]["passes"] and 1 / MIN_SPEEDUP < 0.95 <= MAX_SLOWDOWN  # nothing faster by > 10 %
    failed = judge(plain + [_rec("fno", 33, "train", 1, "d", 0.5), _rec("mano", 33, "train", 1, "d", 0, "oom")])
    assert not failed["d"]["passes"] and failed["d"]["failed_configs"] == [["mano", 33, "train", 1]]


def test_each_variant_sets_its_own_settings_in_a_fresh_process(tmp_path, monkeypatch):
    """A plain child sees no OMP_WAIT_POLICY and glibc's malloc defaults even if this process sets them;
    omp-passive sets only the wait policy; shipped is configure_process() (the tuned allocator, no wait policy)."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # must not leak into the children
    result = run_settings(
        ["fno"],
        [9],
        ["inference"],
        [1],
        ["plain", "omp-passive", "shipped"],
        rounds=1,
        repeats=1,
        time_budget=0.5,
        output_dir=tmp_path,
    )
    by_variant = {r["variant"]: r for r in result["records"]}
    assert all(r["status"] == "ok" for r in by_variant.values()), by_variant
    assert by_variant["plain"]["omp_wait_policy"] is None
    assert by_variant["plain"]["allocator"]["mallopt"] == {}
    assert by_variant["omp-passive"]["omp_wait_policy"] == "PASSIVE"
    assert by_variant["omp-passive"]["allocator"]["mallopt"] == {}
    assert by_variant["shipped"]["omp_wait_policy"] is None
    assert by_variant["shipped"]["allocator"]["profile"] == "tuned" and by_variant["shipped"]["allocator"]["mallopt"]
    assert (tmp_path / "settings.json").is_file() and "Verdicts" in (tmp_path / "settings.md").read_text()


@pytest.mark.parametrize("option", [{"time_budget": float("nan")}, {"timeout": 0}, {"rounds": 0}])
def test_bad_settings_are_refused_before_any_process_starts(option):
    from mano_pde.errors import UserInputError

    with pytest.raises(UserInputError, match="must be"):
        run_settings(["fno"], [9], ["inference"], [1], **option)
