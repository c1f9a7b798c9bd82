"""File identity: workspace-relative names, and files outside never shared."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pygls.uris import from_fs_path

from collab_lsp.sidecar.server import OpenDocument
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


def test_an_open_documents_blob_id_is_kept_until_its_text_changes() -> None:
    document = OpenDocument("file:///p/a.py", "a.py", "one\ntwo\n")
    before = document.lines
    assert document.blob_of(before) == git_blob_id("one\ntwo\n")
    assert document.blob_of(before) == git_blob_id("one\ntwo\n")
    document.set_text("one\n2\n")
    assert document.blob_of(document.lines) == git_blob_id("one\n2\n")
    assert document.blob_of(before) == git_blob_id("one\ntwo\n")  # lines taken before an edit


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


# -- the cached HEAD commit -------------------------------------------------------------------


def _git(root: Path, *args: str) -> str:
    who = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    done = subprocess.run(
        ["git", "-C", str(root), *who, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _commit(root: Path, message: str = "x") -> str:
    _git(root, "commit", "-q", "--allow-empty", "-m", message)
    return _git(root, "rev-parse", "HEAD")


def test_head_is_cached_until_a_commit_changes_it(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    first = _commit(tmp_path)
    head = WorkspaceFiles(tmp_path).head
    assert asyncio.run(head.commit()) == first
    assert asyncio.run(head.commit()) == first
    assert head.runs == 1  # git ran once
    second = _commit(tmp_path)  # a `git commit` in the workspace...
    assert asyncio.run(head.commit()) == second  # ...is recorded by the next comment
    assert asyncio.run(head.commit()) == second
    assert head.runs == 2


def test_head_follows_checkouts_detaching_resets_and_packed_refs(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    first = _commit(tmp_path)
    head = WorkspaceFiles(tmp_path).head
    second = _commit(tmp_path)
    assert asyncio.run(head.commit()) == second
    _git(tmp_path, "checkout", "-q", "-b", "old", first)
    assert asyncio.run(head.commit()) == first
    _git(tmp_path, "checkout", "-q", "main")
    assert asyncio.run(head.commit()) == second
    _git(tmp_path, "checkout", "-q", "--detach", first)
    assert asyncio.run(head.commit()) == first
    _git(tmp_path, "checkout", "-q", "main")
    _git(tmp_path, "reset", "-q", "--hard", first)
    assert asyncio.run(head.commit()) == first
    _git(tmp_path, "pack-refs", "--all")  # the branch now lives in packed-refs only
    assert asyncio.run(head.commit()) == first
    third = _commit(tmp_path)
    assert asyncio.run(head.commit()) == third


def test_head_of_a_linked_worktree(tmp_path: Path) -> None:
    main, linked = tmp_path / "main", tmp_path / "linked"
    main.mkdir()
    _git(main, "init", "-q")
    _commit(main)
    _git(main, "worktree", "add", "-q", "-b", "side", str(linked))
    head = WorkspaceFiles(linked).head
    assert asyncio.run(head.commit()) == _git(linked, "rev-parse", "HEAD")
    moved = _commit(linked)
    assert asyncio.run(head.commit()) == moved
    assert asyncio.run(head.commit()) == moved


def test_a_folder_without_git_has_no_head_until_it_gets_one(tmp_path: Path) -> None:
    head = WorkspaceFiles(tmp_path).head
    assert asyncio.run(head.commit()) is None
    assert asyncio.run(head.commit()) is None
    assert head.runs == 1
    _git(tmp_path, "init", "-q")
    assert asyncio.run(head.commit()) is None  # a repository without a commit yet
    first = _commit(tmp_path)
    assert asyncio.run(head.commit()) == first
    assert asyncio.run(WorkspaceFiles(None).head.commit()) is None


_GIT_STEPS = st.sampled_from(
    ["commit", "branch", "checkout main", "checkout other", "detach", "reset", "pack-refs"]
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_GIT_STEPS, min_size=1, max_size=8))
def test_the_cached_head_is_always_what_git_says(tmp_path_factory: Any, steps: list[str]) -> None:
    root = tmp_path_factory.mktemp("repo")
    _git(root, "init", "-q")
    first = _commit(root)
    head = WorkspaceFiles(root).head
    for step in steps:
        if step == "commit":
            _commit(root, step)
        elif step == "branch":
            _git(root, "branch", "-f", "other", "HEAD")
        elif step.startswith("checkout"):
            name = step.split()[1]
            if name == "main" or _git(root, "branch", "--list", name):
                _git(root, "checkout", "-q", name)
        elif step == "detach":
            _git(root, "checkout", "-q", "--detach", first)
        elif step == "reset":
            _git(root, "reset", "-q", "--hard", first)
        else:
            _git(root, "pack-refs", "--all")
        assert asyncio.run(head.commit()) == asyncio.run(git_head(root)), steps
