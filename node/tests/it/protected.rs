//! `protected-mode`, as Redis has it: a node without a password answers clients from other
//! hosts `-DENIED` and serves loopback clients. A non-loopback client needs a second
//! address, so the node and `redis-cli` run inside a network namespace of their own (made
//! with `unshare -n`, which needs root, as the tests run in CI) where the loopback device
//! also carries 192.0.2.1 (TEST-NET-1, reachable only inside that namespace).

use std::process::Command;

use crate::harness::must_start;

/// Runs the scenario inside a fresh network namespace and returns what it printed: one
/// `label: reply` line per step.
fn run_in_namespace(dir: &std::path::Path) -> String {
    let script = r#"
set -u
ip link set lo up
ip addr add 192.0.2.1/32 dev lo
"$CELLKV_BIN" --bind 0.0.0.0 --port 0 --raft-port 0 --dir "$DIR/data" --log-level info \
    >"$DIR/out" 2>"$DIR/cellkv.log" &
pid=$!
trap 'kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 300); do
    grep -q '^cellkv ready on ' "$DIR/out" 2>/dev/null && break
    sleep 0.1
done
port=$(sed -n 's/^cellkv ready on .*://p' "$DIR/out")
remote() { timeout 10 redis-cli -h 192.0.2.1 -p "$port" "$@" 2>&1 | head -c 60; echo; }
here() { timeout 10 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>&1; }
echo "remote: $(remote PING)"
echo "local: $(here PING)"
echo "set-off: $(here CONFIG SET protected-mode no)"
echo "remote-off: $(remote PING)"
echo "set-on: $(here CONFIG SET protected-mode yes)"
echo "remote-on: $(remote PING)"
echo "password: $(here CONFIG SET requirepass s3cret)"
echo "remote-password: $(remote PING)"
echo "remote-auth: $(remote -a s3cret --no-auth-warning PING)"
"#;
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .env("CELLKV_BIN", env!("CARGO_BIN_EXE_cellkv"))
        .env("DIR", dir)
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "unshare -n failed (the test needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn step<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{label}: ")))
        .unwrap_or_else(|| panic!("no {label} step in:\n{output}"))
        .trim()
}

#[test]
fn protected_mode_denies_remote_clients_until_a_password_is_set() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let output = run_in_namespace(tmp.path());
    let log = std::fs::read_to_string(tmp.path().join("cellkv.log")).unwrap_or_default();
    let context = format!("{output}\nlog:\n{log}");
    assert!(
        step(&output, "remote").starts_with("DENIED Redis is running in protected mode"),
        "{context}"
    );
    assert_eq!(step(&output, "local"), "PONG", "{context}");
    assert_eq!(step(&output, "set-off"), "OK", "{context}");
    assert_eq!(step(&output, "remote-off"), "PONG", "{context}");
    assert_eq!(step(&output, "set-on"), "OK", "{context}");
    assert!(
        step(&output, "remote-on").starts_with("DENIED"),
        "{context}"
    );
    assert_eq!(step(&output, "password"), "OK", "{context}");
    assert!(
        step(&output, "remote-password").starts_with("NOAUTH"),
        "{context}"
    );
    assert_eq!(step(&output, "remote-auth"), "PONG", "{context}");
    assert!(
        log.contains("protected mode is on"),
        "start-up warning: {log}"
    );
    assert!(
        log.contains("refused a non-loopback client in protected mode"),
        "{log}"
    );
}

/// On loopback, the default configuration serves clients and reports protected mode.
#[test]
fn protected_mode_is_on_by_default_and_loopback_clients_are_served() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let value = crate::harness::must_cmd(&mut con, &["CONFIG", "GET", "protected-mode"]);
    assert_eq!(
        value,
        redis::Value::Array(vec![
            redis::Value::BulkString(b"protected-mode".to_vec()),
            redis::Value::BulkString(b"yes".to_vec()),
        ])
    );
    assert_eq!(
        crate::harness::must_cmd(&mut con, &["PING"]),
        redis::Value::SimpleString("PONG".into())
    );
    let error = crate::harness::must_fail(&mut con, &["CONFIG", "SET", "protected-mode", "maybe"]);
    assert!(error.contains("protected-mode"), "{error}");
}
