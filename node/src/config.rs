//! Configuration: command-line flags, `CELLKV_*` environment variables and a TOML file
//! (`--config`), merged in that order of precedence into one validated [`Config`]. Option
//! names follow Redis where Redis has one (`port`, `bind`, `dir`, `proto-max-bulk-len`,
//! `maxclients`, `maxmemory`, `maxmemory-policy`, `tls-port`, `tls-cert-file`,
//! `protected-mode`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::keyspace::memory::{parse_memory, MemorySettings, Policy, PrefixRule};
use crate::server::pubsub::OutputLimits;

/// Errors in the configuration; each names the option at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML file is malformed or has unknown keys.
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid {option}: {reason}")]
    Invalid {
        /// The option's name.
        option: &'static str,
        /// Why.
        reason: String,
    },
}

/// Command-line flags; each also reads `CELLKV_<NAME>` from the environment.
#[derive(Debug, Default, Parser)]
#[command(
    name = "cellkv",
    version,
    about = "Redis-compatible key-value server replicated with Raft"
)]
pub struct Flags {
    /// TOML configuration file.
    #[arg(long, env = "CELLKV_CONFIG")]
    pub config: Option<PathBuf>,
    /// RESP port [default: 6379].
    #[arg(long, env = "CELLKV_PORT")]
    pub port: Option<u16>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "CELLKV_BIND")]
    pub bind: Option<String>,
    /// Data directory (Raft log, snapshots) [default: ./data].
    #[arg(long, env = "CELLKV_DIR")]
    pub dir: Option<PathBuf>,
    /// This node's Raft id [default: 1].
    #[arg(long, env = "CELLKV_NODE_ID")]
    pub node_id: Option<u64>,
    /// Port for node-to-node traffic [default: this node's port in --peers, else port + 10000].
    #[arg(long, env = "CELLKV_RAFT_PORT")]
    pub raft_port: Option<u16>,
    /// The cell's members as ID@HOST:RAFTPORT,...; the same list on every member. Without it
    /// the node is a one-member cell.
    #[arg(long, env = "CELLKV_PEERS")]
    pub peers: Option<String>,
    /// Name of the cell; nodes refuse Raft traffic from another cell [default: cellkv].
    #[arg(long, env = "CELLKV_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// How long a command waits for the cell to have a leader before it fails with
    /// CLUSTERDOWN, e.g. `5s`, `500ms` [default: 5s].
    #[arg(long, env = "CELLKV_CLUSTER_WAIT_TIMEOUT")]
    pub cluster_wait_timeout: Option<String>,
    /// How reads are served: linearizable (the leader confirms its leadership with a
    /// quorum), lease (the leader trusts its lease, no round), or local (this node's state,
    /// possibly stale) [default: linearizable].
    #[arg(long, env = "CELLKV_READ_CONSISTENCY")]
    pub read_consistency: Option<String>,
    /// Take a snapshot after this many applied entries [default: 100000].
    #[arg(long, env = "CELLKV_SNAPSHOT_ENTRIES")]
    pub snapshot_entries: Option<u64>,
    /// Take a snapshot at least this often if anything changed, e.g. `300s`, `5m` [default: 5m].
    #[arg(long, env = "CELLKV_SNAPSHOT_INTERVAL")]
    pub snapshot_interval: Option<String>,
    /// Log level: error, warn, info, debug, trace, or a tracing filter [default: info,openraft=error].
    #[arg(long, env = "CELLKV_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Largest bulk string a client may send, in bytes [default: 536870912].
    #[arg(long, env = "CELLKV_PROTO_MAX_BULK_LEN")]
    pub proto_max_bulk_len: Option<usize>,
    /// Most simultaneous client connections [default: 10000].
    #[arg(long, env = "CELLKV_MAXCLIENTS")]
    pub maxclients: Option<usize>,
    /// Worker threads serving connections and Raft; 0 = one for a node without peers, one
    /// per core in a cell [default: 0].
    #[arg(long, env = "CELLKV_IO_THREADS")]
    pub io_threads: Option<usize>,
    /// Memory limit of the data set, in bytes or Redis units (`64mb`, `2gb`); 0 = none
    /// [default: 0]. Applies to the whole cell (the leader's setting is replicated).
    #[arg(long, env = "CELLKV_MAXMEMORY")]
    pub maxmemory: Option<String>,
    /// What may be evicted at the limit for keys no `--eviction` rule matches: noeviction,
    /// allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu,
    /// volatile-random, volatile-ttl [default: noeviction].
    #[arg(long, env = "CELLKV_MAXMEMORY_POLICY")]
    pub maxmemory_policy: Option<String>,
    /// Keys sampled per eviction round [default: 5].
    #[arg(long, env = "CELLKV_MAXMEMORY_SAMPLES")]
    pub maxmemory_samples: Option<u32>,
    /// How slowly the LFU counter grows [default: 10].
    #[arg(long, env = "CELLKV_LFU_LOG_FACTOR")]
    pub lfu_log_factor: Option<u32>,
    /// Minutes of idleness that take one step off the LFU counter [default: 1].
    #[arg(long, env = "CELLKV_LFU_DECAY_TIME")]
    pub lfu_decay_time: Option<u32>,
    /// An eviction policy for the keys under a prefix, as PREFIX=POLICY (repeatable; in the
    /// environment, comma-separated), e.g. `cache:=allkeys-lru`, `celery=noeviction`. The
    /// longest matching prefix governs a key.
    #[arg(long = "eviction", env = "CELLKV_EVICTION", value_delimiter = ',')]
    pub eviction: Vec<String>,
    /// Password of the default user; clients must AUTH before anything else [default: none].
    #[arg(long, env = "CELLKV_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// File of ACL users (`user <name> <rules...>` per line), loaded into the cell at start
    /// [default: none].
    #[arg(long, env = "CELLKV_ACLFILE")]
    pub aclfile: Option<PathBuf>,
    /// Commands slower than this many microseconds go to SLOWLOG; negative = off
    /// [default: 10000].
    #[arg(
        long,
        env = "CELLKV_SLOWLOG_LOG_SLOWER_THAN",
        allow_hyphen_values = true
    )]
    pub slowlog_log_slower_than: Option<i64>,
    /// Most SLOWLOG entries kept [default: 128].
    #[arg(long, env = "CELLKV_SLOWLOG_MAX_LEN")]
    pub slowlog_max_len: Option<usize>,
    /// Key prefixes whose values are secrets, never shown in MONITOR or SLOWLOG,
    /// comma-separated [default: bff:session:,m2m:tokens:].
    #[arg(long, env = "CELLKV_SECRET_PREFIXES")]
    pub secret_prefixes: Option<String>,
    /// Close a client idle for this many seconds; 0 = never [default: 0].
    #[arg(long, env = "CELLKV_TIMEOUT")]
    pub timeout: Option<u64>,
    /// Close a client whose unparsed input grows past this many bytes [default: 1073741824].
    #[arg(long, env = "CELLKV_CLIENT_QUERY_BUFFER_LIMIT")]
    pub client_query_buffer_limit: Option<usize>,
    /// Output limits per client class, as redis.conf and CONFIG SET write them:
    /// `<class> <hard> <soft> <soft-seconds>` groups, classes normal, pubsub (replica is
    /// accepted and ignored) [default: normal 0 0 0 pubsub 32mb 8mb 60].
    #[arg(long, env = "CELLKV_CLIENT_OUTPUT_BUFFER_LIMIT")]
    pub client_output_buffer_limit: Option<String>,
    /// RESP port served over TLS; 0 = any free port. With it, `--port 0` turns the plain
    /// port off (TLS only) [default: none].
    #[arg(long, env = "CELLKV_TLS_PORT")]
    pub tls_port: Option<u16>,
    /// This node's certificate chain (PEM), for the TLS port and node-to-node TLS.
    #[arg(long, env = "CELLKV_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `--tls-cert-file` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CELLKV_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that client and node certificates must be signed by.
    #[arg(long, env = "CELLKV_TLS_CA_CERT_FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Whether TLS clients must present a certificate signed by the CA: yes, no or optional
    /// [default: yes].
    #[arg(long, env = "CELLKV_TLS_AUTH_CLIENTS")]
    pub tls_auth_clients: Option<String>,
    /// Node-to-node gRPC over mutual TLS (yes|no): every node presents `--tls-cert-file` and
    /// requires a certificate signed by `--tls-ca-cert-file` from its peers [default: no].
    #[arg(long, env = "CELLKV_TLS_REPLICATION")]
    pub tls_replication: Option<String>,
    /// Refuse to start listening on a non-loopback address with no password for the
    /// default user and no TLS (yes|no) [default: yes].
    #[arg(long, env = "CELLKV_PROTECTED_MODE")]
    pub protected_mode: Option<String>,
}

