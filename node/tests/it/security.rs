//! Authentication and ACLs against the real binary: `-NOAUTH` until `AUTH`, `requirepass`
//! from the command line and from `CONFIG SET`, ACL users that may touch only their key
//! namespaces, refusals counted in `INFO` and `ACL LOG`, users loaded from an `aclfile`
//! and kept across a restart (snapshot and log), an ACL change on one node of a cell
//! enforced by the other two, and no password ever reaching the node's log.

use std::time::{Duration, Instant};

use redis::Value;

use crate::harness::{
    info_field, loopback_cell, must_cmd, must_exchange, must_fail, must_start, must_start_in,
    must_start_member, NodeProcess,
};

/// A connection authenticated as `user` with `pass`.
fn must_connect_as(node: &NodeProcess, user: &str, pass: &str) -> redis::Connection {
    try_connect_as(node.port, user, pass).unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

fn try_connect_as(port: u16, user: &str, pass: &str) -> redis::RedisResult<redis::Connection> {
    let url = format!("redis://{user}:{pass}@127.0.0.1:{port}/");
    redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(5))
}

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

/// Redis's Celery user from `docs/security.md`.
const CELERY_RULES: &[&str] = &[
    "on",
    ">celery-pw",
    "~celery*",
    "~_kombu.*",
    "~unacked*",
    "+@all",
    "-@dangerous",
];

