"""Pipelines, MULTI/EXEC and WATCH through redis-py."""

import threading
import time

import pytest
import redis


def test_pipeline_without_transaction(r):
    pipe = r.pipeline(transaction=False)
    pipe.set("a", 1).incr("a").incrby("a", 10).get("a")
    pipe.rpush("l", "x", "y").lrange("l", 0, -1)
    pipe.hset("h", mapping={"f": "v"}).hgetall("h")
    pipe.zadd("z", {"m": 1.5}).zscore("z", "m")
    assert pipe.execute() == [True, 2, 12, "12", 2, ["x", "y"], 1, {"f": "v"}, 1, 1.5]
    # A pipeline is reusable after execute().
    pipe.get("a")
    assert pipe.execute() == ["12"]
    assert pipe.execute() == []


def test_pipeline_errors_inline(r):
    r.set("s", "text")
    pipe = r.pipeline(transaction=False)
    pipe.set("k", "v").incr("s").get("k")
    results = pipe.execute(raise_on_error=False)
    assert results[0] is True and results[2] == "v"
    assert isinstance(results[1], redis.ResponseError)
    assert "not an integer" in str(results[1])
    pipe.incr("s").set("k2", "v2")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        pipe.execute()
    # Commands after a failing one in a plain pipeline still ran.
    assert r.get("k2") == "v2"


def test_large_pipeline(r):
    pipe = r.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(f"key:{i}", i)
    assert pipe.execute() == [True] * 2000
    pipe = r.pipeline(transaction=False)
    for i in range(2000):
        pipe.get(f"key:{i}")
    assert pipe.execute() == [str(i) for i in range(2000)]


def test_multi_exec(r, clients):
    other = clients()
    pipe = r.pipeline(transaction=True)
    pipe.set("a", "1").incr("a").rpush("l", "x").lrange("l", 0, -1).ping().echo("hi")
    pipe.zadd("z", {"m": 2}).zrange("z", 0, -1, withscores=True)
    results = pipe.execute()
    assert results[:6] == [True, 2, 1, ["x"], True, "hi"]
    assert results[6] == 1
    assert [(m, s) for m, s in results[7]] == [("m", 2.0)]
    assert other.get("a") == "2"


def test_multi_runtime_error_does_not_roll_back(r):
    r.set("s", "text")
    pipe = r.pipeline(transaction=True)
    pipe.set("before", "1").lpush("s", "x").set("after", "2")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        pipe.execute()
    assert r.mget("before", "after") == ["1", "2"]
    pipe.incr("s").set("after", "3")
    results = pipe.execute(raise_on_error=False)
    assert isinstance(results[0], redis.ResponseError)
    assert results[1] is True
    assert r.get("after") == "3"


def test_multi_queue_error_aborts_everything(r):
    pipe = r.pipeline(transaction=True)
    pipe.set("x", "1")
    pipe.execute_command("SET", "onlykey")  # wrong number of arguments: rejected when queued
    pipe.set("y", "2")
    with pytest.raises(redis.ResponseError) as e:
        pipe.execute()
    assert "wrong number of arguments" in str(e.value)
    assert r.exists("x", "y") == 0
    # The connection is usable afterwards.
    pipe.set("x", "ok")
    assert pipe.execute() == [True]
    assert r.get("x") == "ok"


def test_discard_via_reset(r):
    pipe = r.pipeline(transaction=True)
    pipe.set("never", "1")
    pipe.reset()
    assert pipe.execute() == []
    assert r.exists("never") == 0


def test_transaction_retries_on_concurrent_write(r, clients):
    writer = clients()
    r.set("balance", 100)
    attempts = []

    def debit(pipe):
        current = int(pipe.get("balance"))
        attempts.append(current)
        if len(attempts) == 1:
            # Another client changes the watched key between WATCH and EXEC.
            writer.incrby("balance", 50)
        pipe.multi()
        pipe.set("balance", current - 30)
        pipe.rpush("ledger", f"debit from {current}")

    result = r.transaction(debit, "balance")
    assert result == [True, 1]
    assert attempts == [100, 150]
    assert r.get("balance") == "120"
    assert r.lrange("ledger", 0, -1) == ["debit from 150"]


def test_transaction_value_from_callable(r):
    r.set("n", 5)

    def double(pipe):
        n = int(pipe.get("n"))
        pipe.multi()
        pipe.set("n", n * 2)
        return n * 2

    assert r.transaction(double, "n", value_from_callable=True) == 10
    assert r.get("n") == "10"