/// The TOML file: the same options, kebab-case.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    port: Option<u16>,
    bind: Option<String>,
    dir: Option<PathBuf>,
    node_id: Option<u64>,
    raft_port: Option<u16>,
    peers: Option<TextOrList>,
    cluster_name: Option<String>,
    cluster_wait_timeout: Option<String>,
    read_consistency: Option<String>,
    snapshot_entries: Option<u64>,
    snapshot_interval: Option<String>,
    #[serde(alias = "loglevel")]
    log_level: Option<String>,
    proto_max_bulk_len: Option<usize>,
    maxclients: Option<usize>,
    io_threads: Option<usize>,
    requirepass: Option<String>,
    aclfile: Option<PathBuf>,
    slowlog_log_slower_than: Option<i64>,
    slowlog_max_len: Option<usize>,
    secret_prefixes: Option<Vec<String>>,
    timeout: Option<u64>,
    client_query_buffer_limit: Option<usize>,
    client_output_buffer_limit: Option<TextOrList>,
    maxmemory: Option<MemoryValue>,
    maxmemory_policy: Option<String>,
    maxmemory_samples: Option<u32>,
    lfu_log_factor: Option<u32>,
    lfu_decay_time: Option<u32>,
    #[serde(default)]
    eviction: Vec<EvictionRule>,
    tls_port: Option<u16>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_ca_cert_file: Option<PathBuf>,
    tls_auth_clients: Option<YesNoValue>,
    tls_replication: Option<YesNoValue>,
    protected_mode: Option<YesNoValue>,
}

/// A Redis yes/no option in the TOML file: a boolean or the text `yes`/`no` (as in
/// redis.conf), so either spelling works.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum YesNoValue {
    Bool(bool),
    Text(String),
}

impl YesNoValue {
    fn into_text(self) -> String {
        match self {
            YesNoValue::Bool(true) => "yes".into(),
            YesNoValue::Bool(false) => "no".into(),
            YesNoValue::Text(text) => text,
        }
    }
}

/// Parses a Redis yes/no value (any case) for `option`.
fn parse_yes_no(option: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(ConfigError::Invalid {
            option,
            reason: format!("'{text}' is not yes or no"),
        }),
    }
}

/// `tls-auth-clients`: whether a TLS client must show a certificate signed by the CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsAuthClients {
    /// A client without a valid certificate fails the handshake (Redis's default).
    Yes,
    /// No certificate is asked for.
    No,
    /// A certificate is asked for and checked if given; a client may also come without.
    Optional,
}

impl TlsAuthClients {
    /// Parses the option's value (any case).
    pub fn parse(text: &str) -> Option<TlsAuthClients> {
        match text.trim().to_ascii_lowercase().as_str() {
            "yes" => Some(TlsAuthClients::Yes),
            "no" => Some(TlsAuthClients::No),
            "optional" => Some(TlsAuthClients::Optional),
            _ => None,
        }
    }

