//! Key commands through the real binary: deletion, renaming, scanning, expiry and the
//! leader's active expiry.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::Value;

use crate::harness::{info_field, must_cmd, must_fail, must_start};

/// DEL, EXISTS, TYPE, RENAME, COPY, FLUSHDB and OBJECT behave as in Redis.
#[test]
fn key_commands() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["MSET", "a", "1", "b", "2", "c", "3"]);
    assert_eq!(
        must_cmd(&mut con, &["EXISTS", "a", "a", "nosuch"]),
        Value::Int(2)
    );
    assert_eq!(
        must_cmd(&mut con, &["TYPE", "a"]),
        Value::SimpleString("string".into())
    );
    assert_eq!(
        must_cmd(&mut con, &["TYPE", "nosuch"]),
        Value::SimpleString("none".into())
    );
    assert_eq!(must_cmd(&mut con, &["DEL", "a", "nosuch"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["UNLINK", "b"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["RENAME", "c", "d"]), Value::Okay);
    assert_eq!(
        must_fail(&mut con, &["RENAME", "c", "d"]),
        "ERR no such key"
    );
    assert_eq!(must_cmd(&mut con, &["COPY", "d", "e"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["RENAMENX", "d", "e"]), Value::Int(0));
    assert_eq!(must_cmd(&mut con, &["TOUCH", "d", "e", "f"]), Value::Int(2));
    assert_eq!(
        must_cmd(&mut con, &["OBJECT", "ENCODING", "d"]),
        Value::BulkString(b"int".to_vec())
    );
    assert_eq!(must_cmd(&mut con, &["DBSIZE"]), Value::Int(2));
    let Value::BulkString(random) = must_cmd(&mut con, &["RANDOMKEY"]) else {
        panic!("randomkey")
    };
    assert!(random == b"d" || random == b"e");
    assert_eq!(must_cmd(&mut con, &["FLUSHDB"]), Value::Okay);
    assert_eq!(must_cmd(&mut con, &["DBSIZE"]), Value::Int(0));
    assert_eq!(must_cmd(&mut con, &["RANDOMKEY"]), Value::Nil);
    assert_eq!(
        must_fail(&mut con, &["FLUSHDB", "LATER"]),
        "ERR syntax error"
    );
}

/// KEYS filters by pattern; SCAN with MATCH, COUNT and TYPE visits every key.
#[test]
fn keys_and_scan() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let mut pipe = redis::pipe();
    for i in 0..300 {
        pipe.cmd("SET")
            .arg(format!("cache:metadata:{i}"))
            .arg(i)
            .ignore();
        pipe.cmd("SET")
            .arg(format!("celery-task-meta-{i}"))
            .arg(i)
            .ignore();
    }
    let _: () = pipe.query(&mut con).expect("pipeline");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("cache:*")
        .query(&mut con)
        .expect("keys");
    assert_eq!(keys.len(), 300);
    assert!(keys.iter().all(|k| k.starts_with("cache:")));
    let mut cursor = 0u64;
    let mut seen = HashSet::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("celery-*")
            .arg("COUNT")
            .arg(50)
            .arg("TYPE")
            .arg("string")
            .query(&mut con)
            .expect("scan");
        seen.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 300);
    assert_eq!(must_fail(&mut con, &["SCAN", "-1"]), "ERR invalid cursor");
}

/// EXPIRE with NX/XX/GT/LT, PERSIST, EXPIRETIME.
#[test]
fn expire_family() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["SET", "k", "v"]);
    assert_eq!(
        must_cmd(&mut con, &["EXPIRE", "k", "100", "XX"]),
        Value::Int(0)
    );
    assert_eq!(
        must_cmd(&mut con, &["EXPIRE", "k", "100", "NX"]),
        Value::Int(1)
    );
    assert_eq!(
        must_cmd(&mut con, &["PEXPIRE", "k", "200000", "GT"]),
        Value::Int(1)
    );
    assert_eq!(
        must_cmd(&mut con, &["EXPIRE", "k", "50", "GT"]),
        Value::Int(0)
    );
    let Value::Int(at) = must_cmd(&mut con, &["EXPIRETIME", "k"]) else {
        panic!("expiretime")
    };
    assert_eq!(
        must_cmd(&mut con, &["EXPIREAT", "k", &(at + 10).to_string()]),
        Value::Int(1)
    );
    let Value::Int(pat) = must_cmd(&mut con, &["PEXPIRETIME", "k"]) else {
        panic!("pexpiretime")
    };
    assert_eq!(pat, (at + 10) * 1000);
    assert_eq!(must_cmd(&mut con, &["PERSIST", "k"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["TTL", "k"]), Value::Int(-1));
    assert_eq!(must_cmd(&mut con, &["PEXPIREAT", "k", "1"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["EXISTS", "k"]), Value::Int(0));
    assert_eq!(
        must_fail(&mut con, &["EXPIRE", "k", "10", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
}

/// Keys nobody reads are still reclaimed: the leader samples and deletes expired keys
/// through the log, and INFO counts them.
#[test]
fn active_expiry_reclaims_unread_keys() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("SET")
            .arg(format!("m2m:tokens:{i}"))
            .arg("secret")
            .arg("PX")
            .arg(200)
            .ignore();
    }
    must_cmd(&mut con, &["SET", "keeper", "v"]);
    let _: () = pipe.query(&mut con).expect("pipeline");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Value::Int(size) = must_cmd(&mut con, &["DBSIZE"]) else {
            panic!("dbsize")
        };
        if size == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{size} keys left after 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let expired: u64 = info_field(&mut con, "expired_keys")
        .and_then(|v| v.parse().ok())
        .expect("expired_keys");
    assert_eq!(expired, 5000, "expired_keys");
    assert_eq!(
        must_cmd(&mut con, &["GET", "keeper"]),
        Value::BulkString(b"v".to_vec())
    );
}
