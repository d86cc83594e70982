#!/usr/bin/env python3
"""peers -- scripted SMTP peers for probed's integration lab.

Owns: one asyncio process serving every scripted misbehaviour of
tests/lab/README.md, each on its own loopback address (127.0.3.N:25), and
one log file per peer (peers-<name>.log in --logdir) that records every
connection, every command line and every close, so tests can count sessions
and RCPTs.  Real servers (Postfix, NSD) cover normal behaviour; these peers
exist only for what no real server does on demand.

Log format, one event per line, tab-separated:
    <unix time> <session number> <kind> <text>
kind is "connect" (text: client address), "cmd" (text: the command line as
received, without CRLF), "tls" (text: bytes received after STARTTLS),
"data" (text: message lines swallowed), or "close" (text: why).  Octets
that are not printable ASCII are written as \\xNN so a line is always one
line.

Limits: every session ends by itself: an idle timeout (--idle, default
120 s) and a whole-session cap (--session-max, default 600 s); the endless
EHLO reply of "hugereply" stops after --huge-lines lines (it then holds
the connection open like a tarpit).  Command lines are read up to 4096
octets; longer ones are answered with 500 and discarded up to their LF.

Security: binds only the loopback addresses in PEERS.  Never delivers
anything: DATA is swallowed (bounded) and answered 250 "discarded".

Usage: peers.py --logdir DIR [--ready FILE] [--only NAME ...]
       [--huge-lines N] [--idle S] [--session-max S]
Exit status: 0 after SIGTERM/SIGINT, 2 when an address cannot be bound.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import struct
import sys
import time

PORT = 25

# name -> address: the one table of who listens where (lab.py imports it;
# the zone's MX records point each <name>.test here).
PEERS = [
    ("heloonly", "127.0.3.1"),
    ("nullsender", "127.0.3.2"),
    ("banner554", "127.0.3.3"),
    ("blocklist", "127.0.3.4"),
    ("tarpit", "127.0.3.5"),
    ("reset", "127.0.3.6"),
    ("malformed", "127.0.3.7"),
    ("hugereply", "127.0.3.8"),
    ("unverifiable", "127.0.3.9"),
    ("ratelimit", "127.0.3.10"),
    ("tempfail", "127.0.3.11"),
    ("badtls", "127.0.3.12"),
    ("sendersblocked", "127.0.3.13"),
    ("onercpt", "127.0.3.14"),
    ("dropafterreject", "127.0.3.15"),
]

# Nothing ever listens here: deadprimary.test's first MX, connection refused.
DEAD_ADDRESS = "127.0.3.99"

# The one local part the scripted peers accept (others get 550 5.1.1).
KNOWN_USER = "alice"

MAX_LINE = 4096
MAX_DATA = 10 * 1024 * 1024
HUGE_LINE = 100 * 1024

REPLIES = {
    "ehlo_refused": "502 5.5.2 Error: command not recognized",
    "null_sender": "553 5.1.7 null sender not accepted",
    "sender_blocked": "550 5.7.1 sender rejected",
    "banner554": "554 5.7.1 Service unavailable; client host blocked using "
                 "zen.spamhaus.org",
    "blocklist": "550 5.7.1 Service unavailable, Client host [%s] blocked "
                 "using Spamhaus",
    "unverifiable": "252 2.1.5 Cannot VRFY user, but will accept message",
    "ratelimit": "421 4.7.0 Try again later, closing connection",
    "tempfail": "451 4.3.0 Temporary local problem",
    "too_many": "452 4.5.3 Too many recipients",
    "malformed": "hello there",
}


def escape(b):
    """One log line's text: printable ASCII as is, everything else \\xNN."""
    out = []
    for c in b:
        if 0x20 <= c < 0x7f and c != 0x5c:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


class PeerLog:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="ascii")

    def write(self, sid, kind, text):
        # One write per line, flushed at once: tests read while we run.
        self.f.write("%.6f\t%d\t%s\t%s\n" % (time.time(), sid, kind, text))


class Hold(Exception):
    """Stop answering; read and log until the client goes away."""


class Close(Exception):
    """End the session now (normal close, FIN)."""


class Reset(Exception):
    """End the session with a TCP RST (SO_LINGER 0)."""


