"""Pub/sub through redis-py's PubSub object, on RESP2 (subscriber mode) and RESP3 (pushes)."""

import json
import threading
import time

import pytest
import redis


def next_message(p, timeout=5.0):
    """The next message of a PubSub, waiting up to `timeout` seconds in total."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = p.get_message(timeout=max(0.0, deadline - time.monotonic()))
        if msg is not None:
            return msg
    raise AssertionError(f"no pub/sub message within {timeout}s")


def no_message(p, wait=0.2):
    msg = p.get_message(timeout=wait)
    assert msg is None, msg


@pytest.fixture
def pubsub(r):
    p = r.pubsub()
    try:
        yield p
    finally:
        p.close()


def test_psubscribe_progress_100_in_order(r, pubsub):
    pubsub.psubscribe("pubsub:progress:*")
    assert next_message(pubsub) == {
        "type": "psubscribe", "pattern": None, "channel": "pubsub:progress:*", "data": 1,
    }
    assert r.pubsub_numpat() == 1
    for i in range(100):
        payload = json.dumps({"task": "t-1", "step": i, "of": 100})
        assert r.publish(f"pubsub:progress:t-{i % 3}", payload) == 1
    r.publish("pubsub:other", "not for us")
    r.publish("pubsub:progress", "no trailing colon: no match")
    for i in range(100):
        msg = next_message(pubsub)
        assert msg["type"] == "pmessage"
        assert msg["pattern"] == "pubsub:progress:*"
        assert msg["channel"] == f"pubsub:progress:t-{i % 3}"
        assert json.loads(msg["data"]) == {"task": "t-1", "step": i, "of": 100}
    no_message(pubsub)
    pubsub.punsubscribe("pubsub:progress:*")
    assert next_message(pubsub) == {
        "type": "punsubscribe", "pattern": None, "channel": "pubsub:progress:*", "data": 0,
    }
    assert r.publish("pubsub:progress:t-0", "late") == 0
    assert r.pubsub_numpat() == 0


def test_subscribe_unsubscribe_channels(r, pubsub, clients):
    pubsub.subscribe("news", "sport")
    assert next_message(pubsub) == {"type": "subscribe", "pattern": None, "channel": "news", "data": 1}
    assert next_message(pubsub) == {"type": "subscribe", "pattern": None, "channel": "sport", "data": 2}

    assert r.publish("news", "hello") == 1
    assert r.publish("weather", "nobody listens") == 0
    assert next_message(pubsub) == {"type": "message", "pattern": None, "channel": "news", "data": "hello"}
    no_message(pubsub)

    # A second subscriber on the same channel.
    second = clients().pubsub(ignore_subscribe_messages=True)
    second.subscribe("news")
    second.get_message(timeout=1)  # the confirmation, swallowed
    assert r.publish("news", "both") == 2
    assert next_message(pubsub)["data"] == "both"
    assert next_message(second)["data"] == "both"
    second.close()

    pubsub.unsubscribe("news")
    assert next_message(pubsub) == {"type": "unsubscribe", "pattern": None, "channel": "news", "data": 1}
    assert r.publish("news", "gone") == 0
    assert r.publish("sport", "still here") == 1
    assert next_message(pubsub)["data"] == "still here"
    pubsub.unsubscribe()
    assert next_message(pubsub) == {"type": "unsubscribe", "pattern": None, "channel": "sport", "data": 0}
    assert r.publish("sport", "gone") == 0


def subscribe_two(pubsub, clients):
    pubsub.subscribe("ch:a", "ch:b")
    other = clients().pubsub()
    other.subscribe("ch:b", "zz")
    for p in (pubsub, pubsub, other, other):
        assert next_message(p)["type"] == "subscribe"
    return other


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_pubsub_numsub(r, pubsub, clients, protocol, request):
    other = subscribe_two(pubsub, clients)
    assert r.pubsub_numsub("ch:a", "ch:b", "zz", "none") == [
        ("ch:a", 1), ("ch:b", 2), ("zz", 1), ("none", 0),
    ]
    assert r.pubsub_numsub() == []
    other.close()
    assert wait_for(lambda: r.pubsub_numsub("zz") == [("zz", 0)])
    assert r.pubsub_numsub("ch:b") == [("ch:b", 1)]


def test_pubsub_channels(r, pubsub, clients):
    other = subscribe_two(pubsub, clients)
    assert sorted(r.pubsub_channels()) == ["ch:a", "ch:b", "zz"]
    assert sorted(r.pubsub_channels("ch:*")) == ["ch:a", "ch:b"]
    assert r.pubsub_channels("nothing*") == []
    other.close()
    assert wait_for(lambda: sorted(r.pubsub_channels()) == ["ch:a", "ch:b"])


def test_publish_inside_transaction_reaches_subscriber(r, pubsub):
    pubsub.subscribe("events")
    next_message(pubsub)
    pipe = r.pipeline(transaction=True)
    pipe.set("state", "done")
    pipe.publish("events", "state changed")
    pipe.incr("published")
    assert pipe.execute() == [True, 1, 1]
    msg = next_message(pubsub)
    assert msg == {"type": "message", "pattern": None, "channel": "events", "data": "state changed"}
    # By the time the message arrives, the transaction's writes are visible.
    assert r.get("state") == "done"

    # A transaction aborted by WATCH publishes nothing.
    other = r.__class__(connection_pool=r.connection_pool)
    with r.pipeline() as p2:
        p2.watch("state")
        other.set("state", "changed")
        p2.multi()
        p2.publish("events", "must not arrive")
        with pytest.raises(redis.WatchError):
            p2.execute()
    no_message(pubsub, wait=0.3)


def test_pattern_and_channel_both_match(r, pubsub):
    pubsub.subscribe("jobs:1")
    pubsub.psubscribe("jobs:*")
    assert next_message(pubsub)["type"] == "subscribe"
    assert next_message(pubsub)["type"] == "psubscribe"
    assert r.publish("jobs:1", "x") == 2
    got = [next_message(pubsub), next_message(pubsub)]
    assert {m["type"] for m in got} == {"message", "pmessage"}
    assert all(m["data"] == "x" and m["channel"] == "jobs:1" for m in got)


def test_run_in_thread_handler(r, pubsub):
    received = []
    done = threading.Event()

    def handler(msg):
        received.append(msg["data"])
        if len(received) == 5:
            done.set()

    pubsub.subscribe(**{"handled": handler})
    assert next_message(pubsub)["type"] == "subscribe"  # handlers see only messages
    worker = pubsub.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        for i in range(5):
            r.publish("handled", f"m{i}")
        assert done.wait(5)
    finally:
        worker.stop()
        worker.join(5)
    assert received == [f"m{i}" for i in range(5)]


def test_ping_while_subscribed(r, clients):
    # A bytes client: redis-py 8.1 recognises a RESP3 PING reply inside a subscription only
    # as bytes (with decode_responses=True its handle_message indexes into the text).
    p = clients(decode_responses=False).pubsub()
    try:
        p.subscribe("c")
        next_message(p)
        p.ping("hb")
        msg = next_message(p)
        assert msg["type"] == "pong" and msg["data"] == b"hb"
        p.ping()
        msg = next_message(p)
        assert msg["type"] == "pong" and msg["data"] == b""
    finally:
        p.close()


def test_health_checks_while_subscribed(r, clients):
    # Celery and kombu set health_check_interval: redis-py then sends PING
    # redis-py-health-check on the subscribed connection and swallows the answer.
    c = clients(health_check_interval=0.1)
    p = c.pubsub(ignore_subscribe_messages=True)
    try:
        p.subscribe("hc")
        assert p.get_message(timeout=1) is None  # only the swallowed confirmation
        for i in range(3):
            time.sleep(0.15)  # past the interval: the next read sends a health check first
            assert r.publish("hc", f"m{i}") == 1
            msg = next_message(p)
            assert msg["type"] == "message" and msg["data"] == f"m{i}"
        time.sleep(0.15)
        no_message(p, wait=0.3)
    finally:
        p.close()


def subscribed_client(r, pubsub):
    pubsub.subscribe("x")
    pubsub.psubscribe("y*")
    next_message(pubsub)
    next_message(pubsub)
    [entry] = [c for c in r.client_list() if c["sub"] != "0"]
    return entry


def test_subscriber_in_client_list(r, pubsub):
    entry = subscribed_client(r, pubsub)
    assert entry["flags"] == "P"
    assert entry["sub"] == "1" and entry["psub"] == "1"
    assert entry["resp"] == str(pubsub.connection.protocol)


# Redis 7.2 counts a client with the P flag (subscribed) as type pubsub: CLIENT LIST TYPE
# pubsub lists it and TYPE normal leaves it out. cellkv lists it under normal only.
def test_client_list_type_pubsub(r, pubsub):
    entry = subscribed_client(r, pubsub)
    assert [c["id"] for c in r.client_list(_type="pubsub")] == [entry["id"]]
    assert entry["id"] not in [c["id"] for c in r.client_list(_type="normal")]


# Redis 7.2 records every command as the client's last (cmd=psubscribe here); cellkv
# shows cmd=NULL for a client whose last commands were SUBSCRIBE/PSUBSCRIBE.
def test_subscriber_last_command(r, pubsub):
    entry = subscribed_client(r, pubsub)
    assert entry["cmd"] == "psubscribe"


def test_glob_patterns(r, pubsub):
    patterns = ["a?c", "b[xy]z", "lit\\*", "n[^0-9]"]
    pubsub.psubscribe(*patterns)
    for _ in patterns:
        assert next_message(pubsub)["type"] == "psubscribe"
    sent = {"abc": 1, "ac": 0, "bxz": 1, "byz": 1, "bzz": 0, "lit*": 1, "litx": 0, "na": 1, "n5": 0}
    for channel, receivers in sent.items():
        assert r.publish(channel, channel) == receivers, channel
    got = [next_message(pubsub) for _ in range(sum(sent.values()))]
    assert [(m["pattern"], m["channel"]) for m in got] == [
        ("a?c", "abc"), ("b[xy]z", "bxz"), ("b[xy]z", "byz"), ("lit\\*", "lit*"), ("n[^0-9]", "na"),
    ]
    no_message(pubsub)
