//! String commands through the real binary and the `redis` crate.

use std::time::Duration;

use redis::Value;

use crate::harness::{must_cmd, must_fail, must_start};

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// SET's options, GET, and the conditional forms.
#[test]
fn set_get_and_conditions() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(must_cmd(&mut con, &["SET", "k", "v1", "NX"]), Value::Okay);
    assert_eq!(must_cmd(&mut con, &["SET", "k", "v2", "NX"]), Value::Nil);
    assert_eq!(
        must_cmd(&mut con, &["SET", "k", "v2", "XX", "GET"]),
        bulk("v1")
    );
    assert_eq!(must_cmd(&mut con, &["GET", "k"]), bulk("v2"));
    assert_eq!(must_cmd(&mut con, &["SETNX", "k", "x"]), Value::Int(0));
    assert_eq!(must_cmd(&mut con, &["GETSET", "k", "v3"]), bulk("v2"));
    assert_eq!(
        must_cmd(&mut con, &["MSET", "a", "1", "b", "2"]),
        Value::Okay
    );
    assert_eq!(
        must_cmd(&mut con, &["MGET", "a", "b", "nosuch"]),
        Value::Array(vec![bulk("1"), bulk("2"), Value::Nil])
    );
    assert_eq!(
        must_cmd(&mut con, &["MSETNX", "a", "9", "c", "3"]),
        Value::Int(0)
    );
    assert_eq!(must_cmd(&mut con, &["APPEND", "a", "23"]), Value::Int(3));
    assert_eq!(
        must_cmd(&mut con, &["GETRANGE", "a", "1", "-1"]),
        bulk("23")
    );
    assert_eq!(
        must_cmd(&mut con, &["SETRANGE", "a", "1", "xy"]),
        Value::Int(3)
    );
    assert_eq!(must_cmd(&mut con, &["GETDEL", "a"]), bulk("1xy"));
    assert_eq!(must_cmd(&mut con, &["EXISTS", "a"]), Value::Int(0));
    assert_eq!(
        must_fail(&mut con, &["SET", "k", "v", "EX", "0"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        must_fail(&mut con, &["SET", "k", "v", "NX", "XX"]),
        "ERR syntax error"
    );
}

/// Counters, their errors, and floats.
#[test]
fn counters() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(must_cmd(&mut con, &["INCR", "n"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["INCRBY", "n", "10"]), Value::Int(11));
    assert_eq!(must_cmd(&mut con, &["DECR", "n"]), Value::Int(10));
    assert_eq!(must_cmd(&mut con, &["DECRBY", "n", "20"]), Value::Int(-10));
    assert_eq!(
        must_cmd(&mut con, &["INCRBYFLOAT", "f", "2.5"]),
        bulk("2.5")
    );
    assert_eq!(
        must_cmd(&mut con, &["INCRBYFLOAT", "f", "0.1"]),
        bulk("2.6")
    );
    must_cmd(&mut con, &["SET", "s", "abc"]);
    assert_eq!(
        must_fail(&mut con, &["INCR", "s"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        must_fail(&mut con, &["INCRBYFLOAT", "s", "1"]),
        "ERR value is not a valid float"
    );
    must_cmd(&mut con, &["SET", "max", "9223372036854775807"]);
    assert_eq!(
        must_fail(&mut con, &["INCR", "max"]),
        "ERR increment or decrement would overflow"
    );
}

/// TTLs set by SET/SETEX/GETEX expire in real time; reads never show an expired key.
#[test]
fn ttls_expire_in_real_time() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["SET", "short", "v", "PX", "300"]);
    must_cmd(&mut con, &["SETEX", "long", "100", "v"]);
    must_cmd(&mut con, &["PSETEX", "p", "100000", "v"]);
    must_cmd(&mut con, &["SET", "g", "v"]);
    assert_eq!(must_cmd(&mut con, &["GETEX", "g", "PX", "300"]), bulk("v"));
    let Value::Int(ttl) = must_cmd(&mut con, &["TTL", "long"]) else {
        panic!("ttl")
    };
    assert!((99..=100).contains(&ttl), "ttl {ttl}");
    let Value::Int(pttl) = must_cmd(&mut con, &["PTTL", "p"]) else {
        panic!("pttl")
    };
    assert!((99_000..=100_000).contains(&pttl), "pttl {pttl}");
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(must_cmd(&mut con, &["GET", "short"]), Value::Nil);
    assert_eq!(must_cmd(&mut con, &["GET", "g"]), Value::Nil);
    assert_eq!(must_cmd(&mut con, &["TTL", "short"]), Value::Int(-2));
    assert_eq!(must_cmd(&mut con, &["GET", "long"]), bulk("v"));
}
