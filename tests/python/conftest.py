"""Start a real `engram serve` for the black-box tests (the binary cargo built)."""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def engram_binary():
    explicit = os.environ.get("ENGRAM_BIN")
    if explicit:
        return explicit
    for profile in ("release", "debug"):
        candidate = ROOT / "target" / profile / "engram"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("no engram binary: run `cargo build -p engram` (or set ENGRAM_BIN)")


class Server:
    """An `engram serve` process on a free loopback port with its own data folder."""

    def __init__(self, data_dir, extra_args=()):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.proc = None
        self.url = None
        self.log = []

    def start(self):
        cmd = [engram_binary(), "serve", "--listen", "127.0.0.1:0", "--data", str(self.data_dir),
               *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=ROOT)
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise RuntimeError("engram serve exited:\n" + "".join(self.log))
                continue
            self.log.append(line)
            match = re.search(r"serving on (http://[0-9.:]+)", line)
            if match:
                self.url = match.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        raise RuntimeError("engram serve did not start in time:\n" + "".join(self.log))

    def _drain(self):
        for line in self.proc.stdout:
            self.log.append(line)

    def stop(self, sig=None):
        if self.proc and self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def server():
    data = tempfile.mkdtemp(prefix="engram-test-")
    srv = Server(data).start()
    yield srv
    srv.stop()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture()
def fresh_data_dir():
    data = tempfile.mkdtemp(prefix="engram-test-")
    yield pathlib.Path(data)
    shutil.rmtree(data, ignore_errors=True)
