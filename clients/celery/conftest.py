"""Fixtures for the Celery round trip against a running cellkv node.

``scripts/test-celery`` starts the node (on a free loopback port, with a temporary data
directory) and passes it in the environment:

* ``CELLKV_CELERY_NODE``: ``HOST:PORT`` of the node;
* ``CELLKV_CELERY_RUN_DIR``: a directory for worker logs and tap statistics. Every
  process this session starts inherits the variable, and the script kills every process
  that carries it on its way out, whatever happened here.

After the tests, the commands the RESP tap saw are printed per protocol, above pytest's
closing line.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
import redis

#: protocol id → tap statistics, filled by test_celery.py's last test of each protocol.
TAP_STATS: dict[str, dict] = {}
#: One-line figures of tests, printed after the run (test_celery_failover.py's).
SUMMARIES: list[str] = []


def _sigterm_as_interrupt(signum, frame):
    # pytest tears fixtures down on KeyboardInterrupt, so workers and the tap are stopped.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def node_addr() -> tuple[str, int]:
    addr = os.environ.get("CELLKV_CELERY_NODE")
    if not addr:
        pytest.fail("CELLKV_CELERY_NODE is not set: run scripts/test-celery, which starts "
                    "a cellkv node and sets it")
    host, port = addr.rsplit(":", 1)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    # The node may still be electing itself leader.
    deadline = time.monotonic() + 60
    while True:
        try:
            with redis.Redis(host=host, port=int(port), protocol=2, socket_timeout=2) as c:
                c.set("celerytest:ready", "1")
                break
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return host, int(port)


@pytest.fixture(scope="session")
def run_dir() -> Path:
    given = os.environ.get("CELLKV_CELERY_RUN_DIR")
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="cellkv-celery-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        run = item.funcargs.get("run")
        if run is not None:
            report.sections.append(("worker and tap logs", run.log_tails()))


def format_stats(stats: dict) -> str:
    lines = [f"connections through the tap: {stats['connections']}"]
    width = max((len(name) for name in stats["commands"]), default=0)
    for name, count in sorted(stats["commands"].items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {name:<{width}}  {count}")
    first = ", ".join(f"{k} x{v}" for k, v in stats["first_commands"].items())
    lines.append(f"first command of each connection: {first or '-'}")
    hello = ", ".join(f"{k} x{v}" for k, v in stats["handshakes"].items())
    lines.append(f"protocol handshake of each connection: {hello or '-'}")
    if stats["errors"]:
        lines.append("error replies:")
        for text, count in stats["errors"].items():
            lines.append(f"  {count:>5}  {text}")
    else:
        lines.append("error replies: none")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter):
    if SUMMARIES:
        terminalreporter.section("figures")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
    for protocol, stats in TAP_STATS.items():
        terminalreporter.section(f"commands Celery sent ({protocol})")
        terminalreporter.write_line(format_stats(stats))