class Session:
    """One SMTP conversation.  The base class is a plain, well-behaved
    server; each peer overrides the one step it gets wrong."""

    ehlo_keywords = ["PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES",
                     "8BITMIME"]

    def __init__(self, peer, reader, writer, sid, opts):
        self.peer = peer
        self.reader = reader
        self.writer = writer
        self.sid = sid
        self.opts = opts
        self.log = peer.log
        self.host = "mx.%s.test" % peer.name
        addr = writer.get_extra_info("peername")
        self.client = addr[0] if addr else "?"
        self.buf = bytearray()
        self.mail_from = None
        self.rcpts = []          # accepted recipients of this transaction
        self.greeted = False

    # ---------------------------------------------------------- plumbing

    async def send(self, text):
        if isinstance(text, str):
            text = text.encode("ascii")
        self.writer.write(text)
        await self.writer.drain()

    async def reply(self, *lines):
        """A (possibly multi-line) reply: '250-a', '250 b'."""
        await self.send("".join(l + "\r\n" for l in lines))

    async def readline(self):
        """One command line without CRLF, or None at EOF.  Over-long lines
        are answered 500 and discarded up to their LF."""
        too_long = False
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                if too_long:
                    self.log.write(self.sid, "cmd", "[over-long line]")
                    await self.reply("500 5.5.2 Error: line too long")
                    too_long = False
                    continue
                if line.endswith(b"\r"):
                    line = line[:-1]
                return line
            if len(self.buf) > MAX_LINE:
                too_long = True
                self.buf.clear()
            chunk = await asyncio.wait_for(self.reader.read(65536),
                                           self.opts.idle)
            if not chunk:
                return None
            self.buf += chunk

    async def hold(self, kind="cmd"):
        """Say nothing more; log what arrives until EOF or the idle limit."""
        while True:
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536),
                                               self.opts.idle)
            except asyncio.TimeoutError:
                raise Close("idle")
            if not chunk:
                raise Close("client closed")
            if kind == "tls":
                self.log.write(self.sid, "tls", "%d bytes" % len(chunk))
            else:
                self.buf += chunk
                while True:
                    i = self.buf.find(b"\n")
                    if i < 0:
                        break
                    line = bytes(self.buf[:i]).rstrip(b"\r")
                    del self.buf[:i + 1]
                    self.log.write(self.sid, "cmd", escape(line))
                if len(self.buf) > MAX_LINE:
                    self.buf.clear()

    # ---------------------------------------------------------- the dialogue

    async def run(self):
        await self.banner()
        while True:
            try:
                line = await self.readline()
            except asyncio.TimeoutError:
                await self.reply("421 4.4.2 %s Error: timeout exceeded"
                                 % self.host)
                raise Close("idle")
            if line is None:
                raise Close("client closed")
            self.log.write(self.sid, "cmd", escape(line))
            text = line.decode("latin-1")
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            handler = getattr(self, "do_" + verb, None) \
                if verb.isalpha() else None
            if handler is None:
                await self.unknown(verb, arg)
            else:
                await handler(arg)

    async def banner(self):
        await self.reply("220 %s ESMTP lab peer %s" % (self.host,
                                                        self.peer.name))

    async def unknown(self, verb, arg):
        await self.reply("502 5.5.2 Error: command not recognized")

    async def do_EHLO(self, arg):
        self.greeted = True
        self.reset_transaction()
        kw = [self.host] + self.ehlo_keywords
        await self.reply(*["250-" + k for k in kw[:-1]] + ["250 " + kw[-1]])

    async def do_HELO(self, arg):
        self.greeted = True
        self.reset_transaction()
        await self.reply("250 %s" % self.host)

    def reset_transaction(self):
        self.mail_from = None
        self.rcpts = []

    @staticmethod
    def path_arg(arg, keyword):
        """The <path> of 'FROM:<path> params' / 'TO:<path>', or None."""
        a = arg.strip()
        if not a.upper().startswith(keyword):
            return None
        a = a[len(keyword):].lstrip()
        if not a.startswith("<"):
            return None
        end = a.find(">")
        if end < 0:
            return None
        return a[1:end]

    async def do_MAIL(self, arg):
        if not self.greeted:
            await self.reply("503 5.5.1 Error: send HELO/EHLO first")
            return
        if self.mail_from is not None:
            await self.reply("503 5.5.1 Error: nested MAIL command")
            return
        sender = self.path_arg(arg, "FROM:")
        if sender is None:
            await self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        await self.mail(sender)

    async def mail(self, sender):
        self.mail_from = sender
        await self.reply("250 2.1.0 Ok")

    async def do_RCPT(self, arg):
        if self.mail_from is None:
            await self.reply("503 5.5.1 Error: need MAIL command")
            return
        rcpt = self.path_arg(arg, "TO:")
        if rcpt is None:
            await self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        await self.rcpt(rcpt)

    def known(self, rcpt):
        local = rcpt.rpartition("@")[0] if "@" in rcpt else rcpt
        return local.lower() == KNOWN_USER

    async def rcpt(self, rcpt):
        if self.known(rcpt):
            self.rcpts.append(rcpt)
            await self.reply("250 2.1.5 Ok")
        else:
            await self.reply("550 5.1.1 <%s>: Recipient address rejected: "
                             "User unknown" % rcpt)

    async def do_DATA(self, arg):
        if not self.rcpts:
            await self.reply("554 5.5.1 Error: no valid recipients")
            return
        await self.reply("354 End data with <CR><LF>.<CR><LF>")
        size = lines = 0
        while True:
            line = await self.readline()
            if line is None:
                raise Close("client closed in DATA")
            if line == b".":
                break
            size += len(line) + 2
            lines += 1
            if size > MAX_DATA:
                await self.reply("552 5.3.4 Error: message too big")
                raise Close("message too big")
        self.log.write(self.sid, "data", "%d lines" % lines)
        self.reset_transaction()
        await self.reply("250 2.0.0 Ok: discarded by lab peer")

    async def do_RSET(self, arg):
        self.reset_transaction()
        await self.reply("250 2.0.0 Ok")

    async def do_NOOP(self, arg):
        await self.reply("250 2.0.0 Ok")

    async def do_VRFY(self, arg):
        await self.reply("252 2.0.0 Send some mail, I'll try my best")

    async def do_QUIT(self, arg):
        await self.reply("221 2.0.0 Bye")
        raise Close("quit")


