"""The editor-to-editor benchmark runs end to end with a tiny load (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _module() -> Any:
    name = "bench_editor_latency"
    spec = importlib.util.spec_from_file_location(name, BENCH / "editor_latency.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_tiny_run_measures_every_path_without_losing_anything(tmp_path: Path) -> None:
    bench = _module()
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\n## Sidecar footprint\n\nkept\n\n## Relay throughput\n\nalso kept\n",
        encoding="utf-8",
    )
    raw = tmp_path / "results.json"
    plots = tmp_path / "plots"
    res = bench.main(["--tiny", "--doc", str(doc), "--plots", str(plots), "--json", str(raw)])

    [config] = json.loads(raw.read_text(encoding="utf-8"))["configs"]
    assert config["sidecars"] == config["participants"] == 3
    phases = {p["path"]: p for p in res["configs"][0]["phases"]}
    cursor_paths = (
        "editor → editor",
        "editor → socket (sending half)",
        "floor: socket → socket (own session)",
    )
    for path in cursor_paths:
        row = phases[path]
        assert row["pair_updates"] > 0 and row["latency_ms"]["samples"] > 0, path
        assert (
            row["latency_ms"]["p50"] >= 0 and row["latency_ms"]["max"] >= row["latency_ms"]["p50"]
        )
        assert row["final_missing"] == 0, path  # every sender's last position reached everyone
        assert row["coalesced"] >= 0 and row["superseded"] >= 0
        assert row["relay_cpu_pct"] >= 0 and row["driver_cpu_pct"] >= 0
    assert phases["editor → editor"]["sidecars_cpu_pct"] > 0
    assert phases["editor → editor"]["volume"]["collab/remoteCursors"] > 0

    comments = phases["comment → diagnostic"]
    assert comments["comments"] > 0 and comments["acked"] == comments["comments"]
    assert comments["latency_ms"]["samples"] == comments["pair_updates"] > 0
    assert comments["final_missing"] == 0  # every comment reached every other editor
    assert comments["relayed_ms"]["samples"] == comments["comments"]

    text = doc.read_text(encoding="utf-8")
    assert "## Sidecar footprint\n\nkept" in text and "## Relay throughput\n\nalso kept" in text
    assert text.count("## Editor to editor") == 1
    assert "editor → editor" in text and "comment → diagnostic" in text
    if res.get("plots"):
        assert (plots / "editor_latency.png").stat().st_size > 0
