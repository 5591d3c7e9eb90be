"""Strings and the generic key commands through redis-py."""

import datetime
import time

import pytest
import redis


def wait_until(predicate, timeout=3.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def test_set_get_options(r):
    assert r.get("k") is None
    assert r.set("k", "v1") is True
    assert r.get("k") == "v1"
    # NX: only when absent; XX: only when present.
    assert r.set("k", "nope", nx=True) is None
    assert r.get("k") == "v1"
    assert r.set("fresh", "x", xx=True) is None
    assert r.exists("fresh") == 0
    assert r.set("k", "v2", xx=True) is True
    assert r.set("fresh", "x", nx=True) is True
    # GET returns the old value (or None) and still sets.
    assert r.set("k", "v3", get=True) == "v2"
    assert r.set("absent", "a", get=True) is None
    assert r.get("absent") == "a"
    assert r.set("k", "v4", nx=True, get=True) == "v3"
    assert r.get("k") == "v3"
    # EX / PX / EXAT / PXAT / KEEPTTL.
    assert r.set("ex", "1", ex=100)
    assert 98 <= r.ttl("ex") <= 100
    assert r.set("px", "1", px=50_000)
    assert 48_000 <= r.pttl("px") <= 50_000
    at = int(time.time()) + 500
    assert r.set("exat", "1", exat=at)
    assert r.expiretime("exat") == at
    assert r.set("pxat", "1", pxat=at * 1000 + 123)
    assert r.pexpiretime("pxat") == at * 1000 + 123
    assert r.set("ex", "2", keepttl=True)
    assert r.get("ex") == "2"
    assert 98 <= r.ttl("ex") <= 100
    assert r.set("ex", "3")
    assert r.ttl("ex") == -1
    with pytest.raises(redis.ResponseError, match="invalid expire time"):
        r.set("k", "v", ex=0)
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("SET", "k", "v", "NX", "XX")


def test_binary_safe_values(clients):
    raw = clients(decode_responses=False)
    raw.flushdb()
    blob = bytes(range(256)) * 4
    assert raw.set(b"bin\x00key", blob)
    assert raw.get(b"bin\x00key") == blob
    assert raw.strlen(b"bin\x00key") == 1024
    assert raw.getrange(b"bin\x00key", 254, 257) == b"\xfe\xff\x00\x01"


def test_string_commands(r):
    assert r.append("s", "hello") == 5
    assert r.append("s", " world") == 11
    assert r.strlen("s") == 11
    assert r.getrange("s", 0, 4) == "hello"
    assert r.getrange("s", -5, -1) == "world"
    assert r.setrange("s", 6, "redis") == 11
    assert r.get("s") == "hello redis"
    assert r.setrange("pad", 3, "x") == 4
    assert r.get("pad") == "\x00\x00\x00x"
    assert r.getset("s", "new") == "hello redis"
    assert r.getdel("s") == "new"
    assert r.exists("s") == 0
    assert r.setnx("nx", "1") is True
    assert r.setnx("nx", "2") is False
    assert r.execute_command("SETEX", "sx", 100, "v") is True  # r.setex() warns: deprecated
    assert 99 <= r.ttl("sx") <= 100
    assert r.psetex("psx", 100_000, "v") is True
    assert 99_000 <= r.pttl("psx") <= 100_000


def test_getex(r):
    r.set("g", "v")
    assert r.getex("g", ex=100) == "v"
    assert 99 <= r.ttl("g") <= 100
    assert r.getex("g", persist=True) == "v"
    assert r.ttl("g") == -1
    assert r.getex("g", px=5_000) == "v"
    assert 4_000 <= r.pttl("g") <= 5_000
    assert r.getex("missing", ex=10) is None


def test_mget_mset(r):
    assert r.mset({"a": "1", "b": "2", "c": "3"}) is True
    assert r.mget("a", "b", "missing", "c") == ["1", "2", None, "3"]
    assert r.mget(["c", "a"]) == ["3", "1"]
    r.lpush("list", "x")
    # MGET answers nil for keys of another type.
    assert r.mget("a", "list") == ["1", None]
    assert r.msetnx({"d": "4", "a": "overwrite"}) is False
    assert r.mget("a", "d") == ["1", None]
    assert r.msetnx({"d": "4", "e": "5"}) is True
    assert r.mget("d", "e") == ["4", "5"]


def test_incr_family(r):
    assert r.incr("n") == 1
    assert r.incr("n", 10) == 11
    assert r.incrby("n", -20) == -9
    assert r.decr("n") == -10
    assert r.decrby("n", 5) == -15
    assert r.get("n") == "-15"
    r.set("big", str(2**63 - 1))
    with pytest.raises(redis.ResponseError, match="increment or decrement would overflow"):
        r.incr("big")
    value = r.incrbyfloat("f", 10.5)
    assert isinstance(value, float) and value == 10.5
    assert r.incrbyfloat("f", 0.1) == pytest.approx(10.6)
    assert r.get("f") == "10.6"
    assert r.incrbyfloat("f", -5) == pytest.approx(5.6)
    r.set("e", "5.0e3")
    assert r.incrbyfloat("e", 1) == 5001.0
    assert r.get("e") == "5001"
    r.set("word", "abc")
    with pytest.raises(redis.ResponseError, match="not a valid float"):
        r.incrbyfloat("word", 1)


def test_expire_ttl_persist(r):
    assert r.ttl("missing") == -2
    assert r.pttl("missing") == -2
    assert r.expire("missing", 10) is False
    r.set("k", "v")
    assert r.ttl("k") == -1
    assert r.expire("k", 100) is True
    assert 99 <= r.ttl("k") <= 100
    assert r.pexpire("k", 200_000) is True
    assert 199_000 <= r.pttl("k") <= 200_000
    assert r.persist("k") is True
    assert r.persist("k") is False
    assert r.ttl("k") == -1
    # NX / XX / GT / LT.
    assert r.expire("k", 100, xx=True) is False
    assert r.expire("k", 100, nx=True) is True
    assert r.expire("k", 50, nx=True) is False
    assert r.expire("k", 50, gt=True) is False
    assert r.expire("k", 500, gt=True) is True
    assert r.expire("k", 1000, lt=True) is False
    assert r.expire("k", 10, lt=True) is True
    assert 9 <= r.ttl("k") <= 10
    # A key without a TTL counts as infinite: GT never applies, LT always does.
    r.set("forever", "v")
    assert r.expire("forever", 100, gt=True) is False
    assert r.ttl("forever") == -1
    assert r.expire("forever", 100, lt=True) is True
    assert 99 <= r.ttl("forever") <= 100
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=300)
    assert r.expireat("k", when) is True
    assert 298 <= r.ttl("k") <= 300
    assert r.expiretime("k") == int(when.timestamp())
    assert r.pexpireat("k", int(when.timestamp() * 1000)) is True
    # A past time deletes the key.
    assert r.expireat("k", 1) is True
    assert r.exists("k") == 0
    # Overwriting with SET clears the TTL.
    r.set("k", "v", ex=100)
    r.set("k", "v2")
    assert r.ttl("k") == -1