class HeloOnly(Session):
    async def do_EHLO(self, arg):
        await self.reply(REPLIES["ehlo_refused"])


class NullSender(Session):
    async def mail(self, sender):
        if sender == "":
            await self.reply(REPLIES["null_sender"])
        else:
            await Session.mail(self, sender)


class SendersBlocked(Session):
    async def mail(self, sender):
        await self.reply(REPLIES["sender_blocked"])


class Banner554(Session):
    # RFC 5321 3.1: after a 554 greeting the server waits for QUIT and
    # answers 503 to anything else.
    async def banner(self):
        await self.reply(REPLIES["banner554"])

    async def unknown(self, verb, arg):
        await self.reply("503 5.5.1 Error: bad sequence of commands")

    do_EHLO = do_HELO = do_MAIL = do_RCPT = do_DATA = do_RSET = do_NOOP = \
        do_VRFY = lambda self, arg: self.unknown(None, arg)


class Blocklist(Session):
    async def rcpt(self, rcpt):
        await self.reply(REPLIES["blocklist"] % self.client)


class Tarpit(Session):
    async def run(self):
        await self.hold()


class ResetOnRcpt(Session):
    async def rcpt(self, rcpt):
        raise Reset("RST on RCPT")


class Malformed(Session):
    async def unknown(self, verb, arg):
        await self.reply(REPLIES["malformed"])

    do_EHLO = do_HELO = do_MAIL = do_RCPT = do_DATA = do_RSET = do_NOOP = \
        do_VRFY = lambda self, arg: self.unknown(None, arg)


class HugeReply(Session):
    async def do_EHLO(self, arg):
        # An "endless" multi-line reply: no final line ever comes.
        await self.send("250-%s\r\n" % self.host)
        batch = 500
        sent = 0
        while sent < self.opts.huge_lines:
            n = min(batch, self.opts.huge_lines - sent)
            await self.send("".join("250-X-LAB-FILLER-%07d all work and no "
                                    "play makes a dull reply\r\n" % (sent + i)
                                    for i in range(n)))
            sent += n
        raise Hold()

    async def unknown(self, verb, arg):
        # A single 100 KB line with no CRLF, then silence.
        await self.send("250 " + "x" * HUGE_LINE)
        raise Hold()

    do_HELO = do_MAIL = do_RCPT = do_DATA = do_RSET = do_NOOP = \
        do_VRFY = lambda self, arg: self.unknown(None, arg)


class Unverifiable(Session):
    async def rcpt(self, rcpt):
        self.rcpts.append(rcpt)
        await self.reply(REPLIES["unverifiable"])


class RateLimit(Session):
    async def banner(self):
        await self.reply(REPLIES["ratelimit"])
        raise Close("rate limited")


class TempFail(Session):
    async def rcpt(self, rcpt):
        await self.reply(REPLIES["tempfail"])


