//! The real `redis-cli` (Debian's redis-tools) against the real binary, including
//! `--pipe` mass insertion. The test command installs redis-tools when it is missing.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::must_start;

fn redis_cli() -> &'static str {
    let found = Command::new("redis-cli")
        .arg("--version")
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(found, Ok(true)),
        "redis-cli not found: install redis-tools (the README's test command does)"
    );
    "redis-cli"
}

fn run(port: u16, args: &[&str]) -> String {
    let out = Command::new(redis_cli())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// Everyday redis-cli use: PING, SET/GET, TTL, INFO, errors, RESP3.
#[test]
fn redis_cli_round_trip() {
    let (node, _dir) = must_start(&[]);
    assert_eq!(run(node.port, &["PING"]), "PONG");
    assert_eq!(
        run(
            node.port,
            &["SET", "alphaswarm:kill_switch", "on", "EX", "60"]
        ),
        "OK"
    );
    assert_eq!(run(node.port, &["GET", "alphaswarm:kill_switch"]), "on");
    assert_eq!(run(node.port, &["EXISTS", "alphaswarm:kill_switch"]), "1");
    assert_eq!(run(node.port, &["TTL", "alphaswarm:kill_switch"]), "60");
    assert!(run(node.port, &["INFO", "server"]).contains("redis_version:7.2.4"));
    // redis-cli prints error replies on stdout; `run` trims the trailing space.
    assert_eq!(
        run(node.port, &["NOSUCH"]),
        "ERR unknown command 'NOSUCH', with args beginning with:"
    );
    assert_eq!(
        run(node.port, &["-3", "HELLO", "3"]).lines().next(),
        Some("server redis")
    );
    assert_eq!(run(node.port, &["DEL", "alphaswarm:kill_switch"]), "1");
}

/// `redis-cli --pipe` mass insertion of 10 000 SETs.
#[test]
fn redis_cli_pipe_mass_insertion() {
    let (node, _dir) = must_start(&[]);
    let mut input = Vec::new();
    for i in 0..10_000 {
        let key = format!("mass:{i}");
        let value = format!("v{i}");
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                key.len(),
                value.len()
            )
            .as_bytes(),
        );
    }
    let mut child = Command::new(redis_cli())
        .args(["-h", "127.0.0.1", "-p", &node.port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redis-cli --pipe");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("feed");
    let out = child.wait_with_output().expect("redis-cli --pipe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("errors: 0, replies: 10000"), "{text}");
    assert_eq!(run(node.port, &["DBSIZE"]), "10000");
    assert_eq!(run(node.port, &["GET", "mass:9999"]), "v9999");
}

/// redis-cli reading commands from stdin loads `COMMAND DOCS` for its hints first, and
/// aborts unless the reply is shaped as Redis's (field names as bulk strings).
#[test]
fn redis_cli_reads_commands_from_stdin() {
    let (node, _dir) = must_start(&[]);
    let mut child = Command::new(redis_cli())
        .args(["-h", "127.0.0.1", "-p", &node.port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redis-cli");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"RPUSH q a b c\nLRANGE q 0 -1\nHSET h f v\nHGETALL h\n")
        .expect("feed");
    let out = child.wait_with_output().expect("redis-cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text, "3\na\nb\nc\n1\nf\nv\n");
}

/// `redis-cli --tls` with the CA and a client certificate works against the TLS port; without
/// a certificate it is refused (`tls-auth-clients yes`).
#[test]
fn redis_cli_connects_over_tls() {
    let pki = crate::tls::TestPki::must_create();
    let mut flags = pki.node_flags();
    flags.extend(["--tls-port".to_string(), "0".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (node, _dir) = must_start(&flags);
    let tls_port = node.tls_port.expect("TLS port").to_string();
    let path = |name: &str| pki.path(name).display().to_string();
    let tls_cli = |with_cert: bool, args: &[&str]| {
        let mut command = Command::new(redis_cli());
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &tls_port,
            "--tls",
            "--cacert",
            &path("ca.crt"),
        ]);
        if with_cert {
            command.args(["--cert", &path("client.crt"), "--key", &path("client.key")]);
        }
        command.args(args).output().expect("run redis-cli")
    };
    let out = tls_cli(true, &["SET", "tls:cli", "hello"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{out:?}");
    let out = tls_cli(true, &["GET", "tls:cli"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello",
        "{out:?}"
    );
    let out = tls_cli(false, &["GET", "tls:cli"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("hello"),
        "served without a certificate: {text}"
    );
}
