"""Fixtures for running redis-py against a real cellkv node.

One cellkv process serves the whole session: it listens on a free loopback port that the
kernel picks (``--port 0``; never 6379), keeps its Raft log in a temporary directory, and is
killed when the session ends, whether the tests passed, failed or were interrupted.

The binary comes from ``CELLKV_BIN`` (``scripts/test-redis-py`` sets it after building),
else from ``$CARGO_TARGET_DIR/debug/cellkv``, else ``~/.cache/cellkv/target/debug/cellkv``.

Every client fixture is parametrized over ``protocol=2`` and ``protocol=3``: redis-py 8
defaults to RESP3, so both are named explicitly and each test runs once per protocol.
"""

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis

READY_PREFIX = "cellkv ready on "
TLS_READY_PREFIX = "cellkv tls ready on "
START_TIMEOUT = 60.0


def _die_with_parent():
    """Runs in the child before exec: SIGKILL it when pytest dies, however pytest dies
    (Linux's PR_SET_PDEATHSIG), so not even a SIGKILLed run leaves a node behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except Exception:
        pass


def _sigterm_as_interrupt(signum, frame):
    # pytest stops on KeyboardInterrupt and still tears the session fixtures down.
    raise KeyboardInterrupt(f"signal {signum}")


def _binary() -> Path:
    explicit = os.environ.get("CELLKV_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/cellkv/target")
    return Path(target) / "debug" / "cellkv"


class CellkvNode:
    """A running cellkv process; ``stop()`` is safe to call more than once."""

    def __init__(self, binary: Path, extra_args=(), ping=True):
        if not binary.is_file():
            raise RuntimeError(
                f"cellkv binary not found at {binary}; build it with "
                "`cargo build --bin cellkv` or run scripts/test-redis-py"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="cellkv-redispy-"))
        self.log_path = self.dir / "cellkv.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(binary),
                "--port", "0",
                "--raft-port", "0",
                "--bind", "127.0.0.1",
                "--dir", str(self.dir / "data"),
                "--log-level", "warn",
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            # Its own process group, so a Ctrl-C aimed at pytest does not kill it before
            # the teardown does, and stop() can take any child with it.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        atexit.register(self.stop)
        self.host = "127.0.0.1"
        self.tls_port = None
        self.port = self._wait_ready()
        assert self.port != 6379, "cellkv must not take the default Redis port in tests"
        # Keep draining stdout so the node never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        if ping:
            self._wait_ping()

    def _wait_ready(self) -> int:
        found = {}

        def read():
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").strip()
                if line.startswith(TLS_READY_PREFIX):
                    self.tls_port = int(line.rsplit(":", 1)[1])
                if line.startswith(READY_PREFIX):
                    found["addr"] = line[len(READY_PREFIX):]
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if "addr" not in found:
            code = self.proc.poll()
            self.stop()
            raise RuntimeError(
                f"cellkv did not report ready within {START_TIMEOUT}s (exit code {code}); "
                f"log:\n{self.log_tail()}"
            )
        return int(found["addr"].rsplit(":", 1)[1])

    def _drain(self):
        try:
            for _ in self.proc.stdout:
                pass
        except (OSError, ValueError):
            pass

    def _wait_ping(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            try:
                with redis.Redis(host=self.host, port=self.port, protocol=2,
                                 socket_timeout=2) as c:
                    if c.ping():
                        return
            except redis.RedisError as e:  # still electing itself leader, or not listening
                last = e
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"cellkv never answered PING: {last}; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        if self.proc.stdout and not self.proc.stdout.closed:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        if os.environ.get("REDIS_PY_KEEP_DIR") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cellkv():
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    node = CellkvNode(_binary())
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol(request):
    return request.param


class Clients:
    """Makes clients of one protocol against the node and closes them all afterwards."""

    def __init__(self, node: CellkvNode, protocol: int):
        self.node = node
        self.protocol = protocol
        self._made = []

    def __call__(self, **kwargs) -> redis.Redis:
        kwargs.setdefault("protocol", self.protocol)
        kwargs.setdefault("decode_responses", True)
        kwargs.setdefault("socket_timeout", 10)
        c = redis.Redis(host=self.node.host, port=self.node.port, **kwargs)
        self._made.append(c)
        return c

    def close(self):
        for c in self._made:
            try:
                c.close()
            except Exception:
                pass


@pytest.fixture
def clients(cellkv, protocol):
    made = Clients(cellkv, protocol)
    try:
        yield made
    finally:
        made.close()
        assert cellkv.alive(), f"cellkv died during the test; log:\n{cellkv.log_tail()}"


@pytest.fixture
def r(clients):
    """A client of the parametrized protocol on db 0, with every database emptied first."""
    c = clients()
    c.flushall()
    return c
