"""The checkpoint directory's lock (rie_cli/training/lock.py) within one process; two real
`rie train` processes meet it in tests/test_train_resume.py."""

import json
import os
import socket
import subprocess
import sys

import pytest

from rie_cli.errors import RieError
from rie_cli.training import lock
from rie_cli.training.lock import RunLock


def _owner(path, pid, host=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": "then"}))


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_held_refused_released_and_reusable(tmp_path):
    with RunLock(tmp_path / "run") as held:
        owner = json.loads(held.path.read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(RieError, match=rf"in use by another `rie train` \(pid {os.getpid()} on "):
            RunLock(tmp_path / "run").acquire()  # another open file description: flock says no
    assert not held.path.exists()
    with RunLock(tmp_path / "run"):
        pass


def test_a_stale_file_of_a_dead_run_is_taken_over(tmp_path):
    path = tmp_path / "run" / lock.LOCK_FILE
    _owner(path, _dead_pid())  # what a killed run leaves behind
    with RunLock(tmp_path / "run"):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_without_flock_the_pid_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "fcntl", None)
    path = tmp_path / "run" / lock.LOCK_FILE
    _owner(path, _dead_pid())
    with RunLock(tmp_path / "run"):
        pass
    _owner(path, os.getppid())  # a live process
    with pytest.raises(RieError, match=f"pid {os.getppid()}.*if that run is gone, delete"):
        RunLock(tmp_path / "run").acquire()
    _owner(path, 1, host="elsewhere")  # cannot be checked from here: assumed alive
    with pytest.raises(RieError, match="on elsewhere"):
        RunLock(tmp_path / "run").acquire()
