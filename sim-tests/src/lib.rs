//! cellkv-sim-tests: a deterministic simulation of a three-node cellkv cell under madsim.
//!
//! Built with `RUSTFLAGS="--cfg madsim"`; see `docs/simulation.md`. Map of the crate:
//! - [`linearizability`]: the single-register checker (built in every configuration, so its
//!   unit tests also run without the simulator).
//! - `client`: a small RESP client over simulated TCP, and the roster of members the
//!   workloads talk to (it follows membership changes).
//! - `cluster`: the simulated cell, booting each member through `Server::start_with` with a
//!   `Config` parsed from the binary's flags, on a simulated disk.
//! - `faults`: the faults drawn from the seed, membership changes through the admin service
//!   among them.
//! - `workload`: the kill-switch clients and their history.
//! - `queue`: Celery-style queues (LPUSH, BRPOP, kombu's unacked bookkeeping) and their checks.
//! - `cache`: caches under a small `maxmemory`, evicted while queues and the kill switch
//!   never are.
//! - `append`: list appends in `MULTI`/`EXEC` and the checks on the final lists.
//! - `ttl`: session keys with `PX`/`EX` read around their expiry, under clock jumps.
//! - `invariants`: Raft invariants sampled during the run.
//! - `run`: one seed from start to verdict.
//! - `scenarios`: pinned scripted scenarios for known failure shapes.

// Under madsim `tokio::time::Instant` is std's `Instant` (whose clock madsim intercepts), so
// clippy's determinism lint for `Instant::now` would flag every simulated timer here.
#![cfg_attr(madsim, allow(clippy::disallowed_methods))]

pub mod linearizability;

#[cfg(madsim)]
pub mod append;
#[cfg(madsim)]
pub mod cache;
#[cfg(madsim)]
pub mod client;
#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod faults;
#[cfg(madsim)]
pub mod invariants;
#[cfg(madsim)]
pub mod queue;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod scenarios;
#[cfg(madsim)]
pub mod ttl;
#[cfg(madsim)]
pub mod workload;
