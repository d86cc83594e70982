"""faults_net -- the network half of the fault-injection matrix
(doc/faults.md): what probed does when DNS servers and SMTP peers misbehave.

Every row is a fault with the answer a user must get: a fault is never
`undeliverable` (accuracy is the product), it is `unknown` with the reason
that names it (dns_error, timeout, protocol_error, tls_failed, ...), or,
where probed can work around it (a broken opportunistic TLS handshake, a
self-signed or expired certificate), the real answer.  Each row is also
bounded in time (its named timeouts plus slack), and while the faults run
probed keeps answering PING and CHECK on other connections promptly.  The
two flooding peers (a 10 MB line, an endless multi-line reply) also prove
that memory stays bounded.

Everything here is scripted inside this process, on 127.0.7.x (never the
lab's 127.0.1-4.x; no lab is needed):
  - a DNS server on 127.0.7.53 (an ephemeral port), wire format written by
    hand, one behaviour per domain (SERVFAIL, TC=1, garbage, wrong ids,
    slow answers, ...), and ok domains whose MX points at the SMTP peers;
  - a dead DNS address (127.0.7.54: nothing listens, the kernel answers
    ICMP port unreachable) and a black hole (127.0.7.55: a socket that
    never reads), each used by a probed of its own;
  - SMTP peers, one per fault, on 127.0.7.10.. (one shared ephemeral port,
    given to probed as smtp.port).
Certificates for the TLS peers are made with the openssl CLI at run time.
"""

import os
import random
import re
import select
import socket
import ssl
import struct
import threading
import time

import harness
from harness import T, now, rss_kb

suite = harness.Suite("faults_net")

# probed's timeouts for these tests: short, so the matrix runs in seconds
DNS_TIMEOUT = 1.0           # udns: tried twice, second wait doubled -> ~3 s
GREETING_TIMEOUT = 2.0
COMMAND_TIMEOUT = 2.0
CONNECT_TIMEOUT = 2.0
# udns waits dns.timeout, then twice that, in whole seconds of time(): a
# lookup nobody answers fails after 2 to 3 x dns.timeout
DNS_WINDOW = 3 * DNS_TIMEOUT
DNS_WINDOW_MIN = 2 * DNS_TIMEOUT - 0.2
SLACK = 1.5                 # what a row may take past its named timeouts
LIVE_LATENCY = 0.5          # PING / CHECK on another connection, worst case
LIVE_EVERY = 0.1

NET = "127.0.7."
DNS_ADDR = NET + "53"
DNS_DEAD = NET + "54"       # nothing listens: ICMP port unreachable
DNS_HOLE = NET + "55"       # bound, never read: no answer, no error

KNOWN_USER = "alice"        # the one mailbox every scripted peer has


# ================================================================ DNS

T_A, T_MX, T_AAAA = 1, 15, 28


