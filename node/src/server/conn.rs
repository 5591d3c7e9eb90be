//! Connections: accept with a `maxclients` limit, then per connection read, parse every
//! complete request in the buffer, run them in order, and write all replies at once.
//!
//! Pipelined writes are proposed back to back without waiting, so they share log appends
//! and fsyncs; their replies are awaited in order. A read first waits for this
//! connection's earlier writes (so it sees them) and for one read confirmation per batch.
//!
//! The loop also owns what makes a connection wait or listen: commands queued between
//! `MULTI` and `EXEC` (sent as one log entry), `WATCH` (which records the applied index),
//! blocking pops (re-proposed when a key they wait on is written, see `blocking`), and a
//! subscriber's messages, written between batches.
//!
//! The plain port and the TLS port serve the same sessions: a TLS connection is handshaken
//! first (with a deadline, so a client that stalls the handshake cannot hold a slot), then
//! runs the same loop over the decrypted stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::pubsub::{Delivery, OutputLimit};
use super::security;
use super::subscribe::{self as sub};
use super::{clock, Node, Session};
use crate::command::{self, flag, CommandSpec, Handler, Resolved, UnchangedCheck};
use crate::keyspace::{owned, rules_changed, Keyspace, Op, ReadCtx, Watch, BLOCKED};
use crate::resp::{encode, Frame, RequestLimits, RequestParser};
use crate::tls::Acceptor;

/// Most messages written to a subscriber in one go, so one subscriber cannot hog its thread.
const DELIVERY_BATCH: usize = 512;

/// Longest a TLS client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A client's byte stream: a TCP socket, or a TLS session over one.
pub trait ClientStream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> ClientStream for S {}

/// The stream halves and the unparsed input of one connection.
struct Io {
    reader: ReadHalf<Box<dyn ClientStream>>,
    writer: WriteHalf<Box<dyn ClientStream>>,
    input: BytesMut,
}

/// What is known of a connection before its first command.
struct Origin {
    /// The client's address.
    peer: std::net::SocketAddr,
    /// Whether it came over TLS with a certificate the CA signed (`tls-auth-clients`).
    verified_cert: bool,
}