def test_keys_really_expire(r):
    r.set("short", "v", px=100)
    r.hset("short-hash", "f", "v")
    r.pexpire("short-hash", 100)
    r.rpush("short-list", "a", "b")
    r.pexpire("short-list", 100)
    r.set("long", "v", ex=100)
    assert r.get("short") == "v"
    assert r.exists("short", "short-hash", "short-list") == 3
    time.sleep(0.25)
    assert r.get("short") is None
    assert r.hgetall("short-hash") == {}
    assert r.lrange("short-list", 0, -1) == []
    assert r.exists("short", "short-hash", "short-list") == 0
    assert r.ttl("short") == -2
    assert r.type("short-hash") == "none"
    assert sorted(r.keys("*")) == ["long"]
    assert list(r.scan_iter()) == ["long"]
    # Writes on an expired key start from nothing.
    assert r.incr("short") == 1
    assert r.rpush("short-list", "z") == 1
    # The expired keys are deleted for real, not only hidden.
    assert wait_until(lambda: r.dbsize() == 3, timeout=5)


def test_scan_iter_match_and_type(r):
    pipe = r.pipeline(transaction=False)
    for i in range(120):
        pipe.set(f"user:{i}", i)
    for i in range(40):
        pipe.hset(f"user:h{i}", "f", i)
    for i in range(30):
        pipe.set(f"other:{i}", i)
    pipe.rpush("user:list", "x")
    pipe.execute()

    everything = list(r.scan_iter(count=10))
    assert len(everything) == 191
    assert len(set(everything)) == 191

    users = set(r.scan_iter(match="user:*", count=25))
    assert len(users) == 161
    assert all(k.startswith("user:") for k in users)

    hashes = set(r.scan_iter(_type="hash", count=7))
    assert hashes == {f"user:h{i}" for i in range(40)}
    assert set(r.scan_iter(match="user:*", _type="list")) == {"user:list"}
    assert set(r.scan_iter(match="user:1?", _type="string")) == {f"user:1{i}" for i in range(10)}
    assert list(r.scan_iter(match="nomatch*")) == []

    # A small COUNT pages: the first call answers a non-zero cursor.
    cursor, keys = r.scan(0, count=10)
    assert cursor != 0
    assert 0 < len(keys) <= 30