def dns_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def parse_query(pkt):
    """(id, flags, question octets, name, qtype) or None."""
    if len(pkt) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", pkt[:6])
    if qd != 1:
        return None
    i, labels = 12, []
    while i < len(pkt):
        n = pkt[i]
        if n == 0:
            i += 1
            break
        if n & 0xc0:
            return None
        labels.append(pkt[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    if i + 4 > len(pkt):
        return None
    qtype = struct.unpack("!H", pkt[i:i + 2])[0]
    return qid, flags, pkt[12:i + 4], ".".join(labels).lower(), qtype


def rr(rtype, rdata, ttl=60):
    # owner: a pointer to the question name at offset 12
    return struct.pack("!HHHIH", 0xc00c, rtype, 1, ttl, len(rdata)) + rdata


def mx_rdata(pref, host):
    return struct.pack("!H", pref) + dns_name(host)


def response(q, rcode=0, answers=(), tc=False, qid=None, ancount=None):
    qid0, flags, question, _, _ = q
    f = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode   # QR op AA RD RA
    if tc:
        f |= 0x0200
    an = len(answers) if ancount is None else ancount
    return (struct.pack("!HHHHHH", qid0 if qid is None else qid, f, 1, an, 0, 0)
            + question + b"".join(answers))


class DnsServer:
    """The scripted DNS server: one thread, one UDP socket; answers can be
    delayed (a timer each) or never sent.  Records every query."""

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 0))
        self.port = self.sock.getsockname()[1]
        self.zone_a = {}            # host -> IPv4
        self.zone_mx = {}           # domain -> [(pref, host)]
        self.queries = []           # (time, name, qtype)
        self.stopping = False
        self.lock = threading.Lock()
        self.rng = random.Random(7)
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def server(self):
        return "%s:%d" % (self.sock.getsockname()[0], self.port)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()

    def hits(self, name):
        with self.lock:
            return sum(1 for _, n, _ in self.queries if n == name)

    def send(self, data, to, delay=0.0):
        if delay <= 0:
            try:
                self.sock.sendto(data, to)
            except OSError:
                pass
            return
        t = threading.Timer(delay, self.send, (data, to))
        t.daemon = True
        t.start()

    def loop(self):
        self.sock.settimeout(0.1)
        while not self.stopping:
            try:
                pkt, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            q = parse_query(pkt)
            if q is None:
                continue
            with self.lock:
                self.queries.append((time.monotonic(), q[3], q[4]))
            for data, delay in self.answer(q):
                self.send(data, peer, delay)

    def normal(self, q):
        """The zone's answer: MX, A, NODATA for what exists, else NXDOMAIN."""
        _, _, _, name, qtype = q
        if name in self.zone_mx:
            if qtype == T_MX:
                return response(q, answers=[rr(T_MX, mx_rdata(p, h))
                                            for p, h in self.zone_mx[name]])
            return response(q)
        if name in self.zone_a:
            if qtype == T_A:
                return response(q, answers=[rr(T_A, socket.inet_aton(self.zone_a[name]))])
            return response(q)
        return response(q, rcode=3)

    def answer(self, q):
        """[(packet, delay)] for a query: the per-domain misbehaviour."""
        qid, _, question, name, qtype = q
        if name == "d-servfail.fault":
            return [(response(q, rcode=2), 0)]
        if name == "d-trunc.fault":
            # TC=1 and no answer: over UDP only, this must not read as
            # "no MX records" (then implicit MX, then no_mx).
            return [(response(q, tc=True), 0)]
        if name == "random.d-garbage.fault":
            # the right id (so it is not dropped as someone else's), then
            # random octets
            body = bytes(self.rng.getrandbits(8) for _ in range(80))
            return [(struct.pack("!H", qid) + body, 0)]
        if name == "short.d-garbage.fault":
            return [(struct.pack("!H", qid) + b"\x81\x80\x00", 0)]
        if name == "counts.d-garbage.fault":
            # a valid header and question claiming 3 answers it never holds
            return [(response(q, ancount=3), 0)]
        if name == "loop.d-garbage.fault":
            # an MX whose exchange name is a compression pointer to itself
            head = response(q, ancount=1)
            at = len(head) + 12 + 2           # rr header 12, preference 2
            rdata = struct.pack("!H", 10) + struct.pack("!H", 0xc000 | at)
            return [(head + rr(T_MX, rdata), 0)]
        if name == "d-wrongid.fault":
            return [(response(q, qid=qid ^ 0x5a5a), 0)]
        if name == "d-wrongid2.fault":
            # a forged answer first (wrong id, and an MX elsewhere), then
            # the real one: the real one must win
            forged = response(q, qid=qid ^ 0x5a5a,
                              answers=[rr(T_MX, mx_rdata(10, "mx-nobanner.fault"))])
            return [(forged, 0), (self.normal_for(q, "ok.fault"), 0.05)]
        if name == "d-slow.fault":
            return [(self.normal_for(q, "ok.fault"), DNS_WINDOW + 2.0)]
        if name == "d-late.fault":
            return [(self.normal_for(q, "ok.fault"), DNS_TIMEOUT + 0.5)]
        if name == "d-slowok.fault":
            return [(self.normal_for(q, "ok.fault"), DNS_TIMEOUT / 2)]
        return [(self.normal(q), 0)]

    def normal_for(self, q, like):
        """The answer `like` gets, for this query's name."""
        _, _, _, name, qtype = q
        if qtype == T_MX:
            return response(q, answers=[rr(T_MX, mx_rdata(p, h))
                                        for p, h in self.zone_mx[like]])
        return response(q)


# ================================================================ SMTP

class Drop(Exception):
    """End the session now (FIN)."""


class Reset(Exception):
    """End the session with a TCP RST."""


