//! Integration tests: each starts the real `cellkv` binary on free loopback ports and talks
//! RESP to it, through the `redis` crate, raw TCP, or the real `redis-cli`.

// These tests drive real processes in real time; the simulator's clock rules are for node code.
#![allow(clippy::disallowed_methods)]

mod bits;
mod connection;
mod durability;
mod harness;
mod keys;
mod protocol;
mod redis_cli;
mod strings;