    /// The option's value as `CONFIG GET` shows it.
    pub fn name(self) -> &'static str {
        match self {
            TlsAuthClients::Yes => "yes",
            TlsAuthClients::No => "no",
            TlsAuthClients::Optional => "optional",
        }
    }
}

/// The TLS settings: files are read when the node starts (see `crate::tls`).
#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    /// `tls-port`: the RESP port served over TLS (0 = any free port); `None` = no TLS port.
    pub port: Option<u16>,
    /// `tls-cert-file`.
    pub cert_file: Option<PathBuf>,
    /// `tls-key-file`.
    pub key_file: Option<PathBuf>,
    /// `tls-ca-cert-file`.
    pub ca_cert_file: Option<PathBuf>,
    /// `tls-auth-clients`.
    pub auth_clients: TlsAuthClients,
    /// `tls-replication`: mutual TLS between the nodes of the cell.
    pub replication: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            port: None,
            cert_file: None,
            key_file: None,
            ca_cert_file: None,
            auth_clients: TlsAuthClients::Yes,
            replication: false,
        }
    }
}

/// `maxmemory` in the TOML file: a number of bytes or a string with Redis units.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MemoryValue {
    Bytes(u64),
    Text(String),
}

/// One `[[eviction]]` table of the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvictionRule {
    prefix: String,
    policy: String,
}

/// An option the TOML file takes as one string, as on the command line, or as a list of its
/// parts: `peers` (`ID@HOST:PORT` entries) and `client-output-buffer-limit` (one class per
/// entry, as redis.conf repeats the line).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TextOrList {
    One(String),
    Many(Vec<String>),
}

impl TextOrList {
    /// The command line's spelling: the list's parts joined by `separator`.
    fn into_text(self, separator: &str) -> String {
        match self {
            TextOrList::One(text) => text,
            TextOrList::Many(list) => list.join(separator),
        }
    }
}

/// One member of the cell, as `--peers` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its Raft node id.
    pub id: u64,
    /// Its Raft address, `HOST:PORT`, as other members reach it.
    pub addr: String,
    /// The port part of `addr`.
    pub port: u16,
}

/// Parses `1@10.0.0.1:16379,2@node-2:16379,...` (spaces around entries allowed).
pub fn parse_peers(text: &str) -> Result<Vec<Peer>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        option: "peers",
        reason,
    };
    let mut peers = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| invalid(format!("'{entry}' is not ID@HOST:PORT")))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| invalid(format!("'{entry}': node id '{id}' is not a number")))?;
        if id == 0 {
            return Err(invalid(format!("'{entry}': node ids start at 1")));
        }
        let addr = addr.trim();
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| invalid(format!("'{entry}': address has no :PORT")))?;
        if host.is_empty() {
            return Err(invalid(format!("'{entry}': address has no host")));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid(format!("'{entry}': '{port}' is not a port")))?;
        peers.push(Peer {
            id,
            addr: addr.to_string(),
            port,
        });
    }
    if peers.is_empty() {
        return Err(invalid("no members listed".into()));
    }
    let mut ids = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    for peer in &peers {
        if !ids.insert(peer.id) {
            return Err(invalid(format!("node id {} is listed twice", peer.id)));
        }
        if !addrs.insert(peer.addr.as_str()) {
            return Err(invalid(format!("address {} is listed twice", peer.addr)));
        }
    }
    Ok(peers)
}

/// The validated configuration a node runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// RESP port (0 = any free port).
    pub port: u16,
    /// Listen address.
    pub bind: String,
    /// Data directory.
    pub dir: PathBuf,
    /// Raft node id.
    pub node_id: u64,
    /// Node-to-node port.
    pub raft_port: u16,
    /// The cell's members (empty: a one-member cell of this node alone).
    pub peers: Vec<Peer>,
    /// The cell's name, checked on every node-to-node RPC.
    pub cluster_name: String,
    /// Longest wait for a leader before a command fails with CLUSTERDOWN.
    pub cluster_wait_timeout: Duration,
    /// How reads are confirmed before they are served.
    pub read_consistency: ReadConsistency,
    /// Applied entries between snapshots.
    pub snapshot_entries: u64,
    /// Longest time between snapshots while anything changes.
    pub snapshot_interval: Duration,
    /// Log filter.
    pub log_level: String,
    /// `proto-max-bulk-len`.
    pub proto_max_bulk_len: usize,
    /// `maxclients`.
    pub maxclients: usize,
    /// `io-threads`: Tokio worker threads as configured, 0 = chosen by
    /// [`Config::worker_threads`].
    pub io_threads: usize,
    /// `maxmemory`, `maxmemory-policy`, `maxmemory-samples`, the LFU tuning and the
    /// per-prefix eviction rules, as this node proposes them to its cell.
    pub memory: MemorySettings,
    /// `requirepass`: the default user's password at start.
    pub requirepass: Option<Secret>,
    /// `aclfile`: ACL users loaded into the cell at start.
    pub aclfile: Option<PathBuf>,
    /// `slowlog-log-slower-than`, microseconds; negative = off.
    pub slowlog_log_slower_than: i64,
    /// `slowlog-max-len`.
    pub slowlog_max_len: usize,
    /// `secret-prefixes`: values under these key prefixes are never shown.
    pub secret_prefixes: Vec<String>,
    /// `timeout`: seconds a client may stay idle; 0 = forever.
    pub timeout: u64,
    /// `client-query-buffer-limit`: most unparsed input bytes per client.
    pub client_query_buffer_limit: usize,
    /// `client-output-buffer-limit`: the initial limits (CONFIG SET changes them at run time).
    pub client_output_buffer_limit: OutputLimits,
    /// `tls-*`: the TLS port and node-to-node TLS.
    pub tls: TlsConfig,
    /// `protected-mode`.
    pub protected_mode: bool,
}

