//! cellkv-client: an async RESP client for cellkv (or any Redis-compatible server) and the
//! pieces the `cellkv-cli` admin tool is built from.
//!
//! Map of the crate:
//! - [`Client`]: one TCP connection; [`Client::command`] sends one command,
//!   [`Client::pipeline`] sends many and reads their replies in order. Every call has a
//!   deadline ([`ClientOptions::call_timeout`]).
//! - [`format`](mod@format): replies printed the way `redis-cli` prints them on a terminal.
//! - [`info`]: `INFO` text parsed into fields, and the summary `cellkv-cli status` prints.
//! - [`health`]: the readiness decision of `cellkv-cli ready` (a leader, and caught up).
//! - [`admin`]: the cluster admin calls (`cellkv-cli cluster ...`) over a node's `Admin` gRPC
//!   service on its Raft port.
//!
//! The wire codec is the server's own ([`cellkv_node::resp`]), so client and server can
//! never disagree on framing. Requests are always arrays of bulk strings, which read the
//! same in RESP2 and RESP3; replies of either protocol are parsed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cellkv_client::ClientError> {
//! let mut client = cellkv_client::Client::connect("127.0.0.1:6379").await?;
//! client.command(["SET", "greeting", "hello"]).await?;
//! let reply = client.command(["GET", "greeting"]).await?;
//! println!("{}", cellkv_client::format::format_reply(&reply));
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod format;
pub mod health;
pub mod info;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cellkv_node::resp::{encode, parse_frame, ProtocolError};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use cellkv_node::resp::Frame;

/// Below this many buffered bytes an incomplete reply is re-parsed after every read; the
/// parser measures a reply from its start each time, and for small replies that is cheaper
/// than any bookkeeping.
const REPARSE_ALWAYS_BELOW: usize = 1 << 20;

/// Once a reply is larger than [`REPARSE_ALWAYS_BELOW`], it is re-parsed only when the
/// buffer has doubled or the socket has gone quiet for this long, so reading a reply of
/// n bytes costs O(n) parsing rather than O(n²).
const QUIET_BEFORE_REPARSE: Duration = Duration::from_millis(2);

/// Why a call failed. A server's error reply is not one of these: it comes back as
/// `Ok(Frame::Error(..))`, as any other reply does.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Connecting, reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The server sent bytes that are not RESP.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The connect or the call did not finish within its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The server closed the connection, or an earlier failure left it unusable.
    #[error("connection closed")]
    Closed,
}

/// Deadlines of a [`Client`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long [`Client::connect_with`] may take, name resolution included.
    pub connect_timeout: Duration,
    /// How long one call may take from sending its first byte to reading its last reply;
    /// `None` waits forever (for blocking commands such as `BLPOP key 0`).
    pub call_timeout: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            call_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// One connection to a server.
///
/// Calls take `&mut self`, so a connection serves one caller at a time and replies can
/// never be handed to the wrong caller. After a timeout, an I/O or a protocol error the
/// connection is poisoned (a late reply would otherwise be read as the answer to the next
/// call) and every later call fails with [`ClientError::Closed`]; connect again.
pub struct Client {
    stream: TcpStream,
    addr: String,
    options: ClientOptions,
    read_buf: BytesMut,
    write_buf: BytesMut,
    poisoned: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("options", &self.options)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `addr` (`host:port`) with the default [`ClientOptions`].
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        Client::connect_with(addr, ClientOptions::default()).await
    }

    /// Connects to `addr` (`host:port`) with the given deadlines.
    pub async fn connect_with(addr: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(options.connect_timeout))??;
        // Requests are written whole; Nagle would only delay the last segment.
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            addr: addr.to_string(),
            options,
            read_buf: BytesMut::with_capacity(16 * 1024),
            write_buf: BytesMut::with_capacity(16 * 1024),
            poisoned: false,
        })
    }

    /// The address this client was asked to connect to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The deadlines in force.
    pub fn options(&self) -> ClientOptions {
        self.options
    }

    /// Changes the per-call deadline for later calls (`None`: wait forever).
    pub fn set_call_timeout(&mut self, timeout: Option<Duration>) {
        self.options.call_timeout = timeout;
    }

    /// Sends one command (name first, then its arguments) and returns its reply.
    ///
    /// ```no_run
    /// # async fn demo(client: &mut cellkv_client::Client) -> Result<(), cellkv_client::ClientError> {
    /// let ttl = client.command(["EXPIRE", "k", "10"]).await?;
    /// let raw = client.command([&b"GET"[..], &b"\xffbinary-key"[..]]).await?;
    /// # let _ = (ttl, raw);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn command<I, A>(&mut self, args: I) -> Result<Frame, ClientError>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        self.write_buf.clear();
        encode(&request_frame(args), false, &mut self.write_buf);
        let mut replies = self.call(1).await?;
        replies.pop().ok_or(ClientError::Closed)
    }

    /// Sends every command at once and returns their replies in the same order.
    ///
    /// Requests are written while replies are read, so a pipeline larger than the socket
    /// buffers cannot deadlock against a server that stops reading until its replies drain.
    /// The call deadline covers the whole pipeline.
    pub async fn pipeline(&mut self, commands: Vec<Vec<Bytes>>) -> Result<Vec<Frame>, ClientError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        self.write_buf.clear();
        for command in &commands {
            encode(&request_frame(command), false, &mut self.write_buf);
        }
        self.call(commands.len()).await
    }

    /// Writes `write_buf` and reads `count` replies, under the call deadline.
    async fn call(&mut self, count: usize) -> Result<Vec<Frame>, ClientError> {
        if self.poisoned {
            return Err(ClientError::Closed);
        }
        let exchange = exchange(&mut self.stream, &self.write_buf, &mut self.read_buf, count);
        let result = match self.options.call_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .unwrap_or(Err(ClientError::Timeout(limit))),
            None => exchange.await,
        };
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }
}

