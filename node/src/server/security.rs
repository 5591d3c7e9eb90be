//! Who a connection is and what it may do: `AUTH`, the `-NOAUTH` gate, the per-command ACL
//! check against the replicated users (`crate::acl`), the `ACL` commands, the node's
//! `ACL LOG` of refusals, `CONFIG SET requirepass`, and loading `aclfile`/`requirepass` into
//! the cell at start, and `protected-mode`.
//!
//! Checks run on the node that receives the command, against the users this node has
//! applied; every change goes through the Raft log, so every node enforces the same rules
//! once it has applied the change. A password is never logged, never put in the log (it is
//! hashed before it is proposed), and never echoed in a reply.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{clock, Node, Session};
use crate::acl::{self, Denied, User, DEFAULT_USER};
use crate::command::{self, errors as err, flag, parse_i64, CommandSpec, Resolved};
use crate::keyspace::{help_lines, AclOp, Op};
use crate::resp::Frame;

/// Redis's reply to a command sent before authenticating.
pub const NOAUTH: &str = "NOAUTH Authentication required.";
/// Redis's reply to a failed `AUTH`.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// What a node answers while the users it was started with are not loaded yet.
pub const LOADING: &str = "LOADING Redis is loading the dataset in memory";
/// Redis's reply, before closing, to a client refused by `protected-mode`.
pub const DENIED: &str = "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.";
/// Most entries `ACL LOG` keeps (Redis's `acllog-max-len` default).
const ACL_LOG_MAX: usize = 128;
/// Refusals this close together with the same reason, object and user are one entry.
const ACL_LOG_GROUP_MS: u64 = 60_000;
/// The connection id of the node's own startup loader (client connections count from 1,
/// the expiry task is 0).
const LOADER_CONN: u64 = u64::MAX;

/// What a connection knows of its user.
#[derive(Debug)]
pub struct AclSession {
    /// The user it runs as.
    pub user: Arc<User>,
    /// Whether it has authenticated (or needed not to).
    pub authenticated: bool,
    /// The node's ACL epoch `user` was read at; 0 = not read yet.
    epoch: u64,
}

impl Default for AclSession {
    fn default() -> Self {
        AclSession {
            user: Arc::new(User::default_user()),
            authenticated: false,
            epoch: 0,
        }
    }
}

/// One `ACL LOG` entry.
#[derive(Clone, Debug)]
struct LogEntry {
    count: u64,
    reason: &'static str,
    context: &'static str,
    object: String,
    username: String,
    client_info: String,
    entry_id: u64,
    created_ms: u64,
    updated_ms: u64,
}

/// The node's `ACL LOG`: refused commands, keys, channels and failed authentications, newest
/// first. Per node, not replicated: each node logs what its own clients tried.
#[derive(Debug, Default)]
pub struct AclLog {
    entries: VecDeque<LogEntry>,
    next_id: u64,
}

impl AclLog {
    fn record(
        &mut self,
        reason: &'static str,
        object: String,
        username: &str,
        client_info: String,
    ) {
        let now = clock::now_ms();
        if let Some(entry) = self.entries.iter_mut().find(|e| {
            e.reason == reason
                && e.object == object
                && e.username == username
                && now.saturating_sub(e.updated_ms) < ACL_LOG_GROUP_MS
        }) {
            entry.count += 1;
            entry.updated_ms = now;
            entry.client_info = client_info;
            return;
        }
        self.entries.push_front(LogEntry {
            count: 1,
            reason,
            context: "toplevel",
            object,
            username: username.to_string(),
            client_info,
            entry_id: self.next_id,
            created_ms: now,
            updated_ms: now,
        });
        self.next_id += 1;
        self.entries.truncate(ACL_LOG_MAX);
    }
}

/// Re-reads the connection's user when the users changed. `false` when its user was
/// deleted: the connection must close, as Redis closes a deleted user's clients.
pub fn refresh(session: &mut Session) -> bool {
    let epoch = session.node.acl_epoch.load(Ordering::Acquire);
    if session.acl.epoch == epoch {
        return true;
    }
    let keyspace = session.node.keyspace.read();
    let users = keyspace.acl();
    if session.acl.epoch == 0 {
        session.acl.authenticated = !users.auth_required();
    }
    session.acl.epoch = epoch;
    match users.get(session.acl.user.name()) {
        Some(user) => {
            session.acl.user = user;
            true
        }
        None => false,
    }
}

