"""Result folders: checked before any work starts, and replaced whole or not at all.

A run writes into a hidden staging folder beside its target and swaps it in at the end, so
an interrupted run (Ctrl-C, SIGTERM, a full disk) leaves the previous results untouched and
a finished one leaves only its own files: never results.csv from one run beside
report.html from another. The previous folder is kept under a hidden name until the swap
has succeeded; a run killed in between (SIGKILL, power loss) is repaired by the next run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from netscope.errors import NetscopeError

MARKER = "netscope-run.json"
LEGACY_MARKERS = ("results.json",)  # multitask folders written before the marker existed


def _existing_ancestor(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path.cwd()


def check_writable_dir(path: str | Path, what: str = "--out") -> Path:
    """``path`` is, or can become, a folder this process can write in; else a clear error."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise NetscopeError(f"{what} {path}: this is a file, not a folder; name a folder.")
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise NetscopeError(f"{what} {path}: {base} is a file, so no folder can be made "
                            f"under it; name another folder.")
    try:  # a real probe: os.access says yes to root on read-only file systems
        Path(tempfile.mkdtemp(dir=base, prefix=".netscope-probe-")).rmdir()
    except OSError as exc:
        raise NetscopeError(f"{what} {path}: cannot write in {base} "
                            f"({exc.strerror or exc}); name a folder you can write to.") from None
    return path


def check_writable_file(path: str | Path, what: str) -> Path:
    """``path`` can be created or replaced as a file."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise NetscopeError(f"{what} {path}: this is a folder; name a file.")
    check_writable_dir(path.parent, what=f"{what} {path}: its folder")
    return path


def check_replaceable(target: str | Path) -> Path:
    """A folder a run may replace: absent, empty, or written by netscope; writable."""
    target = check_writable_dir(target)
    _repair(target)
    if not target.is_dir():
        return target
    entries = sorted(p.name for p in target.iterdir())
    if entries and not any(m in entries for m in (MARKER, *LEGACY_MARKERS)):
        raise NetscopeError(
            f"--out {target}: the folder already holds files netscope did not write "
            f"(e.g. {entries[0]!r}); a run replaces its output folder as a whole, so name a "
            f"new or empty folder.")
    return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _siblings(target: Path, role: str) -> list[Path]:
    parent = target.parent
    if not parent.is_dir():
        return []
    prefix = f".{target.name}.{role}-"
    return sorted(p for p in parent.iterdir() if p.name.startswith(prefix))


def _owner(path: Path) -> int | None:
    try:
        return int(path.name.rsplit("-", 2)[-2])
    except (ValueError, IndexError):
        return None


def _repair(target: Path) -> None:
    """Undo what a killed run left: restore a backup that was never swapped back, remove
    staging folders of processes that no longer exist."""
    for role in ("previous", "partial"):
        for path in _siblings(target, role):
            pid = _owner(path)
            if pid is None or _pid_alive(pid):
                continue
            if role == "previous" and not target.exists():
                os.rename(path, target)
            else:
                shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM for the two renames, so an interrupt lands before or after."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not \
            threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _hidden(target: Path, role: str) -> Path:
    return target.parent / f".{target.name}.{role}-{os.getpid()}-{os.urandom(4).hex()}"


@contextmanager
def staged_folder(target: str | Path, command: str = "",
                  replaced: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes ``target`` (with a
    ``netscope-run.json`` listing its files), on any exception it is deleted. When it
    replaces the results of another command, ``replaced`` hears which (no result is
    replaced without a word)."""
    target = check_replaceable(target)
    before = _command_of(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = _hidden(target, "partial")
    stage.mkdir()
    try:
        yield stage
        _write_marker(stage, command)
        with _signals_held():
            backup = None
            if target.exists():
                backup = _hidden(target, "previous")
                os.rename(target, backup)
            try:
                os.rename(stage, target)
            except OSError:
                if backup is not None:
                    os.rename(backup, target)
                raise
            if backup is not None:
                shutil.rmtree(backup, ignore_errors=True)
        if replaced is not None and before is not None and before != command:
            replaced(f"replaced {target}, which held the results of: {before[:300]}")
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _command_of(folder: Path) -> str | None:
    """The command whose results ``folder`` holds (its marker), or None."""
    try:
        return str(json.loads((folder / MARKER).read_text(encoding="utf-8"))["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_marker(stage: Path, command: str) -> None:
    from netscope import __version__

    files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    doc = {"netscope": __version__, "command": command,
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files}
    (stage / MARKER).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
