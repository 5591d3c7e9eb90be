"""Lists, including blocking pops woken by a push from another client."""

import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def pair(protocol, key, value):
    """BLPOP/BRPOP: redis-py makes a tuple in RESP2 and keeps the array (a list) in RESP3."""
    return (key, value) if protocol == 2 else [key, value]


def push_later(clients, delay, *commands):
    """Runs commands on a separate client after `delay` seconds, in a thread."""
    pusher = clients()
    errors = []

    def run():
        try:
            time.sleep(delay)
            for name, *args in commands:
                getattr(pusher, name)(*args)
        except Exception as e:  # surfaced by join_ok
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join_ok():
        t.join(10)
        assert not t.is_alive(), "pusher thread hung"
        assert not errors, errors

    return join_ok


def test_push_pop_range(r):
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lpush("l", "z", "y") == 5
    assert r.lrange("l", 0, -1) == ["y", "z", "a", "b", "c"]
    assert r.lrange("l", -2, 100) == ["b", "c"]
    assert r.lrange("l", 3, 1) == []
    assert r.llen("l") == 5
    assert r.lindex("l", 1) == "z"
    assert r.lindex("l", -1) == "c"
    assert r.lindex("l", 99) is None
    assert r.lpop("l") == "y"
    assert r.rpop("l") == "c"
    assert r.lpop("l", 2) == ["z", "a"]
    assert r.rpop("l", 5) == ["b"]
    assert r.exists("l") == 0  # the last pop deletes the key
    assert r.lpop("l") is None
    assert r.lpop("l", 2) is None
    assert r.lpushx("l", "x") == 0
    assert r.rpush("l", "1") == 1
    assert r.rpushx("l", "2") == 2
    assert r.lpushx("l", "0") == 3
    assert r.lrange("l", 0, -1) == ["0", "1", "2"]


def test_edit_in_place(r):
    r.rpush("l", "a", "b", "a", "c", "a")
    assert r.lrem("l", 2, "a") == 2
    assert r.lrange("l", 0, -1) == ["b", "c", "a"]
    assert r.lset("l", 1, "C") is True
    with pytest.raises(redis.ResponseError, match="index out of range"):
        r.lset("l", 10, "x")
    assert r.linsert("l", "before", "C", "B2") == 4
    assert r.linsert("l", "after", "a", "end") == 5
    assert r.linsert("l", "after", "nothere", "x") == -1
    assert r.lrange("l", 0, -1) == ["b", "B2", "C", "a", "end"]
    assert r.ltrim("l", 1, -2) is True
    assert r.lrange("l", 0, -1) == ["B2", "C", "a"]


def test_lmove_rpoplpush(r):
    r.rpush("src", "1", "2", "3")
    assert r.lmove("src", "dst", "LEFT", "RIGHT") == "1"
    assert r.lmove("src", "dst", "RIGHT", "LEFT") == "3"
    assert r.lrange("src", 0, -1) == ["2"]
    assert r.lrange("dst", 0, -1) == ["3", "1"]
    assert r.rpoplpush("dst", "src") == "1"
    assert r.lrange("src", 0, -1) == ["1", "2"]
    # Same source and destination rotates.
    r.rpush("rot", "a", "b", "c")
    assert r.lmove("rot", "rot", "LEFT", "RIGHT") == "a"
    assert r.lrange("rot", 0, -1) == ["b", "c", "a"]
    assert r.lmove("empty", "dst", "LEFT", "LEFT") is None


def test_lpos(r):
    r.rpush("l", "a", "b", "c", "1", "2", "3", "c", "c")
    assert r.lpos("l", "c") == 2
    assert r.lpos("l", "c", rank=2) == 6
    assert r.lpos("l", "c", rank=-1) == 7
    assert r.lpos("l", "c", count=0) == [2, 6, 7]
    assert r.lpos("l", "c", count=2) == [2, 6]
    assert r.lpos("l", "c", rank=-1, count=2) == [7, 6]
    assert r.lpos("l", "c", count=0, maxlen=7) == [2, 6]
    assert r.lpos("l", "x") is None
    assert r.lpos("l", "x", count=2) == []
    with pytest.raises(redis.ResponseError, match="RANK can't be zero"):
        r.lpos("l", "c", rank=0)


def test_lmpop(r):
    r.rpush("b", "1", "2", "3")
    assert r.lmpop(2, "a", "b", direction="LEFT", count=2) == ["b", ["1", "2"]]
    assert r.lmpop(2, "a", "b", direction="RIGHT") == ["b", ["3"]]
    assert r.lmpop(1, "a", direction="LEFT") is None


def test_blpop_woken_by_push(r, clients, protocol):
    join_ok = push_later(clients, 0.3, ("rpush", "jobs", "job-1"))
    start = time.monotonic()
    got = r.blpop(["other", "jobs"], timeout=5)
    elapsed = time.monotonic() - start
    join_ok()
    assert got == pair(protocol, "jobs", "job-1")
    assert 0.2 <= elapsed < 4
    assert r.exists("jobs") == 0