class Dialogue:
    """One SMTP session on a blocking socket, in its own thread.  Replies
    are buffered and leave when the peer would block for input, as a real
    pipelining server writes them (so a pipelined group's replies leave in
    one write).  Subclasses override the step they get wrong."""

    ehlo_keywords = ["PIPELINING", "ENHANCEDSTATUSCODES"]
    tls_context = None

    def __init__(self, peer, sock):
        self.peer = peer
        self.sock = sock
        self.buf = bytearray()
        self.out = bytearray()
        self.greeted = False
        self.mail = False

    def flush(self):
        if self.out:
            self.sock.sendall(bytes(self.out))
            self.out.clear()

    def reply(self, *lines):
        self.out += b"".join(l.encode("ascii") + b"\r\n" for l in lines)

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i]).rstrip(b"\r")
                del self.buf[:i + 1]
                return line.decode("latin-1")
            self.flush()
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def run(self):
        self.banner()
        while True:
            line = self.readline()
            if line is None:
                return
            self.peer.log(line)
            verb, _, arg = line.partition(" ")
            handler = getattr(self, "do_" + verb.upper(), None)
            if handler is None:
                self.reply("502 5.5.2 command not recognized")
            elif handler(arg) == "quit":
                self.flush()
                return

    def banner(self):
        self.reply("220 %s ESMTP fault peer" % self.peer.host)

    def do_EHLO(self, arg):
        self.greeted = True
        kw = [self.peer.host] + self.ehlo_keywords
        self.reply(*["250-" + k for k in kw[:-1]] + ["250 " + kw[-1]])

    def do_HELO(self, arg):
        self.greeted = True
        self.reply("250 " + self.peer.host)

    def do_MAIL(self, arg):
        self.mail = True
        self.reply("250 2.1.0 Ok")

    def do_RCPT(self, arg):
        if not self.mail:
            self.reply("503 5.5.1 need MAIL")
            return
        m = re.match(r"(?i)TO:<([^@>]*)@", arg)
        if m and m.group(1).lower() == KNOWN_USER:
            self.reply("250 2.1.5 Ok")
        else:
            self.reply("550 5.1.1 <%s>: Recipient address rejected: User unknown"
                       % arg[4:-1])

    def do_RSET(self, arg):
        self.mail = False
        self.reply("250 2.0.0 Ok")

    def do_NOOP(self, arg):
        self.reply("250 2.0.0 Ok")

    def do_QUIT(self, arg):
        self.reply("221 2.0.0 Bye")
        return "quit"

    def do_STARTTLS(self, arg):
        if self.tls_context is None:
            self.reply("502 5.5.1 no TLS here")
            return
        self.reply("220 2.0.0 Ready to start TLS")
        self.flush()
        self.sock = self.tls_context.wrap_socket(self.sock, server_side=True)
        self.peer.tls_sessions += 1
        self.greeted = self.mail = False


class NoBanner(Dialogue):
    def run(self):
        self.hold()

    def hold(self):
        while self.sock.recv(65536):
            pass


def trickle(d, data, every=1.0):
    """Send data one octet per `every` seconds until the client goes."""
    d.flush()
    for b in data:
        d.sock.sendall(bytes([b]))
        d.peer.trickled += 1
        time.sleep(every)


class TrickleBanner(Dialogue):
    def banner(self):
        trickle(self, b"220 %s ESMTP one octet a second\r\n" % self.peer.host.encode())


class TrickleEhlo(Dialogue):
    def do_EHLO(self, arg):
        Dialogue.do_EHLO(self, arg)
        data = bytes(self.out)
        self.out.clear()
        trickle(self, data)


class LongLine(Dialogue):
    SIZE = 10 * 1024 * 1024

    def banner(self):
        self.flush()
        chunk = b"x" * 65536
        self.sock.sendall(b"220 ")
        sent = 4
        while sent < self.SIZE:
            self.sock.sendall(chunk)
            sent += len(chunk)
            self.peer.flood_sent = sent
        NoBanner.hold(self)


