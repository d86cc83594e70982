"""engine -- probed's verification engine against real servers (tests/lab).

What a user relies on when VERIFY probes: every verdict and reason that
network behaviour can produce is produced, by the behaviour that should
produce it (issue #3), with the result keys design.md promises; DNS is read
the RFC way (NXDOMAIN, null MX, implicit MX, no address); a failure before
RCPT moves on to the next MX and is never `undeliverable`; EHLO falls back
to HELO, the null sender to fallback_mail_from, a broken opportunistic
STARTTLS to the clear; the catch-all check asks one random address in the
same session (a second transaction when the server takes one recipient at
a time); nothing is ever sent after RCPT but QUIT, and QUIT is answered
before the close; timeout= answers `pending` while the probe runs on into
the cache; greylisting is retried by probed itself; a host that said 421
is backed off; limits.max_inflight answers `busy`; the destination guard
answers `not_allowed` and connects to nothing.

Owns: one lab (tests/lab/lab.py: NSD, six Postfix instances, postgrey, the
scripted peers) for the whole file, started once before the first case and
stopped after the last; each case starts its own probed(s) with the lab's
configuration snippet plus short timeouts.  Results are asserted on the
control socket (and through `probectl --json`), and where it matters on the
servers' own logs (the lab's readers; `since=` marks keep cases apart, and
only sessions that said EHLO with this run's HELO_NAME are counted, so a
probed someone runs by hand against the lab cannot disturb the counts).

Limits: the lab's addresses are fixed, so only one lab runs per machine: a
second test file that needs one waits for the lock (lab.py lock_timeout).
Needs root (exit 77 otherwise) and the Debian packages of tests/lab/README.md.
Greylisting waits GREY_DELAY seconds.  The file takes about 20 s.  With
PROBED_TEST_ONLY set, the closing coverage check is skipped.
"""

import functools
import json
import os
import re
import sys
import time

import harness
from harness import T, now, parse_result
import lab as labmod

suite = harness.Suite("engine")
suite.require_binary("PROBED")
suite.require_binary("PROBECTL")

LAB = None
GREY_DELAY = 2
HELO_NAME = "engine%d.lab.test" % os.getpid()

# Short timeouts, so that the slow behaviours (tarpit, dead DNS) cost
# seconds, not minutes; scaled like every deadline when probed runs under a
# slow wrapper.  udns counts whole seconds and tries 3 times: dns.timeout 1
# gives up after about 3 s with one server.
DNS_TIMEOUT = T(1.0)
GREETING_TIMEOUT = T(3.0)
FAST = {
    "dns": {"timeout": DNS_TIMEOUT},
    "smtp": {"connect_timeout": T(2.0), "greeting_timeout": GREETING_TIMEOUT,
             "command_timeout": T(3.0)},
}

DEAD_DNS = "127.0.3.98"          # nothing listens there
FALLBACK_SENDER = "postmaster@lab.test"

SEEN = {}                        # reason -> first result line that had it
VERDICTS_SEEN = set()

PRESENT = object()               # want a key, whatever its value
ABSENT = object()                # want no such key


# ---------------------------------------------------------------- helpers

def lab_case(fn=None, budget=harness.CASE_BUDGET):
    """A case that uses the lab: on failure, what the lab's servers logged
    during the case is printed after the case's own output."""
    def wrap(f):
        @functools.wraps(f)
        def run(c):
            mark = LAB.mark()
            t0 = now()
            try:
                f(c)
            finally:
                print("# %s: %.1f s" % (f.__name__, now() - t0), flush=True)
                if c.failed:
                    dump_lab(mark)
        return suite.case(run, budget=budget)
    return wrap(fn) if fn is not None else wrap


def dump_lab(mark, tail=80):
    for name, path in sorted(LAB.log_paths().items()):
        text = labmod._read_from(path, mark)
        lines = text.splitlines()
        if not lines:
            continue
        print("# ---- lab %s (%s), last %d of %d lines of this case ----"
              % (name, path, min(tail, len(lines)), len(lines)))
        for line in lines[-tail:]:
            print("# | %s" % line[:600])
    sys.stdout.flush()


def start(c, extra=None, name="probed", lab_config=True):
    """probed with the lab's configuration, FAST timeouts and `extra` on
    top (nested dicts merge; a None value drops the key)."""
    over = harness._merge(LAB.probed_config() if lab_config else {}, FAST)
    over = harness._merge(over, {"helo_name": HELO_NAME})
    if extra:
        over = harness._merge(over, extra)
    return c.probed(over, name=name)


def request_line(addr, opts=""):
    return "VERIFY %s%s" % (addr, " " + opts if opts else "")


def verify(d, addr, opts="", timeout=15.0):
    return d.request(request_line(addr, opts), timeout)


def verify_all(d, addrs, timeout=20.0):
    """Pipelined on one connection, so the probes run concurrently; the
    answers come back in request order."""
    with d.client() as cl:
        return cl.pipeline([request_line(a) for a in addrs], timeout)


def record(line):
    r = parse_result(line)
    if r is not None:
        SEEN.setdefault(r[2].get("reason"), line)
        VERDICTS_SEEN.add(r[0])
    return r


def _want_desc(k, w):
    if w is PRESENT:
        return "%s=..." % k
    if w is ABSENT:
        return "no %s" % k
    if callable(w):
        return "%s=%s" % (k, getattr(w, "desc", "ok"))
    return "%s=%s" % (k, w)


def result(c, line, addr, verdict, reason, what=None, **want):
    """One check: `line` is `<verdict> <addr> reason=<reason>` with the keys
    in `want` (a value, PRESENT, ABSENT or a predicate).  Returns the keys
    (empty when the line is no result)."""
    r = record(line)
    bad = []
    kv = {}
    if r is None:
        bad.append("not a result line")
    else:
        v, a, kv = r
        if a != addr:
            bad.append("address %r, want %r" % (a, addr))
        if v != verdict:
            bad.append("verdict %s, want %s" % (v, verdict))
        if kv.get("reason") != reason:
            bad.append("reason %s, want %s" % (kv.get("reason"), reason))
        for k, w in want.items():
            got = kv.get(k)
            if w is PRESENT:
                ok = k in kv
            elif w is ABSENT:
                ok = k not in kv
            elif callable(w):
                ok = k in kv and bool(w(got))
            else:
                ok = got == str(w)
            if not ok:
                bad.append("%s=%r, want %s" % (k, got, _want_desc(k, w)))
    desc = what or "VERIFY %s: %s reason=%s%s" % (
        addr, verdict, reason,
        "".join(" " + _want_desc(k, w) for k, w in want.items()))
    c.check(not bad, desc, "got %r\n%s" % (line, "\n".join(bad)))
    return kv


def pred(desc, fn):
    fn.desc = desc
    return fn


def is_int(lo=None, hi=None):
    def ok(v):
        try:
            n = int(v)
        except (TypeError, ValueError):
            return False
        return (lo is None or n >= lo) and (hi is None or n <= hi)
    return pred("<int %s..%s>" % ("" if lo is None else lo,
                                  "" if hi is None else hi), ok)


