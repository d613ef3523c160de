"""Where the reference data sets live: a folder the user names, a cache, or a verified download.

Order: an explicit folder (``--data-dir``), then ``$NETSCOPE_DATA``, then the cache
(``$NETSCOPE_CACHE`` or ``~/.cache/netscope/data``), fetched there on demand with SHA-256 checks.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netscope.errors import NetscopeError

_SCHOOL = "https://raw.githubusercontent.com/8000net/LectureNotesMaster/master/images/school_splits/"
_SURVEY = "https://raw.githubusercontent.com/probml/pmtkdata/master/conjointAnalysisComputerBuyers/"



@dataclass(frozen=True)
class Remote:
    """Where a file comes from: a URL with its SHA-256, or a member of a verified zip."""

    url: str
    sha256: str
    member: str | None = None
    member_sha256: str | None = None


#: relative path -> its public source
FILES: dict[str, Remote] = {
    "school/school_b.mat": Remote(
        _SCHOOL + "school_b.mat",
        "973f1ca99d0d41a838ec6ae86001a48e7b69391eb74646b9e4fc54f62866a146",
    ),
    **{
        f"school/school_{i}_indexes.mat": Remote(_SCHOOL + f"school_{i}_indexes.mat", sha)
        for i, sha in enumerate(
            [
                "030c9ca0a73d6264aa1eeac49aba1d760a1b5692cd3124667e74a7a2b7751bc5",
                "63d3a076a4cdd3de81825d3cf0c030b93bdc60e912eaed4763ee224efab163f8",
                "f7f68e3adb50db8094e230c2b83d548790379cd93ad98fadb35ff2999762dbe6",
                "02643928224056a61e25dec8d4841dba5195ed9affdc76fdc697854a2506d142",
                "6ed00a453d582dce4397f6f49120cff803c22f53cfb2dd63a3826c359c24bcdf",
                "ca853babe5b7f0f5812e7f4261f8b5e5728f1b3b06711e56a76b27b7f959f379",
                "b72105509c70f94f48c7c8b0e1359c6c0ea630c7ac588337b412f946ede62283",
                "8ad60073b135220f1a6f49fdd79b4430b6a0c8ce9925a22dcc5a09141f5b1c04",
                "0de74247d93c413b690ebb65e2e7beb1c55f05b2a2d5db46469e673a552cccf2",
                "b408742eab66cd124563493057b080fd39e5075f48b4c391c53e5f6a1a4c8df1",
            ],
            start=1,
        )
    },
    # pmtkdata keeps the survey as a zip; the .mat inside is checked on its own too
    "computer_survey/conjointAnalysisComputerBuyers.mat": Remote(
        _SURVEY + "conjointAnalysisComputerBuyers.zip",
        "263f65c92f0bf112039c8325d02d321040840c59dbc1d9e704cd81f6b2407207",
        member="conjointAnalysisComputerBuyers/conjointAnalysisComputerBuyers.mat",
        member_sha256="6e6b5f98f438c7d15ed6c7adab44322c9345f52263a4f3026322019f184679b5",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("NETSCOPE_CACHE", Path.home() / ".cache" / "netscope" / "data"))


def data_dir(explicit: str | Path | None = None) -> Path:
    """The folder to read reference data from; an explicit folder or $NETSCOPE_DATA wins."""
    chosen = explicit or os.environ.get("NETSCOPE_DATA")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_dir():
            what = "is a file, not a folder" if path.exists() else "does not exist"
            raise NetscopeError(f"data folder {path} {what} (from --data-dir or NETSCOPE_DATA).")
        return path
    return cache_dir()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure(relative: str, root: Path, progress: Callable[[str], None] | None = None,
           download: bool | None = None) -> Path:
    """Return ``root/relative``; when absent, download and verify it (by default only into
    the cache: a folder the user named is never written to unasked)."""
    path = root / relative
    if path.is_file():
        return path
    if download is None:
        download = root == cache_dir()
    if not download or relative not in FILES:
        return path  # the reader reports the missing file with advice
    remote = FILES[relative]
    if progress:
        progress(f"downloading {remote.url}")
    data = _download(remote.url, relative)
    _check(data, remote.sha256, remote.url)
    if remote.member:
        try:
            data = zipfile.ZipFile(io.BytesIO(data)).read(remote.member)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise NetscopeError(f"{remote.url}: no {remote.member} inside ({exc}).") from None
        _check(data, remote.member_sha256, f"{remote.url}:{remote.member}")
    _write(path, data)
    return path


def _download(url: str, relative: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError as exc:
        raise NetscopeError(
            f"could not download {url} ({exc}); without a network, pass --data-dir "
            f"or set NETSCOPE_DATA to a folder holding {relative}."
        ) from None


def _check(data: bytes, expected: str | None, what: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise NetscopeError(f"{what}: checksum mismatch (got {got}, expected {expected}).")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch_all(root: Path | None = None, progress: Callable[[str], None] | None = None,
              source: Path | None = None) -> Path:
    """Every reference file into the cache (or ``root``), verified: downloaded, or copied
    from the folder ``source`` (set-up fills the cache from a local copy, so every later
    command, and Python, finds the data with no flag or variable); used by `netscope data
    fetch`."""
    root = root or cache_dir()
    for rel in FILES:
        if source is None:
            ensure(rel, root, progress=progress, download=True)
        else:
            copy_verified(rel, Path(source), root)
    if source is not None and progress:
        progress(f"copied {len(FILES)} verified files from {source} to {root}")
    return root


def copy_verified(relative: str, source: Path, root: Path) -> Path:
    """``source/relative`` copied to ``root/relative`` after its SHA-256 checks out."""
    path, remote = source / relative, FILES[relative]
    if not path.is_file():
        raise NetscopeError(f"{path}: missing; {source} does not hold the reference data "
                            f"(expected {relative}).")
    data = path.read_bytes()
    _check(data, remote.member_sha256 or remote.sha256, str(path))
    target = root / relative
    if target.resolve() != path.resolve():
        _write(target, data)
    return target
