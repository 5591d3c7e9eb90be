//! Per-connection state: the selected database, the protocol version, and the shared
//! [`ClientState`] that `CLIENT LIST` shows to other connections.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use std::collections::BTreeSet;

use bytes::Bytes;
use parking_lot::Mutex;

use super::pubsub::Mailbox;
use super::{clock, Node, Writer};
use crate::keyspace::{Args, Watch};

/// What other connections may see of a client (`CLIENT LIST`, `CLIENT INFO`).
#[derive(Debug)]
pub struct ClientState {
    /// `CLIENT ID`.
    pub id: u64,
    /// Peer address.
    pub addr: String,
    /// Local address.
    pub laddr: String,
    /// Connection time (ms since epoch).
    pub created_ms: u64,
    /// `CLIENT SETNAME`.
    pub name: Mutex<Option<Bytes>>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Mutex<Option<String>>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Mutex<Option<String>>,
    /// Selected database.
    pub db: AtomicU32,
    /// Protocol version (2 or 3).
    pub resp: AtomicU8,
    /// Last command time (ms since epoch).
    pub last_active_ms: AtomicU64,
    /// Last command's full name.
    pub last_cmd: Mutex<String>,
    /// Channel subscriptions (`sub=`).
    pub channels: AtomicU32,
    /// Pattern subscriptions (`psub=`).
    pub patterns: AtomicU32,
    /// Commands queued in an open transaction, -1 outside one (`multi=`).
    pub queued: AtomicI64,
    /// Keys watched (`watch=`).
    pub watched: AtomicU32,
    /// Waiting in a blocking command (flag `b`).
    pub blocked: AtomicBool,
    /// The ACL user it runs as (`user=`).
    pub user: Mutex<String>,
}

impl ClientState {
    /// A fresh client record.
    pub fn new(id: u64, addr: String, laddr: String) -> ClientState {
        let now = clock::now_ms();
        ClientState {
            id,
            addr,
            laddr,
            created_ms: now,
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            db: AtomicU32::new(0),
            resp: AtomicU8::new(2),
            last_active_ms: AtomicU64::new(now),
            last_cmd: Mutex::new("NULL".into()),
            channels: AtomicU32::new(0),
            patterns: AtomicU32::new(0),
            queued: AtomicI64::new(-1),
            watched: AtomicU32::new(0),
            blocked: AtomicBool::new(false),
            user: Mutex::new(crate::acl::DEFAULT_USER.to_string()),
        }
    }

    /// The `CLIENT LIST` line for this client (no trailing newline).
    pub fn describe(&self, now_ms: u64) -> String {
        let name = self
            .name
            .lock()
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned());
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} watch={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            name.unwrap_or_default(),
            now_ms.saturating_sub(self.created_ms) / 1000,
            now_ms.saturating_sub(self.last_active_ms.load(Ordering::Relaxed)) / 1000,
            self.flags(),
            self.db.load(Ordering::Relaxed),
            self.channels.load(Ordering::Relaxed),
            self.patterns.load(Ordering::Relaxed),
            self.queued.load(Ordering::Relaxed),
            self.watched.load(Ordering::Relaxed),
            self.last_cmd.lock(),
            self.user.lock(),
            self.resp.load(Ordering::Relaxed),
            self.lib_name.lock().clone().unwrap_or_default(),
            self.lib_ver.lock().clone().unwrap_or_default(),
        )
    }
}

impl ClientState {
    /// Whether the client holds any subscription (`CLIENT LIST TYPE pubsub`).
    pub fn is_subscriber(&self) -> bool {
        self.channels.load(Ordering::Relaxed) + self.patterns.load(Ordering::Relaxed) > 0
    }

