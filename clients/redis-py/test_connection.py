"""What redis-py sends on every connection: HELLO, CLIENT SETINFO, CLIENT SETNAME, SELECT,
and the server commands applications call first (PING, INFO, CONFIG GET)."""

import pytest
import redis
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo
from redis.retry import Retry

# redis-py retries connection errors (authentication failures among them) with a backoff
# of seconds; a connection expected to fail gets no retries.
NO_RETRY = Retry(NoBackoff(), 0)


def hello_as_dict(reply):
    """HELLO answers a map in RESP3 and a flat array of pairs in RESP2."""
    if isinstance(reply, dict):
        return reply
    assert isinstance(reply, list) and len(reply) % 2 == 0, reply
    return dict(zip(reply[::2], reply[1::2]))


def test_hello_handshake(r, protocol):
    # redis-py sends HELLO 3 on connect for protocol=3 and nothing for protocol=2.
    r.ping()
    conn = r.connection_pool.get_connection()
    try:
        meta = conn.handshake_metadata
        if protocol == 3:
            meta = {k.decode() if isinstance(k, bytes) else k: v for k, v in meta.items()}
            assert meta["proto"] == 3
            assert meta["server"] == "redis"
            assert meta["version"].startswith("7.2")
            assert meta["mode"] == "standalone"
            assert meta["role"] == "master"
            assert meta["modules"] == []
            assert isinstance(meta["id"], int)
        else:
            assert meta is None
    finally:
        r.connection_pool.release(conn)

    # An explicit HELLO with the same version answers the same fields on either protocol.
    reply = hello_as_dict(r.execute_command("HELLO", protocol))
    assert reply["proto"] == protocol
    assert reply["server"] == "redis"
    assert reply["id"] == r.client_id()


def test_hello_switches_protocol_and_sets_name(clients, protocol):
    c = clients(protocol=2, single_connection_client=True)
    reply = hello_as_dict(c.execute_command("HELLO", 2, "SETNAME", "via-hello"))
    assert reply["proto"] == 2
    assert c.client_getname() == "via-hello"
    with pytest.raises(redis.ResponseError, match="NOPROTO"):
        c.execute_command("HELLO", 4)


def test_client_info_reports_protocol_and_lib(r, protocol):
    info = r.client_info()
    assert info["resp"] == str(protocol)
    # redis-py sends CLIENT SETINFO LIB-NAME / LIB-VER right after connecting.
    assert info["lib-name"] == "redis-py"
    assert info["lib-ver"] == redis.__version__
    assert info["db"] == 0
    assert info["id"] == r.client_id()


def test_client_setinfo(r):
    assert r.client_setinfo("LIB-NAME", "cellkv-tests") is True
    assert r.client_setinfo("lib-ver", "1.2.3") is True
    info = r.client_info()
    assert info["lib-name"] == "cellkv-tests"
    assert info["lib-ver"] == "1.2.3"
    with pytest.raises(redis.ResponseError, match="cannot contain spaces"):
        r.client_setinfo("LIB-NAME", "has space")
    with pytest.raises(redis.ResponseError):
        r.client_setinfo("LIB-FOO", "x")
    assert r.client_info()["lib-name"] == "cellkv-tests"


def test_upstream_driver_name_in_setinfo(clients):
    c = clients(driver_info=DriverInfo().add_upstream_driver("celery", "5.4.0"))
    assert c.client_info()["lib-name"] == "redis-py(celery_v5.4.0)"


def test_client_setname_getname(r, clients):
    assert r.client_getname() is None
    assert r.client_setname("worker-1") is True
    assert r.client_getname() == "worker-1"
    with pytest.raises(redis.ResponseError, match="cannot contain spaces"):
        r.client_setname("bad name")
    assert r.client_getname() == "worker-1"

    # client_name= makes redis-py send CLIENT SETNAME during the handshake.
    named = clients(client_name="beat-scheduler")
    assert named.client_getname() == "beat-scheduler"
    names = {c["name"] for c in r.client_list()}
    assert {"worker-1", "beat-scheduler"} <= names


def test_select_db_via_constructor(r, clients):
    db3 = clients(db=3)
    assert db3.set("only-in-3", "x") is True
    assert db3.get("only-in-3") == "x"
    assert r.get("only-in-3") is None
    assert db3.client_info()["db"] == 3
    assert db3.dbsize() == 1
    assert r.dbsize() == 0
    keyspace = r.info("keyspace")
    assert keyspace["db3"]["keys"] == 1
    assert "db0" not in keyspace
    # FLUSHDB empties only the selected database.
    r.set("in-0", "y")
    assert db3.flushdb() is True
    assert db3.dbsize() == 0
    assert r.get("in-0") == "y"
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        r.execute_command("SELECT", 16)


