//! A minimal RESP client over madsim's simulated TCP: one request at a time on one
//! connection, encoded and decoded with the node's own `resp` module.
//!
//! Every call has a deadline. After a timeout or an I/O error the connection is useless (a
//! late reply could be taken for the next request's), so the caller drops it and connects
//! again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cellkv_node::resp::{encode, parse_frame, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a call got no reply.
#[derive(Debug)]
pub enum CallError {
    /// No reply within the deadline: the outcome is unknown.
    Timeout,
    /// The connection failed or closed, or the reply was garbled: unknown too.
    Io(String),
}

/// One connection to one node.
pub struct Connection {
    stream: TcpStream,
    buf: BytesMut,
}

impl Connection {
    /// Connects to `addr` within `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Connection, CallError> {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => Err(CallError::Timeout),
            Ok(Err(e)) => Err(CallError::Io(e.to_string())),
            Ok(Ok(stream)) => Ok(Connection {
                stream,
                buf: BytesMut::with_capacity(4096),
            }),
        }
    }

    /// Sends one command and waits for its reply, at most `timeout`.
    pub async fn call(&mut self, args: &[&[u8]], timeout: Duration) -> Result<Frame, CallError> {
        let request = Frame::Array(
            args.iter()
                .map(|a| Frame::Bulk(Bytes::copy_from_slice(a)))
                .collect(),
        );
        let mut out = BytesMut::new();
        encode(&request, false, &mut out);
        match tokio::time::timeout(timeout, self.round_trip(&out)).await {
            Err(_) => Err(CallError::Timeout),
            Ok(result) => result,
        }
    }

    async fn round_trip(&mut self, request: &[u8]) -> Result<Frame, CallError> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| CallError::Io(e.to_string()))?;
        // madsim's simulated socket sends only on flush.
        self.stream
            .flush()
            .await
            .map_err(|e| CallError::Io(e.to_string()))?;
        loop {
            match parse_frame(&mut self.buf) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(CallError::Io(format!("bad reply: {e:?}"))),
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| CallError::Io(e.to_string()))?;
            if n == 0 {
                return Err(CallError::Io("connection closed".into()));
            }
        }
    }
}

/// One connection per member, opened on first use and dropped after a call that failed, for
/// the workload clients that spread their commands over the members.
pub struct Members {
    targets: Vec<SocketAddr>,
    connections: BTreeMap<usize, Connection>,
}

impl Members {
    /// No connection yet to any of `targets`.
    pub fn new(targets: Vec<SocketAddr>) -> Members {
        Members {
            targets,
            connections: BTreeMap::new(),
        }
    }

    /// Number of members.
    pub fn count(&self) -> usize {
        self.targets.len()
    }

    /// Sends one command to member `target` (connecting first if needed) and waits up to
    /// `timeout`; `None` when no connection could be made (nothing was sent).
    pub async fn call(
        &mut self,
        target: usize,
        args: &[&[u8]],
        timeout: Duration,
    ) -> Option<Result<Frame, CallError>> {
        if !self.connections.contains_key(&target) {
            let conn = Connection::connect(*self.targets.get(target)?, Duration::from_secs(1))
                .await
                .ok()?;
            self.connections.insert(target, conn);
        }
        let conn = self.connections.get_mut(&target)?;
        let result = conn.call(args, timeout).await;
        if result.is_err() {
            self.connections.remove(&target);
        }
        Some(result)
    }

    /// Drops the connection to `target` (its next reply could be taken for another's).
    pub fn forget(&mut self, target: usize) {
        self.connections.remove(&target);
    }
}
