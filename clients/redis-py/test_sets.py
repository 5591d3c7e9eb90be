"""Sets through redis-py."""

import pytest
import redis


def test_sadd_members(r):
    assert r.sadd("s", "a", "b", "c") == 3
    assert r.sadd("s", "a", "d") == 1
    assert r.smembers("s") == {"a", "b", "c", "d"}
    assert r.smembers("missing") == set()
    assert r.scard("s") == 4
    assert r.sismember("s", "a") == 1
    assert r.sismember("s", "z") == 0
    assert r.smismember("s", ["a", "z", "d"]) == [1, 0, 1]
    assert r.smismember("missing", "a", "b") == [0, 0]
    assert r.srem("s", "a", "z") == 1
    assert r.smove("s", "t", "b") is True
    assert r.smove("s", "t", "nope") is False
    assert r.smembers("t") == {"b"}
    assert r.smembers("s") == {"c", "d"}


def test_inter_union_diff(r):
    r.sadd("a", "1", "2", "3", "4")
    r.sadd("b", "3", "4", "5")
    r.sadd("c", "4", "6")
    assert r.sinter("a", "b") == {"3", "4"}
    assert r.sinter("a", "b", "c") == {"4"}
    assert r.sinter("a", "missing") == set()
    assert r.sunion("a", "c") == {"1", "2", "3", "4", "6"}
    assert r.sdiff("a", "b") == {"1", "2"}
    assert r.sintercard(2, ["a", "b"]) == 2
    assert r.sintercard(2, ["a", "b"], limit=1) == 1

    r.set("dst-with-ttl", "x", ex=100)
    assert r.sunionstore("dst-with-ttl", ["a", "b", "c"]) == 6
    assert r.smembers("dst-with-ttl") == {"1", "2", "3", "4", "5", "6"}
    assert r.ttl("dst-with-ttl") == -1  # the destination loses its TTL
    assert r.sinterstore("i", ["a", "b"]) == 2
    assert r.smembers("i") == {"3", "4"}
    assert r.sdiffstore("d", ["a", "b", "c"]) == 2
    assert r.smembers("d") == {"1", "2"}
    # An empty result deletes the destination.
    assert r.sinterstore("i", ["a", "missing"]) == 0
    assert r.exists("i") == 0
    r.set("str", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.sunion("a", "str")


def test_sscan_iter(r):
    members = {f"m{i}" for i in range(500)} | {f"x{i}" for i in range(20)}
    r.sadd("s", *members)
    seen = list(r.sscan_iter("s", count=40))
    assert len(seen) == len(members)
    assert set(seen) == members
    assert set(r.sscan_iter("s", match="x*")) == {f"x{i}" for i in range(20)}
    assert set(r.sscan_iter("s", match="m1?")) == {f"m1{i}" for i in range(10)}
    r.sadd("tiny", "only")
    assert r.sscan("tiny", 0) == (0, ["only"])


def test_spop_srandmember(r):
    members = {str(i) for i in range(20)}
    r.sadd("s", *members)
    one = r.spop("s")
    assert one in members
    popped = r.spop("s", 5)
    assert isinstance(popped, list) and len(popped) == 5
    assert len(set(popped)) == 5 and set(popped) <= members and one not in popped
    assert r.scard("s") == 14
    assert r.smembers("s") == members - {one} - set(popped)
    rest = r.spop("s", 100)
    assert len(rest) == 14
    assert r.exists("s") == 0
    assert r.spop("s") is None
    assert r.spop("s", 3) == []

    r.sadd("t", "a", "b", "c")
    assert r.srandmember("t") in {"a", "b", "c"}
    assert sorted(r.srandmember("t", 5)) == ["a", "b", "c"]
    repeated = r.srandmember("t", -7)
    assert len(repeated) == 7 and set(repeated) <= {"a", "b", "c"}
    assert r.scard("t") == 3
