//! cellkv-node: the server library behind the `cellkv` binary.
//!
//! Map of the crate, one module per concern:
//! - [`acl`]: users, passwords and permissions (`ACL SETUSER` rules), checked per command.
//! - [`resp`]: RESP2/RESP3 frames, the request parser and the reply encoder.
//! - [`command`]: the command table (arity, flags, key positions) and Redis's error texts.
//! - [`keyspace`]: the deterministic state machine: databases, value types, expiry.
//! - [`raft`]: openraft's type config, runtime adapter, state machine adapter and network.
//! - [`storage`]: the Raft log and vote stores (RocksDB in production, memory in tests).
//! - [`server`]: listeners, connections, routing of reads and writes, background expiry.
//! - [`config`]: flags, environment and TOML file, validated into one struct.
//! - [`tls`]: the TLS files, read at start into the RESP acceptor and node-to-node mTLS.
//! - [`fault`]: test-only partition switch (feature `fault-injection`).
//! - `fuzzing`: the bodies of the `cargo fuzz` targets in `node/fuzz/` (hidden).

pub mod acl;
pub mod command;
pub mod config;
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod keyspace;
pub mod raft;
pub mod resp;
pub mod server;
pub mod storage;
pub mod tls;