class Endless(Dialogue):
    LINES = 1000000

    def do_EHLO(self, arg):
        self.reply("250-" + self.peer.host)
        self.flush()
        batch = b"".join(b"250-X-FILLER-%07d an endless reply\r\n" % i for i in range(500))
        for _ in range(self.LINES // 500):
            self.sock.sendall(batch)
            self.peer.flood_sent += len(batch)
        NoBanner.hold(self)


class ResetMidReply(Dialogue):
    def do_RCPT(self, arg):
        # half of a refusal, then a reset: never a statement about a mailbox
        self.reply("550-5.1.1 <%s>: Recipient address rejected:" % arg[4:-1])
        self.flush()
        raise Reset()


class AcceptClose(Dialogue):
    def run(self):
        raise Drop()


class EarlyTalker(Dialogue):
    def banner(self):
        # a greeting, and more before the client has said anything
        self.reply("220 %s ESMTP" % self.peer.host, "250 2.0.0 what about this")


class ReplyBeforeRcpt(Dialogue):
    ehlo_keywords = ["ENHANCEDSTATUSCODES"]     # no PIPELINING: lock step

    def do_MAIL(self, arg):
        # the MAIL reply, and a reply to an RCPT not yet sent
        Dialogue.do_MAIL(self, arg)
        self.reply("250 2.1.5 Ok")


class TwoReplies(Dialogue):
    def do_MAIL(self, arg):
        # pipelined MAIL answered twice: every later reply is one off, and
        # a 550 for the mailbox would read as 250 (and the verdict flip)
        Dialogue.do_MAIL(self, arg)
        self.reply("250 2.1.0 Ok")


class LateExtraReply(Dialogue):
    ehlo_keywords = ["ENHANCEDSTATUSCODES"]     # no PIPELINING: lock step

    def do_MAIL(self, arg):
        # MAIL answered, and answered again a moment later, in a segment
        # of its own: by then probed has sent the first RCPT
        Dialogue.do_MAIL(self, arg)
        self.flush()
        time.sleep(0.2)
        self.reply("250 2.1.0 Ok, again")


class TwoEhloReplies(Dialogue):
    def do_EHLO(self, arg):
        Dialogue.do_EHLO(self, arg)
        self.reply("250 %s again" % self.peer.host)


class TlsPeer(Dialogue):
    ehlo_keywords = ["PIPELINING", "STARTTLS", "ENHANCEDSTATUSCODES"]

    def do_EHLO(self, arg):
        if isinstance(self.sock, ssl.SSLSocket):
            kw = [self.peer.host, "PIPELINING", "ENHANCEDSTATUSCODES"]
            self.greeted = True
            self.reply(*["250-" + k for k in kw[:-1]] + ["250 " + kw[-1]])
        else:
            Dialogue.do_EHLO(self, arg)


class GarbageTls(TlsPeer):
    def do_STARTTLS(self, arg):
        self.reply("220 2.0.0 Ready to start TLS")
        self.flush()
        hello = self.sock.recv(65536)       # the ClientHello
        self.peer.log("tls %d octets" % len(hello))
        self.sock.sendall(b"HTTP/1.0 400 this is not TLS\r\n\x00\xffgarbage\r\n")
        NoBanner.hold(self)


class SmtpPeer:
    """One scripted server: a listening socket and a thread per session."""

    def __init__(self, name, addr, port, cls, tls=None):
        self.name = name
        self.addr = addr
        self.host = "mx-%s.fault" % name
        self.cls = cls
        self.tls = tls
        self.sessions = 0
        self.tls_sessions = 0
        self.trickled = 0
        self.flood_sent = 0
        self.lines = []
        self.ended = []             # how each session ended
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((addr, port))
        self.port = self.lsock.getsockname()[1]
        self.lsock.listen(64)
        self.stopping = False
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)

    def log(self, line):
        self.lines.append(line)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        self.thread.join(2)

    def accept_loop(self):
        self.lsock.settimeout(0.1)
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.sessions += 1
            threading.Thread(target=self.session, args=(s,), daemon=True).start()

    def session(self, s):
        s.settimeout(30)
        d = self.cls(self, s)
        d.tls_context = self.tls
        how = "closed"
        try:
            d.run()
            d.flush()
        except Drop:
            how = "dropped"
        except Reset:
            how = "reset"
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (OSError, ssl.SSLError) as e:
            how = "error: %s" % e.__class__.__name__
        self.ended.append(how)
        try:
            d.sock.close()
        except OSError:
            pass
        s.close()


# ================================================================ the lab of this file

