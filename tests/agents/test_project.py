"""The project of a task: a git remote's `owner/name` with its credentials gone, else a folder.

The work trees are made by the real `git` binary in temporary folders: plain, a linked worktree
(whose `.git` is a file), a submodule, several remotes, none.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mosaicstack_telemetry_agents.project import label, project_from_remote, project_of_directory

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="the git binary is not installed")


@pytest.mark.parametrize(
    ("url", "project"),
    [
        ("https://github.com/acme/widgets.git", "acme/widgets"),
        ("https://user:secret@github.com/acme/widgets.git", "acme/widgets"),
        ("https://oauth2:glpat-abc@gitlab.com/group/sub/widgets.git/", "group/sub/widgets"),
        ("https://x-access-token:ghs_1@github.com/acme/widgets?token=t#frag", "acme/widgets"),
        ("git@github.com:acme/widgets.git", "acme/widgets"),
        ("user:secret@host.example:acme/widgets", "acme/widgets"),
        ("ssh://git@github.com:22/acme/widgets.git", "acme/widgets"),
        ("ssh://git@host/~user/widgets.git", "~user/widgets"),
        ("git://host.xz/acme/widgets.git", "acme/widgets"),
        ("file:///srv/git/widgets.git", "widgets"),
        ("/srv/git/widgets.git", "widgets"),
        ("../widgets", "widgets"),
        ("C:\\repos\\widgets.git", "widgets"),
        ("redacted://url/5d14a88c6f", "5d14a88c6f"),
        ("https://user:secret@github.com", None),
        ("https://github.com/", None),
        ("", None),
    ],
)
def test_a_remote_gives_its_owner_and_name(url: str, project: str | None) -> None:
    assert project_from_remote(url) == project


# Hosts and paths as git remotes have them; credentials as anything a person could paste.
_HOST = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?(:[0-9]{1,5})?", fullmatch=True)
_PATH = st.from_regex(r"[A-Za-z0-9_.~-]{1,12}(/[A-Za-z0-9_.~-]{1,12}){0,3}(\.git)?", fullmatch=True)
_SECRET = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)


@given(st.sampled_from(["https", "http", "ssh", "git+ssh", "ftp"]), _SECRET, _SECRET, _HOST, _PATH)
def test_credentials_in_a_url_never_change_or_reach_the_project(
    scheme: str, user: str, password: str, host: str, path: str
) -> None:
    with_credentials = project_from_remote(f"{scheme}://{user}:{password}@{host}/{path}")
    assert with_credentials == project_from_remote(f"{scheme}://{host}/{path}")
    assume(password not in f"{host}/{path}")
    assert password not in (with_credentials or "")


@given(_SECRET, _SECRET, _HOST.filter(lambda h: ":" not in h), _PATH)
def test_credentials_in_an_scp_like_remote_never_change_or_reach_the_project(
    user: str, password: str, host: str, path: str
) -> None:
    assume(not user.startswith(("/", "\\")) and "/" not in user + password)
    with_credentials = project_from_remote(f"{user}:{password}@{host}:{path}")
    assert with_credentials == project_from_remote(f"{host}:{path}")
    assume(password not in f"{host}/{path}")
    assert password not in (with_credentials or "")


@given(st.text())
def test_any_remote_gives_a_valid_label_or_none(url: str) -> None:
    project = project_from_remote(url)
    assert project is None or project == label(project)


@given(st.text())
def test_a_label_is_one_to_200_characters_with_no_control_character(value: str) -> None:
    cleaned = label(value)
    if cleaned is not None:
        assert 1 <= len(cleaned) <= 200
        assert not any(ord(c) < 32 or ord(c) == 127 for c in cleaned)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        [str(GIT), "-c", "protocol.file.allow=always", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def _repository(folder: Path, *remotes: tuple[str, str]) -> Path:
    folder.mkdir(parents=True)
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
         "-m", "first")  # fmt: skip
    for name, url in remotes:
        _git(folder, "remote", "add", name, url)
    return folder


@needs_git
def test_a_work_tree_gives_its_origins_project_from_any_folder_inside(tmp_path: Path) -> None:
    top = _repository(
        tmp_path / "checkout",
        ("upstream", "https://github.com/upstream/widgets.git"),
        ("origin", "https://user:secret@github.com/acme/widgets.git"),
    )
    inside = top / "src" / "pkg"
    inside.mkdir(parents=True)
    assert project_of_directory(str(top)) == "acme/widgets"
    assert project_of_directory(str(inside)) == "acme/widgets"


@needs_git
def test_without_origin_the_first_remote_is_used(tmp_path: Path) -> None:
    top = _repository(
        tmp_path / "fork",
        ("mine", "git@github.com:me/widgets.git"),
        ("theirs", "git@github.com:acme/widgets.git"),
    )
    assert project_of_directory(str(top)) == "me/widgets"


@needs_git
def test_a_linked_worktree_reads_the_repositorys_remote(tmp_path: Path) -> None:
    top = _repository(tmp_path / "main", ("origin", "ssh://git@host:2222/acme/widgets.git"))
    linked = tmp_path / "linked"
    _git(top, "worktree", "add", "-q", "-b", "feature", str(linked))
    assert (linked / ".git").is_file()
    assert project_of_directory(str(linked)) == "acme/widgets"


@needs_git
def test_a_submodule_reads_its_own_remote(tmp_path: Path) -> None:
    library = _repository(tmp_path / "library")
    top = _repository(tmp_path / "app", ("origin", "https://github.com/acme/app.git"))
    _git(top, "submodule", "add", "-q", str(library), "vendor/library")
    assert (top / "vendor" / "library" / ".git").is_file()
    # The submodule's origin is the library's local path: its folder name.
    assert project_of_directory(str(top / "vendor" / "library")) == "library"
    assert project_of_directory(str(top)) == "acme/app"


@needs_git
def test_a_work_tree_without_remotes_is_named_by_its_folder(tmp_path: Path) -> None:
    top = _repository(tmp_path / "scratch-repo")
    (top / "docs").mkdir()
    assert project_of_directory(str(top / "docs")) == "scratch-repo"


def test_a_folder_outside_any_work_tree_or_machine_is_its_own_name(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert project_of_directory(str(plain)) == "plain"
    # A log from another machine: the folder need not exist here.
    gone = "/home/USER/projects/spotter-worktrees/spotter-gqc"
    assert project_of_directory(gone) == "spotter-gqc"
    assert project_of_directory("C:\\Users\\me\\widgets") == "widgets"
    assert project_of_directory("") is None


@given(st.text())
def test_any_directory_a_log_names_gives_a_label_or_none_never_an_error(directory: str) -> None:
    project = project_of_directory(directory)
    assert project is None or project == label(project)
