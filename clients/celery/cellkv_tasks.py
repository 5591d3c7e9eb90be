"""The Celery application and tasks of the cellkv Celery test.

Workers load it with ``celery -A cellkv_tasks worker``; their settings come from the
environment (see ``app_from_env``). The driver (``test_celery.py``) builds its own app with
``make_app`` and the same settings, so both sides agree on queues, routes and transport
options.

Every task records each of its executions straight in cellkv, bypassing Celery and the RESP
tap, in a key space of its own (``celerytest:*``):

* ``INCR celerytest:exec:<task id>``: how many times the task body started;
* ``RPUSH celerytest:runs:<task id> "<worker> <unix time>"``: which worker ran it, and when;
* ``SET celerytest:done:<task id>``: written by ``slow`` once its body finished.

The driver compares those counts with what Celery promises.
"""

from __future__ import annotations

import os
import time

import kombu.transport.redis as kombu_redis
import redis
from celery import Celery
from kombu import Queue

QUEUES = ("default", "backtest", "agents")

#: Seconds an unacknowledged message stays with its consumer before any worker may restore
#: it to its queue. It must exceed the longest a live worker keeps a message unacknowledged
#: (an ETA task waits for its ETA unacknowledged; an ``acks_late`` task stays so while it
#: runs), or Celery itself delivers that message twice: the driver keeps countdowns, ETAs
#: and task durations well below it.
VISIBILITY_TIMEOUT = 8

KEY_PREFIX = "celerytest:"


class Resp2Channel(kombu_redis.Channel):
    """kombu's Redis channel with ``protocol=2`` added to the redis-py connection pool.

    kombu 5.7's Redis transport builds the pool's arguments from a fixed list
    (``Channel._connparams``): neither a transport option nor a broker URL query parameter
    reaches redis-py's ``protocol``, so redis-py's own default (RESP3 since redis-py 8)
    always applies. This subclass is the narrowest way to run the broker over RESP2.
    (The result backend needs no such thing: Celery passes the URL's query parameters to
    redis-py, so ``?protocol=2`` on ``result_backend`` does it.)
    """

    def _connparams(self, asynchronous=False):
        params = super()._connparams(asynchronous=asynchronous)
        params["protocol"] = 2
        return params


class Resp2Transport(kombu_redis.Transport):
    Channel = Resp2Channel


def make_app(broker: str | None, backend: str | None, protocol: str = "") -> Celery:
    """The app, with broker and result backend at the given ``redis://`` URLs.

    ``protocol`` is "" for redis-py's default (RESP3, ``HELLO 3`` on every connection) or
    "2" for RESP2 on every broker and backend connection.
    """
    app = Celery("cellkv_tasks", set_as_current=False)
    if protocol == "2" and backend:
        backend += ("&" if "?" in backend else "?") + "protocol=2"
    elif protocol not in ("", "3"):
        raise ValueError(f"protocol must be '', '2' or '3', not {protocol!r}")
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            # Look for messages past their visibility timeout every second, not every 100.
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="default",
        task_routes={
            "celerytest.slow": {"queue": "backtest"},
            "celerytest.tsum": {"queue": "agents"},
        },
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        enable_utc=True,
        timezone="UTC",
        worker_prefetch_multiplier=4,
    )
    if protocol == "2":
        app.conf.broker_transport = f"{__name__}:Resp2Transport"
    register_tasks(app)
    return app


_direct: redis.Redis | None = None
_direct_pid = 0


def direct() -> redis.Redis:
    """A client straight to cellkv (not through the tap), one per process: prefork children
    must not share the parent's socket."""
    global _direct, _direct_pid
    if _direct is None or _direct_pid != os.getpid():
        host, port = os.environ["CELLKV_CELERY_DIRECT"].rsplit(":", 1)
        _direct = redis.Redis(host=host, port=int(port), protocol=2, socket_timeout=10)
        _direct_pid = os.getpid()
    return _direct


def record_start(task_id: str, hostname: str) -> None:
    with direct().pipeline(transaction=True) as p:
        p.incr(f"{KEY_PREFIX}exec:{task_id}")
        p.rpush(f"{KEY_PREFIX}runs:{task_id}", f"{hostname} {time.time():.3f}")
        p.execute()


def register_tasks(app: Celery) -> None:
    # shared=False: each app (the driver builds one per protocol) keeps its own tasks.
    @app.task(name="celerytest.add", bind=True, shared=False)
    def add(self, x, y):
        record_start(self.request.id, self.request.hostname)
        return x + y

    @app.task(name="celerytest.tsum", bind=True, shared=False)
    def tsum(self, values):
        """A chord's callback: the sum of its header's results."""
        record_start(self.request.id, self.request.hostname)
        return sum(values)

    # acks_late: the message is acknowledged only after the body returns, so a worker that
    # dies mid-task leaves it unacknowledged and another worker runs it again.
    @app.task(name="celerytest.slow", bind=True, acks_late=True, shared=False)
    def slow(self, i, seconds):
        record_start(self.request.id, self.request.hostname)
        time.sleep(seconds)
        direct().set(f"{KEY_PREFIX}done:{self.request.id}", self.request.hostname)
        return i


def app_from_env() -> Celery:
    """The workers' app: ``CELLKV_CELERY_BROKER``, ``CELLKV_CELERY_BACKEND`` (URLs, through
    the tap) and ``CELLKV_CELERY_PROTOCOL`` ("" or "2")."""
    return make_app(
        os.environ.get("CELLKV_CELERY_BROKER"),
        os.environ.get("CELLKV_CELERY_BACKEND"),
        os.environ.get("CELLKV_CELERY_PROTOCOL", ""),
    )


app = app_from_env()