/// Whether a client may be served even when nobody needs a password: it connects from this
/// host (a loopback address, IPv4-mapped ones included), or over TLS with a certificate the
/// CA signed (the handshake has proved who it is).
pub fn trusted_origin(peer: &std::net::SocketAddr, verified_cert: bool) -> bool {
    let loopback = match peer.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    loopback || verified_cert
}

/// `protected-mode`, as Redis decides it: with the mode on and a default user that opens
/// without a password, only trusted origins are served; everyone else gets `-DENIED`.
pub fn protected_mode_denies(protected_mode: bool, auth_required: bool, trusted: bool) -> bool {
    protected_mode && !auth_required && !trusted
}

/// The `protected-mode` gate of a connection's first command: `Some(-DENIED)` (and the
/// connection closes after it) for a client protected mode refuses. Checked once the users
/// are loaded, so a `requirepass` given at start counts. A connection that passed once is
/// not checked again, as Redis decides once per connection.
pub fn protected_mode_gate(session: &mut Session) -> Option<Frame> {
    if session.trusted_origin {
        return None;
    }
    let protected_mode = session.node.runtime.read().protected_mode;
    let auth_required = session.node.keyspace.read().acl().auth_required();
    if !protected_mode_denies(protected_mode, auth_required, false) {
        session.trusted_origin = true;
        return None;
    }
    tracing::info!(
        client = session.client.id,
        peer = %session.client.addr,
        "refused a non-loopback client in protected mode"
    );
    session.close_after_reply = true;
    Some(Frame::error(DENIED))
}

