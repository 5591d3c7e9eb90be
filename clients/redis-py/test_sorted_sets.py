"""Sorted sets through redis-py, with the score types checked on both protocols.

redis-py turns RESP2 score strings into floats itself and keeps RESP3 doubles as they
arrive, so the checks on raw replies (``execute_command`` without redis-py's
``withscores`` option) are what show the server sending real doubles in RESP3.
"""

import threading
import time

import pytest
import redis


def pairs(protocol, *items):
    """The shape redis-py gives WITHSCORES ranges: tuples in RESP2, lists in RESP3."""
    return [(m, s) if protocol == 2 else [m, s] for m, s in items]


def assert_float_scores(result):
    for item in result:
        assert isinstance(item[1], float), (item, type(item[1]))


def test_zadd_flags(r):
    assert r.zadd("z", {"a": 1, "b": 2, "c": 3}) == 3
    assert r.zadd("z", {"a": 10, "d": 4}) == 1  # counts only added members
    assert r.zscore("z", "a") == 10.0
    # NX: only add, never update.
    assert r.zadd("z", {"a": 99, "e": 5}, nx=True) == 1
    assert r.zscore("z", "a") == 10.0
    # XX: only update, never add.
    assert r.zadd("z", {"a": 11, "new": 1}, xx=True) == 0
    assert r.zscore("z", "a") == 11.0
    assert r.zscore("z", "new") is None
    # CH: count changed members too.
    assert r.zadd("z", {"a": 12, "b": 2, "f": 6}, ch=True) == 2
    # GT / LT: update only upward / downward, still add new members.
    assert r.zadd("z", {"a": 5, "b": 20, "g": 7}, gt=True, ch=True) == 2
    assert r.zscore("z", "a") == 12.0 and r.zscore("z", "b") == 20.0
    assert r.zadd("z", {"a": 1, "b": 30}, lt=True, ch=True) == 1
    assert r.zscore("z", "a") == 1.0 and r.zscore("z", "b") == 20.0
    # INCR: answers the new score as a float, or None when NX/XX/GT blocks it.
    got = r.zadd("z", {"a": 2.5}, incr=True)
    assert isinstance(got, float) and got == 3.5
    assert r.zadd("z", {"a": 1}, incr=True, nx=True) is None
    assert r.zadd("z", {"a": -1}, incr=True, gt=True) is None
    assert r.zadd("z", {"zz": 4}, incr=True, xx=True) is None
    assert r.zadd("z", {"fresh": 4}, incr=True, nx=True) == 4.0
    with pytest.raises(redis.DataError):
        r.zadd("z", {"a": 1}, nx=True, xx=True)
    with pytest.raises(redis.ResponseError, match="GT, LT, and/or NX options at the same time"):
        r.execute_command("ZADD", "z", "NX", "GT", 1, "a")
    with pytest.raises(redis.ResponseError, match="not a valid float"):
        r.execute_command("ZADD", "z", "abc", "a")


def test_zrange_withscores_float_types(r, protocol):
    r.zadd("z", {"a": 1, "b": 2.5, "c": -3, "ts": 1712345678.123456, "inf": float("inf")})
    got = r.zrange("z", 0, -1, withscores=True)
    assert got == pairs(protocol, ("c", -3.0), ("a", 1.0), ("b", 2.5),
                        ("ts", 1712345678.123456), ("inf", float("inf")))
    assert_float_scores(got)
    assert r.zrange("z", 0, 1) == ["c", "a"]
    assert r.zrange("z", 0, 1, desc=True) == ["inf", "ts"]

    raw = r.execute_command("ZRANGE", "z", 0, 1, "WITHSCORES")
    if protocol == 2:
        assert raw == ["c", "-3", "a", "1"]
    else:
        # RESP3: an array of [member, double] pairs.
        assert raw == [["c", -3.0], ["a", 1.0]]
        assert_float_scores(raw)
    raw_score = r.execute_command("ZINCRBY", "z", 0, "b")
    assert raw_score == 2.5
    if protocol == 3:
        assert isinstance(raw_score, float)