def contains(word):
    return pred("<text with %r>" % word,
                lambda v: v is not None and word.lower() in v.lower())


def wait(fn, timeout, what):
    """LAB.wait_for() that answers None instead of raising."""
    try:
        return LAB.wait_for(fn, T(timeout) / labmod.SCALE, what)
    except labmod.LabTimeout:
        return None


# Whose traffic is it?  Every probed this file starts says EHLO with
# HELO_NAME, unique to this run, and the log readers below count only
# sessions that carry it: anything else that talks to the lab's fixed
# addresses (a probed someone runs by hand with the lab's configuration)
# cannot disturb the counts.  Sessions that end before EHLO (tarpit,
# ratelimit, banner554) cannot be told apart; they are counted whole.


def peer_sessions(name, since, all_sessions=False):
    """{session number: [(kind, text), ...]} of a scripted peer: the
    sessions that said EHLO or HELO with HELO_NAME (all_sessions: every
    session)."""
    out = {}
    for e in LAB.peer_events(name, since):
        out.setdefault(e.session, []).append((e.kind, e.text))
    if all_sessions:
        return out
    return {k: ev for k, ev in out.items()
            if any(kind == "cmd" and t.split(" ", 1)[0].upper() in
                   ("EHLO", "HELO") and t.split(" ", 1)[1:] == [HELO_NAME]
                   for kind, t in ev)}


def session_cmds(events):
    return [t for k, t in events if k == "cmd"]


_SMTPD_RE = re.compile(r"/smtpd\[(\d+)\]: (.*)$")


def postfix_mine(inst, since):
    """(rcpts, sessions) that this file's probes caused at Postfix `inst`
    since the mark: [RcptLine] of the RCPT lines carrying HELO_NAME, and
    the command counters ({"ehlo": "2", "rcpt": "1/2", ...}) of the
    sessions those lines were in."""
    tag = "helo=<%s>" % HELO_NAME
    ours = {}                       # smtpd pid -> its session is ours
    rcpts, sessions = [], []
    for line in labmod._read_from(LAB.postfix_log(inst), since).splitlines():
        m = _SMTPD_RE.search(line)
        if not m:
            continue
        pid, rest = m.groups()
        if rest.startswith("connect from "):
            ours[pid] = False
        elif rest.startswith("disconnect from "):
            d = labmod._DISCONNECT_RE.search(line)
            if ours.pop(pid, False) and d:
                sessions.append(dict(kv.split("=", 1) for kv in d.group(1).split()
                                     if "=" in kv))
        elif tag in rest:
            ours[pid] = True
            r = labmod._RCPT_RE.search(line)
            if r:
                action, text, _sender, rcpt = r.groups()
                code = 250 if action == "permit" else \
                    int(text[:3]) if text[:3].isdigit() else 0
                rcpts.append(labmod.RcptLine(rcpt, code, text, action))
    return rcpts, sessions


def postfix_rcpts(inst, since, address=None):
    return [r for r in postfix_mine(inst, since)[0]
            if address is None or r.address.lower() == address.lower()]


def postfix_settled(inst, since, n_sessions):
    """Wait until instance `inst` logged n_sessions finished sessions of
    ours (postlogd writes a moment after the reply); returns them or None."""
    def enough():
        s = postfix_mine(inst, since)[1]
        return s if len(s) >= n_sessions else None
    return wait(enough, 5, "%d Postfix sessions" % n_sessions)


def randoms(rcpts, target):
    return [r.address for r in rcpts if r.address.lower() != target.lower()]


RANDOM_RE = re.compile(r"^[a-z0-9]{8,64}@")


def ctl(c, sock, *args, input=None, timeout=30.0):
    argv = [harness.binary("PROBECTL"), "-s", sock] + list(args)
    return c.run(argv, input=input, timeout=timeout)


def stats(d):
    return d.stats()


# ---------------------------------------------------------------- cases

@lab_case
def accepted_in_full(c):
    """One VERIFY of a known user: every result key, and exactly what the
    server saw: one session, EHLO/STARTTLS/EHLO/MAIL/2 RCPT/QUIT, no DATA."""
    d = start(c)
    m = LAB.mark()
    line = verify(d, "alice@accept.test")
    result(c, line, "alice@accept.test", "deliverable", "accepted",
           code=250, enhanced="2.1.5", mx="mx.accept.test", catch_all="no",
           cached="no", tls="yes", ms=is_int(0, int(T(10000))), text="Ok")
    sessions = postfix_settled("a", m, 1)
    c.require(sessions is not None, "Postfix A logged the session")
    rcpts = postfix_rcpts("a", m)
    c.eq(len(rcpts), 2, "Postfix logged exactly 2 RCPTs for one VERIFY "
         "(target + random)")
    c.check([(r.address, r.code) for r in rcpts
             if r.address == "alice@accept.test"] == [("alice@accept.test", 250)],
            "one of them is RCPT TO:<alice@accept.test>, accepted", repr(rcpts))
    rnd = randoms(rcpts, "alice@accept.test")
    c.check(len(rnd) == 1 and RANDOM_RE.match(rnd[0]) is not None and
            rnd[0].endswith("@accept.test") and rnd[0].split("@")[0]
            not in labmod.USERS,
            "the other is a random local part @accept.test, refused 550",
            repr(rcpts))
    c.eq(len(sessions), 1, "one SMTP session for one VERIFY")
    s = sessions[0] if sessions else {}
    c.check(s.get("starttls") == "1" and s.get("ehlo") == "2",
            "STARTTLS was used (opportunistic) and EHLO said again after it",
            repr(s))
    c.check(s.get("mail") == "1" and s.get("rcpt") == "1/2" and
            s.get("quit") == "1",
            "MAIL once, RCPT twice (1 accepted), QUIT", repr(s))
    extra = sorted(set(s) - {"ehlo", "starttls", "mail", "rcpt", "quit",
                             "commands"})
    c.check(not extra, "no other command: nothing after RCPT but QUIT "
            "(no DATA, RSET, VRFY, NOOP)", repr(s))
    st = stats(d)
    c.check(st.get("probes") == 1 and st.get("sessions") == 1 and
            st.get("rcpts") == 2 and st.get("inflight") == 0 and
            st.get("reason_accepted") == 1,
            "STATS: probes=1 sessions=1 rcpts=2 inflight=0 reason_accepted=1",
            repr(st))

    # The random address is drawn anew for every probe (another domain of
    # the same server: its catch-all status is not known yet either).
    m2 = LAB.mark()
    line = verify(d, "alice@nomx.test")
    result(c, line, "alice@nomx.test", "deliverable", "accepted",
           catch_all="no")
    postfix_settled("a", m2, 1)
    rnd2 = randoms(postfix_rcpts("a", m2), "alice@nomx.test")
    c.check(len(rnd2) == 1 and rnd and RANDOM_RE.match(rnd2[0]) is not None
            and rnd2[0].split("@")[0] != rnd[0].split("@")[0],
            "a second probe asks a different random local part",
            "first %r, second %r" % (rnd, rnd2))

    # The same through probectl --json: from the cache, then probed again.
    for opts, fresh in (((), False), (("--fresh",), True)):
        rc, out, err = ctl(c, d.socket, "--json", "verify", *opts,
                           "alice@accept.test")
        try:
            objs = [json.loads(x) for x in out.splitlines()]
        except ValueError:
            objs = []
        o = objs[0] if len(objs) == 1 and isinstance(objs[0], dict) else {}
        c.check(rc == 0 and o.get("address") == "alice@accept.test" and
                o.get("verdict") == "deliverable" and
                o.get("reason") == "accepted" and o.get("code") == 250 and
                o.get("enhanced") == "2.1.5" and o.get("mx") == "mx.accept.test"
                and o.get("tls") is True and o.get("cached") is (not fresh) and
                isinstance(o.get("ms" if fresh else "age"), int),
                "probectl --json verify%s: exit 0, one object with verdict, "
                "reason, code (a number), enhanced, mx, tls, cached=%s and %s"
                % (" --fresh" if fresh else "", str(not fresh).lower(),
                   "ms" if fresh else "age"),
                "exit %d\nstdout %r\nstderr %r" % (rc, out, err))