impl Config {
    /// Whether clients are served on a plain (non-TLS) RESP port: always, unless `port` is 0
    /// while a TLS port is set (TLS only, as in Redis).
    pub fn plain_port_enabled(&self) -> bool {
        self.port != 0 || self.tls.port.is_none()
    }

    /// The runtime's worker threads. Unset (`io-threads 0`), a node without peers gets one:
    /// its write is a serial cycle (intake, the log's fsync on Raft's core, apply, replies),
    /// as in Redis's event loop, and a second worker only adds wake-ups between threads
    /// (single node, SET at pipeline 1: 1.15x with one; docs/benchmarks.md, seventh look).
    /// A cell's nodes also serve replication and forwarded requests beside their clients,
    /// and get one worker per core.
    pub fn worker_threads(&self) -> usize {
        match self.io_threads {
            0 if self.peers.is_empty() => 1,
            0 => std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            configured => configured,
        }
    }
}

/// A configured secret: compared and hashed, never printed (its `Debug` is `(redacted)`),
/// so logging a whole [`Config`] cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(redacted)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: "127.0.0.1".into(),
            dir: PathBuf::from("./data"),
            node_id: 1,
            raft_port: 16379,
            peers: Vec::new(),
            cluster_name: "cellkv".into(),
            cluster_wait_timeout: Duration::from_secs(5),
            read_consistency: ReadConsistency::Linearizable,
            snapshot_entries: 100_000,
            snapshot_interval: Duration::from_secs(300),
            // openraft narrates every election and re-applied batch at info; keep its warnings.
            // openraft warns several times a second per unreachable peer while one is down.
            log_level: "info,openraft=error".into(),
            proto_max_bulk_len: 512 * 1024 * 1024,
            maxclients: 10_000,
            io_threads: 0,
            memory: MemorySettings::default(),
            requirepass: None,
            aclfile: None,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            secret_prefixes: vec!["bff:session:".into(), "m2m:tokens:".into()],
            timeout: 0,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            client_output_buffer_limit: OutputLimits::default(),
            tls: TlsConfig::default(),
            protected_mode: true,
        }
    }
}

/// How a node makes sure a read sees every write acknowledged before it (`read-consistency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Read index: the leader confirms with a quorum that it still leads, and the serving
    /// node has applied up to the leader's commit index. Never stale.
    Linearizable,
    /// The leader trusts its lease instead of a quorum round (falling back to the round
    /// when the lease has run out); stale only if clocks drift past the lease.
    Lease,
    /// Whatever this node has applied: fastest, and a follower may be behind.
    Local,
}

impl ReadConsistency {
    /// Parses the option's value (any case).
    pub fn parse(text: &str) -> Option<ReadConsistency> {
        match text.trim().to_ascii_lowercase().as_str() {
            "linearizable" => Some(ReadConsistency::Linearizable),
            "lease" => Some(ReadConsistency::Lease),
            "local" => Some(ReadConsistency::Local),
            _ => None,
        }
    }

    /// The option's value as `CONFIG GET` shows it.
    pub fn name(self) -> &'static str {
        match self {
            ReadConsistency::Linearizable => "linearizable",
            ReadConsistency::Lease => "lease",
            ReadConsistency::Local => "local",
        }
    }
}

