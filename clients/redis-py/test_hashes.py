"""Hashes through redis-py."""

import pytest
import redis


def test_hset_mapping_hgetall(r):
    assert r.hset("h", mapping={"name": "alice", "age": "30", "city": "paris"}) == 3
    assert r.hset("h", "age", "31") == 0  # updated, not added
    assert r.hset("h", "k", "v", mapping={"a": "1"}, items=["b", "2"]) == 3
    got = r.hgetall("h")
    assert isinstance(got, dict)
    assert got == {"name": "alice", "age": "31", "city": "paris", "k": "v", "a": "1", "b": "2"}
    assert r.hgetall("missing") == {}
    assert r.hget("h", "name") == "alice"
    assert r.hget("h", "nope") is None
    assert r.hmget("h", ["name", "nope", "city"]) == ["alice", None, "paris"]
    assert r.hlen("h") == 6
    assert r.hexists("h", "city") is True
    assert r.hexists("h", "zzz") is False
    assert r.hstrlen("h", "city") == 5
    assert sorted(r.hkeys("h")) == ["a", "age", "b", "city", "k", "name"]
    assert sorted(r.hvals("h")) == sorted(["alice", "31", "paris", "v", "1", "2"])
    assert r.hdel("h", "a", "b", "zzz") == 2
    assert r.hsetnx("h", "name", "bob") == 0
    assert r.hsetnx("h", "new", "x") == 1
    assert r.hget("h", "name") == "alice"
    r.hdel("h", "name", "age", "city", "k", "new")
    assert r.exists("h") == 0  # the last field's delete removes the key


def test_hmset_still_works(r):
    with pytest.warns(DeprecationWarning):
        assert r.hmset("h", {"x": "1", "y": "2"}) is True
    assert r.hgetall("h") == {"x": "1", "y": "2"}


def test_hincrby_hincrbyfloat(r):
    assert r.hincrby("h", "n", 5) == 5
    assert r.hincrby("h", "n", -7) == -2
    value = r.hincrbyfloat("h", "f", 1.5)
    assert isinstance(value, float) and value == 1.5
    assert r.hincrbyfloat("h", "f", 2.25) == 3.75
    assert r.hincrbyfloat("h", "f", -0.75) == 3.0
    assert r.hget("h", "f") == "3"
    r.hset("h", "s", "abc")
    with pytest.raises(redis.ResponseError, match="hash value is not a float"):
        r.hincrbyfloat("h", "s", 1)
    with pytest.raises(redis.ResponseError, match="hash value is not an integer"):
        r.hincrby("h", "s", 1)


def test_hscan_iter(r):
    small = {f"f{i}": str(i) for i in range(10)}
    r.hset("small", mapping=small)
    assert dict(r.hscan_iter("small")) == small
    cursor, page = r.hscan("small", 0)
    assert cursor == 0 and page == small

    big = {f"field:{i:04d}": f"v{i}" for i in range(600)}
    big.update({f"other:{i}": "o" for i in range(50)})
    r.hset("big", mapping=big)
    seen = list(r.hscan_iter("big", count=50))
    assert len(seen) == 650
    assert dict(seen) == big
    matched = dict(r.hscan_iter("big", match="field:00*", count=100))
    assert matched == {f"field:{i:04d}": f"v{i}" for i in range(100)}
    assert dict(r.hscan_iter("big", match="other:7")) == {"other:7": "o"}
    cursor, page = r.hscan("big", 0, count=50)
    assert cursor != 0 and 0 < len(page) < 650


def test_hrandfield(r, protocol):
    fields = {"a": "1", "b": "2", "c": "3", "d": "4"}
    r.hset("h", mapping=fields)
    assert r.hrandfield("h") in fields
    picks = r.hrandfield("h", 3)
    assert len(picks) == 3 and len(set(picks)) == 3 and set(picks) <= set(fields)
    assert sorted(r.hrandfield("h", 10)) == sorted(fields)
    repeats = r.hrandfield("h", -10)
    assert len(repeats) == 10 and set(repeats) <= set(fields)

    with_values = r.hrandfield("h", 2, withvalues=True)
    if protocol == 2:
        # A flat list field, value, field, value.
        assert len(with_values) == 4
        pairs = list(zip(with_values[::2], with_values[1::2]))
    else:
        # RESP3 answers an array of [field, value] pairs.
        assert len(with_values) == 2
        assert all(isinstance(p, list) and len(p) == 2 for p in with_values)
        pairs = [tuple(p) for p in with_values]
    assert len({f for f, _ in pairs}) == 2
    for f, v in pairs:
        assert fields[f] == v
    everything = r.hrandfield("h", -6, withvalues=True)
    count = 12 if protocol == 2 else 6
    assert len(everything) == count
    assert r.hrandfield("missing") is None
    assert r.hrandfield("missing", 3) == []
