"""The load-test runner, in short: a few seconds of a launch spike against the demo
stack, with its report, plots and a passing verdict."""

from __future__ import annotations

import argparse
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
@pytest.mark.serial  # it measures: alone, before the parallel lane
def test_a_short_launch_spike_passes_and_reports(tmp_path: Path) -> None:
    """Run as across machines: a Locust master and two workers (make soak, below, runs
    one process). The shape's plan reaches the workers (before issue 30 every worker's
    shoppers stopped at once) and the verdict counts both workers' shoppers."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "loadtests/run.py"), "--seconds", "8", "--base-users", "4",
         "--peak-users", "30", "--capacity", "4", "--think-seconds", "0.5", "--workers", "2",
         "--session-idle-seconds", "5",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=180, cwd=ROOT)
    verdict = (tmp_path / "verdict.txt").read_text() if (tmp_path / "verdict.txt").exists() \
        else result.stdout + result.stderr
    assert result.returncode == 0, verdict
    assert verdict.startswith("PASS") and "origin sessions at most" in verdict
    assert "(from 2 workers)" in verdict
    assert "0 overloads" in verdict
    longest_line = int(re.search(r"longest line (\d+)", verdict).group(1))  # type: ignore[union-attr]
    assert longest_line > 0  # the crowd really queued
    # Every shopper accounted for, the room's count matching Locust's, and the line gone.
    counts = re.search(r"(\d+) arrived; (\d+) straight in, (\d+) let in after waiting "
                       r"\(Locust's 'checkout \(admitted\)': (\d+)\), (\d+) gave up", verdict)
    assert counts, verdict
    arrived, straight, waited, locust_waited, gave_up = map(int, counts.groups())
    assert waited == locust_waited and arrived == straight + waited + gave_up
    assert "the line drained" in verdict
    for name in ("report.html", "plots.png", "room.csv", "locust_stats.csv",
                 "locust_stats_history.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = (tmp_path / "room.csv").read_text().splitlines()
    assert set(rows[0].split(",")) >= {"t", "app_rss_mb", "redis_mb", "waiting", "active",
                                       "admitted", "capacity", "shop_peak"}
    assert len(rows) > 3


def _make_recipe(target: str) -> list[str]:
    """The command ``make <target>`` runs (its last recipe line, continuations joined),
    as arguments, with ``$(PYTHON)`` this interpreter."""
    lines = (ROOT / "Makefile").read_text().split("\n")
    start = lines.index(f"{target}: install") + 1
    recipe = []
    for line in lines[start:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().removesuffix("\\").strip())
    return " ".join(recipe).replace("$(PYTHON)", sys.executable).split()


@pytest.mark.slow
@pytest.mark.serial  # it measures: alone, before the parallel lane
def test_make_soak_as_documented_finds_its_own_figures(tmp_path: Path) -> None:
    """``make soak``'s own command line (a relative ``--out``), shortened by flags and
    run from another directory: the verdict reads the figures Locust wrote."""
    command = _make_recipe("soak")
    assert "--out" in command and not Path(command[command.index("--out") + 1]).is_absolute()
    command[1] = str(ROOT / command[1])  # loadtests/run.py, from wherever we are
    result = subprocess.run(
        [*command, "--seconds", "8", "--base-users", "3", "--peak-users", "20",
         "--capacity", "4", "--think-seconds", "0.5", "--session-idle-seconds", "5"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    out = tmp_path / command[command.index("--out") + 1]
    verdict = (out / "verdict.txt").read_text()
    assert result.returncode == 0, verdict + result.stderr
    requests = int(re.search(r"of (\d+) requests", verdict).group(1))  # type: ignore[union-attr]
    assert verdict.startswith("PASS") and requests > 0
    assert (out / "locust_stats.csv").stat().st_size > 0


def test_a_verdict_from_no_figures_says_so(tmp_path: Path) -> None:
    """Locust wrote nothing where the verdict looks: neither a pass nor a fail."""
    spec = importlib.util.spec_from_file_location("loadtest_run", ROOT / "loadtests/run.py")
    assert spec and spec.loader
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    args = argparse.Namespace(scenario="soak", seconds=600, base_users=10, peak_users=200,
                              capacity=20, max_error_rate=0.01, max_poll_p99_ms=500)
    sampler = run._Sampler("http://127.0.0.1:9", None, "token", None)
    verdict = run._verdict(args, tmp_path, sampler, 0)
    assert verdict.startswith("NO DATA") and str(tmp_path) in verdict

