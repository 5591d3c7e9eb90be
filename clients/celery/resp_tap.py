"""A RESP tap: a TCP proxy that sits between Redis clients and cellkv and records what the
clients send.

Every byte is forwarded unchanged in both directions; beside that, the client→server stream
is parsed into commands and the server→client stream into replies, so the tap can say which
distinct commands a client uses (with counts) and which of them the server answered with an
error. Container commands are recorded with their subcommand (``CLIENT SETINFO``,
``SCRIPT LOAD``), and ``HELLO`` with the protocol version it asks for (``HELLO 3``), so two
runs that differ only in protocol can be told apart.

Replies are matched to requests in order, per connection. Two things break that order and
are handled: ``MULTI``/``EXEC`` (errors inside the ``EXEC`` array are charged to the queued
command they answer) and pub/sub (RESP3 pushes are skipped; once a RESP2 connection
subscribes, its replies are no longer matched and errors on it are charged to
``(subscribed)``).

Run as a program::

    python resp_tap.py --upstream 127.0.0.1:6390 --out stats.json

It prints ``resp-tap listening on HOST:PORT`` once it accepts connections, and writes the
statistics as JSON to ``--out`` when it gets SIGTERM or SIGINT, then exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections import Counter, deque

#: Commands whose first argument names a subcommand: recorded as "NAME SUB".
CONTAINERS = {
    b"ACL", b"CLIENT", b"CLUSTER", b"COMMAND", b"CONFIG", b"DEBUG", b"FUNCTION",
    b"LATENCY", b"MEMORY", b"MODULE", b"OBJECT", b"PUBSUB", b"SCRIPT", b"SLOWLOG",
    b"XGROUP", b"XINFO",
}
SUBSCRIBING = {b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE"}
UNSUBSCRIBING = {b"UNSUBSCRIBE", b"PUNSUBSCRIBE", b"SUNSUBSCRIBE"}


class Incomplete(Exception):
    """The buffer ends inside a frame: wait for more bytes."""


def command_name(args: list[bytes]) -> str:
    """The name the tap records for one command."""
    name = args[0].upper()
    if name in CONTAINERS and len(args) > 1:
        return f"{name.decode(errors='replace')} {args[1].upper().decode(errors='replace')}"
    if name == b"HELLO":
        return "HELLO " + args[1].decode(errors="replace") if len(args) > 1 else "HELLO"
    return name.decode(errors="replace")


def _line(buf: bytearray, pos: int) -> tuple[bytes, int]:
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete
    return bytes(buf[pos:end]), end + 2


def parse_request(buf: bytearray, pos: int) -> tuple[list[bytes], int]:
    """One client command starting at ``pos``: a RESP array of bulk strings, or an inline
    command line. Returns the arguments and the position after it."""
    if buf[pos:pos + 1] == b"*":
        header, pos = _line(buf, pos)
        count = int(header[1:])
        args = []
        for _ in range(max(count, 0)):
            header, pos = _line(buf, pos)
            if header[:1] != b"$":
                raise ValueError(f"expected a bulk string, got {header[:20]!r}")
            size = int(header[1:])
            if len(buf) < pos + size + 2:
                raise Incomplete
            args.append(bytes(buf[pos:pos + size]))
            pos += size + 2
        return args, pos
    line, pos = _line(buf, pos)
    return line.split(), pos


class Reply:
    """One parsed server reply: only what the tap needs from it."""

    __slots__ = ("push", "error", "items")

    def __init__(self, push=False, error=None, items=None):
        self.push = push          # a RESP3 out-of-band push (pub/sub message, invalidation)
        self.error = error        # the error text, for an error reply
        self.items = items        # the elements, for an aggregate reply


def parse_reply(buf: bytearray, pos: int) -> tuple[Reply, int]:
    """One server reply (RESP2 or RESP3) starting at ``pos``."""
    kind = buf[pos:pos + 1]
    if not kind:
        raise Incomplete
    if kind == b"|":  # an attribute map, then the reply it decorates
        header, pos = _line(buf, pos)
        for _ in range(2 * int(header[1:])):
            _, pos = parse_reply(buf, pos)
        return parse_reply(buf, pos)
    header, pos = _line(buf, pos)
    body = header[1:]
    if kind in (b"+", b":", b"_", b"#", b",", b"("):
        return Reply(), pos
    if kind == b"-":
        return Reply(error=body.decode(errors="replace")), pos
    if kind in (b"$", b"!", b"="):
        size = int(body)
        if size < 0:
            return Reply(), pos
        if len(buf) < pos + size + 2:
            raise Incomplete
        text = bytes(buf[pos:pos + size])
        pos += size + 2
        return Reply(error=text.decode(errors="replace") if kind == b"!" else None), pos
    if kind in (b"*", b"~", b">", b"%"):
        count = int(body)
        if count < 0:
            return Reply(), pos
        if kind == b"%":
            count *= 2
        items = []
        for _ in range(count):
            item, pos = parse_reply(buf, pos)
            items.append(item)
        return Reply(push=kind == b">", items=items), pos
    raise ValueError(f"unknown RESP type byte {kind!r}")


class Stats:
    """What every connection through the tap has sent, merged."""

    def __init__(self):
        self.connections = 0
        self.commands = Counter()
        self.first_commands = Counter()   # the first command of each connection
        self.handshakes = Counter()       # the first HELLO of each connection that sent one
        self.errors = Counter()           # "COMMAND -> error text"
        self.parse_failures = Counter()

    def as_json(self) -> dict:
        return {
            "connections": self.connections,
            "commands": dict(sorted(self.commands.items())),
            "first_commands": dict(sorted(self.first_commands.items())),
            # How each connection chose its protocol: by its first HELLO, or by none.
            "handshakes": dict(sorted(
                (self.handshakes + Counter(
                    {"no HELLO": self.connections - sum(self.handshakes.values())}
                )).items())),
            "errors": dict(sorted(self.errors.items())),
            "parse_failures": dict(self.parse_failures),
        }


class Conversation:
    """One client connection: parses both directions and matches replies to requests."""

    def __init__(self, stats: Stats):
        self.stats = stats
        self.requests = bytearray()
        self.replies = bytearray()
        # What each outstanding reply answers: a command name, or for EXEC the list of the
        # names it queued. None marks a reply that is not matched (after a RESP2 SUBSCRIBE).
        self.pending: deque = deque()
        self.queued: list[str] | None = None   # inside MULTI: the commands queued so far
        self.resp3 = False
        self.subscribed_resp2 = False
        self.first = True
        self.hello = False
        self.broken_requests = False
        self.broken_replies = False

    def from_client(self, data: bytes):
        if self.broken_requests:
            return
        self.requests += data
        pos = 0
        try:
            while pos < len(self.requests):
                try:
                    args, pos = parse_request(self.requests, pos)
                except Incomplete:
                    break
                if args:
                    self._request(args)
        except (ValueError, IndexError) as e:
            self.broken_requests = True
            self.stats.parse_failures[f"request: {e}"] += 1
        del self.requests[:pos]

    def _request(self, args: list[bytes]):
        name = command_name(args)
        self.stats.commands[name] += 1
        if self.first:
            self.stats.first_commands[name] += 1
            self.first = False
        head = args[0].upper()
        if head == b"HELLO" and not self.hello:
            self.hello = True
            self.stats.handshakes[name] += 1
        if head == b"HELLO" and len(args) > 1 and args[1] in (b"2", b"3"):
            # The reply to HELLO already comes in the protocol asked for.
            self.resp3 = args[1] == b"3"
        if self.subscribed_resp2:
            return
        if head in SUBSCRIBING or head in UNSUBSCRIBING:
            # Their confirmations are pushes in RESP3 (skipped) and, in RESP2, arrays that
            # can't be told apart from messages: stop matching there.
            if not self.resp3 and head in SUBSCRIBING:
                self.subscribed_resp2 = True
            return
        if self.queued is not None and head not in (b"EXEC", b"DISCARD", b"MULTI", b"WATCH"):
            self.queued.append(name)
            self.pending.append(name)  # answered +QUEUED (or an error)
            return
        if head == b"MULTI":
            self.queued = []
        if head == b"EXEC":
            self.pending.append(self.queued if self.queued is not None else name)
            self.queued = None
            return
        if head == b"DISCARD":
            self.queued = None
        self.pending.append(name)

    def from_server(self, data: bytes):
        if self.broken_replies:
            return
        self.replies += data
        pos = 0
        try:
            while pos < len(self.replies):
                try:
                    reply, pos = parse_reply(self.replies, pos)
                except Incomplete:
                    break
                self._reply(reply)
        except (ValueError, IndexError) as e:
            self.broken_replies = True
            self.stats.parse_failures[f"reply: {e}"] += 1
        del self.replies[:pos]

    def _reply(self, reply: Reply):
        if reply.push:
            return
        if self.subscribed_resp2 and not self.pending:
            if reply.error is not None:
                self.stats.errors[f"(subscribed) -> {reply.error}"] += 1
            return
        what = self.pending.popleft() if self.pending else "(unmatched)"
        if isinstance(what, list):  # EXEC: one element per queued command
            if reply.error is not None:
                self.stats.errors[f"EXEC -> {reply.error}"] += 1
            for name, item in zip(what, reply.items or []):
                if item.error is not None:
                    self.stats.errors[f"{name} (in EXEC) -> {item.error}"] += 1
            return
        if reply.error is not None:
            self.stats.errors[f"{what} -> {reply.error}"] += 1


class Tap:
    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.stats = Stats()
        self._tasks: set[asyncio.Task] = set()

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        self.stats.connections += 1
        conv = Conversation(self.stats)
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return

        async def pump(reader, writer, observe):
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    observe(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                # Either side going away ends the whole conversation, as a direct
                # connection would end.
                for w in (writer, client_w, server_w):
                    try:
                        w.close()
                    except (ConnectionError, OSError, RuntimeError):
                        pass

        await asyncio.gather(
            pump(client_r, server_w, conv.from_client),
            pump(server_r, client_w, conv.from_server),
        )


async def serve(args) -> None:
    host, port = args.upstream.rsplit(":", 1)
    tap = Tap(host, int(port))
    server = await asyncio.start_server(tap.handle, args.listen, args.port)
    addr = server.sockets[0].getsockname()
    print(f"resp-tap listening on {addr[0]}:{addr[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    with open(args.out, "w") as f:
        json.dump(tap.stats.as_json(), f, indent=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: a port the kernel picks")
    p.add_argument("--out", required=True, help="where to write the JSON statistics")
    asyncio.run(serve(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
