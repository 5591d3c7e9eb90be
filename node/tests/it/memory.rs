//! Memory accounting and eviction on real processes: `MEMORY USAGE`, `INFO memory`,
//! `OBJECT IDLETIME|FREQ` and `CLIENT NO-TOUCH` on one node; `-OOM` over `maxmemory`; and
//! a three-node cell under a small limit where caches fill far past it while a Celery-like
//! producer pushes to its queue: the caches are evicted least recently used first, no queue
//! item is lost, memory stays within the limit plus one entry, the replicas end with the
//! same keys, and `-OOM` comes back once only the queue is left.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use crate::cluster::Cell;
use crate::harness::{info_field, must_cmd, must_fail, must_start};

fn int(value: Value) -> i64 {
    match value {
        Value::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn used_memory(con: &mut redis::Connection) -> u64 {
    info_field(con, "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("used_memory")
}

const OOM: &str = "command not allowed when used memory > 'maxmemory'.";

#[test]
fn memory_usage_info_and_config_follow_redis() {
    let (node, _tmp) = must_start(&[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["SET", "small", "v"]);
    let big = "x".repeat(10_000);
    must_cmd(&mut con, &["SET", "big", &big]);
    let small = int(must_cmd(&mut con, &["MEMORY", "USAGE", "small"]));
    let large = int(must_cmd(
        &mut con,
        &["MEMORY", "USAGE", "big", "SAMPLES", "0"],
    ));
    assert!(small > 0 && large > small + 9_000, "{small} {large}");
    assert_eq!(
        must_cmd(&mut con, &["MEMORY", "USAGE", "missing"]),
        Value::Nil
    );
    assert!(must_fail(&mut con, &["MEMORY", "USAGE", "small", "SAMPLES"]).contains("syntax"));
    assert!(
        must_fail(&mut con, &["MEMORY", "USAGE", "small", "SAMPLES", "x"])
            .contains("not an integer")
    );
    // A list's estimate grows with its elements.
    must_cmd(&mut con, &["RPUSH", "list", "a", "b", "c"]);
    let three = int(must_cmd(&mut con, &["MEMORY", "USAGE", "list"]));
    let many: Vec<String> = (0..200).map(|i| format!("element-{i}")).collect();
    let mut push = vec!["RPUSH", "list"];
    push.extend(many.iter().map(String::as_str));
    must_cmd(&mut con, &push);
    assert!(int(must_cmd(&mut con, &["MEMORY", "USAGE", "list"])) > three + 200 * 16);

    let used = used_memory(&mut con);
    assert!(used >= (large + small + three) as u64, "{used}");
    assert_eq!(info_field(&mut con, "maxmemory").as_deref(), Some("0"));
    assert_eq!(
        info_field(&mut con, "maxmemory_policy").as_deref(),
        Some("noeviction")
    );
    assert!(matches!(
        must_cmd(&mut con, &["MEMORY", "STATS"]),
        Value::Map(_) | Value::Array(_)
    ));

    // Over the limit, growing commands fail and the rest keep working.
    must_cmd(&mut con, &["CONFIG", "SET", "maxmemory", "1kb"]);
    assert_eq!(info_field(&mut con, "maxmemory").as_deref(), Some("1024"));
    assert!(must_fail(&mut con, &["SET", "more", "1"]).contains(OOM));
    assert!(must_fail(&mut con, &["RPUSH", "list", "z"]).contains(OOM));
    assert_eq!(
        must_cmd(&mut con, &["GET", "small"]),
        Value::BulkString(b"v".to_vec())
    );
    assert_eq!(int(must_cmd(&mut con, &["DEL", "big", "list"])), 2);
    assert_eq!(must_cmd(&mut con, &["LPOP", "nothing"]), Value::Nil);
    must_cmd(&mut con, &["CONFIG", "SET", "maxmemory", "0"]);
    must_cmd(&mut con, &["SET", "more", "1"]);

    // CONFIG SET refuses what Redis refuses, and changes nothing then.
    let refused = must_fail(&mut con, &["CONFIG", "SET", "maxmemory-policy", "lru"]);
    assert!(refused.contains("maxmemory-policy"), "{refused}");
    must_cmd(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "maxmemory-policy",
            "allkeys-lfu",
            "eviction",
            "q:=noeviction",
        ],
    );
    assert_eq!(config_get(&mut con, "maxmemory-policy"), "allkeys-lfu");
    assert_eq!(config_get(&mut con, "eviction"), "q:=noeviction");
}

/// One option's value from `CONFIG GET` (a flat array in RESP2).
fn config_get(con: &mut redis::Connection, name: &str) -> String {
    match must_cmd(con, &["CONFIG", "GET", name]) {
        Value::Array(items) => match items.get(1) {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("CONFIG GET {name}: {other:?}"),
        },
        other => panic!("CONFIG GET {name}: {other:?}"),
    }
}

#[test]
fn access_stamps_answer_object_idletime_and_freq() {
    let (node, _tmp) = must_start(&["--eviction", "lfu:=allkeys-lfu"]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["SET", "plain", "v"]);
    must_cmd(&mut con, &["SET", "lfu:k", "v"]);
    // The policy governing the key decides which of the two is answered.
    assert!(must_fail(&mut con, &["OBJECT", "FREQ", "plain"]).contains("LFU"));
    assert!(must_fail(&mut con, &["OBJECT", "IDLETIME", "lfu:k"]).contains("LFU"));
    let before = int(must_cmd(&mut con, &["OBJECT", "FREQ", "lfu:k"]));
    for _ in 0..200 {
        must_cmd(&mut con, &["GET", "lfu:k"]);
    }
    let after = int(must_cmd(&mut con, &["OBJECT", "FREQ", "lfu:k"]));
    assert!(
        after > before,
        "200 reads raise the LFU counter: {before} -> {after}"
    );
    assert_eq!(
        must_cmd(&mut con, &["OBJECT", "FREQ", "missing"]),
        Value::Nil
    );

    std::thread::sleep(Duration::from_millis(2100));
    assert!(int(must_cmd(&mut con, &["OBJECT", "IDLETIME", "plain"])) >= 2);
    // Under NO-TOUCH a read leaves the stamp alone; TOUCH itself still counts.
    must_cmd(&mut con, &["CLIENT", "NO-TOUCH", "ON"]);
    must_cmd(&mut con, &["GET", "plain"]);
    assert!(int(must_cmd(&mut con, &["OBJECT", "IDLETIME", "plain"])) >= 2);
    must_cmd(&mut con, &["TOUCH", "plain"]);
    assert_eq!(int(must_cmd(&mut con, &["OBJECT", "IDLETIME", "plain"])), 0);
    must_cmd(&mut con, &["CLIENT", "NO-TOUCH", "OFF"]);
    std::thread::sleep(Duration::from_millis(1100));
    must_cmd(&mut con, &["GET", "plain"]);
    assert_eq!(int(must_cmd(&mut con, &["OBJECT", "IDLETIME", "plain"])), 0);
}

/// The sorted keys matching `pattern` on one node.
fn keys(con: &mut redis::Connection, pattern: &str) -> BTreeSet<Vec<u8>> {
    match must_cmd(con, &["KEYS", pattern]) {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::BulkString(b) => b,
                other => panic!("key {other:?}"),
            })
            .collect(),
        other => panic!("KEYS answered {other:?}"),
    }
}

const LIMIT: u64 = 1024 * 1024;
/// One cache entry's size, with margin: what a single write may take past the limit.
const ONE_ENTRY: u64 = 2048;

#[test]
fn caches_evict_least_recently_used_first_and_queues_never() {
    let cell = Cell::must_start_with(
        3,
        &[
            "--maxmemory",
            "1mb",
            "--eviction",
            "cache:=allkeys-lru",
            "--eviction",
            "default=noeviction",
            "--eviction",
            "celery=noeviction",
            "--eviction",
            "_kombu=noeviction",
        ],
    );
    let leader = cell.must_leader();
    let follower = cell.follower_of(leader);
    let mut con = cell.con(leader);
    // The leader's configuration reaches the cell through the log.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while info_field(&mut cell.con(follower), "maxmemory").as_deref() != Some("1048576") {
        assert!(
            std::time::Instant::now() < deadline,
            "maxmemory reaches the follower"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // CONFIG SET of a memory option through a follower is the cell's: the leader answers
    // with it at once (it applied the entry before the follower's reply).
    must_cmd(
        &mut cell.con(follower),
        &["CONFIG", "SET", "maxmemory-samples", "7"],
    );
    assert_eq!(config_get(&mut con, "maxmemory-samples"), "7");

    // A Celery-like producer pushes through a follower the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicU64::new(0));
    let producer = {
        let mut queue = cell.con(follower);
        let (stop, pushed) = (stop.clone(), pushed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n = pushed.load(Ordering::Relaxed);
                let task = format!("task-{n}");
                must_cmd(&mut queue, &["LPUSH", "default", &task]);
                pushed.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let value = "v".repeat(1000);
    let hot: Vec<String> = (0..40).map(|i| format!("cache:metadata:hot:{i}")).collect();
    for key in &hot {
        must_cmd(&mut con, &["SET", key, &value]);
    }
    let cold_count = 3000;
    for i in 0..cold_count {
        let key = if i % 2 == 0 {
            format!("cache:metadata:{i}")
        } else {
            format!("cache:llm:{i}")
        };
        // Every write succeeds: there is always a cache key to evict.
        must_cmd(&mut con, &["SET", &key, &value]);
        if i % 100 == 99 {
            for key in &hot {
                must_cmd(&mut con, &["GET", key]);
            }
            let used = used_memory(&mut con);
            assert!(used <= LIMIT + ONE_ENTRY, "used {used} after {i} writes");
        }
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    let pushed = pushed.load(Ordering::Relaxed);
    assert!(pushed > 0);

    // No queue item was evicted.
    assert_eq!(int(must_cmd(&mut con, &["LLEN", "default"])) as u64, pushed);
    let Value::Array(tasks) = must_cmd(&mut con, &["LRANGE", "default", "0", "-1"]) else {
        panic!("LRANGE");
    };
    let tasks: BTreeSet<Vec<u8>> = tasks
        .into_iter()
        .filter_map(|v| match v {
            Value::BulkString(b) => Some(b),
            _ => None,
        })
        .collect();
    for n in 0..pushed {
        assert!(
            tasks.contains(format!("task-{n}").as_bytes()),
            "task-{n} is still queued"
        );
    }

    // Caches were evicted, least recently used first (statistically).
    let evicted: u64 = info_field(&mut con, "evicted_keys")
        .and_then(|v| v.parse().ok())
        .expect("evicted_keys");
    assert!(evicted > 1500, "evicted {evicted}");
    let present = keys(&mut con, "cache:*");
    let hot_kept = hot
        .iter()
        .filter(|k| present.contains(k.as_bytes()))
        .count();
    let early_kept = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                format!("cache:metadata:{i}")
            } else {
                format!("cache:llm:{i}")
            }
        })
        .filter(|k| present.contains(k.as_bytes()))
        .count();
    assert!(
        hot_kept * 10 >= hot.len() * 8,
        "recently read keys survive: {hot_kept} of {}",
        hot.len()
    );
    assert!(
        early_kept * 10 <= 1000,
        "the oldest keys go first: {early_kept} of the first 1000 kept"
    );

    // Every replica holds the same keys and accounts the same bytes.
    let reference = keys(&mut con, "*");
    let reference_used = used_memory(&mut con);
    for id in [1, 2, 3] {
        let mut other = cell.con(id);
        assert_eq!(
            keys(&mut other, "*"),
            reference,
            "node {id} holds the same keys"
        );
        assert_eq!(
            used_memory(&mut other),
            reference_used,
            "node {id} accounts the same"
        );
    }

    // Queue items alone: the queue grows until nothing evictable is left, then -OOM.
    let task = "t".repeat(8000);
    let mut oom = None;
    for n in 0..1000 {
        let mut cmd = redis::cmd("LPUSH");
        cmd.arg("celery").arg(&task);
        match cmd.query::<Value>(&mut con) {
            Ok(_) => continue,
            Err(e) => {
                oom = Some((
                    n,
                    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")),
                ));
                break;
            }
        }
    }
    let (pushed_big, error) = oom.expect("-OOM once only queues are left");
    assert!(error.contains(OOM), "{error}");
    assert!(
        pushed_big > 50,
        "the caches made room first: {pushed_big} pushes"
    );
    assert!(
        keys(&mut con, "cache:*").is_empty(),
        "every cache key went first"
    );
    assert!(used_memory(&mut con) <= LIMIT + 8000 + ONE_ENTRY);
    // Reads and deletes keep working, and deleting frees room again.
    assert_eq!(int(must_cmd(&mut con, &["LLEN", "celery"])), pushed_big);
    assert_eq!(
        int(must_cmd(&mut cell.con(follower), &["DEL", "celery"])),
        1
    );
    must_cmd(&mut con, &["SET", "cache:again", "1"]);
    assert_eq!(int(must_cmd(&mut con, &["LLEN", "default"])) as u64, pushed);
}
