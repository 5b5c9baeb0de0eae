"""The project a task was for: `owner/name` from a git remote, else a directory's name.

A remote URL can carry credentials (`https://user:token@host/...`, `?private_token=...`): they
are cut off before anything else is read, so no project, log line or event ever holds them. The
remote is read from the work tree's git config file, never by running git: a reporter reads
many tasks, and a file read costs microseconds where a process costs milliseconds.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["MAX_LABEL", "label", "project_from_remote", "project_of_directory"]

# The schema's bound on project, branch and user (sdk-api-reference.md, schema 1.1).
MAX_LABEL = 200
# A git config file is a few KB; one far larger is not read.
_MAX_CONFIG_BYTES = 1024 * 1024
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REMOTE = re.compile(r'^\s*\[\s*remote\s+"(?P<name>[^"]*)"\s*\]')
_SECTION = re.compile(r"^\s*\[")
_URL = re.compile(r"^\s*url\s*=\s*(?P<url>.*?)\s*$", re.IGNORECASE)


def label(value: object) -> str | None:
    """A schema label from a log's value: control characters dropped, cut at 200; else None."""
    if not isinstance(value, str):
        return None
    cleaned = _CONTROL.sub("", value).strip()[:MAX_LABEL].strip()
    return cleaned or None


def _name(path: str) -> str | None:
    """The last component of a local path, without `.git`."""
    parts = [p for p in re.split(r"[\\/]", path) if p and p not in (".", "..")]
    return label(parts[-1].removesuffix(".git")) if parts else None


def project_from_remote(url: str) -> str | None:
    """`owner/name` (or `group/sub/name`) of a remote URL; a local path's last name; else None.

    Everything up to the last `@` of a URL goes (user, password, token), then scheme, host and
    port, the query and fragment, and a trailing `.git`.
    """
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if sep and _SCHEME.match(scheme):
        if scheme.lower() == "file":
            return _name(rest.split("?", 1)[0])
        _host, _, path = rest.rpartition("@")[2].partition("/")
    elif ":" in text.split("/", 1)[0] and not _DRIVE.match(text):
        # scp-like `[user@]host:path`: a colon before any slash.
        _host, _, path = text.rpartition("@")[2].partition(":")
    else:
        return _name(text)
    path = re.split(r"[?#]", path, maxsplit=1)[0]
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    if not parts:
        return None
    parts[-1] = parts[-1].removesuffix(".git")
    return label("/".join(p for p in parts if p))


def _git_dir(top: Path) -> Path | None:
    """The git directory of a work tree top: `.git`, or where a `.git` file points."""
    dot_git = top / ".git"
    if dot_git.is_dir():
        return dot_git
    try:  # a linked worktree or a submodule: "gitdir: <path>"
        text = dot_git.read_text("utf-8", errors="replace")[:4096]
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text.removeprefix("gitdir:").strip())
    return target if target.is_absolute() else top / target


def _config_file(git_dir: Path) -> Path:
    # A linked worktree's own folder names the repository's common folder, which holds config.
    try:
        common = (git_dir / "commondir").read_text("utf-8", errors="replace").strip()
    except OSError:
        return git_dir / "config"
    base = Path(common)
    return (base if base.is_absolute() else git_dir / base) / "config"


def _remote_url(config: Path) -> str | None:
    """The url of remote `origin`, else of the first remote with one."""
    try:
        with config.open("rb") as handle:
            text = handle.read(_MAX_CONFIG_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    urls: dict[str, str] = {}
    remote: str | None = None
    for line in text.splitlines():
        header = _REMOTE.match(line)
        if header:
            remote = header["name"]
        elif _SECTION.match(line):
            remote = None
        elif remote is not None and remote not in urls:
            found = _URL.match(line)
            if found:
                urls[remote] = found["url"].strip('"')
    return urls.get("origin") or next(iter(urls.values()), None)


@lru_cache(maxsize=256)
def project_of_directory(directory: str) -> str | None:
    """The project of a task run in `directory`, on this machine.

    In a git work tree: its remote's `owner/name`, else the work tree's folder name. Elsewhere
    (or when the directory is not on this machine): the directory's own name.
    """
    if not directory:
        return None
    try:
        found = _work_tree_project(Path(directory))
    except (OSError, ValueError):  # a path this system cannot use (a NUL byte, too long)
        found = None
    if found is not None:
        return found
    path = PureWindowsPath(directory) if "\\" in directory else PurePosixPath(directory)
    return label(path.name)


def _work_tree_project(path: Path) -> str | None:
    """The project of the work tree holding `path`, or None outside any."""
    # A relative path (or another system's) says nothing about this machine's folders.
    for top in (path, *path.parents) if path.is_absolute() else ():
        if not (top / ".git").exists():
            continue
        git_dir = _git_dir(top)
        url = _remote_url(_config_file(git_dir)) if git_dir is not None else None
        return (project_from_remote(url) if url else None) or label(top.name)
    return None