/// A request as RESP: an array of bulk strings.
fn request_frame<I, A>(args: I) -> Frame
where
    I: IntoIterator<Item = A>,
    A: AsRef<[u8]>,
{
    Frame::Array(args.into_iter().map(Frame::bulk).collect())
}

/// Writes `request` while reading `count` replies from the same stream.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    read_buf: &mut BytesMut,
    count: usize,
) -> Result<Vec<Frame>, ClientError> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = async {
        writer.write_all(request).await?;
        writer.flush().await?;
        Ok::<(), ClientError>(())
    };
    let read = async {
        let mut replies = Vec::with_capacity(count);
        while replies.len() < count {
            replies.push(read_reply(&mut reader, read_buf).await?);
        }
        Ok::<Vec<Frame>, ClientError>(replies)
    };
    // A failed write surfaces even when the reads fail too, as the likelier root cause.
    let (written, replies) = tokio::join!(write, read);
    written?;
    replies
}

/// Reads one complete reply, buffering any bytes that follow it.
async fn read_reply<R>(reader: &mut R, buf: &mut BytesMut) -> Result<Frame, ClientError>
where
    R: tokio::io::AsyncRead + Unpin,
{
    // Length of the buffer when a parse last found the reply incomplete.
    let mut incomplete_at = 0usize;
    loop {
        let must_parse = buf.len() < REPARSE_ALWAYS_BELOW || buf.len() >= 2 * incomplete_at;
        if must_parse && buf.len() > incomplete_at {
            match parse_frame(buf)? {
                Some(frame) => return Ok(frame),
                None => incomplete_at = buf.len(),
            }
        }
        if buf.capacity() - buf.len() < 8 * 1024 {
            buf.reserve(buf.len().clamp(16 * 1024, 4 << 20));
        }
        let read = if must_parse {
            reader.read_buf(buf).await?
        } else {
            match tokio::time::timeout(QUIET_BEFORE_REPARSE, reader.read_buf(buf)).await {
                Ok(read) => read?,
                Err(_) => {
                    // The sender paused: perhaps the reply is already whole.
                    match parse_frame(buf)? {
                        Some(frame) => return Ok(frame),
                        None => {
                            incomplete_at = buf.len();
                            reader.read_buf(buf).await?
                        }
                    }
                }
            }
        };
        if read == 0 {
            return Err(ClientError::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply split across many reads, larger than the re-parse threshold, still arrives whole.
    #[tokio::test]
    async fn large_replies_arrive_whole_across_reads() {
        let item = Frame::Bulk(Bytes::from(vec![b'x'; 1000]));
        let reply = Frame::Array(vec![item; 3000]);
        let mut wire = BytesMut::new();
        encode(&reply, false, &mut wire);
        encode(&Frame::Integer(7), false, &mut wire);
        let (mut near, far) = tokio::io::duplex(4096);
        let sender = tokio::spawn(async move {
            let mut far = far;
            for chunk in wire.chunks(3000) {
                far.write_all(chunk).await.expect("write");
            }
            far
        });
        let mut buf = BytesMut::new();
        let got = read_reply(&mut near, &mut buf).await.expect("first reply");
        assert_eq!(got, reply);
        let next = read_reply(&mut near, &mut buf).await.expect("second reply");
        assert_eq!(next, Frame::Integer(7));
        drop(sender.await.expect("sender"));
    }

    /// A peer that closes mid-reply yields `Closed`, not a hang.
    #[tokio::test]
    async fn closing_mid_reply_is_closed() {
        let (mut near, mut far) = tokio::io::duplex(64);
        far.write_all(b"$10\r\nabc").await.expect("write");
        drop(far);
        let mut buf = BytesMut::new();
        assert!(matches!(
            read_reply(&mut near, &mut buf).await,
            Err(ClientError::Closed)
        ));
    }

    /// Garbage from the server is a protocol error.
    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let (mut near, mut far) = tokio::io::duplex(64);
        far.write_all(b"?what\r\n").await.expect("write");
        let mut buf = BytesMut::new();
        assert!(matches!(
            read_reply(&mut near, &mut buf).await,
            Err(ClientError::Protocol(_))
        ));
    }

    /// Requests are arrays of bulk strings, binary-safe.
    #[test]
    fn requests_are_bulk_arrays() {
        let mut wire = BytesMut::new();
        encode(
            &request_frame([&b"SET"[..], b"k\xff", b""]),
            false,
            &mut wire,
        );
        assert_eq!(&wire[..], b"*3\r\n$3\r\nSET\r\n$2\r\nk\xff\r\n$0\r\n\r\n");
    }
}