@lab_case
def mailbox_reasons(c):
    """What Postfix says at RCPT decides: each refusal gets its reason."""
    d = start(c)
    m = LAB.mark()
    addrs = ["bob@accept.test", "nobody@accept.test", "full@accept.test",
             "disabled@accept.test", "x@relay.test", "alice@nomx.test",
             "nobody@nomx.test"]
    got = dict(zip(addrs, verify_all(d, addrs)))
    result(c, got["bob@accept.test"], "bob@accept.test", "deliverable",
           "accepted", code=250, catch_all="no")
    result(c, got["nobody@accept.test"], "nobody@accept.test",
           "undeliverable", "no_such_user", code=550, enhanced="5.1.1",
           mx="mx.accept.test", catch_all="no", tls="yes",
           text=contains("User unknown in virtual mailbox table"))
    result(c, got["full@accept.test"], "full@accept.test", "risky",
           "mailbox_full", code=552, enhanced="5.2.2",
           text=contains("Mailbox full"))
    result(c, got["disabled@accept.test"], "disabled@accept.test",
           "undeliverable", "disabled", code=550, enhanced="5.2.1",
           text=contains("account disabled"))
    result(c, got["x@relay.test"], "x@relay.test", "undeliverable",
           "relay_denied", code=554, enhanced="5.7.1", mx="mx.relay.test",
           text=contains("Relay access denied"))
    result(c, got["alice@nomx.test"], "alice@nomx.test", "deliverable",
           "accepted", mx="nomx.test",
           what="VERIFY alice@nomx.test: no MX, so the implicit MX (the "
           "domain's own A) decides: deliverable mx=nomx.test")
    result(c, got["nobody@nomx.test"], "nobody@nomx.test", "undeliverable",
           "no_such_user", mx="nomx.test")
    # Postfix's own record of what it answered
    ok = wait(lambda: all(postfix_rcpts("a", m, a) for a in
                          ("full@accept.test", "disabled@accept.test",
                           "x@relay.test", "alice@nomx.test")), 5,
              "Postfix RCPT lines")
    codes = {a: [r.code for r in postfix_rcpts("a", m, a)]
             for a in ("full@accept.test", "disabled@accept.test",
                       "x@relay.test", "alice@nomx.test")}
    c.check(ok and codes == {"full@accept.test": [552],
                             "disabled@accept.test": [550],
                             "x@relay.test": [554],
                             "alice@nomx.test": [250]},
            "Postfix A logged each target once, with the code probed reports",
            repr(codes))


@lab_case
def dns_reasons(c):
    """NXDOMAIN, null MX, an MX host without address, a refusing server, a
    dead server: each its own reason, none of them an SMTP session."""
    d = start(c)
    dead = start(c, {"dns": {"servers": [DEAD_DNS]}}, name="deaddns")
    addrs = ["nobody@nosuch.test", "x@nullmx.test", "x@noaddr.test",
             "x@example.org", "alice@sub.accept.test"]
    t0 = now()
    with d.client() as a, dead.client() as b:
        ga, gb = harness.exchange_all([
            (a, "".join(request_line(x) + "\n" for x in addrs), len(addrs)),
            (b, request_line("alice@accept.test") + "\n", 1)], timeout=20)
    took = now() - t0
    got = dict(zip(addrs, ga))
    result(c, got.get("nobody@nosuch.test"), "nobody@nosuch.test",
           "undeliverable", "no_domain", mx=ABSENT, code=ABSENT)
    result(c, got.get("alice@sub.accept.test"), "alice@sub.accept.test",
           "undeliverable", "no_domain", mx=ABSENT)
    result(c, got.get("x@nullmx.test"), "x@nullmx.test", "undeliverable",
           "null_mx", mx=ABSENT)
    result(c, got.get("x@noaddr.test"), "x@noaddr.test", "undeliverable",
           "no_mx", mx=ABSENT)
    result(c, got.get("x@example.org"), "x@example.org", "unknown",
           "dns_error", text=contains("REFUSED"),
           what="VERIFY x@example.org (a zone NSD does not serve: REFUSED): "
           "unknown reason=dns_error")
    result(c, gb[0] if gb else None, "alice@accept.test", "unknown",
           "dns_error", text=contains("timeout"),
           what="with dns.servers = a dead address: unknown reason=dns_error "
           "text=...timeout...")
    c.check(took < 3 * DNS_TIMEOUT + T(4), "the dead DNS server is given up "
            "on in %.1f s (dns.timeout = %g)" % (took, DNS_TIMEOUT))
    st = stats(d)
    c.check(st.get("sessions") == 0 and st.get("dns_queries", 0) >= len(addrs),
            "no SMTP session for any of them; the DNS was asked", repr(st))


@lab_case
def connect_failed(c):
    d = start(c)
    line = verify(d, "x@[%s]" % labmod.DEAD_ADDRESS)
    result(c, line, "x@[%s]" % labmod.DEAD_ADDRESS, "unknown",
           "connect_failed", mx="[%s]" % labmod.DEAD_ADDRESS,
           text=contains("refused"),
           what="VERIFY of an address literal where nothing listens: unknown "
           "reason=connect_failed")
    st = stats(d)
    c.eq(st.get("dns_queries"), 0, "an address literal needs no DNS")