/// Waits (up to `cluster-wait-timeout`) until the users this node was started with are
/// loaded; `false` if they are not by then.
pub async fn wait_ready(node: &Node) -> bool {
    let mut ready = node.acl_ready.subscribe();
    if *ready.borrow_and_update() {
        return true;
    }
    let wait = async {
        while !*ready.borrow_and_update() {
            if ready.changed().await.is_err() {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(node.config.cluster_wait_timeout, wait)
        .await
        .unwrap_or(false)
}

/// The gate every command passes before it runs or is queued: `-NOAUTH` before
/// authentication (except the commands Redis lets through), then the user's ACL.
pub fn check(session: &Session, spec: &'static CommandSpec, args: &[Bytes]) -> Result<(), Frame> {
    if !session.acl.authenticated {
        if spec.flags & flag::NO_AUTH != 0 {
            return Ok(());
        }
        return Err(Frame::error(NOAUTH));
    }
    // The default user's case, on every request: skip building the full command name.
    if session.acl.user.unrestricted() {
        return Ok(());
    }
    let full = acl::full_name(spec, args);
    match session.acl.user.check(spec, &full, args) {
        Ok(()) => Ok(()),
        Err(denied) => {
            let user = session.acl.user.name().to_string();
            deny(session, &denied);
            Err(Frame::error(denied.reply_text(&user)))
        }
    }
}

/// Counts and logs a refusal. The log line names the user, the command and the reason but
/// not the key or channel, which may itself be sensitive.
fn deny(session: &Session, denied: &Denied) {
    let node = &session.node;
    let counter = match denied {
        Denied::Command(_) => &node.stats.acl_denied_cmd,
        Denied::Key(_) => &node.stats.acl_denied_key,
        Denied::Channel(_) => &node.stats.acl_denied_channel,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let object = match denied {
        Denied::Command(name) => name.clone(),
        Denied::Key(key) | Denied::Channel(key) => String::from_utf8_lossy(key).into_owned(),
    };
    let user = session.acl.user.name();
    tracing::info!(
        client = session.client.id,
        user,
        reason = denied.reason(),
        "command refused by ACL"
    );
    let info = session.client.describe(clock::now_ms());
    node.acl_log
        .lock()
        .record(denied.reason(), object, user, info);
}

/// Checks `user`/`password` and, on success, makes the connection run as that user. A
/// failure is counted, put in `ACL LOG` and logged, without the password.
fn authenticate(session: &mut Session, username: &[u8], password: &[u8]) -> Result<(), Frame> {
    let name = String::from_utf8_lossy(username).into_owned();
    let user = session.node.keyspace.read().acl().get(&name);
    match user {
        Some(user) if user.authenticates(password) => {
            session.acl.user = user;
            session.acl.authenticated = true;
            session.acl.epoch = session.node.acl_epoch.load(Ordering::Acquire);
            *session.client.user.lock() = name;
            Ok(())
        }
        _ => {
            let node = &session.node;
            node.stats.acl_denied_auth.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                client = session.client.id,
                addr = %session.client.addr,
                user = %name,
                "authentication failed"
            );
            let info = session.client.describe(clock::now_ms());
            node.acl_log
                .lock()
                .record("auth", "AUTH".to_string(), &name, info);
            Err(Frame::error(WRONGPASS))
        }
    }
}

/// AUTH [username] password
pub fn auth(session: &mut Session, args: &[Bytes]) -> Frame {
    let (user, pass) = match args {
        [_, pass] => {
            let default_open = session
                .node
                .keyspace
                .read()
                .acl()
                .get(DEFAULT_USER)
                .is_some_and(|u| u.nopass());
            if default_open {
                return Frame::error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
            }
            (Bytes::from_static(DEFAULT_USER.as_bytes()), pass.clone())
        }
        [_, user, pass] => (user.clone(), pass.clone()),
        _ => return Frame::error(err::SYNTAX),
    };
    match authenticate(session, &user, &pass) {
        Ok(()) => Frame::ok(),
        Err(e) => e,
    }
}

/// The `AUTH user pass` part of `HELLO`: authenticates, or the error to answer with.
pub fn hello_auth(session: &mut Session, user: &[u8], pass: &[u8]) -> Result<(), Frame> {
    authenticate(session, user, pass)
}

/// The error `HELLO` answers when the connection has not authenticated and did not use
/// its `AUTH` option.
pub fn hello_noauth() -> Frame {
    Frame::error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
}

/// `RESET`: back to the default user, authenticated only if it needs no password.
pub fn reset(session: &mut Session) {
    let keyspace = session.node.keyspace.read();
    let users = keyspace.acl();
    session.acl.authenticated = !users.auth_required();
    session.acl.user = users
        .get(DEFAULT_USER)
        .unwrap_or_else(|| Arc::new(User::default_user()));
    session.acl.epoch = session.node.acl_epoch.load(Ordering::Acquire);
    *session.client.user.lock() = DEFAULT_USER.to_string();
}

/// ACL WHOAMI
pub fn acl_whoami(session: &mut Session, _args: &[Bytes]) -> Frame {
    Frame::bulk(session.acl.user.name())
}

/// ACL USERS
pub fn acl_users(session: &mut Session, _args: &[Bytes]) -> Frame {
    let keyspace = session.node.keyspace.read();
    Frame::Array(
        keyspace
            .acl()
            .iter()
            .map(|u| Frame::bulk(u.name()))
            .collect(),
    )
}

/// ACL LIST
pub fn acl_list(session: &mut Session, _args: &[Bytes]) -> Frame {
    let keyspace = session.node.keyspace.read();
    Frame::Array(
        keyspace
            .acl()
            .iter()
            .map(|u| Frame::bulk(u.describe()))
            .collect(),
    )
}

/// ACL GETUSER username
pub fn acl_getuser(session: &mut Session, args: &[Bytes]) -> Frame {
    let name = String::from_utf8_lossy(&args[2]);
    let Some(user) = session.node.keyspace.read().acl().get(&name) else {
        return Frame::Null;
    };
    Frame::Map(vec![
        (
            Frame::bulk("flags"),
            Frame::Array(user.flags().into_iter().map(Frame::bulk).collect()),
        ),
        (
            Frame::bulk("passwords"),
            Frame::Array(user.password_hashes().iter().map(Frame::bulk).collect()),
        ),
        (Frame::bulk("commands"), Frame::bulk(user.commands_text())),
        (Frame::bulk("keys"), Frame::bulk(user.keys_text())),
        (Frame::bulk("channels"), Frame::bulk(user.channels_text())),
        (Frame::bulk("selectors"), Frame::Array(Vec::new())),
    ])
}

/// ACL CAT [category]
pub fn acl_cat(_session: &mut Session, args: &[Bytes]) -> Frame {
    match args.get(2) {
        None => Frame::Array(acl::CATEGORIES.iter().map(Frame::bulk).collect()),
        Some(category) => {
            let name = String::from_utf8_lossy(category);
            match acl::commands_in_category(&name) {
                Some(names) => Frame::Array(names.into_iter().map(Frame::bulk).collect()),
                None => Frame::error(format!("ERR Unknown category '{name}'")),
            }
        }
    }
}

/// ACL GENPASS [bits]
pub fn acl_genpass(_session: &mut Session, args: &[Bytes]) -> Frame {
    let bits = match args.get(2) {
        None => 256,
        Some(raw) => match parse_i64(raw) {
            Some(n) if (1..=4096).contains(&n) => n as usize,
            _ => return Frame::error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"),
        },
    };
    Frame::bulk(acl::genpass(bits))
}

/// ACL DRYRUN username command [arg ...]
pub fn acl_dryrun(session: &mut Session, args: &[Bytes]) -> Frame {
    let name = String::from_utf8_lossy(&args[2]);
    let Some(user) = session.node.keyspace.read().acl().get(&name) else {
        return Frame::error(format!("ERR User '{name}' not found"));
    };
    let command_args = &args[3..];
    if command::lookup(&command_args[0]).is_none() {
        return Frame::error(format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(&command_args[0])
        ));
    }
    let spec = match command::resolve(command_args) {
        Resolved::Command(spec) => spec,
        Resolved::Error(text) => return Frame::Error(text),
    };
    match user.check(spec, &acl::full_name(spec, command_args), command_args) {
        Ok(()) => Frame::ok(),
        Err(denied) => Frame::bulk(denied.dryrun_text(user.name())),
    }
}

/// ACL LOG [count | RESET]
pub fn acl_log(session: &mut Session, args: &[Bytes]) -> Frame {
    let mut count = 10;
    if let Some(arg) = args.get(2) {
        if arg.eq_ignore_ascii_case(b"reset") {
            session.node.acl_log.lock().entries.clear();
            return Frame::ok();
        }
        match parse_i64(arg) {
            Some(n) if n >= 0 => count = n as usize,
            _ => return Frame::error(err::NOT_INTEGER),
        }
    }
    let now = clock::now_ms();
    let log = session.node.acl_log.lock();
    Frame::Array(
        log.entries
            .iter()
            .take(count)
            .map(|e| {
                Frame::Map(vec![
                    (Frame::bulk("count"), Frame::Integer(e.count as i64)),
                    (Frame::bulk("reason"), Frame::bulk(e.reason)),
                    (Frame::bulk("context"), Frame::bulk(e.context)),
                    (Frame::bulk("object"), Frame::bulk(&e.object)),
                    (Frame::bulk("username"), Frame::bulk(&e.username)),
                    (
                        Frame::bulk("age-seconds"),
                        Frame::Double(now.saturating_sub(e.created_ms) as f64 / 1000.0),
                    ),
                    (Frame::bulk("client-info"), Frame::bulk(&e.client_info)),
                    (Frame::bulk("entry-id"), Frame::Integer(e.entry_id as i64)),
                    (
                        Frame::bulk("timestamp-created"),
                        Frame::Integer(e.created_ms as i64),
                    ),
                    (
                        Frame::bulk("timestamp-last-updated"),
                        Frame::Integer(e.updated_ms as i64),
                    ),
                ])
            })
            .collect(),
    )
}

/// ACL HELP
pub fn acl_help(_session: &mut Session, _args: &[Bytes]) -> Frame {
    help_lines(
        "ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    )
}

/// ACL SETUSER username [rule ...]: checked here against this node's copy of the user (so a
/// bad rule is answered without a round trip), then proposed with its passwords hashed;
/// apply checks it again, and every node applies the same rules.
pub async fn acl_setuser(session: &mut Session, args: &[Bytes]) -> Frame {
    if !acl::valid_user_name(&args[2]) {
        return Frame::error("ERR Usernames can't contain spaces or null characters");
    }
    let name = String::from_utf8_lossy(&args[2]).into_owned();
    let rules = acl::hash_plaintext_rules(&args[3..]);
    let current = session.node.keyspace.read().acl().get(&name);
    let mut probe = current.map_or_else(|| User::new(&name), |u| (*u).clone());
    if let Err((i, e)) = probe.apply_rules(&rules) {
        // The rule as it will travel: a password rule shows as its hash, never in clear.
        return Frame::error(format!(
            "ERR Error in ACL SETUSER modifier '{}': {e}",
            String::from_utf8_lossy(&rules[i])
        ));
    }
    let node = session.node.clone();
    node.write(&mut session.writer, Op::Acl(AclOp::SetUser { name, rules }))
        .await
}

/// ACL DELUSER username [username ...]
pub async fn acl_deluser(session: &mut Session, args: &[Bytes]) -> Frame {
    let names: Vec<String> = args[2..]
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    if names.iter().any(|n| n == DEFAULT_USER) {
        return Frame::error("ERR The 'default' user cannot be removed");
    }
    let node = session.node.clone();
    node.write(&mut session.writer, Op::Acl(AclOp::DelUser { names }))
        .await
}

/// CONFIG SET with `requirepass` among its pairs: the other pairs are set first (as the
/// plain `CONFIG SET`), then the default user's password goes through the log, hashed.
pub async fn config_set(session: &mut Session, args: &[Bytes]) -> Frame {
    if !args.len().is_multiple_of(2) {
        return Frame::error(err::wrong_arity("config|set"));
    }
    let mut rest: Vec<Bytes> = args[..2].to_vec();
    let mut password = None;
    for pair in args[2..].chunks_exact(2) {
        if pair[0].eq_ignore_ascii_case(b"requirepass") {
            if password.is_some() {
                return Frame::error(
                    "ERR CONFIG SET failed (possibly related to argument 'requirepass') - duplicate parameter",
                );
            }
            password = Some(pair[1].clone());
        } else {
            rest.extend_from_slice(pair);
        }
    }
    if rest.len() > 2 {
        match super::commands::config_set(session, &rest) {
            Err(refused) => return refused,
            // The cell's options (`maxmemory` and friends) go through the log.
            Ok(Some(op)) => {
                let node = session.node.clone();
                let reply = node.write(&mut session.writer, op).await;
                if reply.is_error() {
                    return reply;
                }
            }
            Ok(None) => {}
        }
    }
    let Some(password) = password else {
        return Frame::ok();
    };
    let rules = if password.is_empty() {
        vec![Bytes::from_static(b"nopass")]
    } else {
        vec![
            Bytes::from_static(b"resetpass"),
            Bytes::from(format!("#{}", acl::hash_password(&password))),
        ]
    };
    let node = session.node.clone();
    let reply = node
        .write(
            &mut session.writer,
            Op::Acl(AclOp::SetUser {
                name: DEFAULT_USER.to_string(),
                rules,
            }),
        )
        .await;
    if reply.is_error() {
        return reply;
    }
    Frame::ok()
}

/// What `CONFIG GET requirepass` shows: never the password (only its hash is known, and
/// secrets are never shown), `(redacted)` when the default user has one.
pub fn requirepass_value(node: &Node) -> String {
    let keyspace = node.keyspace.read();
    match keyspace.acl().get(DEFAULT_USER) {
        Some(user) if !user.nopass() && !user.password_hashes().is_empty() => {
            "(redacted)".to_string()
        }
        _ => String::new(),
    }
}

/// Proposes the users from `aclfile`/`requirepass` until they are applied, then opens the
/// node to clients (see `docs/security.md`, "Loading users at start"). Retries while the
/// cell has no leader; a load the state machine refuses keeps the node closed, since
/// serving with other rules than configured would fail open.
pub async fn load_at_start(node: Arc<Node>, startup: Option<(String, Vec<acl::UserRules>)>) {
    let Some((digest, users)) = startup else {
        node.acl_ready.send_replace(true);
        return;
    };
    let mut writer = node.writer(LOADER_CONN);
    let mut shutdown = node.shutdown_signal();
    let op = Op::Acl(AclOp::Load {
        digest: digest.clone(),
        users,
    });
    loop {
        let reply = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            reply = node.write(&mut writer, op.clone()) => reply,
        };
        match reply {
            Frame::Error(text) if text.starts_with("ERR ") => {
                tracing::error!(error = %text, "the cell refused the configured ACL users; not serving clients");
                return;
            }
            Frame::Error(text) => {
                tracing::info!(reason = %text, "ACL users not loaded yet; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => break,
        }
    }
    // The leader applied it; this node may apply it a moment later.
    let deadline = tokio::time::Instant::now() + node.config.cluster_wait_timeout;
    while tokio::time::Instant::now() < deadline {
        if node.keyspace.read().acl().loaded_digest() == Some(digest.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!("ACL users loaded");
    node.acl_ready.send_replace(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_refuses_only_untrusted_clients_of_an_open_server() {
        let remote: std::net::SocketAddr = "192.0.2.7:5000".parse().expect("addr");
        let trusted = trusted_origin(&remote, false);
        assert!(!trusted);
        assert!(protected_mode_denies(true, false, trusted));
        // A password for the default user, protected-mode off, or a verified certificate
        // each let the client in.
        assert!(!protected_mode_denies(true, true, trusted));
        assert!(!protected_mode_denies(false, false, trusted));
        assert!(!protected_mode_denies(
            true,
            false,
            trusted_origin(&remote, true)
        ));
        for local in [
            "127.0.0.1:1",
            "127.3.4.5:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            let addr: std::net::SocketAddr = local.parse().expect("addr");
            assert!(trusted_origin(&addr, false), "{local}");
        }
        let mapped: std::net::SocketAddr = "[::ffff:192.0.2.7]:1".parse().expect("addr");
        assert!(!trusted_origin(&mapped, false));
    }
}
