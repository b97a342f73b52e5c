"""The load-test runner, in short: a few seconds of a launch spike against the demo
stack, with its report, plots and a passing verdict."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Looked up, not imported: importing locust monkey-patches this process with gevent.
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("locust", "matplotlib")),
    reason="needs the load extra: pip install 'waitingroom[load]'")


@pytest.mark.slow
def test_a_short_launch_spike_passes_and_reports(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "loadtests/run.py"), "--seconds", "8", "--base-users", "3",
         "--peak-users", "30", "--capacity", "4", "--think-seconds", "0.5",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    verdict = (tmp_path / "verdict.txt").read_text() if (tmp_path / "verdict.txt").exists() \
        else result.stdout + result.stderr
    assert result.returncode == 0, verdict
    assert verdict.startswith("PASS") and "origin sessions at most" in verdict
    assert "0 overloads" in verdict
    longest_line = int(re.search(r"longest line (\d+)", verdict).group(1))  # type: ignore[union-attr]
    assert longest_line > 0  # the crowd really queued
    for name in ("report.html", "plots.png", "room.csv", "locust_stats.csv",
                 "locust_stats_history.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = (tmp_path / "room.csv").read_text().splitlines()
    assert set(rows[0].split(",")) >= {"t", "app_rss_mb", "redis_mb", "waiting", "active",
                                       "admitted", "capacity", "shop_peak"}
    assert len(rows) > 3
