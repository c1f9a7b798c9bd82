"""The relay benchmark runs end to end with a tiny load (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from tests.services import PG_DSN

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _run_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_tiny_run_produces_well_formed_results(tmp_path: Path) -> None:
    run = _run_module()
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Sidecar footprint\n\nkept\n", encoding="utf-8")
    raw = tmp_path / "results.json"
    res = run.main(
        [
            "--tiny",
            "--doc",
            str(doc),
            "--plots",
            str(tmp_path / "plots"),
            "--json",
            str(raw),
            "--postgres-dsn",
            PG_DSN,
        ]
    )

    assert json.loads(raw.read_text(encoding="utf-8"))["fanout"]
    servers = {r["server"] for r in res["fanout"]}
    assert servers == {"relay", "reference", run.COMPRESSED}  # compressed frames were inflated
    for r in res["fanout"] + res["saturation"]:
        assert r["delivered_per_s"] > 0
        assert r["latency_ms"]["samples"] > 0
        assert r["latency_ms"]["p50"] is not None and r["latency_ms"]["p50"] >= 0
        assert r["pair_updates_in_window"] > 0
        assert r["lost"] >= 0 and r["final_position_missing"] >= 0
        assert r["server_cpu_pct"] >= 0 and r["loadgen_cpu_pct"] >= 0
        assert r["server_rss_mib"] > 0
    # The durable scenario also runs the relay on the real PostgreSQL (tests/services.py).
    assert {r["server"] for r in res["durable"]} == {"relay", run.POSTGRES, "reference"}
    for r in res["durable"]:
        assert r["acked_per_s"] > 0 and r["ack_ms"]["p99"] is not None
        assert r["errors"] == 0 and r["unacked_after_drain"] == 0
    on_postgres = [r for r in res["durable"] if r["server"] == run.POSTGRES]
    assert all(r["database_cpu_pct"] > 0 for r in on_postgres)  # it really wrote there
    for r in res["capacity"]:
        assert r["connected"] == r["requested"] > 0
        assert r["server_rss_after_mib"] > 0
    for r in res["history"]:
        assert r["joins"] > 0 and r["join_ms_p50"] > 0

    text = doc.read_text(encoding="utf-8")
    assert "## Sidecar footprint\n\nkept" in text
    assert text.count("## Relay throughput") == 1
    for heading in ("Scenario 1", "Scenario 2", "Scenario 3", "Scenario 4", "### Targets"):
        assert heading in text

    # The same section again from the saved results alone, nothing measured.
    again = tmp_path / "again.md"
    run.main(["--report-from", str(raw), "--doc", str(again), "--plots", str(tmp_path / "p2")])
    assert (
        again.read_text(encoding="utf-8").split("## Relay throughput", 1)[1]
        == text.split("## Relay throughput", 1)[1]
    )
    assert (tmp_path / "p2" / "relay_durable.png").stat().st_size > 0
