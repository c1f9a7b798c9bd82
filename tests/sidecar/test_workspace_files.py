"""File identity: workspace-relative names, and files outside never shared."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from pygls.uris import from_fs_path

from collab_lsp.sidecar.workspace_files import WorkspaceFiles, find_root, git_blob_id, git_head


def _uri(path: Path) -> str:
    uri = from_fs_path(str(path))
    assert uri is not None
    return uri


def test_paths_are_relative_to_the_git_top_level(tmp_path: Path) -> None:
    repo = tmp_path / "checkout"
    (repo / "pkg" / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    files = WorkspaceFiles(find_root(str(repo / "pkg")))
    assert files.relative(_uri(repo / "pkg" / "sub" / "a.py")) == "pkg/sub/a.py"


def test_two_checkouts_name_the_same_file_alike(tmp_path: Path) -> None:
    first, second = tmp_path / "one" / "proj", tmp_path / "two" / "elsewhere"
    for root in (first, second):
        (root / "src").mkdir(parents=True)
    assert WorkspaceFiles(first).relative(_uri(first / "src" / "x.py")) == "src/x.py"
    assert WorkspaceFiles(second).relative(_uri(second / "src" / "x.py")) == "src/x.py"


def test_files_outside_the_root_are_never_named(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    files = WorkspaceFiles(root)
    assert files.relative(_uri(tmp_path / "secret.txt")) is None
    assert files.relative("untitled:Untitled-1") is None
    assert WorkspaceFiles(None).relative(_uri(root / "a.py")) is None


def test_blob_ids_match_git(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("print('héllo')\n", encoding="utf-8")
    expected = subprocess.run(
        ["git", "hash-object", str(tmp_path / "a.py")], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert git_blob_id("print('héllo')\n") == expected


def test_head_is_read_in_a_repository_and_none_outside(tmp_path: Path) -> None:
    assert asyncio.run(git_head(tmp_path)) is None
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t",
         "commit", "-q", "--allow-empty", "-m", "x"],
        check=True,
    )  # fmt: skip
    head = asyncio.run(git_head(tmp_path))
    assert head is not None and len(head) == 40