@lab_case
def peer_reasons(c):
    """The misbehaving peers, all at once: each its reason and its code."""
    d = start(c)
    m = LAB.mark()
    addrs = ["alice@ratelimit.test", "alice@banner554.test",
             "alice@blocklist.test", "alice@sendersblocked.test",
             "alice@nullsender.test", "alice@tempfail.test",
             "alice@malformed.test", "alice@hugereply.test",
             "alice@unverifiable.test", "alice@reset.test",
             "anyone@catchall.test"]
    got = dict(zip(addrs, verify_all(d, addrs)))
    result(c, got.get("alice@ratelimit.test"), "alice@ratelimit.test",
           "unknown", "rate_limited", code=421, enhanced="4.7.0",
           mx="mx.ratelimit.test")
    result(c, got.get("alice@banner554.test"), "alice@banner554.test",
           "unknown", "blocked", code=554, enhanced="5.7.1",
           text=contains("spamhaus"))
    result(c, got.get("alice@blocklist.test"), "alice@blocklist.test",
           "unknown", "blocked", code=550, enhanced="5.7.1",
           what="VERIFY alice@blocklist.test: a 550 5.7.1 blocklist refusal at "
           "RCPT is unknown reason=blocked, not no_such_user")
    result(c, got.get("alice@sendersblocked.test"), "alice@sendersblocked.test",
           "unknown", "sender_rejected", code=550, enhanced="5.7.1")
    result(c, got.get("alice@nullsender.test"), "alice@nullsender.test",
           "unknown", "sender_rejected", code=553, enhanced="5.1.7",
           what="VERIFY alice@nullsender.test without fallback_mail_from: "
           "unknown reason=sender_rejected code=553")
    result(c, got.get("alice@tempfail.test"), "alice@tempfail.test",
           "unknown", "tempfail", code=451, enhanced="4.3.0")
    result(c, got.get("alice@malformed.test"), "alice@malformed.test",
           "unknown", "protocol_error", mx="mx.malformed.test")
    result(c, got.get("alice@hugereply.test"), "alice@hugereply.test",
           "unknown", "protocol_error", mx="mx.hugereply.test",
           what="VERIFY alice@hugereply.test (an endless EHLO reply): unknown "
           "reason=protocol_error, at once")
    result(c, got.get("alice@unverifiable.test"), "alice@unverifiable.test",
           "risky", "unverifiable", code=252)
    r = record(got.get("alice@reset.test"))
    c.check(r is not None and r[0] == "unknown",
            "VERIFY alice@reset.test (RST on RCPT): unknown",
            repr(got.get("alice@reset.test")))
    result(c, got.get("anyone@catchall.test"), "anyone@catchall.test", "risky",
           "catch_all", catch_all="yes", code=250, mx="mx.catchall.test",
           tls="no")

    # Nothing said before RCPT is a statement about the mailbox.
    early = ["alice@ratelimit.test", "alice@banner554.test",
             "alice@sendersblocked.test", "alice@nullsender.test",
             "alice@malformed.test", "alice@hugereply.test"]
    bad = [got.get(a) for a in early
           if (record(got.get(a)) or ("undeliverable",))[0] != "unknown"]
    c.check(not bad, "a banner, EHLO or MAIL-stage refusal is never "
            "undeliverable (or risky)", "\n".join(map(repr, bad)))

    # A host that said 421 is left alone for a while: the next address
    # there is answered without a connection.
    result(c, verify(d, "bob@ratelimit.test"), "bob@ratelimit.test",
           "unknown", "rate_limited",
           what="VERIFY bob@ratelimit.test right after the 421: unknown "
           "reason=rate_limited (the host is backed off)")

    # The peers saw what design.md says a probe sends.
    for name, cmds_want in (
            ("banner554", ["QUIT"]),
            ("ratelimit", [])):
        sess = peer_sessions(name, m, all_sessions=True)   # no EHLO to tell
        cmds = [session_cmds(ev) for ev in sess.values()]
        c.check(cmds == [cmds_want], "%s: one session (no second one), "
                "commands %r" % (name, cmds_want), repr(cmds))
    # A refused MAIL: the session still ends with a QUIT the server answers
    # (RFC 5321 4.1.1.10), not with a reset.
    for name in ("sendersblocked", "nullsender"):
        sess = peer_sessions(name, m)
        ev = list(sess.values())[0] if len(sess) == 1 else []
        cmds = session_cmds(ev)
        closes = [t for k, t in ev if k == "close"]
        c.check(len(sess) == 1 and cmds[-1:] == ["QUIT"] and closes == ["quit"],
                "%s: after the refused MAIL the session ends with QUIT, "
                "answered (peer logs close=quit)" % name, repr(ev))


@lab_case
def timeout_and_pending(c):
    d = start(c)
    m = LAB.mark()
    t0 = now()
    line = verify(d, "alice@tarpit.test", "timeout=0.5")
    took = now() - t0
    result(c, line, "alice@tarpit.test", "unknown", "pending",
           mx=ABSENT, code=ABSENT)
    c.check(0.4 <= took <= T(2.0), "timeout=0.5 answers pending after about "
            "0.5 s (%.2f s)" % took)
    t0 = now()
    line = verify(d, "bob@tarpit.test")
    took = now() - t0
    result(c, line, "bob@tarpit.test", "unknown", "timeout",
           mx="mx.tarpit.test", text=contains("greeting"),
           ms=is_int(int(GREETING_TIMEOUT * 900),
                     int(GREETING_TIMEOUT * 1000 + T(3000))),
           what="VERIFY bob@tarpit.test (never a banner): unknown "
           "reason=timeout text=greeting_timeout after smtp.greeting_timeout")
    c.check(took < GREETING_TIMEOUT + T(3), "the tarpit costs "
            "greeting_timeout (%g s), not more (%.1f s)" % (GREETING_TIMEOUT, took))
    # The probe that answered pending ran on to its end, into the cache.
    def checked():
        line = d.request("CHECK alice@tarpit.test")
        r = parse_result(line)
        return line if r is not None and r[2].get("reason") != "not_cached" \
            else None
    line = wait(checked, 5, "CHECK alice@tarpit.test cached")
    result(c, line, "alice@tarpit.test", "unknown", "timeout", cached="yes",
           what="the probe that answered `pending` ran on: CHECK finds its "
           "verdict cached (unknown reason=timeout cached=yes)")
    c.eq(LAB.peer_sessions("tarpit", since=m), 2,
         "the tarpit saw one connection per VERIFY")
    wait(lambda: stats(d).get("inflight") == 0, 5, "inflight=0")
    c.eq(stats(d).get("inflight"), 0, "STATS inflight=0 when both are over")


