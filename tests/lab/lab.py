#!/usr/bin/env python3
"""lab -- probed's integration lab: real servers on loopback, started and
stopped by the tests themselves.

Owns: one lab = one temporary directory holding every generated config,
queue, database, certificate, pid file and log; and these processes, each
started here and stopped here by PID:
  - NSD (`nsd -d`) on 127.0.1.53:53 UDP+TCP, authoritative for `test.`
    (zone generated from DOMAINS/HOSTS below);
  - six Postfix instances (A, A2, B, C, D, E; see POSTFIX), each with its
    own config directory, queue_directory, data_directory and maillog_file,
    started as `master -c DIR` in the foreground (its queue directories
    made from Postfix's own postfix-files manifest, as `postfix check`
    would; Lab(postfix_check=True) runs `postfix -c DIR check` as well);
  - postgrey on 127.0.1.23:10023 with its own --dbdir and a short --delay,
    the policy service of Postfix C;
  - peers.py, the scripted SMTP peers on 127.0.3.N:25.
Plus what tests need to look at them: dns_query() (a small stub resolver,
no dnspython), the domain table with expected behaviour, log readers that
count sessions and RCPTs, and the probed configuration for the lab.

Use:
    with Lab(grey_delay=2) as lab:          # start() ... stop()
        cfg = lab.probed_config()           # merge into probed's config
        ...
        lab.postfix_rcpt_count("a", "alice@accept.test")
    python3 tests/lab/lab.py up|down|status [--dir DIR]   # by hand

Limits: the addresses are fixed (the zone names them), so only one lab runs
on a machine at a time: a second one waits for the lock
(/tmp/probed-lab.lock, lock_timeout) and then fails.  Every wait has a
deadline, multiplied by PROBED_TIMEOUT_SCALE.  Needs root (Postfix's master
and NSD's port 53) and the Debian packages listed in tests/lab/README.md.
If the test process dies without stopping its lab (even by SIGKILL), a
watchdog process the lab started stops it and keeps its directory.

Safety: before starting anything the lab looks for listeners on every
address it needs (and on wildcard addresses of those ports) and refuses to
start, naming the process, when one is taken: it never stops a process it
did not start.  It signals only processes it started (PIDs checked against
their start time) and the process groups those created.  Everything binds
loopback only; Postfix relays nothing and delivers nothing (discard:).
The lab directory is removed at stop unless the lab failed, keep=True or
PROBED_LAB_KEEP=1; its path is printed when kept.
"""

import atexit
import collections
import ctypes
import errno
import fcntl
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in a read-only tree
import peers as _peers  # noqa: E402  (the peer address table lives there)

# ------------------------------------------------------------------ topology

DNS_SERVER = "127.0.1.53"
DNS_PORT = 53
POSTGREY_ADDRESS = "127.0.1.23"
POSTGREY_PORT = 10023
SMTP_PORT = 25
HELO_NAME = "probe.lab.test"
ALLOW_NETWORKS = ["127.0.0.0/8", "::1/128"]
ZONE = "test"
TTL = 300
NEG_TTL = 60

PEERS = collections.OrderedDict(_peers.PEERS)   # name -> 127.0.3.N
DEAD_ADDRESS = _peers.DEAD_ADDRESS              # nothing listens there
PEER_KNOWN_USER = _peers.KNOWN_USER             # "alice"
PEER_REPLIES = dict(_peers.REPLIES)

# Users of the "users" Postfix instances (A, A2, D, E) and of C.
USERS = ("alice", "bob")
# Local parts that exist but are refused via check_recipient_access.
SPECIAL_USERS = {
    "full": (552, "5.2.2", "Mailbox full"),
    "disabled": (550, "5.2.1", "account disabled"),
}
UNKNOWN_USER_TEXT = "Recipient address rejected: User unknown in virtual " \
                    "mailbox table"
RELAY_DENIED_TEXT = "Relay access denied"

USER_DOMAINS = ("accept.test", "nomx.test", "multi.test", "deadprimary.test",
                "v6.test")


class Instance(collections.namedtuple(
        "Instance", "name address hostname domains mode tls")):
    """One Postfix instance.  mode: users | catchall | greylist;
    tls: smtpd_tls_security_level (none | may | encrypt)."""

    @property
    def family(self):
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET

    @property
    def listen(self):
        return "[%s]" % self.address if ":" in self.address else self.address


POSTFIX = collections.OrderedDict((i.name, i) for i in (
    Instance("a", "127.0.2.1", "mx.accept.test", USER_DOMAINS, "users", "may"),
    Instance("a2", "127.0.2.5", "mx2.multi.test", USER_DOMAINS, "users",
             "may"),
    Instance("b", "127.0.2.2", "mx.catchall.test", ("catchall.test",),
             "catchall", "none"),
    Instance("c", "127.0.2.3", "mx.grey.test", ("grey.test",), "greylist",
             "none"),
    Instance("d", "127.0.2.4", "mx.tls.test", ("tls.test",), "users",
             "encrypt"),
    Instance("e", "::1", "mx.v6.test", USER_DOMAINS, "users", "may"),
))

# Host name -> addresses (A or AAAA by form).  An empty list makes a name
# that exists (it has a TXT record) but has no address.
HOSTS = collections.OrderedDict([
    ("mx.accept.test", ["127.0.2.1"]),
    ("nomx.test", ["127.0.2.1"]),
    ("mx.relay.test", ["127.0.2.1"]),
    ("mx1.multi.test", ["127.0.2.1"]),
    ("mx2.multi.test", ["127.0.2.5"]),
    ("mx1.deadprimary.test", [DEAD_ADDRESS]),
    ("mx2.deadprimary.test", ["127.0.2.1"]),
    ("mx.catchall.test", ["127.0.2.2"]),
    ("mx.grey.test", ["127.0.2.3"]),
    ("mx.tls.test", ["127.0.2.4"]),
    ("mx.v6.test", ["::1"]),
    ("nohost.noaddr.test", []),
] + [("mx.%s.test" % n, [a]) for n, a in _peers.PEERS])

# Expected probed results use design.md's vocabulary, for probed's default
# configuration plus probed_config() below (mail_from "" and no
# fallback_mail_from, starttls opportunistic).  Each entry is a tuple of
# acceptable (verdict, reason) pairs; reason None accepts any reason.
# "*" stands for any local part not listed.  The lab's self-test checks
# the SMTP facts behind these, not probed.
DELIVERABLE = (("deliverable", "accepted"),)
NO_SUCH_USER = (("undeliverable", "no_such_user"),)
USERS_EXPECT = {
    "alice": DELIVERABLE, "bob": DELIVERABLE,
    "full": (("risky", "mailbox_full"),),
    "disabled": (("undeliverable", "disabled"),),
    "*": NO_SUCH_USER,
}
PEER_EXPECT = {"alice": DELIVERABLE, "*": NO_SUCH_USER}


def _all(pair):
    return {"*": (pair,)}


class Domain(collections.namedtuple(
        "Domain", "name mx server summary expect")):
    """One test domain.  mx: [(preference, host)] ([] for no MX, [(0, ".")]
    for a null MX); server: "postfix:<i>", "peer:<name>" or None."""