def test_keys_exists_del(r):
    r.mset({"a1": 1, "a2": 2, "b1": 3})
    assert sorted(r.keys("a*")) == ["a1", "a2"]
    assert r.exists("a1", "a1", "zz") == 2
    assert r.delete("a1", "zz") == 1
    assert r.unlink("a2", "b1") == 2
    assert r.keys("*") == []
    assert r.randomkey() is None
    r.set("only", 1)
    assert r.randomkey() == "only"
    assert r.touch("only", "nothing") == 1


def test_rename_copy_type(r, clients):
    r.set("s", "v", ex=100)
    r.rpush("l", "a")
    r.hset("h", "f", "v")
    r.sadd("set", "m")
    r.zadd("z", {"m": 1})
    assert [r.type(k) for k in ("s", "l", "h", "set", "z", "none")] == [
        "string", "list", "hash", "set", "zset", "none",
    ]

    assert r.rename("s", "s2") is True
    assert r.get("s2") == "v"
    assert r.exists("s") == 0
    assert 98 <= r.ttl("s2") <= 100  # RENAME keeps the TTL
    with pytest.raises(redis.ResponseError, match="no such key"):
        r.rename("s", "x")
    assert r.renamenx("s2", "l") is False
    assert r.renamenx("s2", "s3") is True
    assert r.rename("l", "h") is True  # overwrites whatever type was there
    assert r.type("h") == "list"

    assert r.copy("h", "hcopy") is True
    assert r.lrange("hcopy", 0, -1) == ["a"]
    assert r.copy("set", "hcopy") is False
    assert r.copy("set", "hcopy", replace=True) is True
    assert r.type("hcopy") == "set"
    assert r.copy("missing", "x") is False
    # Copies are independent.
    r.rpush("hcopy2", "q")
    r.copy("hcopy2", "hcopy3")
    r.rpush("hcopy3", "w")
    assert r.lrange("hcopy2", 0, -1) == ["q"]

    assert r.copy("z", "z", destination_db=5) is True
    db5 = clients(db=5)
    assert db5.zrange("z", 0, -1, withscores=True) in ([("m", 1.0)], [["m", 1.0]])
    assert r.move("s3", 5) is True
    assert db5.get("s3") == "v"
    assert r.exists("s3") == 0


def test_unicode_and_large_values(r):
    r.set("clé:ünïcode", "värde ✓ 値")
    assert r.get("clé:ünïcode") == "värde ✓ 値"
    assert r.strlen("clé:ünïcode") == len("värde ✓ 値".encode())
    assert r.keys("clé:*") == ["clé:ünïcode"]
    big = "x" * (2 * 1024 * 1024) + "end"
    assert r.set("big", big)
    assert r.get("big") == big
    assert r.strlen("big") == len(big)


def test_from_url_with_db_and_protocol(cellkv, protocol):
    url = f"redis://{cellkv.host}:{cellkv.port}/4?protocol={protocol}&decode_responses=True"
    with redis.Redis.from_url(url) as c:
        c.flushdb()
        c.set("in-4", "yes")
        info = c.client_info()
        assert info["db"] == 4 and info["resp"] == str(protocol)
        assert c.get("in-4") == "yes"
        c.flushdb()


def test_many_threads_share_a_pool(r):
    errors = []

    def work(n):
        try:
            for _ in range(50):
                r.incr("shared")
                r.rpush(f"per-thread:{n}", "x")
        except Exception as e:
            errors.append(e)

    import threading
    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert r.get("shared") == "400"
    assert [r.llen(f"per-thread:{n}") for n in range(8)] == [50] * 8


def test_health_check_interval_pings_idle_connection(clients):
    c = clients(health_check_interval=0.1)
    c.set("hc", "1")
    time.sleep(0.25)  # idle past the interval: redis-py sends PING before the next command
    assert c.get("hc") == "1"
    assert c.info("stats")["total_commands_processed"] > 0


def test_object_encoding(r):
    r.set("int", 12345)
    r.set("short", "hello")
    r.set("long", "y" * 100)
    r.rpush("list", "a")
    r.hset("hash", "f", "v")
    r.sadd("ints", 1, 2, 3)
    r.sadd("strs", "a", "b")
    r.zadd("zs", {"a": 1})
    assert [r.object("encoding", k) for k in
            ("int", "short", "long", "list", "hash", "ints", "strs", "zs")] == [
        "int", "embstr", "raw", "listpack", "listpack", "intset", "listpack", "listpack"]
    r.hset("hash", mapping={f"f{i}": i for i in range(200)})
    assert r.object("encoding", "hash") == "hashtable"
    assert r.object("encoding", "missing") is None