@lab_case
def busy(c):
    """limits.max_inflight = 1: a second concurrent probe is refused at
    once; room comes back when the first ends, even if it answered pending."""
    d = start(c, {"limits": {"max_inflight": 1}})
    slow = d.client()
    other = d.client()
    try:
        slow.sendline(request_line("alice@tarpit.test"))
        ok = wait(lambda: stats(d).get("inflight") == 1, 5, "inflight=1")
        c.require(ok, "STATS inflight=1 while the first probe runs")
        t0 = now()
        line = other.request(request_line("bob@tarpit.test"))
        took = now() - t0
        result(c, line, "bob@tarpit.test", "unknown", "busy",
               text=contains("max_inflight"),
               what="a second concurrent VERIFY past max_inflight: unknown "
               "reason=busy")
        c.check(took < T(1.0), "busy is answered at once (%.2f s)" % took)
        line = slow.readline(timeout=10)
        result(c, line, "alice@tarpit.test", "unknown", "timeout",
               what="the first probe is not disturbed: unknown reason=timeout")
        line = other.request(request_line("alice@accept.test"), timeout=10)
        result(c, line, "alice@accept.test", "deliverable", "accepted",
               what="after it ended there is room again: deliverable")
        # A probe that answered pending still holds its place.
        line = slow.request(request_line("carol@tarpit.test", "timeout=0.3"))
        result(c, line, "carol@tarpit.test", "unknown", "pending")
        line = other.request(request_line("bob@accept.test"))
        result(c, line, "bob@accept.test", "unknown", "busy",
               what="a probe that answered pending still counts against "
               "max_inflight: busy")
        st = stats(d)
        c.check(st.get("reason_busy") == 2, "STATS reason_busy=2", repr(st))
    finally:
        slow.close()
        other.close()


@lab_case
def not_allowed(c):
    """Without smtp.allow_networks the guard refuses the lab's loopback
    addresses: no connection is made."""
    d = start(c, {"smtp": {"allow_networks": None}})
    m = LAB.mark()
    addrs = ["alice@accept.test", "x@[127.0.2.1]", "alice@v6.test"]
    got = dict(zip(addrs, verify_all(d, addrs)))
    result(c, got.get("alice@accept.test"), "alice@accept.test", "unknown",
           "not_allowed", mx="mx.accept.test", text=contains("loopback"))
    result(c, got.get("x@[127.0.2.1]"), "x@[127.0.2.1]", "unknown",
           "not_allowed")
    result(c, got.get("alice@v6.test"), "alice@v6.test", "unknown",
           "not_allowed", text=contains("::1"))
    c.eq(stats(d).get("sessions"), 0, "STATS sessions=0")
    # A documentation address stays refused even with the lab's networks.
    lab_d = start(c, name="labnets")
    line = verify(lab_d, "x@[192.0.2.1]")
    result(c, line, "x@[192.0.2.1]", "unknown", "not_allowed",
           what="x@[192.0.2.1] (documentation range) is refused even with "
           "allow_networks set to loopback")
    # Control: a probe that is allowed shows up in Postfix's log, and is
    # the only connection since the mark.
    line = verify(lab_d, "bob@accept.test")
    result(c, line, "bob@accept.test", "deliverable", "accepted")
    sess = postfix_settled("a", m, 1)
    c.check(sess is not None and len(sess) == 1 and
            [r.address for r in postfix_rcpts("a", m)
             if not RANDOM_RE.match(r.address)] == ["bob@accept.test"],
            "Postfix A saw only the allowed probe (one session, bob)",
            repr(postfix_mine("a", m)))
    c.eq(postfix_mine("e", m), ([], []), "Postfix E ([::1]) saw nothing of ours")


@lab_case
def starttls(c):
    d = start(c)
    req = start(c, {"smtp": {"starttls": "required"}}, name="required")
    never = start(c, {"smtp": {"starttls": "never"}}, name="never")
    m = LAB.mark()
    result(c, verify(d, "alice@tls.test"), "alice@tls.test", "deliverable",
           "accepted", tls="yes", mx="mx.tls.test",
           what="opportunistic: alice@tls.test (TLS required by the server): "
           "deliverable tls=yes")
    sess = postfix_settled("d", m, 1) or [{}]
    c.check(sess[0].get("starttls") == "1", "Postfix D logged STARTTLS",
            repr(sess))

    got = dict(zip(["alice@tls.test", "alice@accept.test",
                    "anyone@catchall.test", "alice@badtls.test"],
                   verify_all(req, ["alice@tls.test", "alice@accept.test",
                                    "anyone@catchall.test",
                                    "alice@badtls.test"])))
    result(c, got.get("alice@tls.test"), "alice@tls.test", "deliverable",
           "accepted", tls="yes",
           what="starttls=required: alice@tls.test deliverable tls=yes")
    result(c, got.get("alice@accept.test"), "alice@accept.test",
           "deliverable", "accepted", tls="yes",
           what="starttls=required: alice@accept.test deliverable tls=yes")
    result(c, got.get("anyone@catchall.test"), "anyone@catchall.test",
           "unknown", "tls_failed", mx="mx.catchall.test",
           text=contains("STARTTLS"),
           what="starttls=required against a server without STARTTLS: "
           "unknown reason=tls_failed")
    result(c, got.get("alice@badtls.test"), "alice@badtls.test", "unknown",
           "tls_failed", tls="no",
           what="starttls=required and a broken handshake: unknown "
           "reason=tls_failed (no retry in the clear)")

    m_never = LAB.mark()
    got = dict(zip(["alice@accept.test", "alice@tls.test"],
                   verify_all(never, ["alice@accept.test", "alice@tls.test"])))
    result(c, got.get("alice@accept.test"), "alice@accept.test",
           "deliverable", "accepted", tls="no",
           what="starttls=never: alice@accept.test deliverable tls=no")
    result(c, got.get("alice@tls.test"), "alice@tls.test", "unknown",
           "tls_failed", code=530,
           what="starttls=never against a server that requires TLS (530 at "
           "MAIL): unknown reason=tls_failed")
    # A refused MAIL still ends with QUIT, read and answered by the server.
    # (Postfix logs no HELO name for that session: it is the one without
    # STARTTLS; probes from elsewhere use it.)
    def clear_sessions():
        return [x for x in LAB.postfix_sessions("d", m_never)
                if "starttls" not in x]
    sess = wait(clear_sessions, 5, "the session without STARTTLS") or [{}]
    c.check(len(sess) == 1 and sess[0].get("quit") == "1",
            "starttls=never: after the 530 at MAIL Postfix D read QUIT "
            "(quit=1 in its session counters)", repr(sess))

    # Control for the catch-all server: the opportunistic probe reaches
    # RCPT there; the required one never did.
    result(c, verify(d, "other@catchall.test"), "other@catchall.test",
           "risky", "catch_all")
    wait(lambda: postfix_rcpts("b", m, "other@catchall.test"), 5,
         "the control RCPT")
    c.eq(len(postfix_rcpts("b", m, "anyone@catchall.test")), 0,
         "starttls=required: no RCPT reached the server without STARTTLS")
    c.eq(len(peer_sessions("badtls", m)), 1,
         "starttls=required: badtls was not retried in the clear")


