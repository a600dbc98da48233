"""benchmarks/serve.py, the load test of `xception serve`: its whole code path on a tiny model."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_serve_benchmark_smoke_reports_every_phase_without_failures(tmp_path):
    spec = importlib.util.spec_from_file_location("benchmarks_serve", ROOT / "benchmarks" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    out = tmp_path / "serve.md"
    assert module.main(["--smoke", "--rounds", "1", "--out", str(out)]) == 0
    report = out.read_text()
    rows = re.findall(r"^\| (saturation, round 1|latency|overload) \| ([^|]+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|",
                      report, flags=re.MULTILINE)
    assert [(name, clients.strip()) for name, clients, *_ in rows][:4] == [
        ("saturation, round 1", "32"), ("latency", "1"), ("latency", "4"), ("latency", "16")]
    assert rows[-1][0] == "overload"
    for _, _, requests, answered, refused, failed in rows:
        assert int(failed) == 0 and int(answered) + int(refused) == int(requests) > 0
    assert "exit status after SIGTERM: 0" in report
    assert "load average" in report