/// The memory options of `flags` over `file` over the defaults.
fn memory_settings(flags: &Flags, file: &FileConfig) -> Result<MemorySettings, ConfigError> {
    let defaults = MemorySettings::default();
    let maxmemory = match (&flags.maxmemory, &file.maxmemory) {
        (Some(text), _) | (None, Some(MemoryValue::Text(text))) => {
            parse_memory(text).ok_or_else(|| ConfigError::Invalid {
                option: "maxmemory",
                reason: format!("'{text}' is not a memory amount like 1048576, 64mb or 2gb"),
            })?
        }
        (None, Some(MemoryValue::Bytes(n))) => *n,
        (None, None) => defaults.maxmemory,
    };
    let policy_named = |option: &'static str, text: &str| {
        Policy::parse(text.trim()).ok_or_else(|| ConfigError::Invalid {
            option,
            reason: format!(
                "'{text}' is not one of {}",
                Policy::ALL.map(|(_, n)| n).join(", ")
            ),
        })
    };
    let policy = match flags
        .maxmemory_policy
        .as_deref()
        .or(file.maxmemory_policy.as_deref())
    {
        Some(text) => policy_named("maxmemory-policy", text)?,
        None => defaults.policy,
    };
    let rules = if flags.eviction.is_empty() {
        file.eviction
            .iter()
            .map(|rule| {
                Ok(PrefixRule {
                    prefix: bytes::Bytes::copy_from_slice(rule.prefix.as_bytes()),
                    policy: policy_named("eviction", &rule.policy)?,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?
    } else {
        flags
            .eviction
            .iter()
            .map(|text| {
                PrefixRule::parse(text).map_err(|reason| ConfigError::Invalid {
                    option: "eviction",
                    reason,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?
    };
    let mut prefixes = BTreeSet::new();
    for rule in &rules {
        if !prefixes.insert(rule.prefix.clone()) {
            return Err(ConfigError::Invalid {
                option: "eviction",
                reason: format!(
                    "prefix '{}' has two rules",
                    String::from_utf8_lossy(&rule.prefix)
                ),
            });
        }
    }
    let samples = flags
        .maxmemory_samples
        .or(file.maxmemory_samples)
        .unwrap_or(defaults.samples);
    if !(1..=64).contains(&samples) {
        return Err(ConfigError::Invalid {
            option: "maxmemory-samples",
            reason: format!("{samples} is outside 1..64"),
        });
    }
    Ok(MemorySettings {
        maxmemory,
        policy,
        samples,
        lfu_log_factor: flags
            .lfu_log_factor
            .or(file.lfu_log_factor)
            .unwrap_or(defaults.lfu_log_factor),
        lfu_decay_time: flags
            .lfu_decay_time
            .or(file.lfu_decay_time)
            .unwrap_or(defaults.lfu_decay_time),
        rules,
        origin: 0,
    })
}

/// Splits a comma-separated `secret-prefixes` value, dropping empty entries.
pub fn split_prefixes(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses `300`, `300s`, `5m`, `1h`, `250ms` into a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

impl Config {
    /// Merges flags (with their environment variables) over the file named by `--config`
    /// over the defaults, then validates.
    pub fn load(flags: Flags) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source: Box::new(source),
                })?
            }
        };
        Config::merge(flags, file)
    }

    /// Parses a TOML document into a file config (for tests and tools).
    pub fn parse_file(text: &str) -> Result<FileConfig, Box<toml::de::Error>> {
        toml::from_str(text).map_err(Box::new)
    }

    /// Merges `flags` over `file` over the defaults and validates.
    pub fn merge(flags: Flags, file: FileConfig) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let memory = memory_settings(&flags, &file)?;
        let port = flags.port.or(file.port).unwrap_or(defaults.port);
        let interval_text = flags.snapshot_interval.or(file.snapshot_interval);
        let snapshot_interval = match interval_text {
            None => defaults.snapshot_interval,
            Some(text) => parse_duration(&text).ok_or_else(|| ConfigError::Invalid {
                option: "snapshot-interval",
                reason: format!("'{text}' is not a duration like 300s, 5m or 1h"),
            })?,
        };
        let cluster_wait_timeout = match flags.cluster_wait_timeout.or(file.cluster_wait_timeout) {
            None => defaults.cluster_wait_timeout,
            Some(text) => parse_duration(&text).ok_or_else(|| ConfigError::Invalid {
                option: "cluster-wait-timeout",
                reason: format!("'{text}' is not a duration like 5s or 500ms"),
            })?,
        };
        let read_consistency = match flags.read_consistency.or(file.read_consistency) {
            None => defaults.read_consistency,
            Some(text) => ReadConsistency::parse(&text).ok_or_else(|| ConfigError::Invalid {
                option: "read-consistency",
                reason: format!("'{text}' is not one of linearizable, lease, local"),
            })?,
        };
        let node_id = flags.node_id.or(file.node_id).unwrap_or(defaults.node_id);
        let peers = match flags.peers.or(file.peers.map(|peers| peers.into_text(","))) {
            None => Vec::new(),
            Some(text) => parse_peers(&text)?,
        };
        let own_peer_port = peers.iter().find(|p| p.id == node_id).map(|p| p.port);
        let raft_port = match flags.raft_port.or(file.raft_port).or(own_peer_port) {
            Some(p) => p,
            None if port == 0 => 0,
            None => port
                .checked_add(10_000)
                .ok_or_else(|| ConfigError::Invalid {
                    option: "raft-port",
                    reason: format!("port {port} + 10000 does not fit; set raft-port"),
                })?,
        };
        let tls = TlsConfig {
            port: flags.tls_port.or(file.tls_port),
            cert_file: flags.tls_cert_file.or(file.tls_cert_file),
            key_file: flags.tls_key_file.or(file.tls_key_file),
            ca_cert_file: flags.tls_ca_cert_file.or(file.tls_ca_cert_file),
            auth_clients: match flags
                .tls_auth_clients
                .or(file.tls_auth_clients.map(YesNoValue::into_text))
            {
                None => defaults.tls.auth_clients,
                Some(text) => TlsAuthClients::parse(&text).ok_or_else(|| ConfigError::Invalid {
                    option: "tls-auth-clients",
                    reason: format!("'{text}' is not one of yes, no, optional"),
                })?,
            },
            replication: match flags
                .tls_replication
                .or(file.tls_replication.map(YesNoValue::into_text))
            {
                None => defaults.tls.replication,
                Some(text) => parse_yes_no("tls-replication", &text)?,
            },
        };
        let protected_mode = match flags
            .protected_mode
            .or(file.protected_mode.map(YesNoValue::into_text))
        {
            None => defaults.protected_mode,
            Some(text) => parse_yes_no("protected-mode", &text)?,
        };
        let client_output_buffer_limit = match flags.client_output_buffer_limit.or(file
            .client_output_buffer_limit
            .map(|limits| limits.into_text(" ")))
        {
            None => defaults.client_output_buffer_limit,
            Some(text) => {
                OutputLimits::parse_config(text.as_bytes(), defaults.client_output_buffer_limit)
                    .ok_or_else(|| ConfigError::Invalid {
                        option: "client-output-buffer-limit",
                        reason: format!(
                            "'{text}' is not groups of <class> <hard> <soft> <soft-seconds> with \
                         class normal, pubsub or replica"
                        ),
                    })?
            }
        };
        let config = Config {
            port,
            bind: flags.bind.or(file.bind).unwrap_or(defaults.bind),
            dir: flags.dir.or(file.dir).unwrap_or(defaults.dir),
            node_id,
            raft_port,
            peers,
            cluster_name: flags
                .cluster_name
                .or(file.cluster_name)
                .unwrap_or(defaults.cluster_name),
            cluster_wait_timeout,
            read_consistency,
            snapshot_entries: flags
                .snapshot_entries
                .or(file.snapshot_entries)
                .unwrap_or(defaults.snapshot_entries),
            snapshot_interval,
            log_level: flags
                .log_level
                .or(file.log_level)
                .unwrap_or(defaults.log_level),
            proto_max_bulk_len: flags
                .proto_max_bulk_len
                .or(file.proto_max_bulk_len)
                .unwrap_or(defaults.proto_max_bulk_len),
            maxclients: flags
                .maxclients
                .or(file.maxclients)
                .unwrap_or(defaults.maxclients),
            io_threads: flags
                .io_threads
                .or(file.io_threads)
                .unwrap_or(defaults.io_threads),
            memory,
            requirepass: flags
                .requirepass
                .or(file.requirepass)
                .filter(|p| !p.is_empty())
                .map(Secret::new),
            aclfile: flags.aclfile.or(file.aclfile),
            slowlog_log_slower_than: flags
                .slowlog_log_slower_than
                .or(file.slowlog_log_slower_than)
                .unwrap_or(defaults.slowlog_log_slower_than),
            slowlog_max_len: flags
                .slowlog_max_len
                .or(file.slowlog_max_len)
                .unwrap_or(defaults.slowlog_max_len),
            secret_prefixes: match flags.secret_prefixes {
                Some(text) => split_prefixes(&text),
                None => file.secret_prefixes.unwrap_or(defaults.secret_prefixes),
            },
            timeout: flags.timeout.or(file.timeout).unwrap_or(defaults.timeout),
            client_query_buffer_limit: flags
                .client_query_buffer_limit
                .or(file.client_query_buffer_limit)
                .unwrap_or(defaults.client_query_buffer_limit),
            client_output_buffer_limit,
            tls,
            protected_mode,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency between options.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |option, reason: &str| {
            Err(ConfigError::Invalid {
                option,
                reason: reason.into(),
            })
        };
        if self.node_id == 0 {
            return invalid("node-id", "must be at least 1");
        }
        if self.port != 0 && self.port == self.raft_port {
            return invalid("raft-port", "must differ from port");
        }
        if self.cluster_name.is_empty() || !self.cluster_name.bytes().all(|b| b.is_ascii_graphic())
        {
            return invalid(
                "cluster-name",
                "must be a non-empty word without spaces or control characters",
            );
        }
        if self.cluster_wait_timeout.is_zero() {
            return invalid("cluster-wait-timeout", "must be positive");
        }
        if !self.peers.is_empty() {
            let Some(me) = self.peers.iter().find(|p| p.id == self.node_id) else {
                return Err(ConfigError::Invalid {
                    option: "peers",
                    reason: format!(
                        "this node's id {} is not among the listed members ({})",
                        self.node_id,
                        self.peers
                            .iter()
                            .map(|p| p.id.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            };
            if me.port != self.raft_port {
                return Err(ConfigError::Invalid {
                    option: "raft-port",
                    reason: format!(
                        "{} differs from this node's entry {}@{} in peers",
                        self.raft_port, me.id, me.addr
                    ),
                });
            }
        }
        if self.snapshot_entries == 0 {
            return invalid("snapshot-entries", "must be at least 1");
        }
        if self.snapshot_interval.is_zero() {
            return invalid("snapshot-interval", "must be positive");
        }
        if self.proto_max_bulk_len < 1024 {
            return invalid("proto-max-bulk-len", "must be at least 1024");
        }
        if self.io_threads > 1024 {
            return invalid("io-threads", "must be at most 1024");
        }
        if self.maxclients == 0 {
            return invalid("maxclients", "must be at least 1");
        }
        self.validate_tls()
    }

    /// The TLS options hang together: files for what is switched on, distinct ports.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let tls = &self.tls;
        let invalid = |option, reason: &str| {
            Err(ConfigError::Invalid {
                option,
                reason: reason.into(),
            })
        };
        if tls.port.is_none() && !tls.replication {
            return Ok(());
        }
        if tls.cert_file.is_none() {
            return invalid(
                "tls-cert-file",
                "is required with tls-port or tls-replication",
            );
        }
        if tls.key_file.is_none() {
            return invalid(
                "tls-key-file",
                "is required with tls-port or tls-replication",
            );
        }
        if tls.ca_cert_file.is_none() {
            if tls.replication {
                return invalid(
                    "tls-ca-cert-file",
                    "is required with tls-replication (peers' certificates are checked against it)",
                );
            }
            if tls.auth_clients != TlsAuthClients::No {
                return invalid(
                    "tls-ca-cert-file",
                    "is required unless tls-auth-clients is no (client certificates are checked against it)",
                );
            }
        }
        if let Some(tls_port) = tls.port.filter(|p| *p != 0) {
            if tls_port == self.port {
                return invalid("tls-port", "must differ from port");
            }
            if tls_port == self.raft_port {
                return invalid("tls-port", "must differ from raft-port");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_redis_and_the_readme() {
        let config = Config::merge(Flags::default(), FileConfig::default()).expect("defaults");
        assert_eq!(config.port, 6379);
        assert_eq!(config.raft_port, 16379);
        assert_eq!(config.dir, PathBuf::from("./data"));
        assert_eq!(config.bind, "127.0.0.1");
    }

    #[test]
    fn read_consistency_takes_three_values() {
        for (text, want) in [
            ("linearizable", ReadConsistency::Linearizable),
            ("Lease", ReadConsistency::Lease),
            ("local", ReadConsistency::Local),
        ] {
            let flags = Flags {
                read_consistency: Some(text.into()),
                ..Flags::default()
            };
            let config = Config::merge(flags, FileConfig::default()).expect("valid");
            assert_eq!(config.read_consistency, want);
            assert_eq!(ReadConsistency::parse(want.name()), Some(want));
        }
        let flags = Flags {
            read_consistency: Some("eventual".into()),
            ..Flags::default()
        };
        let error = Config::merge(flags, FileConfig::default()).expect_err("refused");
        assert!(error.to_string().contains("read-consistency"), "{error}");
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let file = Config::parse_file(include_str!("../../docs/cellkv.example.toml"))
            .expect("docs/cellkv.example.toml parses");
        let config = Config::merge(Flags::default(), file).expect("valid");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn flags_override_file_and_raft_port_follows_port() {
        let file = Config::parse_file("port = 7000\nsnapshot-interval = \"2m\"\nnode-id = 3\n")
            .expect("toml");
        let flags = Flags {
            port: Some(7100),
            ..Flags::default()
        };
        let config = Config::merge(flags, file).expect("valid");
        assert_eq!(config.port, 7100);
        assert_eq!(config.raft_port, 17100);
        assert_eq!(config.node_id, 3);
        assert_eq!(config.snapshot_interval, Duration::from_secs(120));
    }

    #[test]
    fn client_output_buffer_limit_takes_redis_groups_from_file_and_flags() {
        use crate::server::pubsub::OutputLimit;
        let file = Config::parse_file(
            "client-output-buffer-limit = [\"normal 1mb 512kb 10\", \"replica 0 0 0\"]\n",
        )
        .expect("toml");
        let config = Config::merge(Flags::default(), file).expect("valid");
        let limits = config.client_output_buffer_limit;
        assert_eq!(
            limits.normal,
            OutputLimit {
                hard: 1024 * 1024,
                soft: 512 * 1024,
                soft_seconds: 10
            }
        );
        // A class the value does not name keeps Redis's default.
        assert_eq!(limits.pubsub, OutputLimits::default().pubsub);

        let flags = Flags {
            client_output_buffer_limit: Some("pubsub 64kb 0 0".into()),
            ..Flags::default()
        };
        let file =
            Config::parse_file("client-output-buffer-limit = \"pubsub 1mb 0 0\"\n").expect("toml");
        let config = Config::merge(flags, file).expect("valid");
        assert_eq!(config.client_output_buffer_limit.pubsub.hard, 64 * 1024);
        assert_eq!(config.client_output_buffer_limit.normal, OutputLimit::NONE);

        for bad in ["pubsub 1mb 0", "subscribers 1mb 0 0", "normal lots 0 0"] {
            let flags = Flags {
                client_output_buffer_limit: Some(bad.into()),
                ..Flags::default()
            };
            let error = Config::merge(flags, FileConfig::default()).expect_err(bad);
            assert!(
                error.to_string().contains("client-output-buffer-limit"),
                "{error}"
            );
        }
    }

    #[test]
    fn memory_options_take_redis_units_and_prefix_rules() {
        let file = Config::parse_file(
            "maxmemory = \"64mb\"\nmaxmemory-policy = \"volatile-ttl\"\n\
             [[eviction]]\nprefix = \"cache:\"\npolicy = \"allkeys-lru\"\n\
             [[eviction]]\nprefix = \"celery\"\npolicy = \"noeviction\"\n",
        )
        .expect("toml");
        let config = Config::merge(Flags::default(), file).expect("valid");
        assert_eq!(config.memory.maxmemory, 64 * 1024 * 1024);
        assert_eq!(config.memory.policy, Policy::VolatileTtl);
        assert_eq!(config.memory.policy_for(b"cache:x"), Policy::AllKeysLru);
        assert_eq!(config.memory.policy_for(b"celery"), Policy::NoEviction);
        // Flags replace the file's rules as a whole.
        let file = Config::parse_file(
            "maxmemory = 1000\n[[eviction]]\nprefix = \"a\"\npolicy = \"allkeys-lfu\"\n",
        )
        .expect("toml");
        let flags = Flags {
            eviction: vec!["rag:=allkeys-lfu".into()],
            ..Flags::default()
        };
        let config = Config::merge(flags, file).expect("valid");
        assert_eq!(config.memory.maxmemory, 1000);
        assert_eq!(config.memory.rules.len(), 1);
        assert_eq!(config.memory.policy_for(b"a"), Policy::NoEviction);
        for (flags, option) in [
            (
                Flags {
                    maxmemory: Some("12qb".into()),
                    ..Flags::default()
                },
                "maxmemory",
            ),
            (
                Flags {
                    maxmemory_policy: Some("lru".into()),
                    ..Flags::default()
                },
                "maxmemory-policy",
            ),
            (
                Flags {
                    eviction: vec!["a=allkeys-lru".into(), "a=noeviction".into()],
                    ..Flags::default()
                },
                "eviction",
            ),
            (
                Flags {
                    maxmemory_samples: Some(0),
                    ..Flags::default()
                },
                "maxmemory-samples",
            ),
        ] {
            let error = Config::merge(flags, FileConfig::default()).expect_err("refused");
            assert!(error.to_string().contains(option), "{error}");
        }
    }

    #[test]
    fn bad_values_name_the_option() {
        assert!(Config::parse_file("no-such-option = 1").is_err());
        let flags = Flags {
            node_id: Some(0),
            ..Flags::default()
        };
        let err = Config::merge(flags, FileConfig::default()).expect_err("node id 0");
        assert!(err.to_string().contains("node-id"), "{err}");
        let flags = Flags {
            snapshot_interval: Some("soon".into()),
            ..Flags::default()
        };
        let err = Config::merge(flags, FileConfig::default()).expect_err("bad duration");
        assert!(err.to_string().contains("snapshot-interval"), "{err}");
        let flags = Flags {
            io_threads: Some(5000),
            ..Flags::default()
        };
        let err = Config::merge(flags, FileConfig::default()).expect_err("too many threads");
        assert!(err.to_string().contains("io-threads"), "{err}");
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn tls_and_protected_mode_options_follow_redis() {
        let config = Config::merge(Flags::default(), FileConfig::default()).expect("defaults");
        assert_eq!(config.tls, TlsConfig::default());
        assert_eq!(config.tls.auth_clients, TlsAuthClients::Yes);
        assert!(config.protected_mode);
        assert!(config.plain_port_enabled());
        let file = Config::parse_file(
            "port = 0\ntls-port = 6380\ntls-cert-file = \"n.crt\"\ntls-key-file = \"n.key\"\n\
             tls-ca-cert-file = \"ca.crt\"\ntls-auth-clients = \"optional\"\n\
             tls-replication = true\nprotected-mode = \"no\"\n",
        )
        .expect("toml");
        let config = Config::merge(Flags::default(), file).expect("valid");
        assert_eq!(config.tls.port, Some(6380));
        assert_eq!(config.tls.auth_clients, TlsAuthClients::Optional);
        assert!(config.tls.replication);
        assert!(!config.protected_mode);
        assert!(
            !config.plain_port_enabled(),
            "port 0 with a TLS port: TLS only"
        );
        let flags = Flags {
            protected_mode: Some("YES".into()),
            tls_replication: Some("no".into()),
            ..Flags::default()
        };
        let config = Config::merge(flags, FileConfig::default()).expect("valid");
        assert!(config.protected_mode && !config.tls.replication);

        let refused = |flags: Flags, expected: &str| {
            let err = Config::merge(flags, FileConfig::default()).expect_err(expected);
            assert!(err.to_string().contains(expected), "{err}");
        };
        let tls = |port: Option<u16>| Flags {
            tls_port: port,
            tls_cert_file: Some("n.crt".into()),
            tls_key_file: Some("n.key".into()),
            tls_ca_cert_file: Some("ca.crt".into()),
            ..Flags::default()
        };
        refused(
            Flags {
                tls_port: Some(6380),
                ..Flags::default()
            },
            "tls-cert-file",
        );
        refused(
            Flags {
                tls_ca_cert_file: None,
                ..tls(Some(6380))
            },
            "tls-ca-cert-file",
        );
        refused(
            Flags {
                tls_auth_clients: Some("maybe".into()),
                ..tls(Some(6380))
            },
            "tls-auth-clients",
        );
        refused(tls(Some(6379)), "tls-port");
        refused(
            Flags {
                protected_mode: Some("on".into()),
                ..Flags::default()
            },
            "protected-mode",
        );
        refused(
            Flags {
                tls_replication: Some("yes".into()),
                tls_ca_cert_file: None,
                ..tls(None)
            },
            "tls-ca-cert-file",
        );
        // Without client certificates no CA is needed for the TLS port.
        let config = Config::merge(
            Flags {
                tls_auth_clients: Some("no".into()),
                tls_ca_cert_file: None,
                ..tls(Some(6380))
            },
            FileConfig::default(),
        )
        .expect("valid");
        assert_eq!(config.tls.auth_clients, TlsAuthClients::No);
    }

    const PEERS: &str = "1@127.0.0.1:16379,2@127.0.0.1:16380,3@127.0.0.1:16381";

    fn with_peers(
        node_id: u64,
        raft_port: Option<u16>,
        peers: &str,
    ) -> Result<Config, ConfigError> {
        let flags = Flags {
            node_id: Some(node_id),
            raft_port,
            peers: Some(peers.into()),
            port: Some(6380),
            ..Flags::default()
        };
        Config::merge(flags, FileConfig::default())
    }

    #[test]
    fn unset_io_threads_give_a_lone_node_one_worker_and_a_cell_node_one_per_core() {
        let lone = Config::merge(Flags::default(), FileConfig::default()).expect("valid");
        assert_eq!(lone.io_threads, 0);
        assert_eq!(lone.worker_threads(), 1);
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let member = with_peers(2, None, PEERS).expect("valid");
        assert_eq!(member.worker_threads(), cores);
        let configured = Config::merge(
            Flags {
                io_threads: Some(3),
                ..Flags::default()
            },
            FileConfig::default(),
        )
        .expect("valid");
        assert_eq!(configured.worker_threads(), 3);
    }

    #[test]
    fn peers_parse_and_the_raft_port_follows_this_nodes_entry() {
        let config = with_peers(2, None, PEERS).expect("valid");
        assert_eq!(config.raft_port, 16380, "taken from 2@127.0.0.1:16380");
        assert_eq!(
            config.peers.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(config.peers[2].addr, "127.0.0.1:16381");
        assert_eq!(config.cluster_name, "cellkv");
        let config =
            with_peers(3, Some(16381), " 3@node-3:16381 , 1@node-1:16379 ").expect("valid");
        assert_eq!(config.peers[0].addr, "node-3:16381");
        assert_eq!(config.peers.len(), 2);
    }

    #[test]
    fn peers_in_the_file_as_a_string_or_a_list() {
        let file = Config::parse_file(
            "node-id = 1\ncluster-name = \"cell-a\"\npeers = [\"1@h1:16379\", \"2@h2:16379\"]\n",
        )
        .expect("toml");
        let config = Config::merge(Flags::default(), file).expect("valid");
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.cluster_name, "cell-a");
        assert_eq!(config.raft_port, 16379);
        let file =
            Config::parse_file(&format!("node-id = 3\npeers = \"{PEERS}\"\n")).expect("toml");
        let config = Config::merge(Flags::default(), file).expect("valid");
        assert_eq!(config.raft_port, 16381);
    }

    #[test]
    fn bad_peers_are_refused_with_the_reason() {
        let cases = [
            (
                4,
                None,
                PEERS,
                "this node's id 4 is not among the listed members (1, 2, 3)",
            ),
            (
                1,
                Some(17000),
                PEERS,
                "17000 differs from this node's entry 1@127.0.0.1:16379",
            ),
            (1, None, "1@a:1,1@b:2", "node id 1 is listed twice"),
            (1, None, "1@a:1,2@a:1", "address a:1 is listed twice"),
            (1, None, "0@a:1", "node ids start at 1"),
            (1, None, "x@a:1", "node id 'x' is not a number"),
            (1, None, "1@a", "address has no :PORT"),
            (1, None, "1@a:0", "'0' is not a port"),
            (1, None, "1-a:1", "is not ID@HOST:PORT"),
            (1, None, " , ", "no members listed"),
        ];
        for (node_id, raft_port, peers, expected) in cases {
            let err = with_peers(node_id, raft_port, peers).expect_err(peers);
            let text = err.to_string();
            assert!(text.contains(expected), "{peers}: {text}");
        }
        let flags = Flags {
            cluster_name: Some("two words".into()),
            ..Flags::default()
        };
        let err = Config::merge(flags, FileConfig::default()).expect_err("bad name");
        assert!(err.to_string().contains("cluster-name"), "{err}");
    }
}