def test_brpop_woken_by_push_takes_tail(r, clients, protocol):
    join_ok = push_later(clients, 0.2, ("rpush", "q2", "a", "b", "c"))
    got = r.brpop(["q1", "q2"], timeout=5)
    join_ok()
    assert got == pair(protocol, "q2", "c")
    assert r.lrange("q2", 0, -1) == ["a", "b"]


def test_blocking_pop_answers_at_once_when_data_is_there(r, protocol):
    r.rpush("ready", "x", "y")
    assert r.blpop("ready", timeout=1) == pair(protocol, "ready", "x")
    assert r.brpop(["missing", "ready"], timeout=1) == pair(protocol, "ready", "y")


def test_blpop_times_out(r):
    start = time.monotonic()
    assert r.blpop(["nothing"], timeout=0.3) is None
    elapsed = time.monotonic() - start
    assert 0.25 <= elapsed < 2.0
    start = time.monotonic()
    assert r.brpop("nothing", timeout=1) is None
    assert 0.9 <= time.monotonic() - start < 3.0


def test_two_blocked_clients_served_in_order(r, clients, protocol):
    first, second = clients(), clients()
    results = {}

    def wait(name, c):
        results[name] = c.blpop("fifo", timeout=5)

    t1 = threading.Thread(target=wait, args=("first", first))
    t1.start()
    time.sleep(0.3)
    t2 = threading.Thread(target=wait, args=("second", second))
    t2.start()
    time.sleep(0.3)
    r.rpush("fifo", "one")
    t1.join(5)
    r.rpush("fifo", "two")
    t2.join(5)
    assert results == {
        "first": pair(protocol, "fifo", "one"),
        "second": pair(protocol, "fifo", "two"),
    }


def test_blmove_woken_by_push(r, clients):
    join_ok = push_later(clients, 0.2, ("lpush", "incoming", "task"))
    got = r.blmove("incoming", "processing", 5, "RIGHT", "LEFT")
    join_ok()
    assert got == "task"
    assert r.lrange("processing", 0, -1) == ["task"]
    assert r.exists("incoming") == 0
    # Data already there, and a timeout.
    r.rpush("incoming", "t2", "t3")
    assert r.blmove("incoming", "processing", 1, "LEFT", "RIGHT") == "t2"
    assert r.lrange("processing", 0, -1) == ["task", "t2"]
    start = time.monotonic()
    assert r.blmove("empty", "processing", 0.3, "LEFT", "RIGHT") is None
    assert time.monotonic() - start >= 0.25
    assert r.brpoplpush("incoming", "processing", 1) == "t3"


def test_blmpop(r, clients):
    join_ok = push_later(clients, 0.2, ("rpush", "k2", "a", "b", "c"))
    got = r.blmpop(5, 2, "k1", "k2", direction="LEFT", count=2)
    join_ok()
    assert got == ["k2", ["a", "b"]]
    assert r.blmpop(0.2, 1, "k1", direction="LEFT") is None


def test_blocking_pop_in_multi_answers_nil(r):
    pipe = r.pipeline(transaction=True)
    pipe.blpop("never", timeout=10)
    pipe.rpush("after", "x")
    start = time.monotonic()
    assert pipe.execute() == [None, 1]
    assert time.monotonic() - start < 2


def test_blpop_without_timeout_woken(r, clients, protocol):
    join_ok = push_later(clients, 0.2, ("rpush", "forever", "v"))
    assert r.blpop("forever", timeout=0) == pair(protocol, "forever", "v")
    join_ok()


def test_push_inside_multi_wakes_blocked_client(r, clients, protocol):
    writer = clients()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("got", r.blpop("txq", timeout=5)))
    t.start()
    time.sleep(0.2)
    pipe = writer.pipeline(transaction=True)
    pipe.rpush("txq", "a", "b")
    pipe.set("marker", "1")
    assert pipe.execute() == [2, True]
    t.join(5)
    assert result["got"] == pair(protocol, "txq", "a")
    assert writer.lrange("txq", 0, -1) == ["b"]


def test_lmove_wakes_client_blocked_on_destination(r, clients, protocol):
    mover = clients()
    mover.rpush("src", "item")
    join_ok = push_later(clients, 0.2, ("lmove", "src", "dst", "LEFT", "RIGHT"))
    assert r.brpop("dst", timeout=5) == pair(protocol, "dst", "item")
    join_ok()
    assert mover.exists("src", "dst") == 0


def test_disconnected_blocked_client_takes_nothing(r, clients):
    # A worker blocked in BLPOP goes away; a later push must stay in the list, not be
    # popped for a client that is no longer there.
    # No retries: redis-py would otherwise reconnect and block again.
    worker = clients(single_connection_client=True, retry=Retry(NoBackoff(), 0))
    errors = []

    def block():
        try:
            worker.blpop("orphan", timeout=5)
        except Exception as e:  # the socket is shut down under it
            errors.append(e)

    t = threading.Thread(target=block)
    t.start()
    time.sleep(0.2)
    worker.connection._sock.shutdown(2)  # SHUT_RDWR: the server sees the client leave
    t.join(5)
    assert errors, "blpop should have failed on a closed connection"
    time.sleep(0.2)
    assert r.rpush("orphan", "precious") == 1
    time.sleep(0.3)
    assert r.lrange("orphan", 0, -1) == ["precious"]