PEERS = [
    # name, last octet, behaviour, tls
    ("ok", 30, Dialogue, None),
    ("nobanner", 10, NoBanner, None),
    ("trickle", 11, TrickleBanner, None),
    ("trickleehlo", 12, TrickleEhlo, None),
    ("longline", 13, LongLine, None),
    ("endless", 14, Endless, None),
    ("resetmid", 15, ResetMidReply, None),
    ("acceptclose", 16, AcceptClose, None),
    ("earlytalker", 17, EarlyTalker, None),
    ("rcptearly", 18, ReplyBeforeRcpt, None),
    ("tworeplies", 19, TwoReplies, None),
    ("twoehlo", 20, TwoEhloReplies, None),
    ("lateextra", 24, LateExtraReply, None),
    ("badtls", 21, GarbageTls, None),
    ("selfsigned", 22, TlsPeer, "selfsigned"),
    ("expired", 23, TlsPeer, "expired"),
]
REFUSED = 29                # s-refused.fault: nothing listens there


def openssl(c, *args):
    rc, out, err = c.run(["openssl"] + list(args), timeout=60)
    if rc != 0:
        raise harness.HardError("openssl %s: %s" % (args[0], err.strip()[-300:]))


def make_certs(c):
    """Self-signed (valid now) and expired (2020-01-01..02) certificates;
    returns {kind: ssl.SSLContext}."""
    d = c.path("certs")
    os.makedirs(os.path.join(d, "db"))
    p = lambda *x: os.path.join(d, *x)
    openssl(c, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=mx-selfsigned.fault", "-keyout", p("ss.key"), "-out", p("ss.crt"))
    # OpenSSL 3.0 `req -x509` cannot start a certificate in the past;
    # `ca -selfsign` takes explicit dates
    with open(p("db", "index.txt"), "w"):
        pass
    with open(p("db", "serial"), "w") as f:
        f.write("01\n")
    with open(p("ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = fault\n[fault]\ndir = %s\n"
                "database = $dir/db/index.txt\nserial = $dir/db/serial\n"
                "new_certs_dir = $dir/db\ndefault_md = sha256\npolicy = any\n"
                "unique_subject = no\n[any]\ncommonName = supplied\n" % d)
    openssl(c, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj",
            "/CN=mx-expired.fault", "-keyout", p("exp.key"), "-out", p("exp.csr"))
    openssl(c, "ca", "-batch", "-config", p("ca.cnf"), "-selfsign", "-keyfile",
            p("exp.key"), "-in", p("exp.csr"), "-out", p("exp.crt"),
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
    rc, out, _ = c.run(["openssl", "x509", "-in", p("exp.crt"), "-noout", "-checkend", "0"])
    if rc == 0:
        raise harness.HardError("the 'expired' certificate has not expired")
    ctx = {}
    for kind, crt, key in (("selfsigned", "ss.crt", "ss.key"), ("expired", "exp.crt", "exp.key")):
        x = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        x.load_cert_chain(p(crt), p(key))
        ctx[kind] = x
    return ctx


class Net:
    """Everything scripted for one case: DNS server, SMTP peers, probeds."""

    def __init__(self, c, tls=False):
        self.c = c
        self.dns = DnsServer(DNS_ADDR)
        self.peers = {}
        ctx = make_certs(c) if tls else {}
        for attempt in range(5):
            try:
                self.port = self.bind_peers(tls, ctx)
                break
            except OSError:
                # the first peer's ephemeral port is taken on another
                # 127.0.7.x (a concurrent run of this test): another port
                for p in self.peers.values():
                    p.lsock.close()
                self.peers = {}
        else:
            raise harness.HardError("no port free on every 127.0.7.x peer address")
        for p in self.peers.values():
            self.dns.zone_mx["s-%s.fault" % p.name] = [(10, p.host)]
            self.dns.zone_a[p.host] = p.addr
        self.dns.zone_mx["ok.fault"] = [(10, "mx-ok.fault")]
        self.dns.zone_mx["s-refused.fault"] = [(10, "mx-refused.fault")]
        self.dns.zone_a["mx-refused.fault"] = NET + str(REFUSED)
        self.dns.start()
        for p in self.peers.values():
            p.start()
        self.hole = None

    def bind_peers(self, tls, ctx):
        """Every peer on one port (probed has one smtp.port): the first
        peer's ephemeral port."""
        port = 0
        for name, octet, cls, t in PEERS:
            if t is not None and not tls:
                continue
            p = SmtpPeer(name, NET + str(octet), port, cls, ctx.get(t))
            port = p.port
            self.peers[name] = p
        return port

    def black_hole(self):
        if self.hole is None:
            self.hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.hole.bind((DNS_HOLE, 0))
        return "%s:%d" % (DNS_HOLE, self.hole.getsockname()[1])

    def probed(self, name="probed", dns=None, starttls="opportunistic"):
        return self.c.probed({
            "helo_name": "prober.fault.example",
            "dns": {"servers": [dns or self.dns.server()], "timeout": DNS_TIMEOUT},
            "smtp": {"port": self.port, "allow_networks": [NET + "0/24"],
                     "connect_timeout": CONNECT_TIMEOUT,
                     "greeting_timeout": GREETING_TIMEOUT,
                     "command_timeout": COMMAND_TIMEOUT,
                     "starttls": starttls},
        }, name=name)

    def stop(self):
        for p in self.peers.values():
            p.stop()
        self.dns.stop()
        if self.hole is not None:
            self.hole.close()


def with_net(tls=False):
    def wrap(fn):
        def case(c):
            net = Net(c, tls)
            try:
                fn(c, net)
            finally:
                net.stop()
        case.__name__ = fn.__name__
        return case
    return wrap


# ================================================================ the matrix driver

class Row:
    def __init__(self, fault, d, address, verdict, reason, most, least=0.0,
                 text=None, tls=None):
        self.fault = fault
        self.d = d                  # the probed asked
        self.address = address
        self.verdict = verdict
        self.reason = reason
        self.most = most            # seconds, unscaled
        self.least = least
        self.text = text            # regex the answer's text= must match
        self.tls = tls
        self.line = None
        self.took = None


def run_matrix(c, rows, live, deadline=20.0):
    """Send every row's VERIFY at once, each on its own connection; while
    they run, PING (persistent connection) and CHECK (a fresh one) every
    LIVE_EVERY s on `live`.  Then check every row."""
    poller = select.poll()
    byfd = {}
    for r in rows:
        cl = r.d.client()
        r.cl = cl
        cl.sendline("VERIFY %s" % r.address)
        r.t0 = now()
        byfd[cl.fileno()] = r
        poller.register(cl.fileno(), select.POLLIN)
    pending = len(rows)
    lat = []
    live_bad = []
    pinger = live.client()
    next_live = now()
    end = now() + T(deadline)
    while pending and now() < end:
        for fd, ev in poller.poll(20):
            r = byfd[fd]
            r.cl._recv_some()
            if r.cl.lines or r.cl.eof:
                r.took = now() - r.t0
                r.line = r.cl.lines[0] if r.cl.lines else None
                poller.unregister(fd)
                pending -= 1
        if now() >= next_live:
            t = now()
            try:
                a = pinger.request("PING", 2.0)
                with live.client() as cl:
                    b = cl.request("CHECK %s@ok.fault" % KNOWN_USER, 2.0)
            except harness.Failure as e:
                a, b = None, str(e)
            lat.append(now() - t)
            if a != "pong" or harness.parse_result(b) is None:
                live_bad.append((a, b))
            next_live = now() + LIVE_EVERY
    pinger.close()
    for r in rows:
        r.cl.close()
    c.note("%-44s %-8s %s" % ("fault", "seconds", "answer"))
    for r in rows:
        c.note("%-44s %-8s %s" % (r.fault, "%.2f" % r.took if r.took is not None else "-",
                                  (r.line or "")[:160]))
    c.check(not live_bad and lat, "probed answered PING and CHECK on other connections "
            "all along (%d rounds)" % len(lat), repr(live_bad[:3]))
    if lat:
        c.note("liveness: %d rounds, worst %.0f ms" % (len(lat), max(lat) * 1000))
        c.check(max(lat) <= T(LIVE_LATENCY), "every PING+CHECK answered within "
                "%.1f s while the faults ran (worst %.3f s)" % (T(LIVE_LATENCY), max(lat)))
    for r in rows:
        res = harness.parse_result(r.line)
        if not c.check(res is not None, "%s: answered" % r.fault,
                       "got %r after %s s" % (r.line, r.took)):
            continue
        verdict, addr, kv = res
        if r.verdict != "undeliverable":
            c.check(verdict != "undeliverable", "%s: not undeliverable" % r.fault, r.line)
        c.eq((verdict, addr, kv.get("reason")), (r.verdict, r.address, r.reason),
             "%s: %s %s" % (r.fault, r.verdict, r.reason))
        c.check(r.took <= T(r.most), "%s: answered within %.1f s (took %.2f s)"
                % (r.fault, T(r.most), r.took))
        if r.least:
            c.check(r.took >= r.least, "%s: not before %.1f s (took %.2f s): the "
                    "named timeout ran its course" % (r.fault, r.least, r.took))
        if r.text is not None:
            c.check(re.search(r.text, kv.get("text") or "") is not None,
                    "%s: text matches /%s/" % (r.fault, r.text), r.line)
        if r.tls is not None:
            c.eq(kv.get("tls"), r.tls, "%s: tls=%s" % (r.fault, r.tls))


# ================================================================ cases

@suite.case
@with_net()
def dns_faults(c, net):
    d = net.probed()
    down = net.probed("down", dns=DNS_DEAD + ":53")
    hole = net.probed("hole", dns=net.black_hole())
    u = KNOWN_USER + "@"
    w = DNS_WINDOW + SLACK
    rows = [
        Row("baseline: ok domain", d, u + "ok.fault", "deliverable", "accepted", 2),
        Row("baseline: unknown mailbox", d, "bob@ok.fault", "undeliverable",
            "no_such_user", 2),
        Row("server down (port unreachable)", down, u + "ok.fault", "unknown",
            "dns_error", w, DNS_WINDOW_MIN, text=r"timeout"),
        Row("server black hole (never answers)", hole, u + "ok.fault", "unknown",
            "dns_error", w, DNS_WINDOW_MIN, text=r"timeout"),
        Row("slow: answers after 3 x dns.timeout + 2 s", d, u + "d-slow.fault",
            "unknown", "dns_error", w, DNS_WINDOW_MIN, text=r"timeout"),
        Row("slow: answers after dns.timeout + 0.5 s", d, u + "d-late.fault",
            "deliverable", "accepted", DNS_TIMEOUT + 0.5 + SLACK, DNS_TIMEOUT + 0.4),
        Row("slow: answers after dns.timeout / 2", d, u + "d-slowok.fault",
            "deliverable", "accepted", DNS_TIMEOUT / 2 + SLACK, DNS_TIMEOUT / 2 - 0.1),
        Row("SERVFAIL", d, u + "d-servfail.fault", "unknown", "dns_error", w,
            text=r"SERVFAIL from 127\.0\.7\.53"),
        Row("truncated answer (TC=1), UDP only", d, u + "d-trunc.fault", "unknown",
            "dns_error", w, text=r"truncated"),
        Row("garbage: right id, then random octets", d, u + "random.d-garbage.fault",
            "unknown", "dns_error", w),
        Row("garbage: short packet (5 octets)", d, u + "short.d-garbage.fault",
            "unknown", "dns_error", w),
        Row("garbage: header claims 3 answers, holds none", d,
            u + "counts.d-garbage.fault", "unknown", "dns_error", w),
        Row("garbage: compression pointer loop", d, u + "loop.d-garbage.fault",
            "unknown", "dns_error", w),
        Row("wrong query id only", d, u + "d-wrongid.fault", "unknown", "dns_error",
            w, DNS_WINDOW_MIN),
        Row("wrong query id, then the right one", d, u + "d-wrongid2.fault",
            "deliverable", "accepted", 2),
    ]
    run_matrix(c, rows, d)
    c.eq(net.peers["nobanner"].sessions, 0,
         "the forged answer (wrong id) was not followed: no session to its MX")
    c.note("d-late.fault was asked %d time(s) before its late answer was taken"
           % net.dns.hits("d-late.fault"))


@suite.case
@with_net()
def smtp_faults(c, net):
    d = net.probed()
    u = KNOWN_USER + "@"
    g, k = GREETING_TIMEOUT, COMMAND_TIMEOUT
    rows = [
        Row("baseline: ok peer", d, u + "s-ok.fault", "deliverable", "accepted", 2,
            tls="no"),
        Row("connection refused", d, u + "s-refused.fault", "unknown",
            "connect_failed", 2, text="refused"),
        Row("no banner", d, u + "s-nobanner.fault", "unknown", "timeout",
            g + SLACK, g - 0.2, text="greeting_timeout"),
        Row("banner trickled one octet a second", d, u + "s-trickle.fault", "unknown",
            "timeout", g + SLACK, g - 0.2, text="greeting_timeout"),
        Row("EHLO reply trickled one octet a second", d, u + "s-trickleehlo.fault",
            "unknown", "timeout", k + SLACK, k - 0.2, text="command_timeout"),
        Row("reset in the middle of a 550- reply to RCPT", d,
            u + "s-resetmid.fault", "unknown", "tempfail", 2, text="reset"),
        Row("accept, then close", d, u + "s-acceptclose.fault", "unknown", "tempfail",
            2, text="closed"),
        Row("early talker: a line after the banner, unasked", d,
            u + "s-earlytalker.fault", "unknown", "protocol_error", 2,
            text="out of turn"),
        Row("a reply to RCPT before RCPT was sent", d, u + "s-rcptearly.fault",
            "unknown", "protocol_error", 2, text="out of turn"),
        Row("two replies to one EHLO", d, u + "s-twoehlo.fault", "unknown",
            "protocol_error", 2, text="out of turn"),
        Row("two replies to a pipelined MAIL (unknown mailbox)", d,
            "bob@s-tworeplies.fault", "unknown", "protocol_error", 2),
        Row("a second reply to MAIL 0.2 s later, alone (unknown mailbox)", d,
            "bob@s-lateextra.fault", "unknown", "protocol_error", 2),
    ]
    run_matrix(c, rows, d)
    c.check(net.peers["trickle"].trickled < 10,
            "the trickled banner was cut off by greeting_timeout (%d octets sent)"
            % net.peers["trickle"].trickled)


@suite.case
@with_net(tls=True)
def tls_faults(c, net):
    opp = net.probed()
    req = net.probed("required", starttls="required")
    u = KNOWN_USER + "@"
    rows = [
        Row("garbage after 220 to STARTTLS (opportunistic): again in the clear",
            opp, u + "s-badtls.fault", "deliverable", "accepted", 3, tls="no"),
        Row("garbage after 220 to STARTTLS (required)", req, u + "s-badtls.fault",
            "unknown", "tls_failed", 3),
        Row("self-signed certificate (opportunistic)", opp, u + "s-selfsigned.fault",
            "deliverable", "accepted", 3, tls="yes"),
        Row("self-signed certificate (required)", req, "bob@s-selfsigned.fault",
            "undeliverable", "no_such_user", 3, tls="yes"),
        Row("expired certificate (opportunistic)", opp, u + "s-expired.fault",
            "deliverable", "accepted", 3, tls="yes"),
        Row("expired certificate (required)", req, u + "s-expired.fault",
            "deliverable", "accepted", 3, tls="yes"),
        Row("no STARTTLS offered (required)", req, u + "s-ok.fault", "unknown",
            "tls_failed", 3, text="STARTTLS not offered"),
    ]
    run_matrix(c, rows, opp)
    bad = net.peers["badtls"]
    c.eq(bad.sessions, 3, "badtls: 2 sessions from the opportunistic probed (TLS, "
         "then the clear), 1 from the required one")
    c.check(net.peers["selfsigned"].tls_sessions >= 2 and
            net.peers["expired"].tls_sessions >= 2,
            "the certificate peers completed TLS handshakes with both probeds")


@suite.case
@with_net()
def flood_memory(c, net):
    d = net.probed()
    # warm up the code paths (and their allocations) first
    with d.client() as cl:
        cl.request("VERIFY %s@s-ok.fault" % KNOWN_USER, 5)
    before = rss_kb(d.pid)
    rows = [
        Row("a 10 MB banner line without CRLF", d, "alice@s-longline.fault", "unknown",
            "protocol_error", 2, text="2048"),
        Row("an endless 250- reply to EHLO", d, "alice@s-endless.fault", "unknown",
            "protocol_error", 2, text="100 lines"),
    ]
    run_matrix(c, rows, d)
    after = rss_kb(d.pid)
    c.note("probed RSS %d kB before, %d kB after; the peers pushed %d and %d octets"
           % (before, after, net.peers["longline"].flood_sent,
              net.peers["endless"].flood_sent))
    c.check(after - before < 2048, "RSS grew by less than 2 MB (%d kB)" % (after - before))
    # probed stopped reading at once: what the peers got out is what the
    # socket buffers hold, far from what they tried to send
    c.check(net.peers["longline"].flood_sent < LongLine.SIZE,
            "the 10 MB line was not read to its end (%d octets left the peer)"
            % net.peers["longline"].flood_sent)


if __name__ == "__main__":
    suite.main()