/// With `requirepass`, every command but AUTH, HELLO, QUIT and RESET gets `-NOAUTH` until
/// the client authenticates; a wrong password gets `-WRONGPASS`, is counted and logged
/// without the password; `CONFIG SET requirepass` changes it and `CONFIG GET` never shows it.
#[test]
fn requirepass_gates_every_command_until_auth() {
    let (node, _dir) = must_start(&["--requirepass", "first-s3cret"]);
    let mut tcp = node.must_tcp();
    assert_eq!(
        must_exchange(&mut tcp, b"PING\r\n", 34),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        must_exchange(&mut tcp, b"SET k v\r\n", 34),
        b"-NOAUTH Authentication required.\r\n"
    );
    // Unknown commands are reported as such first, as Redis orders its checks.
    let unknown: &[u8] = b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n";
    assert_eq!(
        must_exchange(&mut tcp, b"NOSUCH\r\n", unknown.len()),
        unknown
    );
    let hello: &[u8] = b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";
    assert_eq!(must_exchange(&mut tcp, b"HELLO 3\r\n", hello.len()), hello);
    let wrongpass = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    assert_eq!(
        must_exchange(&mut tcp, b"AUTH wrong-guess\r\n", wrongpass.len()),
        wrongpass
    );
    assert_eq!(
        must_exchange(&mut tcp, b"AUTH default wrong-guess\r\n", wrongpass.len()),
        wrongpass
    );
    assert_eq!(
        must_exchange(&mut tcp, b"AUTH first-s3cret\r\n", 5),
        b"+OK\r\n"
    );
    assert_eq!(must_exchange(&mut tcp, b"PING\r\n", 7), b"+PONG\r\n");
    // HELLO with AUTH authenticates and switches protocol in one step.
    let mut tcp2 = node.must_tcp();
    let reply = must_exchange(&mut tcp2, b"HELLO 3 AUTH default first-s3cret\r\n", 4);
    assert!(reply.starts_with(b"%7\r\n"), "{reply:?}");

    let mut con = must_connect_as(&node, "default", "first-s3cret");
    assert_eq!(
        info_field(&mut con, "acl_access_denied_auth").as_deref(),
        Some("2")
    );
    let Value::Array(log) = must_cmd(&mut con, &["ACL", "LOG"]) else {
        panic!("ACL LOG is an array");
    };
    let text = format!("{log:?}");
    assert!(text.contains("auth") && text.contains("AUTH"), "{text}");
    assert!(
        text.contains("\"count\"") || text.contains("count"),
        "{text}"
    );
    assert!(!text.contains("wrong-guess"), "{text}");
    assert_eq!(
        must_cmd(&mut con, &["CONFIG", "GET", "requirepass"]),
        Value::Array(vec![bulk("requirepass"), bulk("(redacted)")])
    );
    must_cmd(&mut con, &["CONFIG", "SET", "requirepass", "second-s3cret"]);
    assert!(try_connect_as(node.port, "default", "first-s3cret").is_err());
    let mut con2 = must_connect_as(&node, "default", "second-s3cret");
    assert_eq!(must_cmd(&mut con2, &["ACL", "WHOAMI"]), bulk("default"));
    // The connection authenticated before the change keeps working, as in Redis.
    assert_eq!(
        must_cmd(&mut con, &["PING"]),
        Value::SimpleString("PONG".into())
    );
    // RESET goes back to the default user, unauthenticated since it has a password.
    let reset = must_exchange(&mut tcp, b"RESET\r\nPING\r\n", 8 + 34);
    assert_eq!(reset, b"+RESET\r\n-NOAUTH Authentication required.\r\n");
    let log = node.log();
    for secret in ["first-s3cret", "second-s3cret", "wrong-guess"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(log.contains("authentication failed"), "{log}");
}

/// The Celery user reaches its keys and nothing else: `-NOPERM` with Redis's texts for a
/// key and for a dangerous command, counted in INFO and listed in ACL LOG; the user is
/// shown with its password hashed; deleting it closes its connection.
#[test]
fn a_celery_user_cannot_read_sessions_and_is_logged() {
    let (node, _dir) = must_start(&[]);
    let mut admin = node.must_connect();
    let mut setuser = vec!["ACL", "SETUSER", "celery"];
    setuser.extend_from_slice(CELERY_RULES);
    assert_eq!(must_cmd(&mut admin, &setuser), Value::Okay);
    must_cmd(&mut admin, &["SET", "bff:session:x", "idp-token"]);

    let mut celery = must_connect_as(&node, "celery", "celery-pw");
    assert_eq!(must_cmd(&mut celery, &["ACL", "WHOAMI"]), bulk("celery"));
    assert_eq!(
        must_cmd(&mut celery, &["LPUSH", "celery", "task"]),
        Value::Int(1)
    );
    must_cmd(&mut celery, &["HSET", "unacked", "t1", "body"]);
    must_cmd(&mut celery, &["SET", "_kombu.binding.celery", "x"]);
    assert_eq!(
        must_fail(&mut celery, &["GET", "bff:session:x"]),
        "NOPERM No permissions to access a key"
    );
    assert_eq!(
        must_fail(&mut celery, &["FLUSHALL"]),
        "NOPERM User celery has no permissions to run the 'flushall' command"
    );
    assert_eq!(
        must_fail(&mut celery, &["CONFIG", "GET", "requirepass"]),
        "NOPERM User celery has no permissions to run the 'config|get' command"
    );
    // Inside MULTI the refusal aborts the transaction, as in Redis.
    must_cmd(&mut celery, &["MULTI"]);
    assert_eq!(
        must_fail(&mut celery, &["GET", "bff:session:x"]),
        "NOPERM No permissions to access a key"
    );
    assert!(must_fail(&mut celery, &["EXEC"]).starts_with("EXECABORT"));

    assert_eq!(
        info_field(&mut admin, "acl_access_denied_key").as_deref(),
        Some("2")
    );
    assert_eq!(
        info_field(&mut admin, "acl_access_denied_cmd").as_deref(),
        Some("2")
    );
    let Value::Array(log) = must_cmd(&mut admin, &["ACL", "LOG", "1"]) else {
        panic!("ACL LOG is an array");
    };
    assert_eq!(log.len(), 1);
    let entry = format!("{:?}", log[0]);
    assert!(entry.contains("config|get"), "{entry}");
    assert_eq!(
        must_cmd(
            &mut admin,
            &["ACL", "DRYRUN", "celery", "GET", "bff:session:x"]
        ),
        bulk("User celery has no permissions to access the 'bff:session:x' key")
    );
    assert_eq!(
        must_cmd(
            &mut admin,
            &["ACL", "DRYRUN", "celery", "GET", "celery-meta"]
        ),
        Value::Okay
    );
    let Value::Array(list) = must_cmd(&mut admin, &["ACL", "LIST"]) else {
        panic!("ACL LIST is an array");
    };
    let list = format!("{list:?}");
    assert!(!list.contains("celery-pw"), "{list}");
    assert!(
        list.contains("~celery* ~_kombu.* ~unacked* resetchannels +@all -@dangerous"),
        "{list}"
    );
    assert_eq!(
        must_cmd(&mut admin, &["ACL", "USERS"]),
        Value::Array(vec![bulk("celery"), bulk("default")])
    );
    assert_eq!(
        must_fail(&mut admin, &["ACL", "SETUSER", "x", "+nosuch"]),
        "ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
    );
    assert_eq!(
        must_cmd(&mut admin, &["ACL", "DELUSER", "celery", "nobody"]),
        Value::Int(1)
    );
    assert!(
        redis::cmd("PING").query::<Value>(&mut celery).is_err(),
        "a deleted user's connection is closed"
    );
    assert!(!node.log().contains("celery-pw"));
}

/// Users from `aclfile` (and `requirepass`) are loaded at start; a user added at run time
/// survives a restart with the same file (the load is skipped when nothing changed), and
/// the users survive in snapshots.
#[test]
fn aclfile_users_load_at_start_and_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let aclfile = tmp.path().join("users.acl");
    std::fs::write(
        &aclfile,
        "# users for the test\n\
         user celery on >celery-pw ~celery* ~_kombu.* ~unacked* +@all -@dangerous\n\
         user bff on >bff-pw ~bff:session:* +@all -@dangerous\n\
         user reader on >reader-pw %R~* +@read -@dangerous\n",
    )
    .expect("write aclfile");
    let dir = tmp.path().join("node");
    let path = aclfile.to_string_lossy().to_string();
    let flags = [
        "--aclfile",
        path.as_str(),
        "--requirepass",
        "admin-pw",
        "--snapshot-entries",
        "5",
    ];
    let node = must_start_in(&dir, &flags);
    let mut unauthenticated = node.must_connect();
    assert_eq!(
        must_fail(&mut unauthenticated, &["GET", "k"]),
        "NOAUTH Authentication required."
    );
    let mut bff = must_connect_as(&node, "bff", "bff-pw");
    must_cmd(&mut bff, &["SET", "bff:session:1", "token", "EX", "600"]);
    assert_eq!(
        must_fail(&mut bff, &["GET", "celery"]),
        "NOPERM No permissions to access a key"
    );
    let mut reader = must_connect_as(&node, "reader", "reader-pw");
    assert_eq!(
        must_cmd(&mut reader, &["GET", "bff:session:1"]),
        bulk("token")
    );
    assert_eq!(
        must_fail(&mut reader, &["SET", "x", "1"]),
        "NOPERM User reader has no permissions to run the 'set' command"
    );
    let mut admin = must_connect_as(&node, "default", "admin-pw");
    must_cmd(
        &mut admin,
        &["ACL", "SETUSER", "extra", "on", ">extra-pw", "+ping"],
    );
    // Enough writes for a snapshot to cover the ACL entries.
    for i in 0..20 {
        must_cmd(&mut admin, &["SET", &format!("k{i}"), "v"]);
    }
    drop((bff, reader, admin, unauthenticated));
    assert!(node.terminate(), "stops cleanly");
    let snapshots = std::fs::read_dir(dir.join("snapshots"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(snapshots > 0, "a snapshot was taken");

    let node = must_start_in(&dir, &flags);
    let mut extra = must_connect_as(&node, "extra", "extra-pw");
    assert_eq!(
        must_cmd(&mut extra, &["PING"]),
        Value::SimpleString("PONG".into())
    );
    let mut celery = must_connect_as(&node, "celery", "celery-pw");
    assert_eq!(
        must_fail(&mut celery, &["GET", "bff:session:1"]),
        "NOPERM No permissions to access a key"
    );
    assert!(try_connect_as(node.port, "default", "wrong").is_err());
    let log = node.log();
    for secret in ["celery-pw", "bff-pw", "reader-pw", "admin-pw", "extra-pw"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

/// An ACL change made through one node of a three-node cell is enforced by the other two:
/// the user can authenticate there and is refused the same keys, and its deletion on a
/// third node locks it out everywhere.
#[test]
fn an_acl_change_on_one_node_is_enforced_on_the_others() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (raft_ports, peers) = loopback_cell(3);
    let nodes: Vec<NodeProcess> = (1..=3u64)
        .rev()
        .map(|id| {
            must_start_member(
                &tmp.path().join(format!("n{id}")),
                id,
                raft_ports[&id],
                &peers,
                &["--cluster-wait-timeout", "10s"],
            )
        })
        .collect();
    // nodes[0] is member 3, nodes[2] member 1.
    let mut first = nodes[0].must_connect();
    must_eventually(|| {
        redis::cmd("SET")
            .arg("probe")
            .arg("1")
            .query::<Value>(&mut first)
            .ok()
    });
    must_cmd(
        &mut first,
        &[
            "ACL",
            "SETUSER",
            "bff",
            "on",
            ">bff-pw",
            "~bff:session:*",
            "+@all",
            "-@dangerous",
        ],
    );
    for node in &nodes[1..] {
        let mut bff = must_eventually(|| try_connect_as(node.port, "bff", "bff-pw").ok());
        must_cmd(&mut bff, &["SET", "bff:session:a", "token"]);
        assert_eq!(
            must_fail(&mut bff, &["GET", "cache:metadata:x"]),
            "NOPERM No permissions to access a key"
        );
        assert_eq!(
            must_fail(&mut bff, &["KEYS", "*"]),
            "NOPERM User bff has no permissions to run the 'keys' command"
        );
    }
    let mut last = nodes[2].must_connect();
    assert_eq!(
        must_cmd(&mut last, &["ACL", "DELUSER", "bff"]),
        Value::Int(1)
    );
    for node in &nodes {
        must_eventually(|| {
            try_connect_as(node.port, "bff", "bff-pw")
                .is_err()
                .then_some(())
        });
    }
}

/// Polls `probe` until it yields a value; panics after 20 s. Replicas apply a committed
/// entry a moment after the leader answers.
fn must_eventually<T>(mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A script run by a restricted user is held to that user's key patterns call by call, on
/// the write path (EVAL) and the read path (EVAL_RO): declaring an allowed key and then
/// reaching for another is refused, as in Redis.
#[test]
fn a_restricted_users_scripts_are_checked_call_by_call() {
    let (node, _dir) = must_start(&[]);
    let mut admin = node.must_connect();
    must_cmd(&mut admin, &["SET", "bff:session:x", "idp-token"]);
    must_cmd(&mut admin, &["SET", "celery:x", "task"]);
    let mut setuser = vec!["ACL", "SETUSER", "celery"];
    setuser.extend(CELERY_RULES);
    assert_eq!(must_cmd(&mut admin, &setuser), Value::Okay);
    let mut celery = must_connect_as(&node, "celery", "celery-pw");
    let reach = "return redis.call('get', 'bff:session:x')";
    for eval in ["EVAL", "EVAL_RO"] {
        let allowed = must_cmd(
            &mut celery,
            &[eval, "return redis.call('get', KEYS[1])", "1", "celery:x"],
        );
        assert_eq!(allowed, bulk("task"), "{eval}");
        let refused = must_fail(&mut celery, &[eval, reach, "1", "celery:x"]);
        assert!(refused.contains("NOPERM"), "{eval}: {refused}");
        assert!(!refused.contains("idp-token"), "{eval}: {refused}");
    }
    // The default user, unrestricted, runs the same script.
    assert_eq!(
        must_cmd(&mut admin, &["EVAL", reach, "0"]),
        bulk("idp-token")
    );
}

/// Rules are checked again at EXEC: a command queued while allowed and forbidden before
/// EXEC fails alone with Redis's error, and the rest of the transaction runs.
#[test]
fn exec_rechecks_queued_commands_against_changed_rules() {
    let (node, _dir) = must_start(&[]);
    let mut admin = node.must_connect();
    assert_eq!(
        must_cmd(
            &mut admin,
            &["ACL", "SETUSER", "worker", "on", ">pw", "~q:*", "+@all"]
        ),
        Value::Okay
    );
    // Raw RESP: the `redis` crate turns an EXEC reply holding errors into one error.
    let mut worker = node.must_tcp();
    assert_eq!(
        must_exchange(&mut worker, b"AUTH worker pw\r\n", 5),
        b"+OK\r\n"
    );
    assert_eq!(must_exchange(&mut worker, b"MULTI\r\n", 5), b"+OK\r\n");
    for queued in [&b"SET q:a 1\r\n"[..], b"INCR q:n\r\n", b"PING\r\n"] {
        assert_eq!(must_exchange(&mut worker, queued, 9), b"+QUEUED\r\n");
    }
    assert_eq!(
        must_cmd(&mut admin, &["ACL", "SETUSER", "worker", "-incr", "-ping"]),
        Value::Okay
    );
    let refused = "-NOPERM ACLs rules changed between the moment the transaction was \
                   accumulated and the EXEC call. This command is no longer allowed for the \
                   following reason: no permission to execute the command or subcommand\r\n";
    let expected = format!("*3\r\n+OK\r\n{refused}{refused}");
    let reply = must_exchange(&mut worker, b"EXEC\r\n", expected.len());
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    assert_eq!(must_cmd(&mut admin, &["GET", "q:a"]), bulk("1"));
    assert_eq!(must_cmd(&mut admin, &["EXISTS", "q:n"]), Value::Int(0));
}
