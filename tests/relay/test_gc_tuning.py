"""`collab-relay serve` tunes the garbage collector once the relay has started."""

from __future__ import annotations

import subprocess
import sys


def test_tune_for_serving_freezes_start_up_objects_and_collects_less_often() -> None:
    # In a process of its own: the settings are process-wide.
    probe = (
        "import gc\n"
        "import collab_lsp.relay.cli\n"
        "from collab_lsp.relay.gc_tuning import THRESHOLDS, tune_for_serving\n"
        "assert gc.get_freeze_count() == 0\n"
        "tune_for_serving()\n"
        "print(gc.get_freeze_count(), gc.get_threshold() == THRESHOLDS, THRESHOLDS[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    frozen, applied, young = out.stdout.split()
    assert int(frozen) > 20_000  # the modules, pydantic's schemas...: out of every collection
    assert applied == "True" and int(young) > 700  # CPython's default young threshold