def test_concurrent_transactions_lose_no_update(clients):
    workers, per_worker = 4, 25
    setup = clients()
    setup.flushall()
    setup.set("counter", 0)
    retries = []
    errors = []

    def work():
        c = clients()
        tries = 0
        try:
            for _ in range(per_worker):
                def incr(pipe):
                    nonlocal tries
                    tries += 1
                    value = int(pipe.get("counter"))
                    pipe.multi()
                    pipe.set("counter", value + 1)
                c.transaction(incr, "counter")
            retries.append(tries - per_worker)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert setup.get("counter") == str(workers * per_worker)
    assert len(retries) == workers


def test_watch_aborts_on_delete_and_expiry(r, clients):
    other = clients()
    r.set("k", "v")
    with r.pipeline() as pipe:
        pipe.watch("k")
        other.delete("k")
        pipe.multi()
        pipe.set("k", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.exists("k") == 0

    r.set("short", "v", px=100)
    with r.pipeline() as pipe:
        pipe.watch("short")
        time.sleep(0.25)
        pipe.multi()
        pipe.set("short", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()

    # An untouched watch (and a write to another key) lets EXEC through.
    r.set("w", "1")
    with r.pipeline() as pipe:
        pipe.watch("w")
        other.set("unrelated", "x")
        assert pipe.get("w") == "1"
        pipe.multi()
        pipe.set("w", "2")
        assert pipe.execute() == [True]
    assert r.get("w") == "2"

    # UNWATCH forgets the watch.
    with r.pipeline() as pipe:
        pipe.watch("w")
        pipe.unwatch()
        other.set("w", "3")
        pipe.multi()
        pipe.set("w", "4")
        assert pipe.execute() == [True]
    assert r.get("w") == "4"


def test_watch_in_another_db(clients):
    db2 = clients(db=2)
    db2.flushdb()
    other_db2 = clients(db=2)
    db0 = clients()
    db2.set("k", "v")
    db0.set("k", "v")
    with db2.pipeline() as pipe:
        pipe.watch("k")
        db0.set("k", "changed in db 0")  # same name, other database: not a conflict
        pipe.multi()
        pipe.set("k", "ok")
        assert pipe.execute() == [True]
    with db2.pipeline() as pipe:
        pipe.watch("k")
        other_db2.set("k", "changed")
        pipe.multi()
        pipe.set("k", "lost")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert db2.get("k") == "changed"


def watch_then(r, key, interfere):
    """WATCH key, let `interfere` run on another connection, then MULTI/SET/EXEC.
    Answers whether EXEC ran."""
    with r.pipeline() as pipe:
        pipe.watch(key)
        interfere()
        pipe.multi()
        pipe.set("result", "ran")
        try:
            pipe.execute()
            return True
        except redis.WatchError:
            return False


def test_which_writes_abort_a_watch(r, clients):
    other = clients()
    other_db1 = clients(db=1)
    # Every write that touches the key aborts, even one that leaves the value as it was.
    r.set("k", 1)
    assert watch_then(r, "k", lambda: other.set("k", 1)) is False
    assert watch_then(r, "k", lambda: other.incrby("k", 0)) is False
    assert watch_then(r, "k", lambda: other.expire("k", 100)) is False
    r.set("j", 2)
    assert watch_then(r, "k", lambda: other.rename("j", "k")) is False
    r.delete("k")
    assert watch_then(r, "k", lambda: other.set("k", "created")) is False
    r.set("k", 1)
    assert watch_then(r, "k", lambda: other.flushall()) is False
    # Own writes between WATCH and MULTI abort too.
    r.set("k", 1)
    with r.pipeline() as pipe:
        pipe.watch("k")
        pipe.set("k", 2)  # immediate mode: on the watching connection itself
        pipe.multi()
        pipe.set("result", "ran")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    # Reads, writes that change nothing, and writes elsewhere do not.
    r.hset("h", "f", "v")
    r.sadd("s", "m")
    assert watch_then(r, "k", lambda: other.get("k")) is True
    assert watch_then(r, "k", lambda: other.persist("k")) is True  # no TTL: no change
    assert watch_then(r, "s", lambda: other.sadd("s", "m")) is True  # already a member
    assert watch_then(r, "missing", lambda: other.delete("missing")) is True
    assert watch_then(r, "k", lambda: other_db1.set("k", 5)) is True
    assert watch_then(r, "h", lambda: other.hset("h", "f", "v")) is False  # HSET always writes


# Redis 7.2 (touchAllWatchedKeysInDb) invalidates, on FLUSHALL/FLUSHDB, only the watched keys
# that existed in the flushed database: a WATCH on a missing key survives the flush.
def test_flush_keeps_watch_of_missing_key(r, clients):
    other = clients()
    r.set("unrelated", 1)
    assert watch_then(r, "missing", lambda: other.flushdb()) is True
    r.set("unrelated", 1)
    assert watch_then(r, "missing", lambda: other.flushall()) is True
