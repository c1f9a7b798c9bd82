"""The Lua unit tests (colours, positions, coalescing, rendering), run by the same headless nvim."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.neovim.harness import PLUGIN

LUA = Path(__file__).parent / "lua"
SPECS = sorted(LUA.glob("test_*.lua"))


@pytest.mark.parametrize("spec", SPECS, ids=[spec.stem for spec in SPECS])
def test_lua_spec(spec: Path, nvim_binary: str) -> None:
    result = subprocess.run(
        [
            *(nvim_binary, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-l"),
            *(str(LUA / "runner.lua"), str(PLUGIN), str(spec)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " 0 failed" in output, output
