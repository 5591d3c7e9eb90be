//! cellkv-proto: the node-to-node gRPC of a cellkv cell, generated from `proto/cellkv.proto`.
//!
//! Two services, both in package `cellkv.v1`:
//! - `Raft`: append, vote, pre-vote, leader transfer and streamed snapshot install between
//!   members. Payloads are openraft types serialized by the node into `bytes`.
//! - `Forward`: a follower hands a client's write, or a read-index request for a linearizable
//!   read, to the leader.
//!
//! The code comes from madsim-tonic-build: in a normal build it is real tonic over HTTP/2; under
//! `--cfg madsim` the same names run over madsim's simulated network.

#![allow(missing_docs)] // generated code; the .proto file documents every message and field

/// Generated messages, clients (`raft_client`, `forward_client`) and servers (`raft_server`,
/// `forward_server`) of package `cellkv.v1`.
// The simulated (madsim) flavour of the generated code unwraps internally.
#[allow(clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("cellkv.v1");
}