@lab_case
def badtls_retry(c):
    """Opportunistic TLS whose handshake fails: the same server once more,
    in the clear."""
    d = start(c)
    m = LAB.mark()
    result(c, verify(d, "alice@badtls.test"), "alice@badtls.test",
           "deliverable", "accepted", tls="no", catch_all="no",
           what="alice@badtls.test (garbage instead of TLS): retried in the "
           "clear, deliverable tls=no")
    sess = peer_sessions("badtls", m)
    seq = [session_cmds(ev) for _, ev in sorted(sess.items())]
    c.check(len(seq) == 2 and "STARTTLS" in seq[0] and
            "STARTTLS" not in seq[1] and
            "RCPT TO:<alice@badtls.test>" in seq[1] and
            not any(x.startswith("RCPT") for x in seq[0]),
            "the peer saw a STARTTLS session with no RCPT, then a clear one "
            "that asked alice", repr(seq))


@lab_case
def mx_fallback(c):
    d = start(c)
    m = LAB.mark()
    got = verify_all(d, ["alice@deadprimary.test", "nobody@deadprimary.test"])
    result(c, got[0], "alice@deadprimary.test", "deliverable", "accepted",
           mx="mx2.deadprimary.test",
           what="alice@deadprimary.test: the primary MX refuses connections, "
           "the secondary decides: deliverable mx=mx2.deadprimary.test")
    result(c, got[1], "nobody@deadprimary.test", "undeliverable",
           "no_such_user", mx="mx2.deadprimary.test")
    ok = wait(lambda: postfix_rcpts("a", m, "alice@deadprimary.test"), 5,
              "RCPT line")
    c.check(ok, "Postfix A (the secondary) logged RCPT TO:<alice@deadprimary.test>")


@lab_case
def helo_fallback(c):
    d = start(c)
    m = LAB.mark()
    result(c, verify(d, "alice@heloonly.test"), "alice@heloonly.test",
           "deliverable", "accepted", catch_all="no")
    result(c, verify(d, "nobody@heloonly.test"), "nobody@heloonly.test",
           "undeliverable", "no_such_user")
    sess = peer_sessions("heloonly", m)
    first = session_cmds(sess[min(sess)]) if sess else []
    helo = HELO_NAME
    c.check(first[:3] == ["EHLO " + helo, "HELO " + helo, "MAIL FROM:<>"],
            "the peer saw EHLO (refused 502), then HELO, then MAIL", repr(first))


@lab_case
def null_sender_fallback(c):
    d = start(c, {"fallback_mail_from": FALLBACK_SENDER})
    m = LAB.mark()
    result(c, verify(d, "alice@nullsender.test"), "alice@nullsender.test",
           "deliverable", "accepted", catch_all="no",
           what="with fallback_mail_from: alice@nullsender.test deliverable")
    result(c, verify(d, "nobody@nullsender.test"), "nobody@nullsender.test",
           "undeliverable", "no_such_user")
    sess = peer_sessions("nullsender", m)
    first = session_cmds(sess[min(sess)]) if sess else []
    mails = [x for x in first if x.startswith("MAIL")]
    fb = "MAIL FROM:<%s>" % FALLBACK_SENDER
    c.check(mails == ["MAIL FROM:<>", fb] and
            "RCPT TO:<alice@nullsender.test>" in first[first.index(fb):],
            "one session: MAIL FROM:<> refused, then MAIL FROM:<%s> and the "
            "RCPT after it" % FALLBACK_SENDER, repr(first))
    c.eq(len(sess), 2, "one session per VERIFY")


@lab_case
def one_recipient_server(c):
    """A server that takes one recipient per transaction: the random
    address, deferred by 452, is asked again.  The peer offers PIPELINING
    and probed has no fallback sender, so QUIT went out with MAIL and the
    RCPTs and no RSET can follow: a second session asks it."""
    d = start(c)
    m = LAB.mark()
    result(c, verify(d, "alice@onercpt.test"), "alice@onercpt.test",
           "deliverable", "accepted", catch_all="no")
    sess = peer_sessions("onercpt", m)
    cmds = [session_cmds(ev) for _, ev in sorted(sess.items())]
    rcpts = [[x for x in s if x.startswith("RCPT")] for s in cmds]
    ok = (len(cmds) == 2 and
          all([x for x in s if x.startswith("MAIL")] == ["MAIL FROM:<>"] and
              "RSET" not in s and s[-1] == "QUIT" and s.count("QUIT") == 1
              for s in cmds) and
          len(rcpts[0]) == 2 and rcpts[0][0] == "RCPT TO:<alice@onercpt.test>" and
          rcpts[1] == rcpts[0][1:])
    c.check(ok, "two sessions: MAIL, RCPT alice, RCPT random (452), QUIT; "
            "then MAIL, RCPT random again, QUIT; no RSET", repr(cmds))


@lab_case
def drop_after_reject(c):
    d = start(c)
    m = LAB.mark()
    # one after the other: each its own session
    got = [verify(d, "nobody@dropafterreject.test"),
           verify(d, "alice@dropafterreject.test")]
    result(c, got[0], "nobody@dropafterreject.test", "undeliverable",
           "no_such_user", code=550, enhanced="5.1.1", catch_all="no",
           what="nobody@dropafterreject.test (550 then the server hangs up): "
           "the answer stands, undeliverable no_such_user")
    result(c, got[1], "alice@dropafterreject.test", "deliverable", "accepted",
           catch_all="no")
    c.eq(len(peer_sessions("dropafterreject", m)), 2,
         "one session per VERIFY: the hang-up is not retried")


@lab_case
def ipv6(c):
    d = start(c)
    m = LAB.mark()
    got = verify_all(d, ["alice@v6.test", "nobody@v6.test"])
    result(c, got[0], "alice@v6.test", "deliverable", "accepted",
           mx="mx.v6.test", tls="yes",
           what="alice@v6.test (MX host with only AAAA ::1): deliverable")
    result(c, got[1], "nobody@v6.test", "undeliverable", "no_such_user")
    ok = wait(lambda: postfix_rcpts("e", m, "alice@v6.test"), 5,
              "RCPT line on E")
    c.check(ok, "Postfix E on [::1] logged RCPT TO:<alice@v6.test>")
    c.eq(postfix_rcpts("a", m, "alice@v6.test"), [],
         "and no IPv4 server was asked")


@lab_case
def equal_preference_shuffle(c):
    """multi.test has two MX at preference 10: over 20 probes both get
    asked.  One VERIFY after the other, each a different address, so every
    one is its own probe and session (no cache, no coalescing, no batch)."""
    n = 20
    # politeness would space 20 sessions to one domain out over seconds
    d = start(c, {"limits": {"domain_rate": 1000.0, "domain_burst": 1000}})
    m = LAB.mark()
    addrs = ["alice@multi.test", "bob@multi.test"] + \
        ["user%d@multi.test" % i for i in range(n - 2)]
    mxs = {}
    bad = []
    for a in addrs:
        line = verify(d, a, "fresh")
        r = record(line)
        want = "deliverable" if a.split("@")[0] in labmod.USERS \
            else "undeliverable"
        if r is None or r[0] != want or r[1] != a:
            bad.append(line)
        else:
            mxs[a] = r[2].get("mx")
    c.check(not bad, "%d VERIFYs at multi.test: alice, bob deliverable, the "
            "others no_such_user" % n, "\n".join(map(repr, bad[:5])))
    counts = {x: list(mxs.values()).count(x) for x in set(mxs.values())}
    c.check(set(counts) == {"mx1.multi.test", "mx2.multi.test"},
            "both MX hosts of equal preference were used", repr(counts))

    def asked(inst):
        return {r.address for r in postfix_rcpts(inst, m)} & set(addrs)
    wait(lambda: len(asked("a") | asked("a2")) >= n, 5, "%d RCPT lines" % n)
    want_a = {a for a, x in mxs.items() if x == "mx1.multi.test"}
    want_a2 = {a for a, x in mxs.items() if x == "mx2.multi.test"}
    c.check(asked("a") == want_a and asked("a2") == want_a2,
            "Postfix A and A2 each logged the RCPTs probed says it asked them",
            "A %r\nA2 %r\nprobed %r" % (sorted(asked("a")), sorted(asked("a2")),
                                        mxs))


