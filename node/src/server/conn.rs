//! Connections: accept with a `maxclients` limit, then per connection read, parse every
//! complete request in the buffer, run them in order, and write all replies at once.
//!
//! Pipelined writes are proposed back to back without waiting, so they share log appends
//! and fsyncs; their replies are awaited in order. A read first waits for this
//! connection's earlier writes (so it sees them) and for one read confirmation per batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{clock, Node, Session};
use crate::command::{self, Handler, Resolved};
use crate::keyspace::{Op, ReadCtx};
use crate::resp::{encode, Frame, RequestLimits, RequestParser};

/// Accepts connections until the node stops.
pub async fn accept_loop(node: Arc<Node>, listener: TcpListener) {
    let mut shutdown = node.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        node.stats
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        let maxclients = node.runtime.read().maxclients;
        if node.connected.fetch_add(1, Ordering::Relaxed) >= maxclients {
            node.connected.fetch_sub(1, Ordering::Relaxed);
            node.stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(refuse(stream));
            continue;
        }
        let node = node.clone();
        tokio::spawn(async move {
            serve(node.clone(), stream, peer.to_string()).await;
            node.connected.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
}

async fn serve(node: Arc<Node>, stream: TcpStream, peer: String) {
    let _ = stream.set_nodelay(true);
    let local = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let client = node.register(peer.clone(), local);
    let client_id = client.id;
    let mut session = Session::new(node.clone(), client);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut shutdown = node.shutdown_signal();
    let mut parser = RequestParser::new();
    loop {
        // A large bulk in progress: grow the buffer once rather than read by read.
        if let Some(needed) = parser.bytes_needed() {
            input.reserve(needed.saturating_sub(input.len()));
        }
        let read = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            read = reader.read_buf(&mut input) => read,
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(client = client_id, error = %e, "read failed");
                break;
            }
        }
        let limits = RequestLimits {
            max_bulk_len: node.runtime.read().proto_max_bulk_len,
            ..RequestLimits::default()
        };
        let mut batch = Batch::default();
        let mut protocol_error = None;
        loop {
            match parser.parse(&mut input, &limits) {
                Ok(Some(args)) if args.is_empty() => {}
                Ok(Some(args)) => {
                    batch.run(&mut session, args, &mut output).await;
                    if session.close_after_reply {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    protocol_error = Some(e);
                    break;
                }
            }
        }
        batch.finish(&session, &mut output).await;
        if batch.commands > 0 {
            node.stats
                .commands_processed
                .fetch_add(batch.commands, Ordering::Relaxed);
            session
                .client
                .last_active_ms
                .store(clock::now_ms(), Ordering::Relaxed);
        }
        if let Some(e) = &protocol_error {
            node.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
            tracing::info!(client = client_id, peer = %peer, error = %e, "closing connection on protocol error");
            encode(&Frame::Error(e.reply_text()), session.resp3, &mut output);
        }
        if !output.is_empty() {
            if let Err(e) = writer.write_all(&output).await {
                tracing::debug!(client = client_id, error = %e, "write failed");
                break;
            }
            output.clear();
        }
        if protocol_error.is_some() || session.close_after_reply {
            break;
        }
    }
    node.unregister(client_id);
}

/// Replies of one read's worth of requests, kept in request order.
#[derive(Default)]
struct Batch {
    /// Writes not proposed yet: proposed together, in order, when the batch is flushed.
    writes: Vec<Op>,
    /// Replies owed after the first unproposed write: ready ones, or `None` for a write's.
    replies: Vec<Option<Frame>>,
    /// A read confirmation was obtained during this batch.
    read_confirmed: bool,
    /// Commands run, added to the node's counter once per batch: a shared counter bumped
    /// per command would bounce its cache line between the worker threads.
    commands: u64,
}

impl Batch {
    fn push(&mut self, session: &Session, frame: Frame, output: &mut BytesMut) {
        if self.writes.is_empty() {
            encode(&frame, session.resp3, output);
        } else {
            self.replies.push(Some(frame));
        }
    }

    /// Proposes the batch's writes as one message to Raft, waits for them, and writes all
    /// replies in order.
    async fn finish(&mut self, session: &Session, output: &mut BytesMut) {
        if self.writes.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.writes);
        let mut write_replies = session.node.propose_many(ops).await;
        for reply in std::mem::take(&mut self.replies) {
            let frame = match reply {
                Some(frame) => frame,
                None => write_replies.next().await,
            };
            encode(&frame, session.resp3, output);
        }
    }

    async fn run(&mut self, session: &mut Session, args: Vec<Bytes>, output: &mut BytesMut) {
        let node = session.node.clone();
        self.commands += 1;
        let spec = match command::resolve(&args) {
            Resolved::Error(text) => return self.push(session, Frame::Error(text), output),
            Resolved::Command(spec) => spec,
        };
        match spec.handler {
            Handler::Write(_) => {
                self.writes.push(Op::Command {
                    db: session.db,
                    args,
                });
                self.replies.push(None);
            }
            Handler::Read(run) => {
                self.finish(session, output).await;
                if !self.read_confirmed {
                    if let Err(e) = node.read_barrier.confirm().await {
                        return self.push(session, e, output);
                    }
                    self.read_confirmed = true;
                }
                let reply = {
                    let keyspace = node.keyspace.read();
                    let ctx = ReadCtx {
                        keyspace: &keyspace,
                        db: session.db,
                        now_ms: clock::now_ms().max(keyspace.clock_ms()),
                        seed: rand::random(),
                    };
                    run(&ctx, &args)
                };
                self.push(session, reply, output);
            }
            Handler::Session(run) => {
                self.finish(session, output).await;
                let reply = run(session, &args);
                if !session.skip_reply {
                    self.push(session, reply, output);
                }
                session.skip_reply = false;
            }
            Handler::Container => {
                self.push(
                    session,
                    Frame::error(command::errors::wrong_arity(spec.name)),
                    output,
                );
            }
        }
    }
}
