"""The Celery round trip against a three-node cell, through a follower's port, while the
leader is killed (SIGKILL) and restarted mid-run.

The fixture starts its own cell from ``CELLKV_BIN`` (``scripts/test-celery`` sets it) on
loopback ports picked here. The driver, the workers and the tasks' own bookkeeping all talk
to one follower, which is never killed: every write they send is forwarded to whichever node
leads, and reads are confirmed with it. Tasks are submitted before, during and after the
leader's death. Every result must come back, right, and every task body must have started
exactly once: a write in flight when the leader died (a ``BRPOP`` handing a message to a
worker, an acknowledgement, a result) is resolved with the next leader, never lost and never
applied twice.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
import redis
from celery import chord

from cellkv_tasks import QUEUES
from conftest import SUMMARIES
from test_celery import RESULT_TIMEOUT, START_TIMEOUT, Process, Run, collect, wait_for

NODES = (1, 2, 3)
#: How long the cell may take to elect a leader after a start or a kill.
ELECTION_TIMEOUT = 30.0


def free_ports(count: int) -> list[int]:
    """Ports free on loopback right now (bound together, then released)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cell:
    """Three ``cellkv`` processes forming one cell by ``--peers``; restartable one by one
    on their own data directories."""

    def __init__(self, run_dir: Path, binary: str):
        self.dir = run_dir / "cell"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.raft_ports = dict(zip(NODES, free_ports(len(NODES))))
        self.peers = ",".join(f"{i}@127.0.0.1:{p}" for i, p in self.raft_ports.items())
        self.procs: dict[int, Process] = {}
        self.ports: dict[int, int] = {}
        self.starts = 0
        for node in NODES:
            self.start(node)

    def start(self, node: int):
        self.starts += 1
        name = f"node{node}-start{self.starts}"
        data = self.dir / f"n{node}"
        data.mkdir(parents=True, exist_ok=True)
        proc = Process(self.dir, name, [
            self.binary, "--node-id", str(node), "--port", "0",
            "--raft-port", str(self.raft_ports[node]), "--bind", "127.0.0.1",
            "--dir", str(data), "--peers", self.peers, "--log-level", "warn",
        ], dict(os.environ))
        self.procs[node] = proc
        out = self.dir / f"{name}.out"

        def ready():
            if not proc.alive():
                raise AssertionError(f"node {node} exited: {out.read_text(errors='replace')}")
            for line in out.read_text(errors="replace").splitlines():
                if line.startswith("cellkv ready on "):
                    return int(line.rsplit(":", 1)[1])
            return None

        self.ports[node] = wait_for(f"node {node} to serve", ready, START_TIMEOUT, 0.05)

    def kill(self, node: int):
        self.procs[node].stop(signal.SIGKILL, timeout=5)

    def role(self, node: int) -> str | None:
        try:
            with redis.Redis(host="127.0.0.1", port=self.ports[node], socket_timeout=2,
                             protocol=2) as c:
                return c.execute_command("ROLE")[0].decode()
        except redis.RedisError:
            return None

    def leader(self, among=NODES) -> int:
        def find():
            masters = [n for n in among if self.procs[n].alive() and self.role(n) == "master"]
            return masters[0] if len(masters) == 1 else None

        return wait_for("one leader", find, ELECTION_TIMEOUT, 0.1)

    def close(self):
        for proc in self.procs.values():
            proc.stop(signal.SIGKILL, timeout=5)


@pytest.fixture(scope="module")
def cell(run_dir):
    binary = os.environ.get("CELLKV_BIN")
    if not binary:
        pytest.fail("CELLKV_BIN is not set: run scripts/test-celery, which builds cellkv")
    c = Cell(run_dir, binary)
    try:
        yield c
    finally:
        c.close()


def test_round_trip_through_a_follower_while_the_leader_is_killed(cell: Cell, run_dir: Path):
    leader = cell.leader()
    follower = next(n for n in NODES if n != leader)
    run = Run("cell", "", ("127.0.0.1", cell.ports[follower]), run_dir)
    try:
        app = run.app
        run.worker("w1", concurrency=4, prefetch=4)
        add = lambda *args, **options: app.signature("celerytest.add", args=args,  # noqa: E731
                                                     options=options)
        expected: dict[str, int] = {}
        results = []

        def submit(count: int, base: int):
            for i in range(count):
                r = add(base + i, base + i, queue=QUEUES[i % 3]).apply_async()
                expected[r.id] = 2 * (base + i)
                results.append(r)

        submit(150, 0)
        # Kill the leader once the worker is busy: part of the tasks done, the rest queued,
        # reserved or running.
        wait_for("a first share of the tasks to run",
                 lambda: sum(run.exec_counts(expected).values()) >= 30, RESULT_TIMEOUT)
        done_at_kill = sum(run.exec_counts(expected).values())
        cell.kill(leader)
        killed_at = time.monotonic()
        # Submitted while there is no leader: these wait in the follower for the next one.
        submit(100, 1000)
        header = [add(7, j, queue=QUEUES[j % 3]) for j in range(10)]
        callback = chord(header, app=app)(app.signature("celerytest.tsum"))
        for j, r in enumerate(callback.parent.results):
            expected[r.id] = 7 + j
        expected[callback.id] = sum(7 + j for j in range(10))
        new_leader = cell.leader(among=[n for n in NODES if n != leader])
        failover_s = time.monotonic() - killed_at
        cell.start(leader)
        submit(50, 2000)

        values = collect(app, results)
        assert values == [expected[r.id] for r in results]
        assert callback.get(timeout=RESULT_TIMEOUT) == expected[callback.id]
        assert done_at_kill < len(expected), "the leader died with tasks still to run"
        counts = run.exec_counts(expected)
        wrong = {i: n for i, n in counts.items() if n != 1}
        assert not wrong, f"{len(wrong)} tasks did not run exactly once: {wrong}"
        meta = {k.removeprefix("celery-task-meta-")
                for k in run.db.scan_iter("celery-task-meta-*", count=1000)}
        assert meta == set(expected)
        wait_for("every message to be acknowledged", lambda: run.db.hlen("unacked") == 0, 30)
        assert [run.db.llen(q) for q in QUEUES] == [0, 0, 0]
        # The restarted node caught up: it holds every result too.
        with redis.Redis(host="127.0.0.1", port=cell.ports[leader], protocol=2,
                         socket_timeout=10) as c:
            wait_for("the restarted node to catch up",
                     lambda: c.exists(*[f"celery-task-meta-{i}" for i in expected])
                     == len(expected), ELECTION_TIMEOUT, 0.2)
        SUMMARIES.append(
            f"celery-cell: tasks={len(expected)} through follower {follower}; leader "
            f"{leader} killed with {done_at_kill} done; 111 tasks submitted through the "
            f"follower meanwhile, node {new_leader} leading {failover_s:.1f}s after the kill; "
            f"every result back, every task run exactly once")
    finally:
        run.stop_workers()
        run.stop_tap()
        run.close()