@lab_case(budget=40)
def greylisting(c):
    """Postfix C greylists (postgrey, GREY_DELAY s): the first answer is
    `greylisted`; probed retries by itself after smtp.greylist_delay, with
    the same sender, and the verdict lands in the cache."""
    retry = GREY_DELAY + 1.0        # postgrey counts whole seconds
    # A sender of our own: postgrey's triplet is (client /24, sender,
    # recipient), so nobody else's probes can have passed it before us.
    sender = "engine%d@lab.test" % os.getpid()
    d = start(c, {"mail_from": sender, "smtp": {"greylist_delay": retry}})
    m = LAB.mark()
    first = verify(d, "alice@grey.test")
    t_first = now()
    result(c, first, "alice@grey.test", "unknown", "greylisted", code=450,
           enhanced="4.2.0", mx="mx.grey.test", text=contains("greylisted"))
    result(c, d.request("CHECK alice@grey.test"), "alice@grey.test",
           "unknown", "greylisted", cached="yes",
           what="until the retry CHECK answers greylisted from the cache")
    result(c, verify(d, "nobody@grey.test"), "nobody@grey.test",
           "undeliverable", "no_such_user",
           what="an unknown user is refused before greylisting")

    def settled():
        line = d.request("CHECK alice@grey.test")
        r = parse_result(line)
        return line if r is not None and r[2].get("reason") != "greylisted" \
            else None
    line = wait(settled, retry + 8, "the greylisting retry")
    waited = now() - t_first
    result(c, line, "alice@grey.test", "deliverable", "accepted",
           cached="yes", code=250,
           what="probed retried by itself: CHECK finds deliverable in the "
           "cache, nobody asked again")
    c.check(waited >= retry - 0.5, "the retry came after smtp.greylist_delay "
            "(%.1f s of %g)" % (waited, retry))
    st = stats(d)
    c.eq(st.get("greylist_retries"), 1, "STATS greylist_retries=1")

    def codes():
        return [r.code for r in postfix_rcpts("c", m, "alice@grey.test")]
    wait(lambda: 250 in codes(), 5, "the 250 in Postfix C's log")
    c.eq(codes(), [450, 250], "Postfix C logged 450, then 250 for the retry")
    mails = [x for x in labmod._read_from(LAB.postfix_log("c"), m).splitlines()
             if "to=<alice@grey.test>" in x and "helo=<%s>" % HELO_NAME in x]
    c.check(len(mails) == 2 and all("from=<%s>" % sender in x for x in mails),
            "both tries used the configured mail_from (the same triplet)",
            "\n".join(mails))


@suite.case
def classify_command(c):
    """probed --classify reads `<stage> <reply>` lines and prints `verdict
    reason` for each: the lab's real replies."""
    lines = [
        ("rcpt 250 2.1.5 Ok", "deliverable accepted"),
        ("rcpt 550 5.1.1 <nobody@accept.test>: Recipient address rejected: "
         "User unknown in virtual mailbox table", "undeliverable no_such_user"),
        ("rcpt 552 5.2.2 <full@accept.test>: Recipient address rejected: "
         "Mailbox full", "risky mailbox_full"),
        ("rcpt 550 5.2.1 <disabled@accept.test>: Recipient address rejected: "
         "account disabled", "undeliverable disabled"),
        ("rcpt 554 5.7.1 <x@relay.test>: Relay access denied",
         "undeliverable relay_denied"),
        ("rcpt 450 4.2.0 <alice@grey.test>: Recipient address rejected: "
         "Greylisted, see http://postgrey.schweikert.ch/help/grey.test.html",
         "unknown greylisted"),
        ("rcpt 252 2.1.5 Cannot VRFY user, but will accept message",
         "risky unverifiable"),
        ("rcpt 451 4.3.0 Temporary local problem", "unknown tempfail"),
        ("rcpt 550 5.7.1 Service unavailable, Client host [127.0.0.1] blocked "
         "using Spamhaus", "unknown blocked"),
        ("banner 554 5.7.1 Service unavailable; client host blocked using "
         "zen.spamhaus.org", "unknown blocked"),
        ("banner 421 4.7.0 Try again later, closing connection",
         "unknown rate_limited"),
        ("mail 553 5.1.7 null sender not accepted", "unknown sender_rejected"),
        ("mail 550 5.7.1 sender rejected", "unknown sender_rejected"),
        ("mail 530 5.7.0 Must issue a STARTTLS command first",
         "unknown tls_failed"),
        ("ehlo hello there", "unknown protocol_error"),
    ]
    text = "".join(x + "\n" for x, _ in lines)
    rc, out, err = c.run([harness.binary("PROBED"), "--classify"], input=text,
                         timeout=10)
    got = out.splitlines()
    c.eq(rc, 0, "probed --classify exits 0 on good input")
    c.eq(len(got), len(lines), "one output line per input line")
    for (inp, want), g in zip(lines, got):
        c.eq(g, want, "--classify %r" % inp[:60])
    # Not about the mailbox before RCPT, whatever the words say.
    rc, out, err = c.run([harness.binary("PROBED"), "--classify"],
                         input="mail 550 5.1.1 no such user\n"
                               "banner 550 5.1.1 user unknown\n", timeout=10)
    c.check(rc == 0 and all(x.split()[:1] == ["unknown"]
                            for x in out.splitlines()) and
            len(out.splitlines()) == 2,
            "--classify: 'no such user' at MAIL or in the banner is unknown, "
            "never undeliverable", "exit %d out %r" % (rc, out))