DOMAINS = collections.OrderedDict((d.name, d) for d in [
    Domain("accept.test", [(10, "mx.accept.test")], "postfix:a",
           "Postfix A: alice, bob 250; unknown 550 5.1.1; full@ 552 5.2.2; "
           "disabled@ 550 5.2.1; STARTTLS offered", USERS_EXPECT),
    Domain("nomx.test", [], "postfix:a",
           "no MX, A 127.0.2.1: implicit MX -> Postfix A", USERS_EXPECT),
    Domain("relay.test", [(10, "mx.relay.test")], "postfix:a",
           "Postfix A does not accept the domain: 554 5.7.1 Relay access "
           "denied", _all(("undeliverable", "relay_denied"))),
    Domain("multi.test", [(10, "mx1.multi.test"), (10, "mx2.multi.test")],
           "postfix:a,a2", "two MX at preference 10: Postfix A and A2",
           USERS_EXPECT),
    Domain("deadprimary.test", [(10, "mx1.deadprimary.test"),
                                (20, "mx2.deadprimary.test")], "postfix:a",
           "MX 10 -> %s (connection refused), MX 20 -> Postfix A"
           % DEAD_ADDRESS, USERS_EXPECT),
    Domain("catchall.test", [(10, "mx.catchall.test")], "postfix:b",
           "Postfix B accepts every local part",
           _all(("risky", "catch_all"))),
    Domain("grey.test", [(10, "mx.grey.test")], "postfix:c",
           "Postfix C + postgrey: alice, bob 450 4.2.0 Greylisted until "
           "grey_delay has passed, then 250; unknown 550 5.1.1 at once",
           {"alice": (("unknown", "greylisted"),) + DELIVERABLE,
            "bob": (("unknown", "greylisted"),) + DELIVERABLE,
            "*": NO_SUCH_USER}),
    Domain("tls.test", [(10, "mx.tls.test")], "postfix:d",
           "Postfix D: STARTTLS required before MAIL (530 5.7.0), then as A",
           {"alice": DELIVERABLE, "bob": DELIVERABLE, "*": NO_SUCH_USER}),
    Domain("v6.test", [(10, "mx.v6.test")], "postfix:e",
           "MX host has only AAAA ::1: Postfix E on [::1]:25, as A",
           USERS_EXPECT),
    Domain("nullmx.test", [(0, ".")], None, "MX 0 . (RFC 7505)",
           _all(("undeliverable", "null_mx"))),
    Domain("noaddr.test", [(10, "nohost.noaddr.test")], None,
           "MX host exists but has no A/AAAA; domain has no A/AAAA",
           _all(("undeliverable", "no_mx"))),
    Domain("heloonly.test", None, "peer:heloonly",
           "EHLO -> 502 5.5.2, HELO works; alice 250, others 550 5.1.1",
           PEER_EXPECT),
    Domain("nullsender.test", None, "peer:nullsender",
           "MAIL FROM:<> -> 553 5.1.7; any other sender ok; alice 250, "
           "others 550 5.1.1 (with a fallback_mail_from: as heloonly)",
           _all(("unknown", "sender_rejected"))),
    Domain("banner554.test", None, "peer:banner554",
           "banner 554 5.7.1 ... blocked using zen.spamhaus.org; 503 to "
           "everything but QUIT", _all(("unknown", "blocked"))),
    Domain("blocklist.test", None, "peer:blocklist",
           "RCPT -> 550 5.7.1 ... blocked using Spamhaus",
           _all(("unknown", "blocked"))),
    Domain("tarpit.test", None, "peer:tarpit",
           "accepts the connection, never says anything",
           _all(("unknown", "timeout"))),
    Domain("reset.test", None, "peer:reset",
           "banner, EHLO, MAIL ok; RCPT -> TCP RST",
           _all(("unknown", None))),
    Domain("malformed.test", None, "peer:malformed",
           "replies 'hello there' (no code) from EHLO on",
           _all(("unknown", "protocol_error"))),
    Domain("hugereply.test", None, "peer:hugereply",
           "endless 250- EHLO reply; 100 KB line without CRLF to any other "
           "command", _all(("unknown", "protocol_error"))),
    Domain("unverifiable.test", None, "peer:unverifiable",
           "RCPT -> 252 2.1.5 Cannot VRFY user, but will accept message",
           _all(("risky", "unverifiable"))),
    Domain("ratelimit.test", None, "peer:ratelimit",
           "banner 421 4.7.0 Try again later, closing connection",
           _all(("unknown", "rate_limited"))),
    Domain("tempfail.test", None, "peer:tempfail",
           "RCPT -> 451 4.3.0 Temporary local problem",
           _all(("unknown", "tempfail"))),
    Domain("badtls.test", None, "peer:badtls",
           "offers STARTTLS, answers 220, then garbage instead of TLS; "
           "without STARTTLS alice 250, others 550 5.1.1",
           {"alice": (("unknown", "tls_failed"),) + DELIVERABLE,
            "*": (("unknown", "tls_failed"),) + NO_SUCH_USER}),
    Domain("sendersblocked.test", None, "peer:sendersblocked",
           "every MAIL FROM -> 550 5.7.1 sender rejected",
           _all(("unknown", "sender_rejected"))),
    Domain("onercpt.test", None, "peer:onercpt",
           "one accepted RCPT per transaction, then 452 4.5.3 Too many "
           "recipients; alice 250, others 550 5.1.1", PEER_EXPECT),
    Domain("dropafterreject.test", None, "peer:dropafterreject",
           "unknown RCPT -> 550 5.1.1 then the connection is closed at "
           "once; alice 250", PEER_EXPECT),
])
for _n in list(DOMAINS):
    if DOMAINS[_n].mx is None:   # peers: MX 10 mx.<peer>.test
        DOMAINS[_n] = DOMAINS[_n]._replace(
            mx=[(10, "mx.%s" % _n)])
del _n

NXDOMAIN_EXAMPLE = "nosuch.test"

# ------------------------------------------------------------------ errors


class LabError(Exception):
    """The lab could not do its job (a harness error: exit 99)."""


class LabSkip(LabError):
    """The lab cannot run here at all (not root): exit 77."""


class LabTimeout(LabError):
    """A wait_for() deadline passed."""


def _scale():
    try:
        f = float(os.environ.get("PROBED_TIMEOUT_SCALE", "1"))
        return f if f > 0 else 1.0
    except ValueError:
        return 1.0


SCALE = _scale()
LOCK_PATH = "/tmp/probed-lab.lock"
LOG_TAIL_LINES = 200

# ------------------------------------------------------------------ DNS


QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16,
          "AAAA": 28, "ANY": 255}
QTYPE_NAMES = {v: k for k, v in QTYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN",
          4: "NOTIMP", 5: "REFUSED"}

DNSRecord = collections.namedtuple("DNSRecord", "name type ttl value")


class DNSResponse(collections.namedtuple(
        "DNSResponse", "id rcode aa tc rd ra answers authority additional")):
    """rcode is a name ("NOERROR", "NXDOMAIN", ...); answers etc. are lists
    of DNSRecord with type as a name and value decoded: A/AAAA a string,
    MX (preference, host), NS/CNAME a host, SOA a tuple, TXT a list of
    strings, anything else the raw bytes."""

    def values(self, rtype):
        return [r.value for r in self.answers if r.type == rtype]


