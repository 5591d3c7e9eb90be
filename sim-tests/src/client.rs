//! A minimal RESP client over madsim's simulated TCP: one request at a time on one
//! connection, encoded and decoded with the node's own `resp` module.
//!
//! Every call has a deadline. After a timeout or an I/O error the connection is useless (a
//! late reply could be taken for the next request's), so the caller drops it and connects
//! again. [`Roster`] is the list of members the clients spread their commands over.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cellkv_node::resp::{encode, parse_frame, Frame};
use madsim::rand::{thread_rng, Rng};
use parking_lot::Mutex;
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

/// The node id behind a member's address (`10.0.0.<id>`, see `cluster::member_ip`).
pub fn node_of(addr: SocketAddr) -> u64 {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => u64::from(ip.octets()[3]),
        std::net::IpAddr::V6(_) => 0,
    }
}

/// The RESP addresses of the cell's current members, shared by every client and kept up to
/// date by the cell as members leave and join, so that the workloads talk to whatever nodes
/// are members (a removed node is dropped before it is stopped; a new one is listed once it
/// is a voter).
#[derive(Clone, Default)]
pub struct Roster(Arc<Mutex<Vec<SocketAddr>>>);

impl Roster {
    /// A roster of `addrs`.
    pub fn new(addrs: Vec<SocketAddr>) -> Roster {
        Roster(Arc::new(Mutex::new(addrs)))
    }

    /// The members' addresses now.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.0.lock().clone()
    }

    /// Number of members now.
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    /// Whether there is no member at all.
    pub fn is_empty(&self) -> bool {
        self.0.lock().is_empty()
    }

    /// The address of member number `index` (in the order they were listed), if there is one.
    pub fn get(&self, index: usize) -> Option<SocketAddr> {
        self.0.lock().get(index).copied()
    }

    /// A random member's address.
    pub fn pick(&self) -> Option<SocketAddr> {
        let addrs = self.0.lock();
        (!addrs.is_empty()).then(|| addrs[thread_rng().gen_range(0..addrs.len())])
    }

    /// Lists `addr` (a node that became a member).
    pub fn add(&self, addr: SocketAddr) {
        let mut addrs = self.0.lock();
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }

    /// Drops `addr` (a node that left).
    pub fn remove(&self, addr: SocketAddr) {
        self.0.lock().retain(|a| *a != addr);
    }
}

impl From<Vec<SocketAddr>> for Roster {
    fn from(addrs: Vec<SocketAddr>) -> Roster {
        Roster::new(addrs)
    }
}

/// One connection per member, opened on first use and dropped after a call that failed, for
/// the workload clients that spread their commands over the members.
pub struct Members {
    roster: Roster,
    connections: BTreeMap<SocketAddr, Connection>,
}

impl Members {
    /// No connection yet to any member of `roster`.
    pub fn new(roster: impl Into<Roster>) -> Members {
        Members {
            roster: roster.into(),
            connections: BTreeMap::new(),
        }
    }

    /// A random member; a transaction sends all its commands to the one member picked.
    pub fn pick(&self) -> SocketAddr {
        self.roster
            .pick()
            .expect("the roster never empties: membership changes keep two members or more")
    }

    /// The first member listed (for the reads after the run, which need no spreading).
    pub fn first(&self) -> SocketAddr {
        self.roster
            .get(0)
            .expect("the roster never empties: membership changes keep two members or more")
    }

    /// Every member's address now.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.roster.addrs()
    }

    /// Sends one command to the member at `target` (connecting first if needed) and waits up
    /// to `timeout`; `None` when no connection could be made (nothing was sent).
    pub async fn call(
        &mut self,
        target: SocketAddr,
        args: &[&[u8]],
        timeout: Duration,
    ) -> Option<Result<Frame, CallError>> {
        // Connections to nodes that left the cell are of no more use.
        let current = self.roster.addrs();
        self.connections
            .retain(|addr, _| *addr == target || current.contains(addr));
        let conn = match self.connections.entry(target) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => slot.insert(
                Connection::connect(target, Duration::from_secs(1))
                    .await
                    .ok()?,
            ),
        };
        let result = conn.call(args, timeout).await;
        if result.is_err() {
            self.connections.remove(&target);
        }
        Some(result)
    }

    /// Drops the connection to `target` (its next reply could be taken for another's).
    pub fn forget(&mut self, target: SocketAddr) {
        self.connections.remove(&target);
    }
}
