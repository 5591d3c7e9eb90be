//! Integration tests: each starts the real `cellkv` binary on free loopback ports and talks
//! RESP to it, through the `redis` crate, raw TCP, or the real `redis-cli`.

// These tests drive real processes in real time; the simulator's clock rules are for node code.
#![allow(clippy::disallowed_methods)]

mod bits;
mod blocking;
mod cluster;
mod connection;
mod durability;
mod failover;
mod harness;
mod hashes;
mod hostile;
mod keys;
mod limits;
mod lists;
mod memory;
mod protected;
mod protocol;
mod pubsub;
mod raft_access;
mod redis_cli;
mod scripting;
mod secrets;
mod security;
mod sets;
mod strings;
mod tls;
mod transactions;
mod zsets;