def test_ping_echo_time(r):
    assert r.ping() is True
    assert r.echo("hello") == "hello"
    conn = r.connection_pool.get_connection()
    try:
        conn.send_command("PING", "payload")
        assert conn.read_response() == "payload"
    finally:
        r.connection_pool.release(conn)
    secs, micros = r.time()
    assert secs > 1_600_000_000 and 0 <= micros < 1_000_000


def test_info(r, cellkv):
    info = r.info()
    assert info["redis_version"].startswith("7.2")
    assert info["tcp_port"] == cellkv.port
    assert info["role"] == "master"
    assert info["connected_clients"] >= 1
    r.set("a", 1)
    r.set("b", 2, ex=100)
    ks = r.info("keyspace")["db0"]
    assert ks["keys"] == 2
    assert ks["expires"] == 1
    server = r.info("server")
    assert "redis_version" in server and "connected_clients" not in server


def test_config_get(r):
    assert r.config_get("maxclients") == {"maxclients": "10000"}
    assert r.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": "536870912"}
    many = r.config_get("*-max-listpack-entries")
    assert many["hash-max-listpack-entries"] == "128"
    assert many["zset-max-listpack-entries"] == "128"
    assert r.config_get("no-such-option-anywhere") == {}


def test_errors_carry_redis_text(r):
    r.set("s", "abc")
    with pytest.raises(redis.ResponseError) as e:
        r.lpush("s", "x")
    assert str(e.value) == "WRONGTYPE Operation against a key holding the wrong kind of value"
    with pytest.raises(redis.ResponseError) as e:
        r.incr("s")
    assert str(e.value) == "value is not an integer or out of range"
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("NOSUCHCOMMAND", "a")
    assert str(e.value).startswith("unknown command 'NOSUCHCOMMAND'")
    # The connection stays usable after errors.
    assert r.get("s") == "abc"


def test_default_protocol_is_resp3_with_legacy_shapes(cellkv):
    # redis-py 8 without protocol= speaks RESP3 on the wire but keeps RESP2-style values.
    with redis.Redis(host=cellkv.host, port=cellkv.port, decode_responses=True) as c:
        c.flushall()
        assert c.client_info()["resp"] == "3"
        c.zadd("z", {"a": 1, "b": 2.5})
        assert c.zrange("z", 0, -1, withscores=True) == [("a", 1.0), ("b", 2.5)]
        assert c.hgetall("nothing") == {}
        c.hset("h", mapping={"f": "v"})
        assert c.hgetall("h") == {"f": "v"}


def test_config_get_many_and_set(r):
    got = r.config_get("maxclients", "appendonly")
    assert got == {"maxclients": "10000", "appendonly": "yes"}
    before = r.config_get("hash-max-listpack-entries")["hash-max-listpack-entries"]
    r.hset("h", mapping={f"f{i}": i for i in range(10)})
    assert r.object("encoding", "h") == "listpack"
    try:
        assert r.config_set("hash-max-listpack-entries", 4) is True
        assert r.config_get("hash-max-listpack-entries") == {"hash-max-listpack-entries": "4"}
        # The old name is an alias of the new one.
        assert r.config_get("hash-max-ziplist-entries") == {"hash-max-ziplist-entries": "4"}
        assert r.object("encoding", "h") == "hashtable"
    finally:
        r.config_set("hash-max-listpack-entries", before)
    assert r.config_get("hash-max-listpack-entries") == {"hash-max-listpack-entries": before}
    with pytest.raises(redis.ResponseError, match="Unknown option or number of arguments"):
        r.config_set("no-such-option", "1")


def test_auth_without_configured_password(clients, protocol):
    # No password is configured: the default user takes any password through
    # AUTH default <pw> (RESP2) or HELLO 3 AUTH default <pw> (RESP3), as in Redis 7.2.
    assert clients(username="default", password="anything").ping() is True
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        clients(username="bob", password="pw", retry=NO_RETRY).ping()
    if protocol == 2:
        # AUTH <password> alone: Redis's error for a default user without a password.
        with pytest.raises(redis.AuthenticationError, match="without any password configured"):
            clients(password="pw", retry=NO_RETRY).ping()
    else:
        # redis-py sends HELLO 3 AUTH default <password>, which the default user accepts.
        assert clients(password="pw").ping() is True
