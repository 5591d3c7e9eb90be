//! cellkv-proto: the node-to-node gRPC of a cellkv cell, generated from `proto/cellkv.proto`.
//!
//! Three services, all in package `cellkv.v1`, served together on a node's Raft port:
//! - `Raft`: append, vote, pre-vote, leader transfer and streamed snapshot install between
//!   members. Payloads are openraft types serialized by the node into `bytes`.
//! - `Forward`: a follower hands a client's writes, or a read-index request for a
//!   linearizable read, to the leader.
//! - `Admin`: a node's status (role, term, leader, indexes, members, RESP port), for peers and
//!   tools.
//!
//! The code comes from madsim-tonic-build: in a normal build it is real tonic over HTTP/2; under
//! `--cfg madsim` the same names run over madsim's simulated network.

#![allow(missing_docs)] // generated code; the .proto file documents every message and field

/// Generated messages, clients (`raft_client`, `forward_client`, `admin_client`) and servers
/// (`raft_server`, `forward_server`, `admin_server`) of package `cellkv.v1`.
// The simulated (madsim) flavour of the generated code unwraps internally.
#[allow(clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("cellkv.v1");
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use prost::Message;

    use super::v1::{RaftRequest, SnapshotChunk};

    /// The wire encoding survives a round trip (the simulator passes messages as values and
    /// never exercises prost, so this is where encoding is checked).
    #[test]
    fn messages_round_trip_through_prost() {
        let request = RaftRequest {
            payload: prost::bytes::Bytes::from_static(&[0, 1, 255]),
            from: 3,
            cluster: "cellkv".into(),
            to: 2,
        };
        let bytes = request.encode_to_vec();
        assert_eq!(
            RaftRequest::decode(bytes.as_slice()).expect("decode"),
            request
        );
        let chunk = SnapshotChunk {
            offset: 1 << 40,
            data: prost::bytes::Bytes::from(vec![7; 1000]),
            done: true,
            ..Default::default()
        };
        let bytes = chunk.encode_to_vec();
        assert_eq!(
            SnapshotChunk::decode(bytes.as_slice()).expect("decode"),
            chunk
        );
        assert!(RaftRequest::decode(&b"\xff\xff\xff"[..]).is_err());
    }
}