def test_zrange_byscore_rev_limit(r, protocol):
    r.zadd("z", {f"m{i}": i for i in range(10)})
    assert r.zrange("z", 2, 5, byscore=True) == ["m2", "m3", "m4", "m5"]
    assert r.zrange("z", "(2", "5", byscore=True) == ["m3", "m4", "m5"]
    assert r.zrange("z", "-inf", "+inf", byscore=True, offset=3, num=2) == ["m3", "m4"]
    got = r.zrange("z", 7, 3, byscore=True, desc=True, offset=1, num=3, withscores=True)
    assert got == pairs(protocol, ("m6", 6.0), ("m5", 5.0), ("m4", 4.0))
    assert_float_scores(got)
    assert r.zrange("z", "[m3", "(m5", bylex=True) == ["m3", "m4"]
    assert r.zrangebyscore("z", 8, "+inf", withscores=True) == pairs(protocol, ("m8", 8.0), ("m9", 9.0))
    assert r.zrangebyscore("z", 0, 9, start=8, num=5) == ["m8", "m9"]
    assert r.zrevrange("z", 0, 1, withscores=True) == pairs(protocol, ("m9", 9.0), ("m8", 8.0))
    assert r.zrangestore("dst", "z", 1, 3, byscore=True) == 3
    assert r.zrange("dst", 0, -1) == ["m1", "m2", "m3"]
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("ZRANGE", "z", 0, 1, "LIMIT", 0, 1)


def test_zrevrangebyscore_as_kombu_uses_it(r, protocol):
    # kombu's Redis transport keeps unacked deliveries in a sorted set scored by time and
    # reads the stale ones with ZREVRANGEBYSCORE max min LIMIT start num WITHSCORES.
    now = 1_700_000_000.0
    r.zadd("unacked_index", {f"tag-{i}": now + i * 0.5 for i in range(10)})
    ceil = now + 3
    got = r.zrevrangebyscore("unacked_index", ceil, 0, start=0, num=3, withscores=True)
    assert got == pairs(protocol, ("tag-6", now + 3.0), ("tag-5", now + 2.5), ("tag-4", now + 2.0))
    assert_float_scores(got)
    for tag, score in got:
        assert r.zscore("unacked_index", tag) == score
    page2 = r.zrevrangebyscore("unacked_index", ceil, 0, start=3, num=3, withscores=True)
    assert [m for m, _ in page2] == ["tag-3", "tag-2", "tag-1"]
    # Without LIMIT, all of them, newest first; start=None/num=None is what kombu passes
    # when it has no batch size.
    everything = r.zrevrangebyscore("unacked_index", ceil, 0, start=None, num=None, withscores=True)
    assert [m for m, _ in everything] == [f"tag-{i}" for i in range(6, -1, -1)]
    assert r.zrevrangebyscore("unacked_index", "+inf", "(" + repr(now + 3)) == [
        "tag-9", "tag-8", "tag-7"]


def test_zscore_zmscore_zincrby_rank(r, protocol):
    r.zadd("z", {"a": 1, "b": 2, "c": 3})
    assert r.zscore("z", "b") == 2.0 and isinstance(r.zscore("z", "b"), float)
    assert r.zscore("z", "missing") is None
    assert r.zmscore("z", ["a", "x", "c"]) == [1.0, None, 3.0]
    got = r.zincrby("z", 0.5, "a")
    assert isinstance(got, float) and got == 1.5
    assert r.zrank("z", "c") == 2
    assert r.zrevrank("z", "c") == 0
    assert r.zrank("z", "nope") is None
    with_score = r.zrank("z", "b", withscore=True)
    assert with_score == [1, 2.0]
    assert isinstance(with_score[1], float)
    assert r.zrevrank("z", "a", withscore=True) == [2, 1.5]
    assert r.zcard("z") == 3
    assert r.zcount("z", 1.5, 3) == 3
    assert r.zcount("z", "(1.5", 3) == 2
    assert r.zrem("z", "a", "x") == 1
    r.zadd("lex", {"a": 0, "b": 0, "c": 0, "d": 0})
    assert r.zlexcount("lex", "[b", "+") == 3
    assert r.zrangebylex("lex", "(a", "[c") == ["b", "c"]
    assert r.zrevrangebylex("lex", "+", "(b") == ["d", "c"]
    assert r.zremrangebylex("lex", "[a", "[b") == 2
    assert r.zremrangebyrank("lex", 0, 0) == 1
    assert r.zrange("lex", 0, -1) == ["d"]
    r.zadd("s", {"x": 1, "y": 2, "w": 3})
    assert r.zremrangebyscore("s", 2, "+inf") == 2
    assert r.zrange("s", 0, -1) == ["x"]


def test_zpopmin_zpopmax(r, protocol):
    r.zadd("z", {"a": 1, "b": 2, "c": 3, "d": 4})
    one = r.zpopmin("z")
    if protocol == 2:
        assert one == [("a", 1.0)]
    else:
        assert one == ["a", 1.0]  # RESP3 without COUNT: one flat [member, score]
    two = r.zpopmin("z", 2)
    assert two == pairs(protocol, ("b", 2.0), ("c", 3.0))
    assert_float_scores(two)
    top = r.zpopmax("z", 5)
    assert top == pairs(protocol, ("d", 4.0))
    assert r.exists("z") == 0
    assert r.zpopmin("z") == []
    assert r.zpopmin("z", 3) == []


