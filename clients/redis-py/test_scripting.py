"""Scripting through redis-py: EVAL, EVALSHA via register_script, Redis 7 functions
(function_load, fcall, fcall_ro, function_dump/restore), and redis-py's Lock (which
acquires with SET NX PX but releases, extends and reacquires with Lua scripts).
"""

import threading
import time

import pytest
import redis
from redis.exceptions import LockError, LockNotOwnedError


def test_eval_returns_lua_types(r):
    assert r.eval("return 1", 0) == 1
    assert r.eval("return {1, 'two', {3}}", 0) == [1, "two", [3]]
    assert r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v") == "OK"
    assert r.get("k") == "v"
    assert r.eval("return redis.call('GET', KEYS[1])", 1, "k") == "v"
    assert r.eval("return redis.call('GET', KEYS[1])", 1, "missing") is None
    assert r.eval("return tonumber(ARGV[1]) + tonumber(ARGV[2])", 0, 2, 3) == 5
    assert r.eval("return 3.99", 0) == 3  # Lua numbers become integers, truncated
    with pytest.raises(redis.ResponseError):
        r.eval("return redis.call('INCR', KEYS[1])", 1, "k")


def test_eval_error_reply_and_status(r):
    assert r.eval("return redis.status_reply('FINE')", 0) == "FINE"
    with pytest.raises(redis.ResponseError, match="my error"):
        r.eval("return redis.error_reply('my error')", 0)


def test_register_script_uses_evalsha(r):
    incr_by = r.register_script(
        "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
        "redis.call('EXPIRE', KEYS[1], ARGV[2]) return v"
    )
    r.script_flush()
    assert r.script_exists(incr_by.sha) == [False]
    assert incr_by(keys=["counter"], args=[5, 100]) == 5  # NOSCRIPT, then SCRIPT LOAD + retry
    assert r.script_exists(incr_by.sha) == [True]
    assert incr_by(keys=["counter"], args=[2, 100]) == 7
    assert 99 <= r.ttl("counter") <= 100
    assert r.evalsha(incr_by.sha, 1, "counter", 1, 100) == 8
    sha = r.script_load("return ARGV[1]")
    assert r.evalsha(sha, 0, "echo") == "echo"


def test_registered_script_in_pipeline(r):
    script = r.register_script("return redis.call('RPUSH', KEYS[1], ARGV[1])")
    r.script_flush()
    pipe = r.pipeline()
    script(keys=["l"], args=["a"], client=pipe)
    script(keys=["l"], args=["b"], client=pipe)
    pipe.llen("l")
    assert pipe.execute() == [1, 2, 2]


def test_lock_acquire_release(r, clients):
    other = clients()
    lock = r.lock("resource", timeout=5)
    assert lock.acquire(blocking=False) is True
    assert lock.locked() and lock.owned()
    second = other.lock("resource", timeout=5)
    assert second.acquire(blocking=False) is False
    lock.release()
    assert not lock.locked()
    assert second.acquire(blocking=False) is True
    second.release()


def test_lock_context_manager_and_extend(r):
    with r.lock("ctx", timeout=2) as lock:
        assert 0 < r.pttl("ctx") <= 2000
        assert lock.extend(10) is True
        assert 10_000 < r.pttl("ctx") <= 12_000
        assert lock.reacquire() is True
        assert 1_000 < r.pttl("ctx") <= 2_000
    assert r.exists("ctx") == 0


def test_lock_release_by_non_owner_fails(r, clients):
    lock = r.lock("owned", timeout=10, thread_local=False)
    assert lock.acquire(blocking=False)
    r.set("owned", "someone-else-token")
    with pytest.raises(LockNotOwnedError):
        lock.release()
    assert r.get("owned") == "someone-else-token"


def test_lock_blocks_until_released(r, clients):
    holder = r.lock("busy", timeout=5)
    assert holder.acquire(blocking=False)
    waiter_client = clients()
    acquired_at = []

    def wait():
        lk = waiter_client.lock("busy", timeout=5, sleep=0.02)
        if lk.acquire(blocking=True, blocking_timeout=5):
            acquired_at.append(time.monotonic())
            lk.release()

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        released_at = time.monotonic()
        holder.release()
        t.join(10)
        assert acquired_at and acquired_at[0] >= released_at
        with pytest.raises(LockError):
            holder.release()  # no longer held
    finally:
        r.delete("busy")  # never leave the waiter spinning past the test
        t.join(10)


LIBRARY = """#!lua name=tally
redis.register_function('tally_add', function(keys, args)
    return redis.call('HINCRBY', keys[1], args[1], args[2])
end)
redis.register_function{
    function_name = 'tally_get',
    callback = function(keys, args) return redis.call('HGET', keys[1], args[1]) end,
    flags = {'no-writes'},
    description = 'reads one counter',
}
"""


def test_functions_load_call_and_list(r):
    r.function_flush()
    assert r.function_load(LIBRARY) == "tally"
    with pytest.raises(redis.ResponseError, match="already exists"):
        r.function_load(LIBRARY)
    assert r.function_load(LIBRARY, replace=True) == "tally"
    assert r.fcall("tally_add", 1, "t", "ok", 2) == 2
    assert r.fcall("tally_add", 1, "t", "ok", 3) == 5
    assert r.fcall_ro("tally_get", 1, "t", "ok") == "5"
    with pytest.raises(redis.ResponseError, match="write flag"):
        r.fcall_ro("tally_add", 1, "t", "ok", 1)
    with pytest.raises(redis.ResponseError, match="Function not found"):
        r.fcall("nosuch", 0)
    [library] = r.function_list()
    # RESP2 gives flat lists, RESP3 maps; redis-py hands both over as they come.
    if isinstance(library, dict):
        assert library["library_name"] == "tally"
        names = sorted(f["name"] for f in library["functions"])
    else:
        fields = dict(zip(library[::2], library[1::2]))
        assert fields["library_name"] == "tally"
        names = sorted(dict(zip(f[::2], f[1::2]))["name"] for f in fields["functions"])
    assert names == ["tally_add", "tally_get"]
    r.function_delete("tally")
    assert r.function_list() == []


def test_functions_dump_and_restore(r):
    r.function_flush()
    r.function_load(LIBRARY)
    payload = r.function_dump()
    r.function_flush()
    with pytest.raises(redis.ResponseError, match="Function not found"):
        r.fcall("tally_add", 1, "t", "x", 1)
    assert r.function_restore(payload) in (True, "OK", b"OK")
    assert r.fcall("tally_add", 1, "t", "x", 1) == 1
    with pytest.raises(redis.ResponseError, match="already exists"):
        r.function_restore(payload)
    r.function_flush()
