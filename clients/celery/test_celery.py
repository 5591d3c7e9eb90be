"""The real Celery 5 (kombu's Redis transport, redis-py 8) with broker and result backend both
on cellkv, through a RESP tap, once with redis-py's default protocol (RESP3) and once with
``protocol=2``.

Per protocol, in order (the tests of one protocol share a tap and hand workers on):

1. ``test_round_trip``: a few hundred tasks over the queues ``default``, ``backtest`` and
   ``agents``, some with ``countdown`` or ``eta``, a group and chords (chords run the
   result backend's Lua scripts). Every result comes back, right, and every task body ran
   exactly once.
2. ``test_warm_shutdown_restores_reserved``: a worker holding prefetched tasks is told to
   stop (SIGTERM, Celery's warm shutdown); its running tasks finish, its reserved ones go
   back to their queue at once, and the next worker runs each of them exactly once.
3. ``test_crash_restores_after_visibility_timeout``: a worker is SIGKILLed while it runs
   ``acks_late`` tasks and holds more; after the visibility timeout the next worker
   restores the unacknowledged messages and runs them. What ran and was acknowledged
   before the kill runs once; what was unacknowledged runs once more; nothing is lost.
4. ``test_tap``: the handshake really differs between the two runs (``HELLO 3`` opens every
   connection of the default run, no ``HELLO`` in the RESP2 run), and cellkv answered no
   command with an error that Redis 7.2 would not give.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
from celery import chord, group
from celery.result import ResultSet

import cellkv_tasks
from cellkv_tasks import KEY_PREFIX, QUEUES, VISIBILITY_TIMEOUT
from conftest import TAP_STATS, format_stats

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 60.0
RESULT_TIMEOUT = 90.0

#: The error replies Redis 7.2 itself gives to what these clients send, by command. Any
#: other error seen by the tap fails test_tap.
REDIS_ERRORS = {
    # redis-py's Script (the chord scripts) tries EVALSHA first and loads the script on
    # this error.
    "EVALSHA": "NOSCRIPT No matching script. Please use EVAL.",
    # redis-py 8 offers this on every RESP3 connection (maint_notifications "auto") and
    # ignores the refusal; Redis 7.2 has no such subcommand.
    "CLIENT MAINT_NOTIFICATIONS":
        "ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.",
}


def _die_with_parent():
    """In a child before exec: SIGKILL it when pytest dies (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def wait_for(what: str, check, timeout: float, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Process:
    """A child in its own process group, so a kill takes prefork's pool children too. It
    inherits ``CELLKV_CELERY_RUN_DIR``, by which scripts/test-celery's trap finds and kills
    whatever is left of it however this session ends."""

    def __init__(self, run_dir: Path, name: str, argv: list[str], env: dict):
        self.name = name
        self.log_path = run_dir / f"{name}.log"
        self._out = open(run_dir / f"{name}.out", "ab")
        self.proc = subprocess.Popen(
            argv, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        """Sends ``sig`` to the group, waits, and SIGKILLs whatever is left."""
        if self.alive():
            if sig == signal.SIGTERM:
                # Celery's warm shutdown is driven by the main process; its pool children
                # are told by it, not by us.
                self.proc.send_signal(sig)
            else:
                self.signal_group(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)
        code = self.proc.wait()
        self._out.close()
        return code


class Run:
    """One protocol's run: a RESP tap in front of the node, the driver's Celery app through
    it, and the workers started so far."""

    def __init__(self, protocol_id: str, protocol: str, node: tuple[str, int], run_dir: Path):
        self.protocol_id = protocol_id
        self.protocol = protocol
        self.dir = run_dir / protocol_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.node = node
        self.db = redis.Redis(host=node[0], port=node[1], protocol=2, socket_timeout=10,
                              decode_responses=True)
        # Each run starts from an empty server, scripts included, so both runs send the
        # same commands for the same reasons.
        self.db.flushall()
        self.db.script_flush()
        self.processes: list[Process] = []
        self.workers: dict[str, Process] = {}
        self.tap_stats_path = self.dir / "tap.json"
        self.tap = Process(self.dir, "tap", [
            sys.executable, str(HERE / "resp_tap.py"), "--upstream", f"{node[0]}:{node[1]}",
            "--out", str(self.tap_stats_path),
        ], dict(os.environ))
        self.processes.append(self.tap)
        self.tap_addr = wait_for("the tap to listen", self._tap_listening, START_TIMEOUT)
        self.url = f"redis://{self.tap_addr}/0"
        self.app = cellkv_tasks.make_app(self.url, self.url, protocol)
        self.tap_stats: dict | None = None

    def _tap_listening(self):
        if not self.tap.alive():
            raise AssertionError(f"the tap exited: {self.tap.proc.returncode}")
        text = (self.dir / "tap.out").read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("resp-tap listening on "):
                return line.rsplit(" ", 1)[1]
        return None

    # workers

    def start_worker(self, name: str, concurrency: int, prefetch: int) -> Process:
        assert name not in self.workers, name
        env = dict(os.environ)
        env.update(
            CELLKV_CELERY_BROKER=self.url,
            CELLKV_CELERY_BACKEND=self.url,
            CELLKV_CELERY_PROTOCOL=self.protocol,
            CELLKV_CELERY_DIRECT=f"{self.node[0]}:{self.node[1]}",
            PYTHONPATH=str(HERE),
            PYTHONDONTWRITEBYTECODE="1",
        )
        log = self.dir / f"{name}.log"
        worker = Process(self.dir, name, [
            sys.executable, "-m", "celery", "-A", "cellkv_tasks", "worker",
            "-n", f"{name}@cellkv", "-Q", ",".join(QUEUES), "-P", "prefork",
            "-c", str(concurrency), "--prefetch-multiplier", str(prefetch),
            "-l", "INFO", "-f", str(log),
        ], env)
        self.processes.append(worker)
        self.workers[name] = worker

        def ready():
            if not worker.alive():
                raise AssertionError(f"worker {name} exited: {worker.proc.returncode}")
            return log.exists() and f"{name}@cellkv ready." in log.read_text(errors="replace")

        wait_for(f"worker {name} to be ready", ready, START_TIMEOUT, interval=0.1)
        return worker

    def worker(self, name: str, concurrency: int, prefetch: int) -> Process:
        """The named worker if it runs, else a new one (so a test can run alone)."""
        w = self.workers.get(name)
        if w is not None and w.alive():
            return w
        self.workers.pop(name, None)
        return self.start_worker(name, concurrency, prefetch)

    def stop_workers(self):
        for name, w in list(self.workers.items()):
            if w.alive():
                w.stop(signal.SIGTERM)
            del self.workers[name]

    # what the tasks recorded

    def exec_count(self, task_id: str) -> int:
        return int(self.db.get(f"{KEY_PREFIX}exec:{task_id}") or 0)

    def exec_counts(self, ids) -> dict[str, int]:
        ids = list(ids)
        values = self.db.mget([f"{KEY_PREFIX}exec:{i}" for i in ids]) if ids else []
        return {i: int(v or 0) for i, v in zip(ids, values)}

    def runs(self, task_id: str) -> list[tuple[str, float]]:
        out = []
        for entry in self.db.lrange(f"{KEY_PREFIX}runs:{task_id}", 0, -1):
            worker, at = entry.rsplit(" ", 1)
            out.append((worker, float(at)))
        return out

    def done(self, ids) -> set[str]:
        ids = list(ids)
        values = self.db.mget([f"{KEY_PREFIX}done:{i}" for i in ids]) if ids else []
        return {i for i, v in zip(ids, values) if v is not None}

    def unacked(self) -> dict[str, tuple[str, float]]:
        """kombu's unacknowledged messages: task id → (delivery tag, delivery time)."""
        scores = dict(self.db.zrange("unacked_index", 0, -1, withscores=True))
        out = {}
        for tag, raw in self.db.hgetall("unacked").items():
            message, _exchange, _routing_key = json.loads(raw)
            out[message["headers"]["id"]] = (tag, scores.get(tag, 0.0))
        return out

    # teardown

    def stop_tap(self) -> dict:
        if self.tap_stats is None:
            self.tap.stop(signal.SIGTERM)
            self.tap_stats = json.loads(self.tap_stats_path.read_text())
        return self.tap_stats

    def log_tails(self, lines: int = 30) -> str:
        parts = []
        for p in self.processes:
            for path in (p.log_path, self.dir / f"{p.name}.out"):
                if path.exists():
                    text = path.read_text(errors="replace").splitlines()[-lines:]
                    parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts)

    def close(self):
        try:
            self.app.close()
        except Exception:
            pass
        for p in self.processes:
            # A tap test_tap did not stop (the run failed or was interrupted) stays up until
            # pytest exits (it dies with it): results still pending in the driver
            # unsubscribe through it when they are collected, where a dead tap would make
            # Celery retry the connection for a minute.
            if p.alive() and p is not self.tap:
                p.stop(signal.SIGKILL, timeout=5)
        self.db.close()


@pytest.fixture(scope="class", params=[("default", ""), ("resp2", "2")],
                ids=["default-protocol", "protocol-2"])
def run(request, node_addr, run_dir):
    protocol_id, protocol = request.param
    r = Run(protocol_id, protocol, node_addr, run_dir)
    try:
        yield r
    finally:
        r.close()


def collect(app, results, timeout=RESULT_TIMEOUT) -> list:
    return ResultSet(list(results), app=app).get(timeout=timeout)


class TestCelery:
    def test_round_trip(self, run: Run):
        app = run.app
        run.worker("w1", concurrency=4, prefetch=4)
        add = lambda *args, **options: app.signature("celerytest.add", args=args,  # noqa: E731
                                                     options=options)
        expected: dict[str, int] = {}  # task id → result
        not_before: dict[str, float] = {}  # task id → earliest time it may start

        results = []
        # Plain tasks, spread over the three queues.
        for i in range(240):
            r = add(i, i, queue=QUEUES[i % 3]).apply_async()
            expected[r.id] = 2 * i
            results.append(r)
        # countdown and eta: the worker holds them, unacknowledged, until they are due.
        for i in range(15):
            countdown = 1 + i % 2
            submitted = time.time()
            r = add(i, 100, queue=QUEUES[i % 3]).apply_async(countdown=countdown)
            expected[r.id] = i + 100
            not_before[r.id] = submitted + countdown
            results.append(r)
        for i in range(10):
            eta = datetime.now(timezone.utc) + timedelta(seconds=2)
            r = add(i, 200, queue=QUEUES[i % 3]).apply_async(eta=eta)
            expected[r.id] = i + 200
            not_before[r.id] = eta.timestamp()
            results.append(r)
        # A group.
        group_result = group(add(i, 300, queue=QUEUES[i % 3]) for i in range(20)).apply_async()
        for i, r in enumerate(group_result.results):
            expected[r.id] = i + 300
        # Chords: a header of ten, a callback that sums them (on the agents queue).
        chords = []
        for k in range(3):
            header = [add(k, j, queue=QUEUES[(k + j) % 3]) for j in range(10)]
            callback_result = chord(header, app=app)(app.signature("celerytest.tsum"))
            header_results = callback_result.parent.results
            for j, r in enumerate(header_results):
                expected[r.id] = k + j
            expected[callback_result.id] = sum(k + j for j in range(10))
            chords.append((callback_result, header_results))

        values = collect(app, results)
        assert values == [expected[r.id] for r in results]
        assert group_result.get(timeout=RESULT_TIMEOUT) == [i + 300 for i in range(20)]
        for callback_result, header_results in chords:
            assert callback_result.get(timeout=RESULT_TIMEOUT) == expected[callback_result.id]
            assert [r.get(timeout=RESULT_TIMEOUT) for r in header_results] == \
                [expected[r.id] for r in header_results]

        # No task ran twice, none was skipped: each body started exactly once (nothing
        # here was redelivered, so at-least-once and at-most-once both mean once).
        counts = run.exec_counts(expected)
        wrong = {i: n for i, n in counts.items() if n != 1}
        assert not wrong, f"{len(wrong)} tasks did not run exactly once: {wrong}"
        assert len(expected) == 240 + 15 + 10 + 20 + 3 * 11
        # Each result is stored once, under its own task id.
        meta = {k.removeprefix("celery-task-meta-")
                for k in run.db.scan_iter("celery-task-meta-*", count=1000)}
        assert meta == set(expected)
        # countdown and eta were honoured (the worker and the driver share a clock; Celery's
        # timer may fire a few milliseconds early).
        for task_id, earliest in not_before.items():
            (worker, started), = run.runs(task_id)
            assert started >= earliest - 0.05, (task_id, started, earliest)
        # Everything was acknowledged and every queue drained.
        wait_for("every message to be acknowledged", lambda: run.db.hlen("unacked") == 0, 10)
        assert [run.db.llen(q) for q in QUEUES] == [0, 0, 0]

    def test_warm_shutdown_restores_reserved(self, run: Run):
        app = run.app
        w1 = run.worker("w1", concurrency=4, prefetch=4)
        slow = [app.signature("celerytest.slow", args=(i, 0.5)).apply_async()
                for i in range(30)]
        ids = [r.id for r in slow]
        # Four running and, with a prefetch of 4 x 4, more reserved behind them.
        wait_for("w1 to start four tasks",
                 lambda: sum(run.exec_counts(ids).values()) >= 4, 30)
        held = set(run.unacked()) & set(ids)
        assert w1.stop(signal.SIGTERM) == 0, "w1's warm shutdown did not exit cleanly"

        counts = run.exec_counts(ids)
        started = {i for i, n in counts.items() if n}
        # A warm shutdown lets running tasks finish (and acknowledges them)...
        assert started <= run.done(ids)
        # ...and gives every reserved message back to its queue at once, without waiting
        # for the visibility timeout: nothing is left unacknowledged.
        assert run.db.hlen("unacked") == 0
        restored = held - started
        assert restored, f"w1 held no reserved task at SIGTERM (held {len(held)})"

        run.worker("w2", concurrency=2, prefetch=2)
        assert collect(app, slow) == list(range(30))
        counts = run.exec_counts(ids)
        wrong = {i: n for i, n in counts.items() if n != 1}
        assert not wrong, f"tasks not run exactly once across a warm restart: {wrong}"
        for task_id in restored:
            assert [w for w, _ in run.runs(task_id)] == ["w2@cellkv"], task_id

    def test_crash_restores_after_visibility_timeout(self, run: Run):
        app = run.app
        w2 = run.worker("w2", concurrency=2, prefetch=2)
        slow = [app.signature("celerytest.slow", args=(i, 1.5)).apply_async()
                for i in range(10)]
        ids = [r.id for r in slow]

        # Kill when w2 runs two tasks and holds its full prefetch (2 x 2) unacknowledged:
        # then it has no BRPOP outstanding (kombu stops asking when it has no credit), so
        # every message it took is in kombu's `unacked` hash, and the kill loses none.
        def full():
            running = sum(run.exec_counts(ids).values())
            return running == 2 and len(set(run.unacked()) & set(ids)) == 4

        wait_for("w2 to run two tasks and hold four", full, 30, interval=0.01)
        w2.stop(signal.SIGKILL)
        killed_at = time.time()

        counts = run.exec_counts(ids)
        started = {i for i, n in counts.items() if n}
        finished = run.done(ids)
        unacked = {i: v for i, v in run.unacked().items() if i in set(ids)}
        # acks_late: a task that started but did not finish is still unacknowledged.
        assert started - finished <= set(unacked)
        assert set(unacked) - started, "no reserved, never-started task was held"
        assert started & set(unacked), "no task was killed while running"

        run.worker("w3", concurrency=2, prefetch=2)
        assert collect(app, slow) == list(range(10))

        # What Celery promises here, exactly:
        # * a message acknowledged before the kill (its task ran to completion on w2) is
        #   not delivered again: its task ran once;
        # * a message unacknowledged at the kill is restored once, after the visibility
        #   timeout, and runs once more: once in all if w2 had not started it, twice if w2
        #   was running it (acks_late trades at-most-once for at-least-once);
        # * a message w2 never took runs once, on w3.
        counts = run.exec_counts(ids)
        for task_id in ids:
            want = 2 if (task_id in started and task_id in unacked) else 1
            assert counts[task_id] == want, (task_id, counts[task_id], want)
        for task_id, (_tag, delivered_at) in unacked.items():
            runs = run.runs(task_id)
            worker, at = runs[-1]
            assert worker == "w3@cellkv", (task_id, runs)
            # Restored by the visibility timeout (w3 sweeps every second), not earlier.
            assert at >= delivered_at + VISIBILITY_TIMEOUT, (task_id, at, delivered_at)
        assert killed_at < min(at for _, at in
                               (run.runs(i)[-1] for i in unacked)), "restored before the kill"
        wait_for("every message to be acknowledged", lambda: run.db.hlen("unacked") == 0, 10)

    def test_tap(self, run: Run):
        run.stop_workers()
        run.app.close()
        stats = run.stop_tap()
        TAP_STATS[run.protocol_id] = stats
        (run.dir / "commands.txt").write_text(format_stats(stats) + "\n")

        assert not stats["parse_failures"], stats["parse_failures"]
        assert stats["connections"] > 0
        hellos = {name: n for name, n in stats["commands"].items() if name.startswith("HELLO")}
        if run.protocol == "2":
            # protocol=2: redis-py stays on RESP2 and never says HELLO.
            assert not hellos, f"protocol=2 run sent {hellos}"
            assert stats["handshakes"] == {"no HELLO": stats["connections"]}
        else:
            # redis-py 8's default: every connection switches to RESP3 with HELLO 3 (after
            # a PING when the health check is due: kombu sets health_check_interval).
            assert stats["handshakes"] == {"HELLO 3": stats["connections"]}
            assert hellos == {"HELLO 3": stats["connections"]}
        # The work above must have gone through the tap.
        for name in ("LPUSH", "BRPOP", "EVALSHA", "MULTI", "EXEC", "PUBLISH", "SUBSCRIBE"):
            assert stats["commands"].get(name, 0) > 0, name

        unexpected = {}
        for text, n in stats["errors"].items():
            command, error = text.split(" -> ", 1)
            if REDIS_ERRORS.get(command.removesuffix(" (in EXEC)")) != error:
                unexpected[text] = n
        assert not unexpected, f"errors Redis 7.2 would not give: {unexpected}"