def _encode_name(name):
    out = bytearray()
    for label in name.rstrip(".").split("."):
        if not label:
            continue
        b = label.encode("ascii")
        if len(b) > 63:
            raise ValueError("label too long: %r" % label)
        out.append(len(b))
        out += b
    out.append(0)
    return bytes(out)


def _decode_name(msg, off):
    """(name, offset after the name) with compression; bounded."""
    labels = []
    end = None
    jumps = 0
    while True:
        if off >= len(msg):
            raise ValueError("name runs past the message")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg):
                raise ValueError("truncated pointer")
            if end is None:
                end = off + 2
            jumps += 1
            if jumps > 32:
                raise ValueError("compression loop")
            off = ((n & 0x3F) << 8) | msg[off + 1]
            continue
        if n & 0xC0:
            raise ValueError("bad label type")
        off += 1
        if n == 0:
            break
        if off + n > len(msg):
            raise ValueError("label runs past the message")
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return (".".join(labels) + ".") if labels else ".", \
        (end if end is not None else off)


def _parse_rr(msg, off):
    name, off = _decode_name(msg, off)
    if off + 10 > len(msg):
        raise ValueError("truncated resource record")
    rtype, _cls, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
    off += 10
    if off + rdlen > len(msg):
        raise ValueError("truncated rdata")
    rd = msg[off:off + rdlen]
    tname = QTYPE_NAMES.get(rtype, str(rtype))
    if rtype == 1 and rdlen == 4:
        value = socket.inet_ntop(socket.AF_INET, rd)
    elif rtype == 28 and rdlen == 16:
        value = socket.inet_ntop(socket.AF_INET6, rd)
    elif rtype == 15:
        value = (struct.unpack("!H", rd[:2])[0], _decode_name(msg, off + 2)[0])
    elif rtype in (2, 5):
        value = _decode_name(msg, off)[0]
    elif rtype == 6:
        mname, o = _decode_name(msg, off)
        rname, o = _decode_name(msg, o)
        value = (mname, rname) + struct.unpack("!IIIII", msg[o:o + 20])
    elif rtype == 16:
        value, i = [], 0
        while i < len(rd):
            n = rd[i]
            value.append(rd[i + 1:i + 1 + n].decode("utf-8", "replace"))
            i += 1 + n
    else:
        value = bytes(rd)
    return DNSRecord(name, tname, ttl, value), off + rdlen


def parse_dns(msg):
    if len(msg) < 12:
        raise ValueError("DNS message shorter than its header")
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _decode_name(msg, off)
        off += 4
    sections = []
    for count in (an, ns, ar):
        recs = []
        for _ in range(count):
            rr, off = _parse_rr(msg, off)
            recs.append(rr)
        sections.append(recs)
    return DNSResponse(qid, RCODES.get(flags & 0xF, str(flags & 0xF)),
                       bool(flags & 0x0400), bool(flags & 0x0200),
                       bool(flags & 0x0100), bool(flags & 0x0080),
                       *sections)


def dns_query(name, qtype="A", server=DNS_SERVER, port=DNS_PORT, tcp=False,
              timeout=2.0, rd=True):
    """Ask `server` one question, RD set as probed does; DNSResponse.
    Raises socket.timeout/OSError when nothing answers in time."""
    qid = random.randrange(0x10000)
    qt = QTYPES[qtype] if isinstance(qtype, str) else int(qtype)
    query = struct.pack("!HHHHHH", qid, 0x0100 if rd else 0, 1, 0, 0, 0) + \
        _encode_name(name) + struct.pack("!HH", qt, 1)
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    deadline = time.monotonic() + timeout
    if tcp:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((server, port))
            s.sendall(struct.pack("!H", len(query)) + query)
            data = b""
            need = 2
            while len(data) < need:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = s.recv(65537)
                if not chunk:
                    raise OSError("DNS server closed the TCP connection")
                data += chunk
                if len(data) >= 2:
                    need = 2 + struct.unpack("!H", data[:2])[0]
            msg = data[2:need]
    else:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.connect((server, port))
            s.send(query)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("no DNS answer from %s" % server)
                s.settimeout(left)
                msg = s.recv(65535)
                if len(msg) >= 2 and struct.unpack("!H", msg[:2])[0] == qid:
                    break
    resp = parse_dns(msg)
    if resp.id != qid:
        raise ValueError("DNS answer with the wrong id")
    return resp


# ------------------------------------------------------------------ /proc


def _hex_ip(h):
    b = bytes.fromhex(h)
    if len(b) == 4:
        return socket.inet_ntop(socket.AF_INET, b[::-1])
    return socket.inet_ntop(socket.AF_INET6, b"".join(
        b[i:i + 4][::-1] for i in range(0, 16, 4)))


def sockets(proto="tcp"):
    """[(ip, port, inode)] of listening TCP (or bound UDP) sockets."""
    out = []
    for suffix in ("", "6"):
        try:
            with open("/proc/net/%s%s" % (proto, suffix)) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            p = line.split()
            if len(p) < 10:
                continue
            if proto == "tcp" and p[3] != "0A":       # LISTEN
                continue
            if proto == "udp" and p[3] != "07":       # unconnected
                continue
            ip, port = p[1].split(":")
            out.append((_hex_ip(ip), int(port, 16), p[9]))
    return out


def is_listening(ip, port, proto="tcp"):
    return any(a == ip and p == port for a, p, _ in sockets(proto))


def _socket_owners(inodes):
    """{inode: "pid (comm)"} for the given socket inodes."""
    want = {"socket:[%s]" % i: i for i in inodes}
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link in want:
                try:
                    with open("/proc/%s/comm" % pid) as f:
                        comm = f.read().strip()
                except OSError:
                    comm = "?"
                found.setdefault(want[link], "pid %s (%s)" % (pid, comm))
    return found


