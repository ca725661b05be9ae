"""One `rie train` per checkpoint directory at a time: `run.lock`.

    with RunLock(directory):        # RieError while another live run holds `directory`
        ...                         # check the directory, train, write checkpoints

Two runs started into one directory would both pass the directory checks (neither
has finished an epoch yet) and then overwrite each other's `last.pt`, logs and
`run.json`. The lock is a file in the directory, `run.lock`, holding the owner's pid,
host and start time (for the refusal message), and locked with `flock` for as long
as the run lives. The kernel drops an flock when its process ends however it ends
(SIGKILL included), so a killed run never blocks its directory: the next run finds
the file unlocked and takes it over. A run that ends normally deletes the file.

Where the file system offers no `flock` (some network or FUSE mounts), the file's
existence is the lock and its pid is checked instead: a lock of a process that no
longer runs on this host is taken over; one from another host cannot be checked and
is refused with the path to delete.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from rie_cli.errors import RieError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = "run.lock"


class RunLock:
    """The lock of one checkpoint directory, held from `acquire` (or `with`) to `release`."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # retried only when another process replaced the file meanwhile
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._lock(fd)
            except BaseException:
                os.close(fd)
                raise
            if not locked:
                os.close(fd)
                raise RieError(self._refusal())
            if _same_file(fd, self.path):
                self._fd = fd
                self._write_owner()
                return
            os.close(fd)  # its owner released it (deleted the file) while we locked it: once more
        raise RieError(f"could not lock {self.path}: it keeps being replaced")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            # Delete while still holding the lock: a run waiting for this file then finds
            # it replaced (`_same_file`) and locks the new one.
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def _lock(self, fd: int) -> bool:
        """True if this process now holds the lock of the open file `fd`."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError:
                pass  # no flock on this file system: judge by the owner's pid
        owner = _read_owner(self.path)
        return not owner or not _alive(owner)

    def _write_owner(self) -> None:
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (json.dumps(owner) + "\n").encode(), 0)
        os.fsync(self._fd)

    def _refusal(self) -> str:
        owner = _read_owner(self.path)
        who = (f"pid {owner.get('pid')} on {owner.get('host')}, since {owner.get('started')}" if owner
               else "owner unknown")
        hint = ("wait for it to end or choose another --checkpoint-dir" if fcntl is not None
                else f"if that run is gone, delete {self.path}")
        return f"{self.path.parent} is in use by another `rie train` ({who}): {hint}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_owner(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _alive(owner: dict) -> bool:
    """Whether the process that wrote `owner` may still run (another host's: assume it does)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True