class BadTLS(Session):
    ehlo_keywords = ["PIPELINING", "SIZE 10240000", "STARTTLS",
                     "ENHANCEDSTATUSCODES", "8BITMIME"]

    async def do_STARTTLS(self, arg):
        await self.reply("220 2.0.0 Ready to start TLS")
        # Wait for the ClientHello, so the garbage cannot be mistaken for
        # bytes that belong to the plain-text phase.
        if self.buf:
            got = len(self.buf)
            self.buf.clear()
        else:
            try:
                got = len(await asyncio.wait_for(self.reader.read(65536),
                                                 self.opts.idle))
            except asyncio.TimeoutError:
                raise Close("idle after STARTTLS")
            if not got:
                raise Close("client closed after STARTTLS")
        self.log.write(self.sid, "tls", "%d bytes" % got)
        # Garbage where a ServerHello belongs: not a TLS record at all.
        await self.send(b"HTTP/1.0 400 this is not TLS\r\n"
                        b"\x00\xffgarbage garbage garbage\r\n")
        raise Hold("tls")


class OneRcpt(Session):
    # One accepted recipient per transaction; a rejected RCPT does not use
    # up the allowance (as Postfix's smtpd_recipient_limit counts).
    async def rcpt(self, rcpt):
        if self.rcpts:
            await self.reply(REPLIES["too_many"])
        else:
            await Session.rcpt(self, rcpt)


class DropAfterReject(Session):
    async def rcpt(self, rcpt):
        if self.known(rcpt):
            await Session.rcpt(self, rcpt)
        else:
            await Session.rcpt(self, rcpt)
            raise Close("dropped after reject")


BEHAVIOURS = {
    "heloonly": HeloOnly,
    "nullsender": NullSender,
    "banner554": Banner554,
    "blocklist": Blocklist,
    "tarpit": Tarpit,
    "reset": ResetOnRcpt,
    "malformed": Malformed,
    "hugereply": HugeReply,
    "unverifiable": Unverifiable,
    "ratelimit": RateLimit,
    "tempfail": TempFail,
    "badtls": BadTLS,
    "sendersblocked": SendersBlocked,
    "onercpt": OneRcpt,
    "dropafterreject": DropAfterReject,
}


class Peer:
    def __init__(self, name, address, logdir, opts):
        self.name = name
        self.address = address
        self.cls = BEHAVIOURS[name]
        self.log = PeerLog(os.path.join(logdir, "peers-%s.log" % name))
        self.opts = opts
        self.sessions = 0
        self.server = None

    async def handle(self, reader, writer):
        self.sessions += 1
        sid = self.sessions
        peer = writer.get_extra_info("peername")
        self.log.write(sid, "connect", "%s:%d" % peer[:2] if peer else "?")
        s = self.cls(self, reader, writer, sid, self.opts)
        why = "?"
        rst = False
        try:
            await asyncio.wait_for(self._run(s), self.opts.session_max)
        except Close as e:
            why = str(e) or "closed"
        except Reset as e:
            why = str(e) or "reset"
            rst = True
        except asyncio.TimeoutError:
            why = "session time limit"
        except (ConnectionError, BrokenPipeError) as e:
            why = "connection error: %s" % e.__class__.__name__
        except Exception as e:  # a peer bug must not kill the process
            why = "internal error: %r" % (e,)
        self.log.write(sid, "close", why)
        if rst:
            sock = writer.get_extra_info("socket")
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            except OSError:
                pass
            writer.transport.abort()
        else:
            try:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 2)
            except Exception:
                pass

    async def _run(self, s):
        try:
            await s.run()
        except Hold as h:
            await s.hold(str(h) or "cmd")

    async def start(self):
        self.server = await asyncio.start_server(
            self.handle, self.address, PORT, reuse_address=True,
            backlog=128)


async def main_async(opts):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    names = opts.only or [n for n, _ in PEERS]
    table = dict(PEERS)
    peers = []
    for name in names:
        if name not in table:
            print("peers: unknown peer %r" % name, file=sys.stderr)
            return 2
        p = Peer(name, table[name], opts.logdir, opts)
        try:
            await p.start()
        except OSError as e:
            print("peers: cannot listen on %s:%d for %s: %s"
                  % (p.address, PORT, name, e), file=sys.stderr)
            return 2
        peers.append(p)
    if opts.ready:
        tmp = opts.ready + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(),
                       "peers": {p.name: p.address for p in peers}}, f)
        os.rename(tmp, opts.ready)
    print("peers: %d listening" % len(peers), file=sys.stderr, flush=True)
    await stop.wait()
    for p in peers:
        p.server.close()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="scripted SMTP peers")
    ap.add_argument("--logdir", required=True)
    ap.add_argument("--ready", help="file written once every peer listens")
    ap.add_argument("--only", nargs="*", help="serve only these peers")
    ap.add_argument("--huge-lines", type=int, default=100000)
    ap.add_argument("--idle", type=float, default=120.0)
    ap.add_argument("--session-max", type=float, default=600.0)
    opts = ap.parse_args(argv)
    return asyncio.run(main_async(opts))


if __name__ == "__main__":
    sys.exit(main())
