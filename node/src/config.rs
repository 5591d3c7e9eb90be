//! Configuration: command-line flags, `CELLKV_*` environment variables and a TOML file
//! (`--config`), merged in that order of precedence into one validated [`Config`]. Option
//! names follow Redis where Redis has one (`port`, `bind`, `dir`, `proto-max-bulk-len`,
//! `maxclients`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

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
    /// Port for node-to-node traffic [default: port + 10000].
    #[arg(long, env = "CELLKV_RAFT_PORT")]
    pub raft_port: Option<u16>,
    /// Take a snapshot after this many applied entries [default: 100000].
    #[arg(long, env = "CELLKV_SNAPSHOT_ENTRIES")]
    pub snapshot_entries: Option<u64>,
    /// Take a snapshot at least this often if anything changed, e.g. `300s`, `5m` [default: 5m].
    #[arg(long, env = "CELLKV_SNAPSHOT_INTERVAL")]
    pub snapshot_interval: Option<String>,
    /// Log level: error, warn, info, debug, trace, or a tracing filter [default: info,openraft=warn].
    #[arg(long, env = "CELLKV_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Largest bulk string a client may send, in bytes [default: 536870912].
    #[arg(long, env = "CELLKV_PROTO_MAX_BULK_LEN")]
    pub proto_max_bulk_len: Option<usize>,
    /// Most simultaneous client connections [default: 10000].
    #[arg(long, env = "CELLKV_MAXCLIENTS")]
    pub maxclients: Option<usize>,
    /// Worker threads serving connections and Raft; 0 = one per core [default: 0].
    #[arg(long, env = "CELLKV_IO_THREADS")]
    pub io_threads: Option<usize>,
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
    snapshot_entries: Option<u64>,
    snapshot_interval: Option<String>,
    #[serde(alias = "loglevel")]
    log_level: Option<String>,
    proto_max_bulk_len: Option<usize>,
    maxclients: Option<usize>,
    io_threads: Option<usize>,
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
    /// `io-threads`: Tokio worker threads, 0 = one per core.
    pub io_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: "127.0.0.1".into(),
            dir: PathBuf::from("./data"),
            node_id: 1,
            raft_port: 16379,
            snapshot_entries: 100_000,
            snapshot_interval: Duration::from_secs(300),
            // openraft narrates every election and re-applied batch at info; keep its warnings.
            log_level: "info,openraft=warn".into(),
            proto_max_bulk_len: 512 * 1024 * 1024,
            maxclients: 10_000,
            io_threads: 0,
        }
    }
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
        let port = flags.port.or(file.port).unwrap_or(defaults.port);
        let interval_text = flags.snapshot_interval.or(file.snapshot_interval);
        let snapshot_interval = match interval_text {
            None => defaults.snapshot_interval,
            Some(text) => parse_duration(&text).ok_or_else(|| ConfigError::Invalid {
                option: "snapshot-interval",
                reason: format!("'{text}' is not a duration like 300s, 5m or 1h"),
            })?,
        };
        let raft_port = match flags.raft_port.or(file.raft_port) {
            Some(p) => p,
            None if port == 0 => 0,
            None => port
                .checked_add(10_000)
                .ok_or_else(|| ConfigError::Invalid {
                    option: "raft-port",
                    reason: format!("port {port} + 10000 does not fit; set raft-port"),
                })?,
        };
        let config = Config {
            port,
            bind: flags.bind.or(file.bind).unwrap_or(defaults.bind),
            dir: flags.dir.or(file.dir).unwrap_or(defaults.dir),
            node_id: flags.node_id.or(file.node_id).unwrap_or(defaults.node_id),
            raft_port,
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
}