def _proc_stat(pid):
    """(state, ppid, pgid, starttime) of pid, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    try:
        return rest[0], int(rest[1]), int(rest[2]), int(rest[19])
    except (IndexError, ValueError):
        return None


def _group_members(pgids):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = _proc_stat(int(d))
        if st and st[2] in pgids and st[0] != "Z":
            out.append(int(d))
    return out


def leftover_processes(pids=None, path=None):
    """Running processes whose PID or process group is in `pids`, or whose
    command line contains `path`."""
    pids = set(pids or ())
    needle = path.encode() if path else None
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        if pid == os.getpid():
            continue
        st = _proc_stat(pid)
        if not st or st[0] == "Z":
            continue
        hit = pid in pids or st[2] in pids
        if not hit and needle:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    hit = needle in f.read()
            except OSError:
                pass
        if hit:
            out.append(pid)
    return out


def _pdeathsig():
    # In the child before exec: if the test process dies, even by SIGKILL,
    # the child gets SIGTERM.  NSD and the peers honour it; postgrey loses
    # it at setuid() and Postfix's master does not stop on it, hence the
    # watchdog (Lab._start_watchdog).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)    # PR_SET_PDEATHSIG
    except Exception:
        pass


def _template(name, values):
    with open(os.path.join(TEMPLATES, name)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise LabError("template %s: no value for %s" % (name, ", ".join(
            sorted(set(left)))))
    return text


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def zone_text(serial=1):
    """The zone file for `test.`, from DOMAINS and HOSTS."""
    rec = []
    for d in DOMAINS.values():
        rel = d.name[:-len("." + ZONE)]
        for pref, host in d.mx:
            rec.append("%s\tIN\tMX\t%d %s" % (
                rel, pref, "." if host == "." else host + "."))
    for host, addrs in HOSTS.items():
        rel = host[:-len("." + ZONE)]
        if not addrs:
            rec.append('%s\tIN\tTXT\t"exists, but has no address"' % rel)
        for a in addrs:
            rec.append("%s\tIN\t%s\t%s" % (rel, "AAAA" if ":" in a else "A",
                                           a))
    return _template("test.zone.in", {
        "TTL": TTL, "NEG_TTL": NEG_TTL, "SERIAL": serial,
        "DNS_ADDRESS": DNS_SERVER, "RECORDS": "\n".join(rec)})


def probed_config_dict():
    """The part of probed's configuration that points it at the lab (a dict
    in the shape harness.config_text() writes as libconfig)."""
    return {"helo_name": HELO_NAME,
            "dns": {"servers": [DNS_SERVER]},
            "smtp": {"allow_networks": list(ALLOW_NETWORKS)}}


def probed_config_text():
    return ('helo_name = "%s";\n'
            'dns: { servers = [ "%s" ]; };\n'
            'smtp: { allow_networks = [ %s ]; };\n'
            % (HELO_NAME, DNS_SERVER,
               ", ".join('"%s"' % n for n in ALLOW_NETWORKS)))


def expected(address):
    """Acceptable (verdict, reason) pairs for an address in the lab, or
    None for a domain the lab does not serve (nosuch.test: no_domain)."""
    local, _, domain = address.rpartition("@")
    d = DOMAINS.get(domain.lower())
    if d is None:
        return (("undeliverable", "no_domain"),)
    return d.expect.get(local.lower(), d.expect["*"])


# ------------------------------------------------------------------ logs

RcptLine = collections.namedtuple("RcptLine", "address code text action")
PeerEvent = collections.namedtuple("PeerEvent", "time session kind text")

_RCPT_RE = re.compile(
    r"(permit|reject): RCPT from \S+: (.*); from=<(.*?)> to=<(.*?)> proto=")
_CONNECT_RE = re.compile(r"/smtpd\[\d+\]: connect from ")
_DISCONNECT_RE = re.compile(r"/smtpd\[\d+\]: disconnect from \S+ (.*)$")


def _read_from(path, since):
    off = 0
    if since:
        off = since.get(path, 0)
    try:
        with open(path, "rb") as f:
            f.seek(off)
            data = f.read()
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", "replace")


def _tail(path, n):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return ["(cannot read: %s)" % e]
    return lines[-n:]


# ------------------------------------------------------------------ the lab

_running_labs = []


def _stop_running_labs():
    # A test that exits without stopping its lab (sys.exit in the middle,
    # an exception outside a with block) still leaves nothing behind.
    for lab in list(_running_labs):
        try:
            lab.stop()
        except Exception:
            pass


atexit.register(_stop_running_labs)

Proc = collections.namedtuple("Proc", "name pid pgid starttime")


class Lab:
    """One running lab.  Parameters:
    grey_delay    postgrey --delay in seconds (Postfix C greylisting)
    base_dir      where the lab directory is made (default $TMPDIR or /tmp)
    dir           use exactly this directory (the CLI does); made fresh
    keep          keep the lab directory after stop (also PROBED_LAB_KEEP=1)
    start_timeout seconds for everything to be ready (scaled)
    lock_timeout  seconds to wait for another lab on this machine (scaled)
    huge_lines    how many 250- lines hugereply sends before it stalls
    peer_idle     the scripted peers' idle timeout in seconds
    postfix_check run `postfix -c DIR check` on every instance before
                  starting it (Postfix's own verdict on the generated
                  setup; adds ~1.5 s)
    detach        children do not die with this process (CLI `up`)
    out           where progress and dumped logs go"""

    def __init__(self, grey_delay=5, base_dir=None, dir=None, keep=None,
                 start_timeout=30.0, lock_timeout=120.0, huge_lines=100000,
                 peer_idle=120.0, postfix_check=False, detach=False,
                 out=None):
        self.grey_delay = int(grey_delay)
        self.base_dir = base_dir
        self.fixed_dir = dir
        if keep is None:
            keep = os.environ.get("PROBED_LAB_KEEP", "") not in ("", "0")
        self.keep = keep
        self.start_timeout = start_timeout * SCALE
        self.lock_timeout = lock_timeout * SCALE
        self.huge_lines = huge_lines
        self.peer_idle = peer_idle
        self.postfix_check = postfix_check
        self.detach = detach
        self.out = out if out is not None else sys.stderr
        self.dir = None
        self.logdir = None
        self.procs = []          # Proc, in start order
        self._popen = {}         # pid -> Popen (not in CLI `down`)
        self._lock_fd = None
        self._watchdog = None
        self._watchdog_w = None
        self.failed = False
        self.started = False
        self.dns_server = DNS_SERVER
        self.dns_port = DNS_PORT
        self.domains = DOMAINS
        self.postfix = POSTFIX
        self.peers = PEERS

    # -------------------------------------------------------------- context

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, etype, evalue, tb):
        if etype is not None and not issubclass(etype, LabSkip):
            self.failed = True
            self.say("lab: stopping after %s: %s" % (etype.__name__, evalue))
            self.dump_logs()
        self.stop()
        return False

    def say(self, msg):
        print(msg, file=self.out, flush=True)

    # -------------------------------------------------------------- paths

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def postfix_dir(self, inst):
        return self.path("postfix-" + inst)

    def postfix_log(self, inst):
        return os.path.join(self.logdir, "postfix-%s.log" % inst)

    def peer_log(self, name):
        return os.path.join(self.logdir, "peers-%s.log" % name)

    def nsd_log(self):
        return os.path.join(self.logdir, "nsd.log")

    def postgrey_log(self):
        # postgrey logs to stderr when not daemonized; the lab keeps that.
        return os.path.join(self.logdir, "postgrey.out")

    def tls_cert(self, inst):
        return self.path("tls", inst + ".crt")

    def log_paths(self):
        """{short name: path} of every log the lab keeps."""
        out = collections.OrderedDict()
        if not self.logdir or not os.path.isdir(self.logdir):
            return out
        for f in sorted(os.listdir(self.logdir)):
            out[f.rsplit(".", 1)[0] if f.endswith(".log") else f] = \
                os.path.join(self.logdir, f)
        return out

    # -------------------------------------------------------------- start

    def start(self):
        if self.started:
            return self
        if os.geteuid() != 0:
            raise LabSkip("the lab needs root (Postfix's master, port 53)")
        t0 = time.monotonic()
        try:
            self._preflight()
            self._lock()
            # The wait for another lab's lock is not start-up time.
            t0 = time.monotonic()
            self._check_conflicts()
            self._make_dir()
            self._start_watchdog()
            self._write_configs()
            self._start_all()
            self._wait_ready(t0 + self.start_timeout)
        except BaseException as e:
            self.failed = True
            if not isinstance(e, LabSkip):
                self.say("lab: start failed: %s" % e)
                self.dump_logs()
            self.stop()
            if isinstance(e, (LabError, KeyboardInterrupt, SystemExit)):
                raise
            raise LabError("lab start failed: %r" % (e,)) from e
        self.started = True
        if not self.detach:
            _running_labs.append(self)
        # Seconds from holding the lock to ready (what selftest bounds).
        self.start_seconds = time.monotonic() - t0
        self.say("lab: up in %.1f s at %s" % (self.start_seconds, self.dir))
        return self

    def _preflight(self):
        need = {"postfix": "/usr/sbin/postfix",
                "postconf": "/usr/sbin/postconf",
                "nsd": "/usr/sbin/nsd", "postgrey": "/usr/sbin/postgrey",
                "openssl": "/usr/bin/openssl"}
        missing = [n for n, p in need.items() if not os.access(p, os.X_OK)]
        if missing:
            raise LabError("missing programs: %s (install the packages in "
                           "tests/lab/README.md)" % ", ".join(missing))
        import grp
        import pwd
        for user in ("postfix", "postgrey"):
            try:
                pwd.getpwnam(user)
            except KeyError:
                raise LabError("no user %r (packages postfix/postgrey "
                               "incomplete?)" % user)
        try:
            grp.getgrnam("postdrop")
        except KeyError:
            raise LabError("no group 'postdrop' (package postfix)")
        r = subprocess.run(["/usr/sbin/postconf", "-dh", "daemon_directory"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=10 * SCALE)
        self.daemon_dir = r.stdout.decode().strip() or \
            "/usr/lib/postfix/sbin"
        r = subprocess.run(["/usr/sbin/postconf", "-dh", "meta_directory"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=10 * SCALE)
        self.meta_dir = r.stdout.decode().strip() or "/etc/postfix"
        if not os.access(os.path.join(self.daemon_dir, "master"), os.X_OK):
            raise LabError("no Postfix master in %s" % self.daemon_dir)

    def _lock(self):
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.lock_timeout
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LabError("another lab holds %s (only one lab runs at "
                               "a time: its addresses are fixed)"
                               % LOCK_PATH)
            if not said:
                self.say("lab: waiting for another lab to finish (%s)"
                         % LOCK_PATH)
                said = True
            time.sleep(0.2)
        os.set_inheritable(fd, False)
        self._lock_fd = fd

    def wanted_sockets(self):
        """[(proto, ip, port, what)]: everything the lab will bind, plus
        the dead address, which must stay unbound."""
        w = [("udp", DNS_SERVER, DNS_PORT, "NSD"),
             ("tcp", DNS_SERVER, DNS_PORT, "NSD"),
             ("tcp", POSTGREY_ADDRESS, POSTGREY_PORT, "postgrey"),
             ("tcp", DEAD_ADDRESS, SMTP_PORT,
              "nothing (deadprimary.test must be refused)")]
        for i in POSTFIX.values():
            w.append(("tcp", i.address, SMTP_PORT, "Postfix " + i.name))
        for n, a in PEERS.items():
            w.append(("tcp", a, SMTP_PORT, "peer " + n))
        return w

    def _check_conflicts(self):
        found = []
        current = {"tcp": sockets("tcp"), "udp": sockets("udp")}
        for proto, ip, port, what in self.wanted_sockets():
            v6 = ":" in ip
            for aip, aport, inode in current[proto]:
                if aport != port:
                    continue
                # A wildcard listener takes the port on every address of
                # its family (and "::" may take IPv4 too).
                if aip == ip or aip == "::" or (aip == "0.0.0.0" and not v6):
                    found.append((proto, aip, aport, inode, ip, what))
        if not found:
            return
        owners = _socket_owners({f[3] for f in found})
        taken = collections.OrderedDict()
        for proto, aip, aport, inode, ip, what in found:
            taken.setdefault((proto, aip, aport, inode), []).append(
                "%s (%s)" % (ip, what))
        lines = []
        for (proto, aip, aport, inode), needs in taken.items():
            shown = "[%s]" % aip if ":" in aip else aip
            lines.append("  %s %s:%d is taken by %s; the lab needs port %d "
                         "on %s" % (proto, shown, aport,
                                    owners.get(inode, "an unknown process"),
                                    aport, ", ".join(needs[:3]) +
                                    (" and %d more" % (len(needs) - 3)
                                     if len(needs) > 3 else "")))
        raise LabError(
            "lab addresses are in use; the lab never stops processes it did "
            "not start.  Stop them (a system Postfix: `postfix stop` or "
            "`service postfix stop`; a system NSD: `service nsd stop`) or "
            "finish the other lab, then retry:\n" + "\n".join(lines))

    def _make_dir(self):
        if self.fixed_dir:
            d = os.path.abspath(self.fixed_dir)
            if os.path.exists(d):
                if not os.path.exists(os.path.join(d, ".probed-lab")):
                    raise LabError("%s exists and is not a lab directory; "
                                   "not touching it" % d)
                shutil.rmtree(d)
            os.makedirs(d)
        else:
            base = self.base_dir or tempfile.gettempdir()
            if len(base) > 40 or not self._traversable(base):
                base = "/tmp"
            d = tempfile.mkdtemp(prefix="probed-lab-", dir=base)
        # Postfix and postgrey drop to their own users: they must be able
        # to walk down to their directories.
        os.chmod(d, 0o755)
        if not self._traversable(d):
            raise LabError("%s: some parent directory is not searchable by "
                           "other users (postfix, postgrey need it)" % d)
        self.dir = d
        open(self.path(".probed-lab"), "w").close()
        self.logdir = self.path("logs")
        for sub in ("logs", "dns", "tls", "postgrey"):
            os.makedirs(self.path(sub), mode=0o755, exist_ok=True)
            os.chmod(self.path(sub), 0o755)

    @staticmethod
    def _traversable(d):
        d = os.path.abspath(d)
        while True:
            try:
                if not os.stat(d).st_mode & 0o001:
                    return False
            except OSError:
                return False
            if d == "/":
                return True
            d = os.path.dirname(d)

    def _start_watchdog(self):
        """A process that stops the lab if this one dies without doing so
        (SIGKILL, a crash): PR_SET_PDEATHSIG does not survive postgrey's
        setuid(), and Postfix's master does not honour it either.  It
        waits for EOF on a pipe whose write end only this process holds."""
        if self.detach:
            return
        r, w = os.pipe()          # both ends close-on-exec
        log = open(os.path.join(self.logdir, "watchdog.out"), "ab")
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "_watchdog",
                 "--dir", self.dir], stdin=r, stdout=log,
                stderr=subprocess.STDOUT, env=self._env(), cwd="/",
                start_new_session=True)
        finally:
            os.close(r)
            log.close()
        self._watchdog_w = w

    def _stop_watchdog(self):
        if self._watchdog is None:
            return
        if self._watchdog.poll() is None:
            self._watchdog.terminate()
        try:
            self._watchdog.wait(timeout=5 * SCALE)
        except subprocess.TimeoutExpired:
            self._watchdog.kill()
            self._watchdog.wait()
        os.close(self._watchdog_w)
        self._watchdog = None
        self._watchdog_w = None

    # -------------------------------------------------------------- configs

    def _write_configs(self):
        dns = self.path("dns")
        _write(os.path.join(dns, "nsd.conf"), _template("nsd.conf.in", {
            "ADDRESS": DNS_SERVER, "PORT": DNS_PORT, "DIR": dns,
            "LOG_FILE": self.nsd_log()}))
        _write(os.path.join(dns, "test.zone"), zone_text())
        import grp
        import pwd
        pg = self.path("postgrey")
        os.makedirs(os.path.join(pg, "db"))
        os.chown(os.path.join(pg, "db"), pwd.getpwnam("postgrey").pw_uid,
                 grp.getgrnam("postgrey").gr_gid)
        _write(os.path.join(pg, "whitelist-empty"),
               "# no whitelisting in the lab\n")
        self._make_certs()
        for i in POSTFIX.values():
            self._write_postfix(i)

    def _make_certs(self):
        jobs = []
        for i in POSTFIX.values():
            jobs.append((i.name, [
                "/usr/bin/openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-days", "30", "-subj", "/CN=%s" % i.hostname,
                "-addext", "subjectAltName=DNS:%s" % i.hostname,
                "-keyout", self.path("tls", i.name + ".key"),
                "-out", self.path("tls", i.name + ".crt")]))
        res = self._run_parallel(jobs, 20 * SCALE)
        for name, (rc, text) in res.items():
            if rc != 0:
                raise LabError("openssl for %s failed (%d):\n%s"
                               % (name, rc, text))

    def _write_postfix(self, i):
        base = self.postfix_dir(i.name)
        conf = os.path.join(base, "conf")
        os.makedirs(conf)
        os.makedirs(os.path.join(base, "queue"))
        for d in (base, conf, os.path.join(base, "queue")):
            os.chmod(d, 0o755)
        boxes = []
        if i.mode == "catchall":
            boxes = ["@%s catchall" % d for d in i.domains]
        else:
            extra = list(SPECIAL_USERS) if i.mode == "users" else []
            for d in i.domains:
                for u in list(USERS) + extra:
                    boxes.append("%s@%s %s/%s" % (u, d, d, u))
        _write(os.path.join(conf, "vmailbox"), "\n".join(boxes) + "\n")
        _write(os.path.join(conf, "recipient_access"), "".join(
            "%s@ %d %s %s\n" % (u, c, e, t)
            for u, (c, e, t) in SPECIAL_USERS.items()))
        access = "check_recipient_access texthash:%s/recipient_access" % conf
        restrictions = {
            "users": [access, "reject_unlisted_recipient", "permit"],
            "catchall": ["reject_unlisted_recipient", "permit"],
            "greylist": ["reject_unlisted_recipient",
                         "check_policy_service inet:%s:%d"
                         % (POSTGREY_ADDRESS, POSTGREY_PORT), "permit"],
        }[i.mode]
        v6 = i.family == socket.AF_INET6
        values = {
            "NAME": i.name, "LISTEN": i.listen, "HOSTNAME": i.hostname,
            "QUEUE_DIR": os.path.join(base, "queue"),
            "DATA_DIR": os.path.join(base, "data"),
            "CONF_DIR": conf, "LAB_DIR": self.dir,
            "LOG_FILE": self.postfix_log(i.name),
            "INET_INTERFACES": "[::1]" if v6 else "127.0.0.1",
            "INET_PROTOCOLS": "ipv6" if v6 else "ipv4",
            "MYNETWORKS": "[::1]/128" if v6 else "127.0.0.0/8",
            "DOMAINS": " ".join(i.domains),
            "RCPT_RESTRICTIONS": ",\n    ".join(restrictions),
            "TLS_LEVEL": i.tls,
            "TLS_CERT": self.path("tls", i.name + ".crt"),
            "TLS_KEY": self.path("tls", i.name + ".key"),
        }
        _write(os.path.join(conf, "main.cf"), _template("main.cf.in", values))
        _write(os.path.join(conf, "master.cf"),
               _template("master.cf.in", values))

    # -------------------------------------------------------------- processes

    def _env(self):
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
                "HOME": "/"}

    def _run_parallel(self, jobs, timeout):
        """Run [(key, argv)] at once, each with a pty as its stdout and
        stderr (Postfix commands print their errors only to a terminal;
        otherwise they go to a syslog that may not exist).  Returns
        {key: (exit status, output)}."""
        import pty
        running = {}
        try:
            for key, argv in jobs:
                m, s = pty.openpty()
                try:
                    p = subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=s, stderr=s,
                        env=self._env(), cwd=self.dir or "/",
                        start_new_session=True,
                        preexec_fn=None if self.detach else _pdeathsig)
                finally:
                    os.close(s)
                running[m] = (key, p, bytearray())
            results = {}
            deadline = time.monotonic() + timeout
            while running:
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [v[0] for v in running.values()]
                    raise LabError("%s did not finish within %.0f s"
                                   % (", ".join(names), timeout))
                r, _, _ = select.select(list(running), [], [], left)
                for fd in r:
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        data = b""
                    key, p, buf = running[fd]
                    if data:
                        if len(buf) < 1 << 20:
                            buf += data
                        continue
                    del running[fd]
                    os.close(fd)
                    try:
                        rc = p.wait(timeout=max(0.1, deadline -
                                                time.monotonic()))
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
                        rc = -9
                    results[key] = (rc, buf.decode("utf-8", "replace")
                                    .replace("\r", ""))
            return results
        finally:
            for fd, (key, p, _) in running.items():
                if p.poll() is None:
                    p.kill()
                    p.wait()
                os.close(fd)

    def _spawn(self, name, argv, new_session=True, pass_fds=()):
        log = open(os.path.join(self.logdir, name + ".out"), "ab")
        try:
            p = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=self._env(), cwd=self.dir,
                start_new_session=new_session, pass_fds=pass_fds,
                preexec_fn=None if self.detach else _pdeathsig)
        finally:
            log.close()
        st = _proc_stat(p.pid)
        # new_session=False: the program makes its own session (Postfix's
        # master calls setsid()), so its group is its PID too.
        proc = Proc(name, p.pid, p.pid, st[3] if st else 0)
        self.procs.append(proc)
        self._popen[p.pid] = p
        self._save_state()
        return proc

    def _save_state(self):
        if not self.dir:
            return
        state = {"dir": self.dir, "grey_delay": self.grey_delay,
                 "procs": [p._asdict() for p in self.procs]}
        tmp = self.path("lab.json.tmp")
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
        os.rename(tmp, self.path("lab.json"))

    def _start_all(self):
        dns = self.path("dns")
        self._spawn("nsd", ["/usr/sbin/nsd", "-d", "-c",
                            os.path.join(dns, "nsd.conf")])
        pg = self.path("postgrey")
        wl = os.path.join(pg, "whitelist-empty")
        self._spawn("postgrey", [
            "/usr/sbin/postgrey",
            "--inet=%s:%d" % (POSTGREY_ADDRESS, POSTGREY_PORT),
            "--dbdir=%s" % os.path.join(pg, "db"),
            "--delay=%d" % self.grey_delay,
            "--auto-whitelist-clients=0",
            "--whitelist-clients=%s" % wl,
            "--whitelist-recipients=%s" % wl,
            "--hostname=grey.lab.test"])
        # The scripted peers inherit the lock, so a lab left up by the CLI
        # keeps other labs out for as long as it runs.
        self._spawn("peers", [
            sys.executable, os.path.join(HERE, "peers.py"),
            "--logdir", self.logdir, "--ready", self.path("peers.ready"),
            "--huge-lines", str(self.huge_lines),
            "--idle", str(self.peer_idle)],
            pass_fds=(self._lock_fd,))
        for i in POSTFIX.values():
            self._make_queue(i.name)
        if self.postfix_check:
            self._postfix_check()
        for i in POSTFIX.values():
            self._spawn("master-" + i.name, [
                os.path.join(self.daemon_dir, "master"), "-c",
                os.path.join(self.postfix_dir(i.name), "conf")],
                new_session=False)

    # What `post-install create-missing` (run by `postfix check` and
    # `postfix start`) would make, read from Postfix's own manifest, so a
    # lab start does not pay ~2 s per instance for the shell script.
    FALLBACK_MANIFEST = [
        "$data_directory:d:$mail_owner:-:700:uc",
        "$queue_directory:d:root:-:755:uc",
    ] + ["$queue_directory/%s:d:$mail_owner:-:700:ucr" % d for d in (
        "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
        "incoming", "saved", "trace")] + [
        "$queue_directory/private:d:$mail_owner:-:700:uc",
        "$queue_directory/maildrop:d:$mail_owner:$setgid_group:730:uc",
        "$queue_directory/public:d:$mail_owner:$setgid_group:710:uc",
        "$queue_directory/pid:d:root:-:755:uc"]

    def _manifest(self):
        try:
            with open(os.path.join(self.meta_dir, "postfix-files")) as f:
                lines = [l.strip() for l in f]
        except OSError:
            return self.FALLBACK_MANIFEST
        out = [l for l in lines if re.match(
            r"^\$(queue|data)_directory(/[^:]*)?:d:", l)]
        return out or self.FALLBACK_MANIFEST

    def _make_queue(self, inst):
        import grp
        import pwd
        base = self.postfix_dir(inst)
        names = {"$queue_directory": os.path.join(base, "queue"),
                 "$data_directory": os.path.join(base, "data")}
        ids = {"$mail_owner": pwd.getpwnam("postfix").pw_uid,
               "$setgid_group": grp.getgrnam("postdrop").gr_gid,
               "root": 0, "-": 0}
        for entry in self._manifest():
            path, _t, owner, group, mode = entry.split(":")[:5]
            top, _, rest = path.partition("/")
            d = os.path.join(names[top], rest) if rest else names[top]
            os.makedirs(d, exist_ok=True)
            os.chown(d, ids.get(owner, 0), ids.get(group, 0))
            os.chmod(d, int(mode, 8))

    def _postfix_check(self):
        """`postfix -c DIR check` for every instance: Postfix's own verdict
        on the generated configuration and the directories (slow)."""
        checks = self._run_parallel(
            [(i.name, ["/usr/sbin/postfix", "-c",
                       os.path.join(self.postfix_dir(i.name), "conf"),
                       "check"]) for i in POSTFIX.values()],
            30 * SCALE)
        for name, (rc, text) in checks.items():
            with open(os.path.join(self.logdir, "postfix-check-%s.out"
                                   % name), "w") as f:
                f.write(text)
            if rc != 0:
                raise LabError("`postfix -c %s check` failed (%d):\n%s"
                               % (os.path.join(self.postfix_dir(name),
                                               "conf"), rc, text))

    def _ready_checks(self):
        """{what: predicate} of everything that must be true."""
        checks = collections.OrderedDict()

        def dns_ok():
            if not is_listening(DNS_SERVER, DNS_PORT, "tcp"):
                return False
            try:
                r = dns_query(ZONE, "SOA", timeout=0.5)
            except OSError:
                return False
            return r.rcode == "NOERROR" and r.aa and r.answers
        checks["nsd"] = dns_ok
        checks["postgrey"] = lambda: is_listening(POSTGREY_ADDRESS,
                                                  POSTGREY_PORT)
        checks["peers"] = lambda: os.path.exists(
            self.path("peers.ready")) and all(
            is_listening(a, SMTP_PORT) for a in PEERS.values())
        for i in POSTFIX.values():
            checks["postfix " + i.name] = \
                (lambda i=i: is_listening(i.address, SMTP_PORT))
        return checks

    def _wait_ready(self, deadline):
        pending = self._ready_checks()
        while pending:
            for p in self.procs:
                po = self._popen.get(p.pid)
                if po is not None and po.poll() is not None:
                    raise LabError("%s (pid %d) exited with status %s during "
                                   "start" % (p.name, p.pid, po.returncode))
            for what in list(pending):
                if pending[what]():
                    del pending[what]
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise LabError("not ready in time: %s" % ", ".join(pending))
            time.sleep(0.05)

    # -------------------------------------------------------------- stop

    def _alive(self, proc):
        po = self._popen.get(proc.pid)
        if po is not None:
            return po.poll() is None
        st = _proc_stat(proc.pid)
        return bool(st) and st[3] == proc.starttime and st[0] != "Z"

    def _signal(self, proc, sig):
        if self._alive(proc):
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout=10.0):
        """Stop everything this lab started (idempotent).  Returns the list
        of processes that had to be killed with SIGKILL."""
        timeout *= SCALE
        killed = []
        self._stop_watchdog()
        for p in reversed(self.procs):
            self._signal(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            while self._alive(p) and time.monotonic() < deadline:
                time.sleep(0.02)
            if self._alive(p):
                self._signal(p, signal.SIGKILL)
                killed.append(p.name)
            po = self._popen.get(p.pid)
            if po is not None:
                try:
                    po.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        # Whatever our processes left in their process groups (Postfix
        # daemons, NSD's children): those groups exist only because we
        # started their leaders, and Linux does not reuse a PID that is
        # still some group's ID.
        pgids = {p.pgid for p in self.procs}
        if pgids:
            members = _group_members(pgids)
            for pid in members:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + 3 * SCALE
            while members and time.monotonic() < end:
                time.sleep(0.05)
                members = _group_members(pgids)
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append("pid %d" % pid)
                except ProcessLookupError:
                    pass
        if killed:
            self.say("lab: had to SIGKILL: %s" % ", ".join(killed))
        self.procs = []
        self._popen = {}
        if self.dir and os.path.isdir(self.dir):
            if os.path.exists(self.path("lab.json")):
                self._save_state()
            if self.keep or self.failed:
                self.say("lab: kept %s" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.started = False
        if self in _running_labs:
            _running_labs.remove(self)
        return killed

    def leftovers(self, pids=None):
        """Processes still running that the lab started (pids: PIDs or
        process group IDs) or whose command line names the lab directory
        (a test of stop())."""
        return leftover_processes(pids, self.dir)

    # -------------------------------------------------------------- CLI state

    @classmethod
    def attach(cls, dir, **kw):
        """A Lab for a directory a CLI `up` left running (for down/status)."""
        with open(os.path.join(dir, "lab.json")) as f:
            state = json.load(f)
        lab = cls(dir=dir, detach=True, **kw)
        lab.dir = state["dir"]
        lab.logdir = os.path.join(lab.dir, "logs")
        lab.grey_delay = state.get("grey_delay", lab.grey_delay)
        lab.procs = [Proc(**p) for p in state["procs"]]
        lab.started = True
        return lab

    def status(self):
        """{component: "up"/"down"/...} for every process and listener."""
        out = collections.OrderedDict()
        for p in self.procs:
            out["%s (pid %d)" % (p.name, p.pid)] = \
                "running" if self._alive(p) else "gone"
        for what, ok in self._ready_checks().items():
            try:
                out[what + " answering"] = "yes" if ok() else "no"
            except Exception as e:
                out[what + " answering"] = "error: %s" % e
        return out

    # -------------------------------------------------------------- probed

    def probed_config(self):
        return probed_config_dict()

    def probed_config_text(self):
        return probed_config_text()

    # -------------------------------------------------------------- logs

    def mark(self):
        """Current sizes of every log; pass as since= to count only what
        happens after this point."""
        return {p: os.path.getsize(p) for p in self.log_paths().values()
                if os.path.isfile(p)}

    def postfix_rcpts(self, inst, address=None, since=None):
        """[RcptLine] of every RCPT Postfix instance `inst` decided on
        (from its "permit: RCPT" and "reject: RCPT" log lines)."""
        out = []
        for line in _read_from(self.postfix_log(inst), since).splitlines():
            m = _RCPT_RE.search(line)
            if not m:
                continue
            action, text, _sender, rcpt = m.groups()
            if address is not None and rcpt.lower() != address.lower():
                continue
            code = 250 if action == "permit" else int(text[:3]) \
                if text[:3].isdigit() else 0
            out.append(RcptLine(rcpt, code, text, action))
        return out

    def postfix_rcpt_count(self, inst, address=None, since=None):
        return len(self.postfix_rcpts(inst, address, since))

    def postfix_connections(self, inst, since=None):
        """SMTP connections instance `inst` has logged ("connect from")."""
        text = _read_from(self.postfix_log(inst), since)
        return sum(1 for line in text.splitlines() if _CONNECT_RE.search(line))

    def postfix_sessions(self, inst, since=None):
        """The per-session command counts of finished sessions, from
        "disconnect from ... ehlo=1 mail=1 rcpt=1/2 quit=1 commands=4/5":
        a list of {command: "ok/total" or "n"}."""
        out = []
        text = _read_from(self.postfix_log(inst), since)
        for line in text.splitlines():
            m = _DISCONNECT_RE.search(line)
            if m:
                out.append(dict(kv.split("=", 1) for kv in m.group(1).split()
                                if "=" in kv))
        return out

    def peer_events(self, name, since=None):
        out = []
        for line in _read_from(self.peer_log(name), since).splitlines():
            p = line.split("\t", 3)
            if len(p) == 4:
                out.append(PeerEvent(float(p[0]), int(p[1]), p[2], p[3]))
        return out

    def peer_sessions(self, name, since=None):
        """Connections the scripted peer `name` accepted."""
        return sum(1 for e in self.peer_events(name, since)
                   if e.kind == "connect")

    def peer_closed(self, name, since=None):
        return sum(1 for e in self.peer_events(name, since)
                   if e.kind == "close")

    def peer_commands(self, name, verb=None, since=None):
        """Command lines the peer received, optionally only those whose
        first word is `verb` (case-insensitive)."""
        out = []
        for e in self.peer_events(name, since):
            if e.kind != "cmd":
                continue
            if verb is not None and \
                    e.text.split(" ", 1)[0].upper() != verb.upper():
                continue
            out.append(e.text)
        return out

    def peer_rcpt_count(self, name, address=None, since=None):
        n = 0
        for c in self.peer_commands(name, "RCPT", since):
            if address is None or \
                    ("<%s>" % address.lower()) in c.lower():
                n += 1
        return n

    @staticmethod
    def wait_for(fn, timeout=5.0, what="condition", interval=0.05):
        """Poll fn() until it returns something true; return that.  Logs
        are written asynchronously (postlogd), so counts need this."""
        deadline = time.monotonic() + timeout * SCALE
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() >= deadline:
                raise LabTimeout("%s not reached within %.1f s"
                                 % (what, timeout * SCALE))
            time.sleep(interval)

    def dump_logs(self, out=None, tail=LOG_TAIL_LINES):
        out = out or self.out
        for name, path in self.log_paths().items():
            lines = _tail(path, tail)
            print("----- %s (last %d lines) -----" % (path, len(lines)),
                  file=out)
            for line in lines:
                print(line[:2000], file=out)
        out.flush()


# ------------------------------------------------------------------ CLI

DEFAULT_CLI_DIR = "/tmp/probed-lab"


def _watchdog_main(argv):
    """lab.py _watchdog --dir DIR: see Lab._start_watchdog."""
    d = argv[argv.index("--dir") + 1]
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            continue
    # The test process is gone and did not stop its lab.
    if not os.path.exists(os.path.join(d, "lab.json")):
        return 0
    print("lab watchdog: the test process died; stopping %s" % d, flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    lab = Lab.attach(d, keep=True, out=sys.stdout)
    lab.stop()
    return 0


def _cli(argv):
    if argv[:1] == ["_watchdog"]:
        return _watchdog_main(argv)
    import argparse
    ap = argparse.ArgumentParser(
        prog="lab.py", description="probed's integration lab, by hand")
    ap.add_argument("command", choices=("up", "down", "status", "config",
                                        "zone"))
    ap.add_argument("--dir", default=DEFAULT_CLI_DIR)
    ap.add_argument("--grey-delay", type=int, default=5)
    ap.add_argument("--keep", action="store_true",
                    help="down: keep the lab directory")
    a = ap.parse_args(argv)
    if a.command == "config":
        sys.stdout.write(probed_config_text())
        return 0
    if a.command == "zone":
        sys.stdout.write(zone_text())
        return 0
    state = os.path.join(a.dir, "lab.json")
    if a.command == "up":
        if os.path.exists(state):
            old = Lab.attach(a.dir)
            if any(old._alive(p) for p in old.procs):
                print("lab: already up in %s (lab.py down first)" % a.dir,
                      file=sys.stderr)
                return 1
        lab = Lab(grey_delay=a.grey_delay, dir=a.dir, detach=True, keep=True,
                  lock_timeout=0)
        try:
            lab.start()
        except LabSkip as e:
            print("lab: %s" % e, file=sys.stderr)
            return 77
        except LabError as e:
            print("lab: %s" % e, file=sys.stderr)
            return 1
        # Leave it running: forget the children without stopping them.
        lab._popen = {}
        lab.procs = []
        if lab._lock_fd is not None:
            os.close(lab._lock_fd)    # the peers process holds it now
        print("lab: up in %s; logs in %s" % (lab.dir, lab.logdir))
        print("lab: probed configuration:")
        sys.stdout.write(probed_config_text())
        return 0
    if not os.path.exists(state):
        print("lab: no lab in %s" % a.dir, file=sys.stderr)
        return 1
    lab = Lab.attach(a.dir, keep=a.keep)
    if a.command == "status":
        st = lab.status()
        for k, v in st.items():
            print("%-28s %s" % (k, v))
        return 0 if all(v in ("running", "yes") for v in st.values()) else 1
    lab.stop()
    print("lab: down%s" % (" (kept %s)" % a.dir if a.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
