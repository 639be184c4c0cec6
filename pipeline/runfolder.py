"""Safety of a run folder: what may be replaced, and who is writing it.

Why a module of its own: a tracking run can take hours and its outputs feed evaluations, and a
careless ``--out`` (``.``, ``..``, ``~``, a folder of the user's own files) must never cost the
user anything. :func:`check_target` decides, before anything is written, whether a folder may
become (or replace) a run; :class:`RunLock` makes two runs into one folder impossible.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from samtrack.pipeline.core.errors import UserError
from samtrack.pipeline.core.runformat import is_samtrack_run


class OutputExistsError(UserError):
    """The run folder exists (or is a file, or not a run) and may not be replaced."""


class OutputWriteError(UserError):
    """The run folder cannot be written (permissions, a full disk, a read-only file system)."""


def _describe(folder: Path) -> str:
    entries = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    return f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: {shown}"


def check_location(out_dir: Path, protected: list[Path]) -> None:
    """Refuse, before touching anything, a run folder that is the file system root, the home
    folder, the current folder or one of its parents, or a folder holding one of the run's
    inputs (``protected``)."""
    resolved = out_dir.resolve()
    cwd = Path.cwd().resolve()
    special = {Path(resolved.anchor): "the file system root", Path.home().resolve(): "your "
               "home folder", cwd: "the current folder"}
    if resolved in special:
        raise OutputExistsError(f"{out_dir}: is {special[resolved]}; refusing to use it as a "
                                "run folder")
    if resolved in cwd.parents:
        raise OutputExistsError(f"{out_dir}: holds the current folder; refusing to use it as a "
                                "run folder")
    for path in protected:
        p = path.resolve()
        if p == resolved or resolved in p.parents:
            raise OutputExistsError(f"{out_dir}: holds the input {path}; choose another --out")


def check_report_dir(folder: Path, option: str) -> None:
    """Refuse, before anything is written, a folder for reports or many runs (``batch
    --out``, ``eval --out``) that is the file system root or the home folder, or that exists
    and is not a folder."""
    resolved = folder.resolve()
    special = {Path(resolved.anchor): "the file system root",
               Path.home().resolve(): "your home folder"}
    if resolved in special:
        raise OutputExistsError(f"{option} {folder}: is {special[resolved]}; choose a folder "
                                "of its own")
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{option} {folder}: exists and is not a folder")


def check_target(out_dir: Path, *, overwrite: bool) -> str:
    """``"new"`` (absent or empty: write in place) or ``"replace"`` (a previous run, replaced
    only once the new one has finished), else a one-line :class:`OutputExistsError`. Call it
    holding the folder's :class:`RunLock`, after :func:`check_location`."""
    if not out_dir.exists():
        return "new"
    if not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a folder")
    if not any(out_dir.iterdir()):
        return "new"
    if not is_samtrack_run(out_dir):
        raise OutputExistsError(f"{out_dir}: is not a samtrack run folder ({_describe(out_dir)})"
                                "; refusing to write into or replace it")
    if not overwrite:
        raise OutputExistsError(f"{out_dir}: run folder exists (pass --overwrite to replace it)")
    return "replace"


class RunLock:
    """An exclusive lock on a run folder: ``.<name>.lock`` beside it, holding the writer's pid.

    ``filelock`` (``flock`` on Linux and macOS, ``LockFileEx`` on Windows): the OS drops a lock
    with its process, so the file a killed run leaves behind is held by no one and the next
    run simply takes it over; a live holder is named in the error.
    """

    def __init__(self, out_dir: Path) -> None:
        resolved = out_dir.resolve()
        self.path = resolved.parent / f".{resolved.name}.lock"
        self.out_dir = out_dir
        self._lock: Any = None  # a filelock.FileLock while held
        self._created = False

    def acquire(self) -> None:
        import filelock  # on first use: `import samtrack` stays light

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._created = not self.path.exists()
            lock = filelock.FileLock(self.path, timeout=0, thread_local=False)
            lock.acquire()
        except filelock.Timeout:
            holder = "unknown"
            with contextlib.suppress(OSError):
                holder = self.path.read_text(errors="replace").strip() or holder
            raise OutputExistsError(f"{self.out_dir}: another samtrack run (pid {holder}) "
                                    "is writing this folder") from None
        except OSError as exc:
            raise OutputWriteError(f"{self.out_dir}: cannot write here "
                                   f"({exc.strerror or exc})") from None
        with contextlib.suppress(OSError):  # the pid only names the holder in errors
            self.path.write_text(f"{os.getpid()}\n")
        self._lock = lock

    def release(self, *, forget: bool = False) -> None:
        """Unlock. The file normally stays (unlinking it while another process waits on the
        same inode would let a third lock a new file beside it); ``forget`` removes it when
        this process created it and wrote nothing (a refused run)."""
        if self._lock is None:
            return
        if forget and self._created:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self._lock.release()
        self._lock = None
