from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.neovim.harness import Neovim, Nvim, discover_nvims

NVIMS = discover_nvims()
APP = "import os\n\n\ndef main():\n    print('héllo😀 world')\n    return 0\n"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """XDG folders in a temp dir, and no COLLAB_* settings from the environment."""
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        folder = tmp_path / "xdg" / name.lower()
        folder.mkdir(parents=True)
        monkeypatch.setenv(name, str(folder))
    for name in ("COLLAB_RELAY_URL", "COLLAB_TOKEN", "COLLAB_SESSION", "COLLAB_NAME"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A small project that Neovim and the other participant share as their workspace."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(APP, encoding="utf-8")
    (root / "src" / "long.py").write_text(
        "".join(f"line_{n} = {n}\n" for n in range(1, 201)), encoding="utf-8"
    )
    return root


@pytest.fixture(params=NVIMS, ids=[nvim.id for nvim in NVIMS])
def nvim_binary(request: pytest.FixtureRequest) -> str:
    """Each test that uses Neovim runs once per Neovim version (see harness.discover_nvims)."""
    nvim: Nvim = request.param
    if nvim.path is None:
        if nvim.required:
            pytest.fail(f"{nvim.id}: {nvim.problem}", pytrace=False)
        pytest.skip(f"{nvim.id}: {nvim.problem}")
    return nvim.path


@pytest.fixture
async def neovims(tmp_path: Path, nvim_binary: str) -> AsyncIterator[Callable[..., Any]]:
    """Start headless Neovims with the plugin: ``await neovims(workspace, **setup)``."""
    started: list[Neovim] = []

    async def make(root: Path, **setup: Any) -> Neovim:
        home = tmp_path / f"nvim{len(started)}"
        home.mkdir()
        nvim = Neovim(home, nvim_binary)
        started.append(nvim)
        await nvim.start(root_dir=str(root), **setup)
        await nvim.command(f"cd {root}")
        return nvim

    yield make
    problems: list[str] = []
    for nvim in started:
        with contextlib.suppress(Exception):  # (a Neovim that is gone has nothing to add)
            problems += await nvim.problems()
        await nvim.stop()
    assert not problems, f"Neovim reported: {problems}"