@lab_case
def probectl_verify(c):
    d = start(c)
    addrs = ["alice@accept.test", "nobody@accept.test", "alice@tempfail.test",
             "anyone@catchall.test", "bob@@accept.test"]
    want = [("deliverable", "accepted"), ("undeliverable", "no_such_user"),
            ("unknown", "tempfail"), ("risky", "catch_all"),
            ("undeliverable", "syntax")]
    rc, out, err = ctl(c, d.socket, "--json", "verify", *addrs)
    c.eq(rc, 1, "probectl --json verify with one undeliverable exits 1")
    objs = []
    for line in out.splitlines():
        try:
            objs.append(json.loads(line))
        except ValueError:
            objs.append(line)
    c.check([(o.get("address"), o.get("verdict"), o.get("reason"))
             if isinstance(o, dict) else o for o in objs] ==
            [(a,) + w for a, w in zip(addrs, want)],
            "one JSON object per address, in order, with the verdicts",
            repr(objs))
    o = objs[1] if len(objs) > 1 and isinstance(objs[1], dict) else {}
    c.check(o.get("code") == 550 and o.get("enhanced") == "5.1.1" and
            "User unknown" in (o.get("text") or ""),
            "the JSON keeps code (a number), enhanced and text", repr(o))
    rc, out, err = ctl(c, d.socket, "verify", "alice@accept.test")
    c.check(rc == 0 and "deliverable" in out, "probectl verify of a "
            "deliverable address exits 0", "exit %d %r %r" % (rc, out, err))
    rc, out, err = ctl(c, d.socket, "verify", "alice@tempfail.test")
    c.check(rc == 2 and "tempfail" in out, "probectl verify of an unknown "
            "one exits 2", "exit %d %r %r" % (rc, out, err))
    t0 = now()
    rc, out, err = ctl(c, d.socket, "--json", "verify", "--timeout", "0.5",
                       "alice@tarpit.test")
    took = now() - t0
    c.check(rc == 2 and '"pending"' in out and took < T(2.5),
            "probectl verify --timeout 0.5 of a tarpit: pending, exit 2, in "
            "%.1f s" % took, "exit %d %r %r" % (rc, out, err))
    rc, out, err = ctl(c, d.socket, "--json", "verify", "-",
                       input="alice@accept.test\nnobody@v6.test\n")
    lines = out.splitlines()
    c.check(rc == 1 and len(lines) == 2 and '"accepted"' in lines[0] and
            '"no_such_user"' in lines[1],
            "probectl verify - reads addresses from stdin",
            "exit %d %r %r" % (rc, out, err))


@lab_case
def syntax_stays_local(c):
    d = start(c)
    m = LAB.mark()
    with d.client() as cl:
        got = cl.pipeline(["VERIFY bob@@accept.test", "VERIFY alice@accept.test.",
                           "CHECK alice@accept.test"])
    result(c, got[0], "bob@@accept.test", "undeliverable", "syntax",
           mx=ABSENT)
    result(c, got[1], "alice@accept.test.", "undeliverable", "syntax")
    result(c, got[2], "alice@accept.test", "unknown", "not_cached",
           what="CHECK never probes: unknown reason=not_cached")
    st = stats(d)
    c.check(st.get("dns_queries") == 0 and st.get("sessions") == 0 and
            st.get("probes") == 0,
            "bad syntax and CHECK reach neither DNS nor SMTP", repr(st))
    # Control: one real probe, then its connection is the only one logged.
    result(c, verify(d, "bob@accept.test"), "bob@accept.test", "deliverable",
           "accepted")
    sess = postfix_settled("a", m, 1)
    c.check(sess is not None and len(sess) == 1 and
            [r.address for r in postfix_rcpts("a", m)
             if not RANDOM_RE.match(r.address)] == ["bob@accept.test"],
            "Postfix A saw only the control probe (one session, bob)",
            repr(postfix_mine("a", m)))


@lab_case
def whole_run_logs(c):
    """Over everything this file made the servers see: no DATA ever, and
    only the commands a probe needs."""
    allowed = {"EHLO", "HELO", "STARTTLS", "MAIL", "RCPT", "RSET", "QUIT"}
    odd = []
    for name in LAB.peers:
        for ev in peer_sessions(name, None).values():
            for cmd in session_cmds(ev):
                verb = cmd.split(" ", 1)[0].upper()
                if verb not in allowed:
                    odd.append("%s: %r" % (name, cmd))
    c.check(not odd, "the scripted peers received only EHLO/HELO/STARTTLS/"
            "MAIL/RCPT/RSET/QUIT (no DATA)", "\n".join(odd[:20]))
    odd = []
    n = 0
    for inst in LAB.postfix:
        for s in postfix_mine(inst, None)[1]:
            n += 1
            extra = set(s) - {"ehlo", "helo", "starttls", "mail", "rcpt",
                              "rset", "quit", "commands"}
            if extra:
                odd.append("%s: %r" % (inst, s))
    c.check(n > 0 and not odd, "none of the %d Postfix sessions had DATA or "
            "any command a probe does not need" % n, "\n".join(odd[:20]))


def _vocabulary():
    path = os.path.join(os.environ.get("TOP_SRCDIR", ""), "include", "vocab.h")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    return re.findall(r'X\(\s*\w+\s*,\s*"([a-z_]+)"\s*,\s*VERDICT_\w+\s*\)', text)


@suite.case
def every_reason_produced(c):
    """Issue #3: every verdict and reason the vocabulary has (include/
    vocab.h) was produced by at least one case above."""
    if os.environ.get("PROBED_TEST_ONLY"):
        c.skip("every reason produced", "PROBED_TEST_ONLY runs a subset")
        return
    vocab = _vocabulary()
    if not vocab:
        c.skip("every reason produced", "include/vocab.h not found "
               "(TOP_SRCDIR unset?)")
        return
    missing = [r for r in vocab if r not in SEEN]
    c.check(not missing, "all %d reasons were produced by the engine tests"
            % len(vocab), "never seen: %s" % ", ".join(missing))
    c.eq(sorted(VERDICTS_SEEN), sorted(harness.VERDICTS),
         "all four verdicts were produced")
    unknown = sorted(set(SEEN) - set(vocab))
    c.check(not unknown, "no reason outside the vocabulary was answered",
            "\n".join("%s: %r" % (r, SEEN[r]) for r in unknown))


# ---------------------------------------------------------------- main

def main():
    global LAB
    sys.stdout.reconfigure(errors="backslashreplace")
    try:
        for var in ("PROBED", "PROBECTL"):
            harness.binary(var)
    except harness.HardError as e:
        print("not ok - engine: %s" % e)
        print("0 passed, 1 failed")
        sys.exit(harness.EXIT_HARD)
    LAB = labmod.Lab(grey_delay=GREY_DELAY)
    t0 = now()
    try:
        LAB.start()
    except labmod.LabSkip as e:
        print("ok - engine: whole file # SKIP %s" % e)
        print("0 passed, 0 failed")
        sys.exit(harness.EXIT_SKIP)
    except labmod.LabError as e:
        print("not ok - engine: the lab did not start: %s" % e)
        print("0 passed, 1 failed")
        sys.exit(harness.EXIT_HARD)
    print("# lab up in %.1f s (%s)" % (now() - t0, LAB.dir), flush=True)
    try:
        suite.main()
    finally:
        if suite.failed or suite.hard:
            LAB.failed = True       # keep its directory for a look
        LAB.stop()


if __name__ == "__main__":
    main()