def test_bzpopmin(r, clients, protocol):
    r.zadd("z", {"low": 1, "high": 2})
    got = r.bzpopmin(["empty", "z"], timeout=1)
    expected = ("z", "low", 1.0) if protocol == 2 else ["z", "low", 1.0]
    assert got == expected
    assert isinstance(got[2], float)

    # Woken by a ZADD from another client.
    adder = clients()

    def add():
        time.sleep(0.25)
        adder.zadd("later", {"job": 42.5})

    t = threading.Thread(target=add, daemon=True)
    t.start()
    start = time.monotonic()
    got = r.bzpopmin("later", timeout=5)
    t.join(5)
    assert got == (("later", "job", 42.5) if protocol == 2 else ["later", "job", 42.5])
    assert 0.15 <= time.monotonic() - start < 4

    start = time.monotonic()
    assert r.bzpopmin("nothing", timeout=0.3) is None
    assert time.monotonic() - start >= 0.25
    assert r.bzpopmax("z", timeout=1) == (("z", "high", 2.0) if protocol == 2 else ["z", "high", 2.0])


def test_zunionstore_weights_and_friends(r, protocol):
    r.zadd("a", {"x": 1, "y": 2})
    r.zadd("b", {"y": 10, "z": 20})
    r.sadd("plain", "x", "q")  # a set counts as members scored 1
    assert r.zunionstore("u", {"a": 2, "b": 3}) == 3
    assert r.zrange("u", 0, -1, withscores=True) == pairs(protocol, ("x", 2.0), ("y", 34.0), ("z", 60.0))
    assert r.zunionstore("u", ["a", "b"], aggregate="MAX") == 3
    assert r.zscore("u", "y") == 10.0
    assert r.zunionstore("u", {"a": 1, "plain": 5}, aggregate="SUM") == 3
    assert r.zrange("u", 0, -1, withscores=True) == pairs(protocol, ("y", 2.0), ("q", 5.0), ("x", 6.0))
    assert r.zinterstore("i", {"a": 1, "b": 0.5}, aggregate="MIN") == 1
    assert r.zrange("i", 0, -1, withscores=True) == pairs(protocol, ("y", 2.0))
    inter = r.zinter(["a", "b"], withscores=True)
    assert inter == pairs(protocol, ("y", 12.0))
    union = r.zunion(["a", "b"], withscores=True, aggregate="MIN")
    assert union == pairs(protocol, ("x", 1.0), ("y", 2.0), ("z", 20.0))
    assert r.zdiff(["b", "a"]) == ["z"]
    assert r.zintercard(2, ["a", "b"]) == 1


def test_zrandmember(r, protocol):
    scores = {"a": 1.0, "b": 2.0, "c": 3.5}
    r.zadd("z", scores)
    assert r.zrandmember("z") in scores
    picks = r.zrandmember("z", 2)
    assert len(picks) == 2 and len(set(picks)) == 2 and set(picks) <= set(scores)
    assert sorted(r.zrandmember("z", 10)) == ["a", "b", "c"]
    assert len(r.zrandmember("z", -5)) == 5
    with_scores = r.zrandmember("z", 3, withscores=True)
    if protocol == 2:
        assert len(with_scores) == 6
        got = dict(zip(with_scores[::2], map(float, with_scores[1::2])))
    else:
        assert all(isinstance(p, list) and isinstance(p[1], float) for p in with_scores)
        got = dict((m, s) for m, s in with_scores)
    assert got == scores
    assert r.zrandmember("missing") is None
    assert r.zrandmember("missing", 2) == []


def test_zscan_and_zmpop(r, protocol):
    members = {f"m{i:03d}": float(i) for i in range(300)}
    r.zadd("z", members)
    seen = list(r.zscan_iter("z", count=40))
    assert len(seen) == 300
    assert dict(seen) == members
    assert_float_scores(seen)
    assert dict(r.zscan_iter("z", match="m00*")) == {f"m00{i}": float(i) for i in range(10)}
    popped = r.zmpop(2, ["nothing", "z"], min=True, count=2)
    assert popped[0] == "z"
    assert [[m, float(s)] for m, s in popped[1]] == [["m000", 0.0], ["m001", 1.0]]
    assert r.zcard("z") == 298
