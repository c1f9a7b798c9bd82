"""File identity: URIs in the editor <-> workspace-relative paths on the wire.

The root is the git top level above the LSP root (so two checkouts in different
folders agree), else the LSP root. Files outside the root are never shared.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from pathlib import Path

from pygls.uris import from_fs_path, to_fs_path

from collab_lsp.protocol.coordinates import normalize_relative_path

__all__ = ["GitHead", "WorkspaceFiles", "find_root", "git_blob_id", "git_head"]


def find_root(lsp_root: str | None) -> Path | None:
    if not lsp_root:
        return None
    start = Path(lsp_root).resolve()
    try:
        result = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return start
    if result.returncode == 0 and result.stdout.strip():
        return Path(result.stdout.strip()).resolve()
    return start


class WorkspaceFiles:
    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.head = GitHead(root)
        self._uris: dict[str, str | None] = {}

    def relative(self, uri: str) -> str | None:
        """The shared name of a document, or None if it is not inside the workspace."""
        if self.root is None:
            return None
        path = to_fs_path(uri)
        if path is None:
            return None
        try:
            relative = Path(path).resolve().relative_to(self.root)
        except ValueError:
            return None
        try:
            return normalize_relative_path(relative.as_posix())
        except ValueError:
            return None

    def uri(self, relative: str) -> str | None:
        # Remembered: every thread of a file is rendered with its file's URI.
        if relative in self._uris:
            return self._uris[relative]
        uri: str | None = None
        if self.root is not None:
            uri = from_fs_path(str(self.root / relative))
        if len(self._uris) < 10_000:
            self._uris[relative] = uri
        return uri

    def read_lines(self, relative: str) -> list[str] | None:
        """A file's lines from disk, for files the editor has not opened."""
        if self.root is None:
            return None
        try:
            return (self.root / relative).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None


def git_blob_id(text: str) -> str:
    """The id git gives this content as a blob (what ``git hash-object`` prints)."""
    data = text.encode("utf-8")
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


async def git_head(root: Path | None) -> str | None:
    """The commit checked out at ``root``, or None outside a git repository."""
    if root is None:
        return None
    try:
        process = await asyncio.create_subprocess_exec(
            "git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 5)
    except (OSError, TimeoutError):
        return None
    head = output.decode().strip()
    return head if process.returncode == 0 and head else None


# (inode, mtime in ns, size) of a file, or None when it does not exist.
_Stamp = tuple[int, int, int] | None
_NOT_A_REPOSITORY = "no .git"


def _stamp(path: Path) -> _Stamp:
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


class GitHead:
    """:func:`git_head` for one workspace, without spawning git for every comment.

    The commit HEAD names can only change when one of the files git reads it from
    changes: ``HEAD``, the ref it points to (loose, in ``packed-refs``, or in a reftable
    stack), and, in a linked worktree, the same under the common directory. The commit
    is cached with the content of HEAD and of the loose ref it names (a commit id, when
    there is one), and the stamps (inode, mtime in ns, size) of the others, all taken
    before git runs; git runs again as soon as any of them differs, so a ``git commit``,
    ``checkout``, ``reset`` or ``pull`` is seen by the next comment. (Git replaces each of
    these files by renaming a lock file over it: a new inode and mtime every time.)
    When the layout is not one this understands, git runs every time, as before.
    """

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.runs = 0  # how many times git was asked (tests, benchmarks)
        self._cached: tuple[tuple[object, ...], str | None] | None = None

    async def commit(self) -> str | None:
        if self.root is None:
            return None
        key = self._key(self.root)
        cached = self._cached
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        self.runs += 1
        head = await git_head(self.root)
        # Kept: a repository's commit, or that a folder without .git has none. Not: a
        # repository without a commit (yet), or a commit for a folder without .git (GIT_DIR).
        repository = key is not None and key[0] != _NOT_A_REPOSITORY
        self._cached = (key, head) if key is not None and (head is not None) == repository else None
        return head

    @staticmethod
    def _key(root: Path) -> tuple[object, ...] | None:
        """The stamps of every file HEAD's commit is read from; None: not understood."""
        dotgit = root / ".git"
        try:
            if dotgit.is_file():  # a linked worktree or a submodule: "gitdir: <path>"
                text = dotgit.read_text(encoding="utf-8").strip()
                if not text.startswith("gitdir:"):
                    return None
                git_dir = root / text.removeprefix("gitdir:").strip()
            elif dotgit.is_dir():
                git_dir = dotgit
            else:
                # Not a repository (yet): cached until a .git appears.
                return (_NOT_A_REPOSITORY, _stamp(dotgit))
            common = git_dir
            if (git_dir / "commondir").is_file():
                common = git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
            stamps: list[object] = [
                _stamp(git_dir / "HEAD"),
                _stamp(common / "packed-refs"),
                _stamp(common / "reftable" / "tables.list"),
                _stamp(git_dir / "reftable" / "tables.list"),
            ]
            target = (git_dir / "HEAD").read_text(encoding="utf-8")
            for _ in range(5):  # a symbolic ref may point at another one
                if not target.startswith("ref:"):
                    break
                name = target.removeprefix("ref:").strip()
                local, shared = git_dir / name, common / name
                stamps += [name, _stamp(local), _stamp(shared)]
                existing = local if local.is_file() else shared
                if not existing.is_file():
                    break  # a packed ref, or a reftable repository: the stamps above
                target = existing.read_text(encoding="utf-8")
            # A detached HEAD's or a loose ref's commit itself: exact, whatever the stamps.
            stamps.append(target.strip())
        except (OSError, ValueError):
            return None
        return tuple(stamps)