/// Accepts connections until the node stops; with `tls`, each one is a TLS session.
pub async fn accept_loop(node: Arc<Node>, listener: TcpListener, tls: Option<Acceptor>) {
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
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let local = stream
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            if let Some((stream, verified_cert)) = open(stream, tls, peer).await {
                let origin = Origin {
                    peer,
                    verified_cert,
                };
                serve(node.clone(), stream, origin, local).await;
            }
            node.connected.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The client's stream: the socket itself, or the TLS session once its handshake succeeded
/// (with whether the client showed a certificate, which the acceptor has checked against
/// the CA). `None` when the handshake failed or took too long.
#[cfg(not(madsim))]
async fn open(
    stream: TcpStream,
    tls: Option<Acceptor>,
    peer: std::net::SocketAddr,
) -> Option<(Box<dyn ClientStream>, bool)> {
    let Some(acceptor) = tls else {
        return Some((Box::new(stream), false));
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(session)) => {
            let verified_cert = session.get_ref().1.peer_certificates().is_some();
            Some((Box::new(session), verified_cert))
        }
        Ok(Err(e)) => {
            // rustls's reasons name the protocol failure (no certificate, unknown CA), never
            // key material.
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// The client's stream (simulated build: there is no TLS listener).
#[cfg(madsim)]
async fn open(
    stream: TcpStream,
    tls: Option<Acceptor>,
    _peer: std::net::SocketAddr,
) -> Option<(Box<dyn ClientStream>, bool)> {
    if let Some(acceptor) = tls {
        match acceptor {}
    }
    let _ = HANDSHAKE_TIMEOUT;
    Some((Box::new(stream), false))
}

/// Writes and flushes: a real socket sends on write, but madsim's simulated one sends only on
/// flush, so without it no reply would leave a node inside the simulation.
async fn write_flush(
    writer: &mut WriteHalf<Box<dyn ClientStream>>,
    bytes: &[u8],
) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

async fn refuse(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = stream.flush().await;
}

async fn serve(node: Arc<Node>, stream: Box<dyn ClientStream>, origin: Origin, local: String) {
    let peer = origin.peer.to_string();
    let client = node.register(peer.clone(), local);
    let client_id = client.id;
    let mut session = Session::new(node.clone(), client);
    session.trusted_origin = security::trusted_origin(&origin.peer, origin.verified_cert);
    let (reader, writer) = tokio::io::split(stream);
    let mut io = Io {
        reader,
        writer,
        input: BytesMut::with_capacity(16 * 1024),
    };
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut shutdown = node.shutdown_signal();
    let mut parser = RequestParser::new();
    let cut_off = session.mailbox.cut_off_signal();
    // Armed once for the connection's life: a fresh `changed()` per request would take and
    // release a lock of the watch channel that every connection shares, on every round trip.
    let stopping = shutdown.changed();
    tokio::pin!(stopping);
    let cut = cut_off.wait();
    tokio::pin!(cut);
    loop {
        // A large bulk in progress: grow the buffer once rather than read by read.
        if let Some(needed) = parser.bytes_needed() {
            io.input.reserve(needed.saturating_sub(io.input.len()));
        }
        let idle_limit = {
            let timeout = node.runtime.read().timeout;
            // Subscribers and monitors wait for the server, not the other way round.
            let exempt = session.subscriptions() > 0 || session.monitor.is_some();
            (timeout > 0 && !exempt).then(|| std::time::Duration::from_secs(timeout))
        };
        let read = tokio::select! {
            biased;
            _ = &mut stopping => break,
            _ = idle(idle_limit) => {
                tracing::info!(client = client_id, peer = %peer, "closing client idle past timeout");
                break;
            }
            _ = &mut cut => {
                tracing::info!(client = client_id, peer = %peer, "closing subscriber over client-output-buffer-limit pubsub");
                break;
            }
            line = monitor_line(&mut session.monitor) => {
                let Some(first) = line else {
                    tracing::info!(client = client_id, peer = %peer, "closing monitor over its backlog");
                    break;
                };
                if write_monitor_lines(&mut session, first, &mut io).await.is_err() {
                    break;
                }
                continue;
            }
            delivery = session.mailbox.recv() => {
                let Some(first) = delivery else { continue };
                if write_deliveries(&mut session, first, &mut io, &cut_off).await.is_err() {
                    break;
                }
                continue;
            }
            read = io.reader.read_buf(&mut io.input) => read,
        };
        match read {
            Ok(0) => break,
            Ok(_) if io.input.len() > node.runtime.read().client_query_buffer_limit => {
                tracing::info!(client = client_id, peer = %peer, bytes = io.input.len(), "closing client over client-query-buffer-limit");
                break;
            }
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
        // Subscribers' messages answer to the pubsub class, in their mailbox.
        let output_limit = if session.subscriptions() == 0 {
            node.runtime.read().normal_output_limit
        } else {
            OutputLimit::NONE
        };
        let mut protocol_error = None;
        let mut over_output_limit = false;
        loop {
            match parser.parse(&mut io.input, &limits) {
                Ok(Some(args)) if args.is_empty() => {}
                Ok(Some(args)) => {
                    batch.run(&mut session, args, &mut output, &mut io).await;
                    if output_limit.over_hard(output.len() + batch.queued_bytes) {
                        over_output_limit = true;
                        break;
                    }
                    if session.close_after_reply || batch.gone {
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
        if batch.gone {
            break;
        }
        batch.finish(&mut session, &mut output).await;
        if over_output_limit || output_limit.over_hard(output.len()) {
            tracing::info!(client = client_id, peer = %peer, bytes = output.len(), "closing client over client-output-buffer-limit normal");
            break;
        }
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
            let written = match output_limit.soft_grace(output.len()) {
                None => write_flush(&mut io.writer, &output).await,
                Some(grace) => {
                    match tokio::time::timeout(grace, write_flush(&mut io.writer, &output)).await {
                        Ok(written) => written,
                        Err(_) => {
                            tracing::info!(client = client_id, peer = %peer, bytes = output.len(), "closing client over client-output-buffer-limit normal (soft)");
                            break;
                        }
                    }
                }
            };
            if let Err(e) = written {
                tracing::debug!(client = client_id, error = %e, "write failed");
                break;
            }
            output.clear();
        }
        if protocol_error.is_some() || session.close_after_reply {
            break;
        }
    }
    session.unsubscribe_all();
    if session.monitor.is_some() {
        node.monitors.unsubscribe(client_id);
    }
    node.unregister(client_id);
}

/// Ends after `limit` of silence, or never without one.
async fn idle(limit: Option<std::time::Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

/// The next line for a monitor, or never for any other connection.
async fn monitor_line(monitor: &mut Option<tokio::sync::mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match monitor {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes `first` and every monitor line already waiting.
async fn write_monitor_lines(
    session: &mut Session,
    first: Bytes,
    io: &mut Io,
) -> std::io::Result<()> {
    let mut out = BytesMut::from(&first[..]);
    if let Some(rx) = session.monitor.as_mut() {
        while out.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(line) => out.extend_from_slice(&line),
                Err(_) => break,
            }
        }
    }
    write_flush(&mut io.writer, &out).await
}

/// Puts a command that took long enough in the node's slow log, its arguments redacted.
fn observe_slow(session: &Session, args: &[Bytes], took: std::time::Duration) {
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    let (slower_than, max_len, prefixes) = {
        let runtime = session.node.runtime.read();
        let slower_than = runtime.slowlog_log_slower_than;
        if slower_than < 0 || micros < slower_than as u64 {
            return;
        }
        (
            slower_than,
            runtime.slowlog_max_len,
            runtime.secret_prefixes.clone(),
        )
    };
    let name = session.client.name.lock().clone();
    session.node.slowlog.lock().observe(
        args,
        micros,
        slower_than,
        max_len,
        &prefixes,
        &session.client.addr,
        name,
    );
}

/// Writes `first` and whatever else is waiting in the mailbox, then gives the bytes back to
/// the output limit's count. A write stuck on a subscriber that does not read is abandoned
/// when publishers cut it off.
async fn write_deliveries(
    session: &mut Session,
    first: Delivery,
    io: &mut Io,
    cut_off: &super::pubsub::CutOff,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    let mut size = 0;
    let mut next = Some(first);
    let mut count = 0;
    while let Some(delivery) = next {
        size += delivery.size();
        encode(&delivery_frame(delivery), session.resp3, &mut out);
        count += 1;
        next = if count < DELIVERY_BATCH {
            session.mailbox.try_recv()
        } else {
            None
        };
    }
    tokio::select! {
        biased;
        _ = cut_off.wait() => return Err(std::io::ErrorKind::BrokenPipe.into()),
        written = write_flush(&mut io.writer, &out) => written?,
    }
    session.mailbox.written(size, &session.node.pubsub.limit());
    Ok(())
}

/// The session's user when its rules restrict anything: scripts it runs on the read path
/// check each call against them.
fn restricted(session: &Session) -> Option<&crate::acl::User> {
    let user = &*session.acl.user;
    (!user.unrestricted()).then_some(user)
}

/// A queued connection command its user may no longer run (rules changed since it was
/// queued; Redis checks again at `EXEC`).
fn refused_at_exec(
    session: &Session,
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> Option<crate::acl::Denied> {
    let user = restricted(session)?;
    user.check(spec, &crate::acl::full_name(spec, args), args)
        .err()
}

/// Wraps an entry whose commands are only known inside apply (a script's calls, a
/// transaction's queue, rechecked at `EXEC`) so that apply checks them against the user.
fn as_user(session: &Session, op: Op) -> Op {
    match restricted(session) {
        Some(user) => Op::AsUser {
            user: user.name().to_string(),
            op: Box::new(op),
        },
        None => op,
    }
}

/// Roughly the bytes `frame` takes once encoded: payloads plus a few bytes of framing each,
/// enough to hold held-back replies to the output limit.
fn frame_size(frame: &Frame) -> usize {
    const FRAMING: usize = 16;
    FRAMING
        + match frame {
            Frame::Simple(s) | Frame::Error(s) | Frame::BigNumber(s) => s.len(),
            Frame::Bulk(b) | Frame::Verbatim(_, b) => b.len(),
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
                items.iter().map(frame_size).sum()
            }
            Frame::Map(pairs) | Frame::Pairs(pairs) => pairs
                .iter()
                .map(|(a, b)| frame_size(a) + frame_size(b))
                .sum(),
            Frame::Integer(_)
            | Frame::Null
            | Frame::NullArray
            | Frame::Double(_)
            | Frame::Boolean(_) => 0,
        }
}

fn delivery_frame(delivery: Delivery) -> Frame {
    match delivery {
        Delivery::Message { channel, payload } => Frame::Push(vec![
            Frame::bulk("message"),
            Frame::Bulk(channel),
            Frame::Bulk(payload),
        ]),
        Delivery::PMessage {
            pattern,
            channel,
            payload,
        } => Frame::Push(vec![
            Frame::bulk("pmessage"),
            Frame::Bulk(pattern),
            Frame::Bulk(channel),
            Frame::Bulk(payload),
        ]),
    }
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
    /// The client went away while a command waited for it (a blocked pop).
    gone: bool,
    /// Writes of this batch to put in the slow log once their replies arrive.
    slow: Vec<(Vec<Bytes>, tokio::time::Instant)>,
    /// When the command just run ended, if it was timed: the next one starts there.
    clock_mark: Option<tokio::time::Instant>,
    /// Cell time read for this batch's first read, in ms: the batch's reads share it, raised
    /// to the replicated clock by each.
    read_time_ms: Option<u64>,
    /// Bytes of the ready replies held in `replies` (an estimate: their encoded size is
    /// known only once written), for the output limit.
    queued_bytes: usize,
}

impl Batch {
    fn push(&mut self, session: &Session, frame: Frame, output: &mut BytesMut) {
        if self.writes.is_empty() {
            encode(&frame, session.resp3, output);
        } else {
            self.queued_bytes += frame_size(&frame);
            self.replies.push(Some(frame));
        }
    }

    /// Proposes the batch's writes as one message to Raft, waits for them, and writes all
    /// replies in order.
    async fn finish(&mut self, session: &mut Session, output: &mut BytesMut) {
        if self.writes.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.writes);
        self.queued_bytes = 0;
        let node = session.node.clone();
        let mut write_replies = node.propose_many(&mut session.writer, ops).await;
        // Forwarded writes come back once the leader applied them, maybe before this node
        // did: a later read of the batch needs a confirmation of its own to see them.
        self.read_confirmed = false;
        for reply in std::mem::take(&mut self.replies) {
            let frame = match reply {
                Some(frame) => frame,
                None => write_replies.next().await,
            };
            encode(&frame, session.resp3, output);
        }
        if !self.slow.is_empty() {
            let now = tokio::time::Instant::now();
            self.clock_mark = Some(now);
            for (args, started) in std::mem::take(&mut self.slow) {
                observe_slow(session, &args, now.duration_since(started));
            }
        }
    }

    /// Runs one command, timing it for the slow log: a write when its reply arrives,
    /// anything else at once. A blocking command's wait is not its run time.
    async fn run(
        &mut self,
        session: &mut Session,
        mut args: Vec<Bytes>,
        output: &mut BytesMut,
        io: &mut Io,
    ) {
        let resolved = command::resolve(&args);
        let timed = matches!(resolved, Resolved::Command(spec)
                if spec.flags & (flag::BLOCKING | flag::SKIP_SLOWLOG) == 0)
            && session.node.runtime.read().slowlog_log_slower_than >= 0;
        if !timed {
            self.run_command(session, resolved, &mut args, output, io)
                .await;
            // An untimed command may have waited (a blocking pop, EXEC): the next command's
            // time starts after it, not at the last timed one.
            self.clock_mark = None;
            return;
        }
        // One clock reading per command: the end of one command is the start of the next in
        // the same batch.
        let started = self.clock_mark.unwrap_or_else(tokio::time::Instant::now);
        // A write (or a command queued in MULTI) takes its arguments along: keep a copy for
        // the slow log.
        let consumed = session.multi.is_some()
            || matches!(resolved, Resolved::Command(spec) if matches!(spec.handler, Handler::Write(_)));
        let kept = consumed.then(|| args.clone());
        let writes_before = self.writes.len();
        self.run_command(session, resolved, &mut args, output, io)
            .await;
        let now = tokio::time::Instant::now();
        self.clock_mark = Some(now);
        let args = kept.unwrap_or(args);
        if self.writes.len() > writes_before {
            self.slow.push((args, started));
        } else {
            observe_slow(session, &args, now.duration_since(started));
        }
    }

    /// Runs one resolved command. `args` is left empty when the command took it along (a
    /// write, a command queued in MULTI, a blocking pop).
    async fn run_command(
        &mut self,
        session: &mut Session,
        resolved: Resolved,
        args: &mut Vec<Bytes>,
        output: &mut BytesMut,
        io: &mut Io,
    ) {
        let node = session.node.clone();
        self.commands += 1;
        let spec = match resolved {
            Resolved::Error(text) => {
                if let Some(multi) = session.multi.as_mut() {
                    multi.failed = true;
                }
                return self.push(session, Frame::Error(text), output);
            }
            Resolved::Command(spec) => spec,
        };
        // Only reads in a row share a cell time: anything else may wait.
        if !matches!(spec.handler, Handler::Read(_)) {
            self.read_time_ms = None;
        }
        if let Err(reply) = self.admit(session, spec, &args[..], output).await {
            if let Some(multi) = session.multi.as_mut() {
                multi.failed = true;
            }
            return self.push(session, reply, output);
        }
        if self.gone {
            return;
        }
        if node.monitors.is_active() {
            let prefixes = node.runtime.read().secret_prefixes.clone();
            node.monitors
                .feed(session.db, &session.client.addr, &args[..], &prefixes);
        }
        if session.in_subscriber_mode() && !sub::allowed_in_subscriber_mode(spec.name) {
            return self.push(session, sub::not_in_subscriber_mode(spec.name), output);
        }
        if session.multi.is_some() && !runs_inside_multi(spec) {
            return self.queue(session, spec, std::mem::take(args), output);
        }
        match spec.handler {
            Handler::Write(_) if spec.flags & flag::BLOCKING != 0 => {
                self.finish(session, output).await;
                session.client.blocked.store(true, Ordering::Relaxed);
                let reply = block(session, spec, std::mem::take(args), output, io).await;
                session.client.blocked.store(false, Ordering::Relaxed);
                match reply {
                    Some(reply) => self.push(session, reply, output),
                    None => self.gone = true,
                }
            }
            Handler::Write(_) => {
                if let Some(reply) = self.answer_if_unchanged(session, spec, &args[..]).await {
                    return self.push(session, reply, output);
                }
                let op = Op::Command {
                    db: session.db,
                    args: std::mem::take(args),
                };
                self.writes.push(if spec.acl.contains(&"scripting") {
                    as_user(session, op)
                } else {
                    op
                });
                self.replies.push(None);
            }
            Handler::Read(run) => {
                self.finish(session, output).await;
                if let Err(e) = self.confirm_read(&node).await {
                    return self.push(session, e, output);
                }
                let reply = {
                    let keyspace = node.keyspace.read();
                    let now_ms = match self.read_time_ms {
                        Some(ms) => ms.max(keyspace.clock_ms()),
                        None => node.cell_now_ms(&keyspace),
                    };
                    self.read_time_ms = Some(now_ms);
                    run(
                        &session_read_ctx(session, spec, &keyspace, now_ms),
                        &args[..],
                    )
                };
                self.push(session, reply, output);
            }
            Handler::Session(run) => {
                self.finish(session, output).await;
                let reply = if spec.name == "ping" && session.in_subscriber_mode() {
                    // A RESP2 subscriber's PING answers in the shape of a message.
                    Frame::Array(vec![
                        Frame::bulk("pong"),
                        Frame::Bulk(args.get(1).cloned().unwrap_or_default()),
                    ])
                } else {
                    run(session, &args[..])
                };
                if !session.skip_reply {
                    self.push(session, reply, output);
                }
                session.skip_reply = false;
                session.publish_state();
            }
            Handler::Replies(run) => {
                self.finish(session, output).await;
                *session.client.last_cmd.lock() = spec.name.to_string();
                for reply in run(session, &args[..]) {
                    self.push(session, reply, output);
                }
                session.publish_state();
            }
            Handler::Connection => {
                self.finish(session, output).await;
                let reply = match crate::acl::full_name(spec, &args[..]).as_str() {
                    "exec" => self.exec(session).await,
                    "watch" => self.watch(session, &args[..]).await,
                    "acl|setuser" => security::acl_setuser(session, &args[..]).await,
                    "acl|deluser" => security::acl_deluser(session, &args[..]).await,
                    "config|set" => security::config_set(session, &args[..]).await,
                    other => Frame::error(format!("ERR '{other}' has no connection handler")),
                };
                self.push(session, reply, output);
                session.publish_state();
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

    /// Whether the connection may run `spec` now: waits until the node has loaded the users
    /// it was started with, re-reads the connection's user if the users changed (a deleted
    /// user's connection is closed), then checks authentication and the user's ACL.
    async fn admit(
        &mut self,
        session: &mut Session,
        spec: &'static CommandSpec,
        args: &[Bytes],
        output: &mut BytesMut,
    ) -> Result<(), Frame> {
        if !*session.node.acl_ready.borrow() {
            self.finish(session, output).await;
            if !security::wait_ready(&session.node).await {
                return Err(Frame::error(security::LOADING));
            }
        }
        if !security::refresh(session) {
            tracing::info!(
                client = session.client.id,
                "closing connection of a deleted ACL user"
            );
            self.gone = true;
            return Ok(());
        }
        if let Some(denied) = security::protected_mode_gate(session) {
            return Err(denied);
        }
        security::check(session, spec, args)
    }

    /// One read confirmation per batch serves every read in it.
    async fn confirm_read(&mut self, node: &Node) -> Result<(), Frame> {
        if !self.read_confirmed {
            node.read_barrier.confirm().await?;
            self.read_confirmed = true;
        }
        Ok(())
    }

    /// Answers a write that would change nothing as a read, without a log entry (Redis does
    /// not propagate such a write either), or `None` to send it to the log.
    ///
    /// Only while none of this batch's writes wait to be proposed: the check sees the
    /// applied state, which must already hold every earlier command of the connection. Only
    /// with linearizable reads: a write must never be judged on a stale state, whatever
    /// `read-consistency` allows reads. It runs first on the state as it is, so a write
    /// that changes something, the common case, goes to the log without waiting for a read
    /// confirmation; a write found to change nothing is confirmed as a read is and checked
    /// again.
    async fn answer_if_unchanged(
        &mut self,
        session: &Session,
        spec: &'static CommandSpec,
        args: &[Bytes],
    ) -> Option<Frame> {
        let check = spec.unchanged?;
        if !self.writes.is_empty() || !session.node.read_barrier.is_linearizable() {
            return None;
        }
        let already_confirmed = self.read_confirmed;
        let unconfirmed = check_unchanged(session, spec, check, args)?;
        if already_confirmed {
            return Some(unconfirmed);
        }
        // A node that cannot confirm (no leader) leaves the write to the log's own errors.
        self.confirm_read(&session.node).await.ok()?;
        check_unchanged(session, spec, check, args)
    }

    /// Queues a command between MULTI and EXEC, refusing what Redis refuses there.
    fn queue(
        &mut self,
        session: &mut Session,
        spec: &'static CommandSpec,
        args: Vec<Bytes>,
        output: &mut BytesMut,
    ) {
        let Some(multi) = session.multi.as_mut() else {
            return;
        };
        if spec.flags & flag::NO_MULTI != 0 {
            multi.failed = true;
            return self.push(session, sub::not_in_multi(), output);
        }
        multi.queued.push(args);
        self.push(session, Frame::Simple("QUEUED".into()), output);
        session.publish_state();
    }

    /// WATCH key [key ...]: remembers how far this node had applied, after a read
    /// confirmation, so any later change to the keys aborts the next EXEC.
    async fn watch(&mut self, session: &mut Session, args: &[Bytes]) -> Frame {
        if session.multi.is_some() {
            return sub::watch_inside_multi();
        }
        let node = session.node.clone();
        if let Err(e) = self.confirm_read(&node).await {
            return e;
        }
        let (since_index, watched_at_ms) = {
            let keyspace = node.keyspace.read();
            (keyspace.applied_index(), node.cell_now_ms(&keyspace))
        };
        for key in &args[1..] {
            let already = session
                .watches
                .iter()
                .any(|w| w.db == session.db && w.key == key);
            if !already {
                session.watches.push(Watch {
                    db: session.db,
                    key: owned(key),
                    since_index,
                    watched_at_ms,
                });
            }
        }
        Frame::ok()
    }

    /// EXEC: the queued keyspace commands go to the log as one entry; connection commands
    /// queued among them (PING, ECHO, CLIENT ...) run here afterwards, their replies put back
    /// in queue order.
    async fn exec(&mut self, session: &mut Session) -> Frame {
        let Some(multi) = session.multi.take() else {
            return sub::exec_without_multi();
        };
        let watches = std::mem::take(&mut session.watches);
        if multi.failed {
            return sub::exec_abort();
        }
        let node = session.node.clone();
        let mut in_entry = Vec::new();
        let mut local = Vec::new();
        for (position, args) in multi.queued.into_iter().enumerate() {
            match command::resolve(&args) {
                Resolved::Command(spec) if goes_in_entry(spec) => in_entry.push((position, args)),
                _ => local.push((position, args)),
            }
        }
        let applied = if in_entry.is_empty() && watches.is_empty() {
            Vec::new()
        } else {
            let op = as_user(
                session,
                Op::Exec {
                    db: session.db,
                    watches,
                    commands: in_entry.iter().map(|(_, a)| a.clone()).collect(),
                },
            );
            match node.write(&mut session.writer, op).await {
                Frame::Array(items) => items,
                // Aborted by WATCH, or the write failed: the reply says which.
                other => return other,
            }
        };
        let mut replies: Vec<(usize, Frame)> = Vec::with_capacity(applied.len() + local.len());
        for ((position, args), reply) in in_entry.into_iter().zip(applied) {
            let reply = match args.first() {
                // Apply cannot know who listens; this node's subscribers are the count.
                Some(name) if name.eq_ignore_ascii_case(b"publish") && !reply.is_error() => {
                    let channel = args.get(1).cloned().unwrap_or_default();
                    Frame::Integer(node.pubsub.receivers(&channel) as i64)
                }
                Some(name) if name.eq_ignore_ascii_case(b"select") && !reply.is_error() => {
                    if let Some(db) = args.get(1).and_then(|d| command::parse_i64(d)) {
                        session.select(db as u32);
                    }
                    reply
                }
                _ => reply,
            };
            replies.push((position, reply));
        }
        for (position, args) in local {
            let reply = match command::resolve(&args) {
                Resolved::Command(spec) => match refused_at_exec(session, spec, &args) {
                    Some(denied) => Frame::error(rules_changed(&denied)),
                    None => match spec.handler {
                        Handler::Session(run) => run(session, &args),
                        Handler::Replies(run) => {
                            let mut frames = run(session, &args);
                            if frames.len() == 1 {
                                frames.remove(0)
                            } else {
                                Frame::Array(frames)
                            }
                        }
                        _ => Frame::error(format!(
                            "ERR '{}' cannot run inside a transaction",
                            spec.name
                        )),
                    },
                },
                Resolved::Error(text) => Frame::Error(text),
            };
            replies.push((position, reply));
        }
        replies.sort_by_key(|(position, _)| *position);
        Frame::Array(replies.into_iter().map(|(_, r)| r).collect())
    }
}

/// The read path's view of `keyspace` for a command of `session` at `now_ms`.
fn session_read_ctx<'k>(
    session: &'k Session,
    spec: &CommandSpec,
    keyspace: &'k Keyspace,
    now_ms: u64,
) -> ReadCtx<'k> {
    ReadCtx {
        keyspace,
        db: session.db,
        now_ms,
        seed: rand::random(),
        touch: !session.no_touch || spec.name == "touch",
        user: restricted(session),
    }
}

/// Runs a write's [`UnchangedCheck`] on the node's applied state at the cell's time.
fn check_unchanged(
    session: &Session,
    spec: &CommandSpec,
    check: UnchangedCheck,
    args: &[Bytes],
) -> Option<Frame> {
    let keyspace = session.node.keyspace.read();
    // Under `maxmemory` Redis refuses a growing command before running it, even one that
    // would change nothing; apply decides that on every replica alike.
    if spec.flags & flag::DENYOOM != 0 && keyspace.has_memory_limit() {
        return None;
    }
    let now_ms = session.node.cell_now_ms(&keyspace);
    check(&session_read_ctx(session, spec, &keyspace, now_ms), args)
}

/// Commands that run at once even inside MULTI, as in Redis.
fn runs_inside_multi(spec: &CommandSpec) -> bool {
    matches!(
        spec.name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Whether a queued command runs inside the EXEC entry (it touches the keyspace, or must
/// take effect in order with what does: `SELECT`, `PUBLISH`).
fn goes_in_entry(spec: &CommandSpec) -> bool {
    matches!(spec.handler, Handler::Write(_) | Handler::Read(_))
        || matches!(spec.name, "select" | "publish")
}

/// The keys a blocking command waits on: the source only for the moving pops (a push to
/// their destination cannot serve them).
fn blocking_keys(spec: &CommandSpec, args: &[Bytes]) -> Vec<Bytes> {
    let keys = spec.keys.extract(args);
    let keys = if matches!(spec.name, "blmove" | "brpoplpush") {
        &keys[..keys.len().min(1)]
    } else {
        &keys[..]
    };
    keys.iter().map(|k| owned(k)).collect()
}

/// The timeout of a blocking command: its last argument, or the first for the `*MPOP`
/// forms, parsed by the same function apply uses, so the wait and the entry agree; `None`
/// means wait forever (0), or an argument apply will refuse with Redis's error.
fn blocking_timeout(spec: &CommandSpec, args: &[Bytes]) -> Option<std::time::Duration> {
    let raw = if matches!(spec.name, "blmpop" | "bzmpop") {
        args.get(1)
    } else {
        args.last()
    }?;
    match crate::keyspace::blocking_timeout_ms(raw, clock::now_ms()) {
        Ok(0) | Err(_) => None,
        Ok(ms) => Some(std::time::Duration::from_millis(ms)),
    }
}

/// What a blocking command answers when its timeout passes.
fn timed_out(spec: &CommandSpec) -> Frame {
    if matches!(spec.name, "blmove" | "brpoplpush") {
        Frame::Null
    } else {
        Frame::NullArray
    }
}

fn is_blocked(reply: &Frame) -> bool {
    matches!(reply, Frame::Error(text) if text == BLOCKED)
}

/// Runs a blocking command: proposes it; while it finds nothing to pop, waits in line on
/// its keys until one is written, the timeout passes, or the client goes away (`None`).
/// Earlier replies are written out first, since the client may wait long for this one.
async fn block(
    session: &mut Session,
    spec: &'static CommandSpec,
    args: Vec<Bytes>,
    output: &mut BytesMut,
    io: &mut Io,
) -> Option<Frame> {
    let node = session.node.clone();
    let db = session.db;
    let keys = blocking_keys(spec, &args);
    // A deadline past what the clock can hold is as good as forever.
    let deadline =
        blocking_timeout(spec, &args).and_then(|t| tokio::time::Instant::now().checked_add(t));
    let seq = node.blocked.arrival();
    let mut shutdown = node.shutdown_signal();
    if !output.is_empty() {
        write_flush(&mut io.writer, output).await.ok()?;
        output.clear();
    }
    loop {
        let reply = node
            .write(
                &mut session.writer,
                Op::Command {
                    db,
                    args: args.clone(),
                },
            )
            .await;
        if !is_blocked(&reply) {
            return Some(reply);
        }
        let waiter = node.blocked.block(seq, db, &keys);
        // A write that landed between the attempt and joining the line found nobody to
        // wake: look once more now that this client is in line.
        if node.any_key_can_serve(db, &keys) {
            node.blocked.take(&waiter);
            continue;
        }
        loop {
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    node.blocked.unblock(&waiter);
                    return None;
                }
                _ = waiter.woken() => {
                    node.blocked.take(&waiter);
                    break;
                }
                _ = sleep => {
                    node.blocked.unblock(&waiter);
                    return Some(timed_out(spec));
                }
                read = io.reader.read_buf(&mut io.input) => {
                    // More commands wait their turn in the buffer; a closed socket ends it.
                    if !matches!(read, Ok(n) if n > 0) {
                        node.blocked.unblock(&waiter);
                        return None;
                    }
                }
            }
        }
    }
}