    /// `CLIENT LIST`'s flags: `b` blocked, `P` subscriber, `x` in MULTI, `N` none.
    fn flags(&self) -> String {
        let mut flags = String::new();
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        if self.is_subscriber() {
            flags.push('P');
        }
        if self.queued.load(Ordering::Relaxed) >= 0 {
            flags.push('x');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        flags
    }
}

/// One connection's session.
pub struct Session {
    /// The node serving it.
    pub node: Arc<Node>,
    /// Its shared record.
    pub client: Arc<ClientState>,
    /// Selected database.
    pub db: u32,
    /// Whether replies use RESP3.
    pub resp3: bool,
    /// Close the connection once the current replies are written (QUIT).
    pub close_after_reply: bool,
    /// Send nothing for the current command (SHUTDOWN closes the connection unanswered).
    pub skip_reply: bool,
    /// The open transaction, between `MULTI` and `EXEC`/`DISCARD`.
    pub multi: Option<Multi>,
    /// Keys watched for the next `EXEC`.
    pub watches: Vec<Watch>,
    /// Channels subscribed to.
    pub channels: BTreeSet<Bytes>,
    /// Patterns subscribed to.
    pub patterns: BTreeSet<Bytes>,
    /// Where this connection's pub/sub messages arrive.
    pub mailbox: Mailbox,
    /// The session numbering of its write batches.
    pub writer: Writer,
    /// `CLIENT NO-TOUCH ON`: reads leave keys' access stamps alone.
    pub no_touch: bool,
    /// Its user and whether it authenticated.
    pub acl: super::security::AclSession,
    /// The commands the node runs, once this connection sent `MONITOR`.
    pub monitor: Option<tokio::sync::mpsc::Receiver<Bytes>>,
    /// Whether `protected-mode` lets it in whatever the users are: a loopback client or a
    /// verified TLS certificate (set by the listener), or a connection that passed the gate.
    pub trusted_origin: bool,
}

/// A transaction being queued.
#[derive(Debug, Default)]
pub struct Multi {
    /// Commands queued, each with its name first.
    pub queued: Vec<Args>,
    /// A command was refused while queuing: `EXEC` must abort (`EXECABORT`).
    pub failed: bool,
}

impl Session {
    /// A session for a newly accepted connection.
    pub fn new(node: Arc<Node>, client: Arc<ClientState>) -> Session {
        let writer = node.writer(client.id);
        Session {
            node,
            client,
            db: 0,
            resp3: false,
            close_after_reply: false,
            skip_reply: false,
            multi: None,
            watches: Vec::new(),
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            mailbox: Mailbox::new(),
            writer,
            no_touch: false,
            acl: super::security::AclSession::default(),
            monitor: None,
            trusted_origin: false,
        }
    }

    /// Publishes what `CLIENT LIST` shows of subscriptions and transactions.
    pub fn publish_state(&self) {
        let client = &self.client;
        client
            .channels
            .store(self.channels.len() as u32, Ordering::Relaxed);
        client
            .patterns
            .store(self.patterns.len() as u32, Ordering::Relaxed);
        let queued = self.multi.as_ref().map_or(-1, |m| m.queued.len() as i64);
        client.queued.store(queued, Ordering::Relaxed);
        client
            .watched
            .store(self.watches.len() as u32, Ordering::Relaxed);
    }

    /// Channel and pattern subscriptions together (what subscribe replies count).
    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Whether a RESP2 connection is in subscriber mode, where only a few commands run.
    pub fn in_subscriber_mode(&self) -> bool {
        !self.resp3 && self.subscriptions() > 0
    }

    /// Drops every subscription (disconnect, `RESET`).
    pub fn unsubscribe_all(&mut self) {
        let id = self.client.id;
        for channel in std::mem::take(&mut self.channels) {
            self.node.pubsub.unsubscribe(id, &channel);
        }
        for pattern in std::mem::take(&mut self.patterns) {
            self.node.pubsub.punsubscribe(id, &pattern);
        }
    }

    /// Selects a database, keeping the shared record current.
    pub fn select(&mut self, db: u32) {
        self.db = db;
        self.client.db.store(db, Ordering::Relaxed);
    }

    /// Switches the protocol version.
    pub fn set_resp3(&mut self, resp3: bool) {
        self.resp3 = resp3;
        self.client
            .resp
            .store(if resp3 { 3 } else { 2 }, Ordering::Relaxed);
    }
}
