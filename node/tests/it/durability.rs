//! Durability: `kill -9` at a random moment loses no acknowledged write, TTLs survive
//! restarts as absolute deadlines, and a restart after many writes loads a snapshot and
//! replays only the log tail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Value;

use crate::harness::{info_field, must_cmd, must_start_in};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// What the writer was told was stored.
#[derive(Clone, Copy)]
struct Acked {
    /// Absolute deadline (ms) of a key with a TTL.
    deadline_ms: Option<u64>,
}

/// 10 000 keys written in pipelined batches, some with TTLs of a few seconds, some with an
/// hour, some without; SIGKILL lands at a random point; after the restart every
/// acknowledged key is there with its value and deadline, and the short-TTL keys whose
/// deadline has passed are gone.
#[test]
fn kill9_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = must_start_in(tmp.path(), &[]);
    let acked: Arc<Mutex<HashMap<String, Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let acked = acked.clone();
        let stop = stop.clone();
        let mut con = node.must_connect();
        std::thread::spawn(move || {
            for batch in 0..200 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let mut pipe = redis::pipe();
                let mut keys = Vec::new();
                let sent_ms = now_ms();
                for i in 0..50 {
                    let n = batch * 50 + i;
                    let key = format!("key:{n}");
                    let (ttl_ms, deadline) = match n % 3 {
                        0 => (None, None),
                        1 => (Some(3_600_000u64), Some(sent_ms + 3_600_000)),
                        _ => (Some(1_500u64), Some(sent_ms + 1_500)),
                    };
                    let cmd = pipe.cmd("SET").arg(&key).arg(format!("value-{n}"));
                    if let Some(ttl) = ttl_ms {
                        cmd.arg("PX").arg(ttl);
                    }
                    cmd.ignore();
                    keys.push((key, deadline));
                }
                if pipe.query::<()>(&mut con).is_err() {
                    return;
                }
                let mut acked = acked.lock().expect("lock");
                for (key, deadline_ms) in keys {
                    acked.insert(key, Acked { deadline_ms });
                }
            }
        })
    };
    // A random kill point: after a few hundred to ~9000 acknowledged writes.
    let target = 300 + (now_ms() % 8700) as usize;
    let started = Instant::now();
    while acked.lock().expect("lock").len() < target && !writer.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "writer too slow"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let dir = node.kill9();
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 300,
        "only {} writes acknowledged",
        acked.len()
    );

    let node = must_start_in(&dir, &[]);
    let mut con = node.must_connect();
    let (mut present, mut gone) = (0, 0);
    for (key, info) in &acked {
        let n: u64 = key.trim_start_matches("key:").parse().expect("key number");
        // Judged against the time of this key's own check: checking 10 000 keys takes seconds.
        let checked_at = now_ms();
        let value = must_cmd(&mut con, &["GET", key]);
        let pttl = must_cmd(&mut con, &["PTTL", key]);
        match info.deadline_ms {
            // Deadline well past: the key must be gone.
            Some(deadline) if deadline + 200 < checked_at => {
                assert_eq!(value, Value::Nil, "{key} outlived its deadline");
                gone += 1;
            }
            // Near the deadline either outcome is right.
            Some(deadline) if deadline < checked_at + 200 => {}
            deadline => {
                assert_eq!(
                    value,
                    Value::BulkString(format!("value-{n}").into_bytes()),
                    "acknowledged {key} lost"
                );
                match (deadline, pttl) {
                    (None, Value::Int(-1)) => {}
                    (Some(deadline), Value::Int(ms)) => {
                        let expected = deadline.saturating_sub(checked_at) as i64;
                        assert!(
                            (ms - expected).abs() < 5_000,
                            "{key}: pttl {ms}, expected ~{expected}"
                        );
                    }
                    other => panic!("{key}: unexpected ttl {other:?}"),
                }
                present += 1;
            }
        }
    }
    eprintln!(
        "kill9 after {} acknowledged writes: {present} verified present, {gone} verified expired",
        acked.len()
    );
    assert!(present > 0);
}

/// 300 000 writes in pipelines of 1 000 (a few log entries each: one per read the server
/// makes of it) with a snapshot every 20 entries: the log is purged behind each snapshot,
/// and a restart loads the snapshot and replays only a short tail.
#[test]
fn restart_after_300k_writes_loads_snapshot_and_replays_tail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = must_start_in(tmp.path(), &["--snapshot-entries", "20"]);
    let mut con = node.must_connect();
    let total = 300_000;
    for batch in 0..(total / 1000) {
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            let n = batch * 1000 + i;
            pipe.cmd("SET").arg(format!("k{n}")).arg(n).ignore();
        }
        let _: () = pipe.query(&mut con).expect("pipeline");
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    let snapshot_index = loop {
        let index: i64 = info_field(&mut con, "raft_last_snapshot_index")
            .and_then(|v| v.parse().ok())
            .expect("snapshot index");
        if index >= 280 {
            break index as u64;
        }
        assert!(Instant::now() < deadline, "snapshot index stuck at {index}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let purged: i64 = info_field(&mut con, "raft_purged_index")
        .and_then(|v| v.parse().ok())
        .expect("purged");
    assert!(purged > 200, "log not purged: purged index {purged}");
    let dir = node.kill9();

    let node = must_start_in(&dir, &["--snapshot-entries", "20"]);
    let mut con = node.must_connect();
    assert_eq!(must_cmd(&mut con, &["DBSIZE"]), Value::Int(total as i64));
    for n in [0, 1, 99_999, 150_000, 299_999] {
        assert_eq!(
            must_cmd(&mut con, &["GET", &format!("k{n}")]),
            Value::BulkString(n.to_string().into_bytes())
        );
    }
    let log = node.log();
    let loaded_line = log
        .lines()
        .find(|l| l.contains("loaded snapshot"))
        .expect("no snapshot loaded on restart");
    let last_log: u64 = info_field(&mut con, "raft_last_log_index")
        .and_then(|v| v.parse().ok())
        .expect("last log");
    let purged_after: i64 = info_field(&mut con, "raft_purged_index")
        .and_then(|v| v.parse().ok())
        .expect("purged");
    let tail = last_log as i64 - purged_after;
    eprintln!(
        "300k writes: snapshot at {snapshot_index}, purged {purged}; after restart last log {last_log}, purged {purged_after}, log tail {tail} entries; {loaded_line}"
    );
    // Snapshots lag the log by the time one takes to build, and 32 entries stay behind
    // each; still only a small part of the log is replayed.
    assert!(
        tail * 4 <= last_log as i64,
        "restart replayed a log tail of {tail} entries"
    );
}

/// SIGTERM stops the node cleanly (exit status 0) and a restart finds every write.
#[test]
fn sigterm_stops_cleanly_and_keeps_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = must_start_in(tmp.path(), &[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["SET", "bff:session:abc", "token", "EX", "600"]);
    must_cmd(&mut con, &["INCRBY", "counter", "41"]);
    drop(con);
    assert!(node.terminate(), "cellkv did not exit cleanly on SIGTERM");
    let node = must_start_in(tmp.path(), &[]);
    let mut con = node.must_connect();
    assert_eq!(must_cmd(&mut con, &["INCR", "counter"]), Value::Int(42));
    let Value::Int(ttl) = must_cmd(&mut con, &["TTL", "bff:session:abc"]) else {
        panic!("ttl")
    };
    assert!((590..=600).contains(&ttl), "ttl {ttl}");
}
