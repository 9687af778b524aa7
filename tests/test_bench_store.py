"""The store-and-forward benchmark runs end to end (tiny sizes, real Mosquitto, real agent process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plantwatch.simulators.plant import find_mosquitto

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "store.py"
RUN_TIMEOUT_S = 120.0
"""A tiny run takes about 10 s; the deadline only stops a hung run."""


@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed (make setup installs it)")
def test_store_benchmark_reports_positive_figures_and_drains_the_backlog() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--insert-records",
            "2000",
            "--alert-records",
            "200",
            "--forward-records",
            "2000",
            "--drain-records",
            "3000",
            "--drain-rate",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for name in (
        "insert_raw_records_per_s",
        "insert_outbox_records_per_s",
        "insert_ratio",
        "insert_alert_ratio",
        "forward_raw_records_per_s",
        "forward_outbox_records_per_s",
        "forward_ratio",
        "drain_s",
        "drain_records_per_s",
        "drain_fill_s",
        "drain_file_bytes",
        "health_payload_bytes",
        "agent_rss_peak_mb",
    ):
        assert figures[name] > 0, name
    assert figures["insert_same_rows"] and figures["insert_alert_same_rows"]
    assert figures["forward_records_left"] == 0
    assert figures["drain_records"] == 3000
    assert figures["drain_records_left"] == 0
    assert figures["drain_records_thinned"] == 0
    assert figures["drain_agent_exit_code"] == 0
