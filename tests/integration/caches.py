"""caches -- probed's warm caches against real servers (tests/lab), issue #4.

What a user relies on once probed remembers: concurrent VERIFYs of one
address cause one RCPT (single-flight); addresses of one domain asked
together share SMTP sessions (at most smtp.max_rcpt_per_session RCPTs in
each), through Postfix's error limits, 452 "too many recipients" and
drops mid-batch; a second VERIFY answers from the cache, CHECK never
probes, FORGET drops an address or a whole domain, `fresh` probes again, a
verdict past its refresh age is answered and renewed behind the scenes,
cache.max_entries evicts the least recently used; while a domain's
catch-all status is known no random RCPT is sent, and DOMAIN shows it; MX
answers are kept for their clamped TTL; a greylisted address turns
deliverable through probed's own retry, with no further request; verdicts
survive SIGTERM and kill -9; a corrupt store is moved aside and probed
starts empty; `busy` appears exactly at limits.max_inflight; a host that
rate-limited (421) or blocked the prober is left alone; a failed probe never
overwrites a positive verdict that has not expired; STATS counts it all
consistently.  doc/caches.md describes the behaviour.

Proof comes from the servers' own logs where it matters: Postfix's RCPT and
session lines (only those carrying this run's HELO_NAME, so anybody else's
traffic at the lab's fixed addresses does not count), postgrey's triplet
lines, the scripted peers' connection logs.

Owns: one lab (tests/lab/lab.py) for the whole file, started before the
first case and stopped after the last; each case starts its own probed(s)
with the lab's configuration snippet plus short timeouts, and its state_dir
is the case directory.

Limits: the lab's addresses are fixed, so only one lab runs per machine:
this file waits for the lock (lab.py lock_timeout, 120 s).  Needs root (exit
77 otherwise) and the Debian packages of tests/lab/README.md.  Sessions that
end before EHLO (tarpit, ratelimit, banner554) cannot be told apart from
other clients' and are counted whole.  About 35 s once the lab is up,
most of it Postfix's error delays, greylisting, tarpit and dead-DNS waits.  PROBED_LAB_DIR=<dir> uses a lab left running by
`lab.py up --dir <dir>` instead of starting one (for development; the
other lab's users then see this file's traffic).
"""

import functools
import glob
import math
import os
import pwd
import random
import re
import signal
import string
import sys
import time

import harness
from harness import T, now, parse_kv, parse_result
import lab as labmod

suite = harness.Suite("caches")
suite.require_binary("PROBED")

LAB = None
GREY_DELAY = 2                   # postgrey --delay of the lab this file starts
HELO_NAME = "caches%d.lab.test" % os.getpid()
DEAD_DNS = "127.0.3.98"          # nothing listens there
MAX_RCPT = 20

# Short timeouts, so that the slow behaviours (tarpit, dead DNS) cost
# seconds; udns counts whole seconds and tries 3 times.
FAST = {
    "dns": {"timeout": T(1.0)},
    "smtp": {"connect_timeout": T(2.0), "greeting_timeout": T(3.0),
             "command_timeout": T(5.0)},
}

PRESENT = object()
ABSENT = object()


# ---------------------------------------------------------------- helpers

def lab_case(fn=None, budget=harness.CASE_BUDGET):
    """A case that uses the lab: on failure, what the lab's servers logged
    during the case is printed after the case's own output."""
    def wrap(f):
        @functools.wraps(f)
        def run(c):
            mark = LAB.mark()
            try:
                f(c)
            finally:
                if c.failed:
                    dump_lab(mark)
        return suite.case(run, budget=budget)
    return wrap(fn) if fn is not None else wrap


def dump_lab(mark, tail=60):
    for name, path in sorted(LAB.log_paths().items()):
        lines = labmod._read_from(path, mark).splitlines()
        if not lines:
            continue
        print("# ---- lab %s, last %d of %d lines of this case ----"
              % (name, min(tail, len(lines)), len(lines)))
        for line in lines[-tail:]:
            print("# | %s" % line[:600])
    sys.stdout.flush()


def settings(extra=None):
    over = harness._merge(LAB.probed_config(), FAST)
    over = harness._merge(over, {"helo_name": HELO_NAME,
                                 "smtp": {"greylist_delay": GREY_DELAY + 1.0}})
    return harness._merge(over, extra or {})


def start(c, extra=None, name="probed"):
    """probed with the lab's configuration, FAST timeouts, this run's
    HELO_NAME and `extra` on top; its state_dir is the case directory."""
    return c.probed(settings(extra), name=name)


def again(c, d, name):
    """A new probed from d's configuration file (same socket, same
    state_dir): a restart."""
    return c.probed(conf=d.conf, socket_path=d.socket, name=name)


def verify(d, addr, opts="", timeout=15.0):
    return d.request("VERIFY %s%s" % (addr, " " + opts if opts else ""), timeout)


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
    in `want` (a value, PRESENT, ABSENT or a predicate).  Returns the keys."""
    r = parse_result(line)
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
    desc = what or "%s: %s reason=%s%s" % (
        addr, verdict, reason,
        "".join(" " + _want_desc(k, w) for k, w in want.items()))
    c.check(not bad, desc, "got %r\n%s" % (line, "\n".join(bad)))
    return kv


def domain_line(d, name):
    """The keys of a `domain <name> k=v ...` answer ({} if it is not one)."""
    line = d.request("DOMAIN %s" % name)
    prefix = "domain %s" % name
    if line is None or not (line == prefix or line.startswith(prefix + " ")):
        return {"_line": line}
    kv = parse_kv(line[len(prefix):])
    kv["_line"] = line
    return kv


def forgotten(line):
    if line is None or not line.startswith("forgotten "):
        return None
    try:
        return int(parse_kv(line[len("forgotten "):]).get("n"))
    except (TypeError, ValueError):
        return None


def wait(fn, timeout, what):
    """LAB.wait_for() that answers None instead of raising."""
    try:
        return LAB.wait_for(fn, T(timeout) / labmod.SCALE, what)
    except labmod.LabTimeout:
        return None


def settle(seconds=0.5):
    """Give the servers' loggers (postlogd) a moment before a count that
    must stay unchanged: a check of 'nothing happened' needs one."""
    time.sleep(T(seconds))


_SMTPD_RE = re.compile(r"/smtpd\[(\d+)\]: (.*)$")


def postfix_mine(inst, since):
    """(rcpts, sessions) this file's probes caused at Postfix `inst` since
    the mark: [RcptLine] of the RCPT lines carrying HELO_NAME, and the
    command counters ({"ehlo": "1", "rcpt": "20/20", ...}) of the finished
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
            dm = labmod._DISCONNECT_RE.search(line)
            if ours.pop(pid, False) and dm:
                sessions.append(dict(kv.split("=", 1) for kv in dm.group(1).split()
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


def rcpts_of(inst, since, address=None):
    return [r for r in postfix_mine(inst, since)[0]
            if address is None or r.address.lower() == address.lower()]


def sessions_of(inst, since, n):
    """Wait until Postfix `inst` logged n finished sessions of ours; returns
    them (fewer at the deadline)."""
    wait(lambda: len(postfix_mine(inst, since)[1]) >= n, 5,
         "%d Postfix sessions" % n)
    return postfix_mine(inst, since)[1]


def rcpt_count_reaches(inst, since, n, address=None):
    wait(lambda: len(rcpts_of(inst, since, address)) >= n, 5,
         "%d RCPT lines" % n)
    return len(rcpts_of(inst, since, address))


def stats(d):
    return d.stats()


# postgrey leaves out "sender=" for the null sender.
_POSTGREY_RE = re.compile(r"action=(\w+), reason=([^,]*),(?: delay=\d+,)? "
                          r"client_name=[^,]*, client_address=([^,]+),"
                          r"(?: sender=([^,]*),)? recipient=([^,\s]+)")


def postgrey_triplets(since, recipient):
    """[(action, (client_address, sender, recipient))] postgrey logged for
    a recipient since the mark."""
    out = []
    text = labmod._read_from(LAB.postgrey_log(), since)
    for line in text.splitlines():
        m = _POSTGREY_RE.search(line)
        if m and m.group(5).lower() == recipient.lower():
            out.append((m.group(1), (m.group(3), m.group(4) or "", m.group(5))))
    return out


def store_file(c):
    return c.path("probed.mdb")


def mtime(c):
    try:
        return os.stat(store_file(c)).st_mtime_ns
    except OSError:
        return 0


def give_to_probed(path):
    """Files the test writes into state_dir must belong to the account
    probed runs as (root drops to harness.RUN_AS)."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam(harness.RUN_AS)
        os.chown(path, pw.pw_uid, pw.pw_gid)


# ---------------------------------------------------------------- cases

@lab_case
def single_flight_one_connection(c):
    """50 VERIFYs of one address pipelined on one connection: one RCPT."""
    d = start(c)
    m = LAB.mark()
    addr = "alice@accept.test"
    with d.client() as cl:
        t0 = now()
        got = cl.pipeline(["VERIFY %s" % addr] * 50, timeout=20)
        took = now() - t0
    c.eq(len(got), 50, "50 answers")
    c.check(all(parse_result(x) and parse_result(x)[:2] == ("deliverable", addr)
                for x in got),
            "all 50 answers are `deliverable %s`" % addr, repr(sorted(set(got))[:5]))
    c.note("50 pipelined VERIFYs answered in %.3f s" % took)
    rcpt_count_reaches("a", m, 1, addr)
    settle()
    c.eq(len(rcpts_of("a", m, addr)), 1,
         "Postfix A logged exactly one RCPT TO:<%s> for 50 VERIFYs" % addr)
    sess = sessions_of("a", m, 1)
    c.eq(len(sess), 1, "in exactly one SMTP session")
    st = stats(d)
    c.eq(st.get("probes"), 1, "STATS probes=1")
    c.eq(st.get("coalesced"), 49, "STATS coalesced=49 (every VERIFY but the "
         "first joined the flight)")
    c.eq(st.get("cache_misses"), 50, "STATS cache_misses=50")
    c.eq(st.get("reason_accepted"), 50, "STATS reason_accepted=50 (every "
         "waiter was answered)")


@lab_case
def single_flight_many_connections(c):
    """50 VERIFYs of one address spread over 5 connections at once: one
    RCPT; each request either joined the flight or hit the cache."""
    d = start(c)
    m = LAB.mark()
    addr = "bob@accept.test"
    clients = [d.client() for _ in range(5)]
    try:
        jobs = [(cl, "".join("VERIFY %s\n" % addr for _ in range(10)), 10)
                for cl in clients]
        got = harness.exchange_all(jobs, timeout=20)
    finally:
        for cl in clients:
            cl.close()
    flat = [x for g in got for x in g]
    c.eq(len(flat), 50, "50 answers over 5 connections")
    c.check(all(parse_result(x) and parse_result(x)[:2] == ("deliverable", addr)
                for x in flat), "all of them `deliverable %s`" % addr,
            repr(sorted(set(flat))[:5]))
    rcpt_count_reaches("a", m, 1, addr)
    settle()
    c.eq(len(rcpts_of("a", m, addr)), 1,
         "Postfix A logged exactly one RCPT TO:<%s> for 50 VERIFYs on 5 "
         "connections" % addr)
    st = stats(d)
    c.eq(st.get("probes"), 1, "STATS probes=1")
    c.eq(st.get("coalesced", 0) + st.get("cache_hits", 0), 49,
         "STATS coalesced + cache_hits = 49 (coalesced=%s cache_hits=%s)"
         % (st.get("coalesced"), st.get("cache_hits")))
    c.check(st.get("coalesced", 0) >= 1, "some of them were coalesced in "
            "flight (coalesced=%s)" % st.get("coalesced"))


@lab_case
def batch_per_domain(c):
    """40 addresses at one domain asked at once share SMTP sessions: at most
    ceil(40 / max_rcpt_per_session) + 1 sessions, none with more than
    max_rcpt_per_session RCPTs, each address asked exactly once."""
    d = start(c, {"smtp": {"max_rcpt_per_session": MAX_RCPT}})
    m = LAB.mark()
    addrs = ["user%02d@catchall.test" % i for i in range(1, 41)]
    t0 = now()
    with d.client() as cl:
        got = cl.pipeline(["VERIFY %s" % a for a in addrs], timeout=30)
    took = now() - t0
    c.note("40 addresses at catchall.test answered in %.2f s" % took)
    c.eq(len(got), 40, "40 answers")
    bad = [x for x, a in zip(got, addrs)
           if not (parse_result(x) and parse_result(x)[:2] == ("risky", a) and
                   parse_result(x)[2].get("reason") == "catch_all")]
    c.check(not bad, "every answer is `risky <address> reason=catch_all`",
            repr(bad[:3]))
    limit = math.ceil(40 / MAX_RCPT) + 1
    st = stats(d)
    sessions_of("b", m, st.get("sessions", 1))
    settle()
    sess = postfix_mine("b", m)[1]
    c.check(1 <= len(sess) <= limit,
            "Postfix B logged %d sessions for 40 addresses (at most "
            "ceil(40/%d)+1 = %d)" % (len(sess), MAX_RCPT, limit), repr(sess))
    per = [int(s.get("rcpt", "0").split("/")[-1]) for s in sess]
    c.check(all(n <= MAX_RCPT for n in per),
            "no session carried more than %d RCPTs (%s)" % (MAX_RCPT, per))
    rc = rcpts_of("b", m)
    asked = [r.address.lower() for r in rc]
    c.check(all(asked.count(a) == 1 for a in addrs),
            "each of the 40 addresses was asked exactly once",
            "counts: %r" % {a: asked.count(a) for a in addrs if asked.count(a) != 1})
    extra = [a for a in asked if a not in addrs]
    c.check(len(extra) <= len(sess), "at most one random (catch-all) RCPT per "
            "session (%d randoms, %d sessions)" % (len(extra), len(sess)))
    c.eq(st.get("sessions"), len(sess), "STATS sessions matches Postfix's log")
    c.eq(st.get("rcpts"), len(rc), "STATS rcpts matches Postfix's log")
    c.eq(st.get("probes"), 40, "STATS probes=40 (one per address)")
    c.check(st.get("batches", 0) <= limit, "STATS batches=%s" % st.get("batches"))


@lab_case
def cache_check_forget_fresh(c):
    d = start(c)
    m = LAB.mark()
    a = "alice@accept.test"
    result(c, verify(d, a), a, "deliverable", "accepted", cached="no",
           age=ABSENT, what="first VERIFY probes: cached=no")
    rcpt_count_reaches("a", m, 1, a)
    result(c, verify(d, a), a, "deliverable", "accepted", cached="yes",
           age=is_int(0, 5), code=250, mx="mx.accept.test", catch_all="no",
           what="second VERIFY answers from the cache: cached=yes age=...")
    result(c, d.request("CHECK %s" % a), a, "deliverable", "accepted",
           cached="yes", age=is_int(0, 5), what="CHECK answers the cached verdict")
    result(c, d.request("CHECK alice@ACCEPT.Test"), "alice@ACCEPT.Test",
           "deliverable", "accepted", cached="yes",
           what="the domain's case does not matter to the cache")
    result(c, d.request("CHECK bob@accept.test"), "bob@accept.test",
           "unknown", "not_cached", what="CHECK of an address never asked: "
           "not_cached")
    nobody = "nobody@accept.test"
    result(c, verify(d, nobody), nobody, "undeliverable", "no_such_user",
           cached="no")
    result(c, d.request("CHECK %s" % nobody), nobody, "undeliverable",
           "no_such_user", cached="yes", what="a negative verdict is cached too")
    settle()
    c.eq(len(rcpts_of("a", m, a)), 1, "Postfix saw one RCPT for alice: the "
         "second VERIFY and the CHECKs did not probe")
    c.eq(len(rcpts_of("a", m, "bob@accept.test")), 0,
         "CHECK bob@accept.test never probed")

    c.eq(forgotten(d.request("FORGET %s" % a)), 1, "FORGET alice@accept.test: "
         "forgotten n=1")
    result(c, d.request("CHECK %s" % a), a, "unknown", "not_cached",
           what="after FORGET of the address: CHECK not_cached")
    result(c, d.request("CHECK %s" % nobody), nobody, "undeliverable",
           "no_such_user", what="FORGET of one address leaves the others")
    c.eq(forgotten(d.request("FORGET %s" % a)), 0, "FORGET again: n=0")

    result(c, verify(d, "bob@accept.test"), "bob@accept.test", "deliverable",
           "accepted", cached="no")
    n = forgotten(d.request("FORGET accept.test"))
    c.check(n is not None and n >= 2, "FORGET accept.test drops the domain's "
            "verdicts and facts (n=%s)" % n)
    for x in ("bob@accept.test", nobody):
        result(c, d.request("CHECK %s" % x), x, "unknown", "not_cached",
               what="after FORGET of the domain: CHECK %s not_cached" % x)
    dk = domain_line(d, "accept.test")
    c.check(dk.get("catch_all") == "unknown" and "catch_all_age" not in dk,
            "after FORGET of the domain: DOMAIN says catch_all=unknown",
            dk.get("_line"))

    m2 = LAB.mark()
    result(c, verify(d, a), a, "deliverable", "accepted", cached="no",
           what="VERIFY after FORGET probes again")
    result(c, verify(d, a, "fresh"), a, "deliverable", "accepted",
           cached="no", what="VERIFY ... fresh ignores the cached verdict")
    c.eq(rcpt_count_reaches("a", m2, 2, a), 2,
         "Postfix saw a new RCPT for each of them")
    settle()
    c.eq(len(rcpts_of("a", m2, a)), 2, "and no more")


@lab_case
def refresh_in_background(c):
    """Past cache.positive_refresh a cached verdict is still answered at
    once, and a background probe renews it."""
    d = start(c, {"cache": {"positive_refresh": 1}})
    m = LAB.mark()
    a = "alice@accept.test"
    result(c, verify(d, a), a, "deliverable", "accepted", cached="no")
    time.sleep(2.2)   # the refresh age is counted in whole seconds
    t0 = now()
    line = verify(d, a)
    took = now() - t0
    result(c, line, a, "deliverable", "accepted", cached="yes",
           age=is_int(2, 10), what="past the refresh age: answered from "
           "the cache (cached=yes age>=2)")
    c.check(took < T(0.5), "at once (%.3f s)" % took)
    c.eq(rcpt_count_reaches("a", m, 2, a), 2,
         "a background probe asked Postfix again (2 RCPTs of alice)")
    ok = wait(lambda: stats(d).get("inflight") == 0, 5, "inflight=0")
    st = stats(d)
    c.check(ok and st.get("refreshes") == 1, "STATS refreshes=1", repr(st))
    result(c, d.request("CHECK %s" % a), a, "deliverable", "accepted",
           cached="yes", age=is_int(0, 1),
           what="the renewed verdict is in the cache (age 0..1)")


@lab_case
def catch_all_knowledge(c):
    """Once a domain's catch-all status is known, no random RCPT."""
    d = start(c)
    m = LAB.mark()
    result(c, verify(d, "alice@accept.test"), "alice@accept.test",
           "deliverable", "accepted", catch_all="no")
    rcpt_count_reaches("a", m, 2)
    settle()
    first = rcpts_of("a", m)
    c.eq(len(first), 2, "first probe at accept.test: 2 RCPTs (the address "
         "and a random one)")
    dk = domain_line(d, "accept.test")
    c.check(dk.get("mx") == "mx.accept.test" and dk.get("catch_all") == "no" and
            is_int(0, 5)(dk.get("catch_all_age")) and dk.get("dns") == "ok",
            "DOMAIN accept.test: mx=mx.accept.test catch_all=no "
            "catch_all_age=<s> dns=ok", dk.get("_line"))
    m2 = LAB.mark()
    result(c, verify(d, "bob@accept.test"), "bob@accept.test", "deliverable",
           "accepted", catch_all="no", what="the next address: deliverable "
           "catch_all=no")
    rcpt_count_reaches("a", m2, 1)
    settle()
    second = rcpts_of("a", m2)
    c.check([r.address for r in second] == ["bob@accept.test"],
            "next probe at accept.test: 1 RCPT (no random address)",
            repr(second))

    m = LAB.mark()
    result(c, verify(d, "x1@catchall.test"), "x1@catchall.test", "risky",
           "catch_all", catch_all="yes")
    rcpt_count_reaches("b", m, 2)
    c.eq(len(rcpts_of("b", m)), 2, "first probe at catchall.test: 2 RCPTs")
    dk = domain_line(d, "catchall.test")
    c.check(dk.get("catch_all") == "yes" and "catch_all_age" in dk and
            dk.get("mx") == "mx.catchall.test",
            "DOMAIN catchall.test: catch_all=yes catch_all_age=<s>",
            dk.get("_line"))
    m2 = LAB.mark()
    result(c, verify(d, "x2@catchall.test"), "x2@catchall.test", "risky",
           "catch_all", catch_all="yes",
           what="the next address at a known catch-all: risky catch_all")
    rcpt_count_reaches("b", m2, 1)
    settle()
    c.check([r.address for r in rcpts_of("b", m2)] == ["x2@catchall.test"],
            "next probe at catchall.test: 1 RCPT", repr(rcpts_of("b", m2)))


@lab_case
def catch_all_ttl(c):
    """The catch-all status is used only while fresh (cache.catch_all_ttl)."""
    d = start(c, {"cache": {"catch_all_ttl": 2}})
    verify(d, "alice@accept.test")
    time.sleep(2.5)
    dk = domain_line(d, "accept.test")
    c.check(dk.get("catch_all") == "unknown",
            "DOMAIN after catch_all_ttl: catch_all=unknown", dk.get("_line"))
    m2 = LAB.mark()
    result(c, verify(d, "bob@accept.test"), "bob@accept.test", "deliverable",
           "accepted", catch_all="no")
    rcpt_count_reaches("a", m2, 2)
    settle()
    c.eq(len(rcpts_of("a", m2)), 2, "past catch_all_ttl the random address "
         "is asked again (2 RCPTs)")


@lab_case(budget=40)
def greylisting_retry(c):
    """A greylisted address turns deliverable through probed's own retry."""
    # postgrey remembers a triplet for the lab's life: a sender of this run
    # alone makes it new (letters only: postgrey folds numbers into '#').
    tag = "".join(random.choice(string.ascii_lowercase) for _ in range(12))
    sender = "grey-%s@lab.test" % tag
    d = start(c, {"mail_from": sender})
    m = LAB.mark()
    a = "alice@grey.test"
    t0 = now()
    result(c, verify(d, a), a, "unknown", "greylisted", code=450,
           enhanced="4.2.0", cached="no",
           what="first VERIFY: unknown greylisted code=450")
    result(c, verify(d, a), a, "unknown", "greylisted", cached="yes",
           what="a VERIFY before the retry answers greylisted from the cache")
    dk = domain_line(d, "grey.test")
    c.check(dk.get("greylisting") == "retrying",
            "DOMAIN grey.test: greylisting=retrying", dk.get("_line"))
    # Only CHECK from here on: it never probes, so whatever reaches Postfix
    # is probed's own retry.
    line = None
    deadline = t0 + T(GREY_DELAY + 1.0 + 6)
    while now() < deadline:
        line = d.request("CHECK %s" % a)
        r = parse_result(line)
        if r is not None and r[0] == "deliverable":
            break
        time.sleep(0.2)
    waited = now() - t0
    result(c, line, a, "deliverable", "accepted", cached="yes", catch_all="no",
           what="a CHECK after the retry delay answers deliverable")
    c.check(waited >= GREY_DELAY, "it took the retry delay (%.1f s, "
            "smtp.greylist_delay %g)" % (waited, GREY_DELAY + 1.0))
    rcpt_count_reaches("c", m, 2, a)
    settle()
    codes = [r.code for r in rcpts_of("c", m, a)]
    c.eq(codes, [450, 250], "Postfix C: RCPT of alice 450, then 250 (one retry)")
    wait(lambda: len(postgrey_triplets(m, a)) >= 2, 5, "postgrey's lines")
    trip = postgrey_triplets(m, a)
    c.check(len(trip) == 2 and trip[0][0] == "greylist" and trip[1][0] == "pass"
            and trip[0][1] == trip[1][1],
            "postgrey saw the same (client, sender, recipient) twice: "
            "greylist, then pass", repr(trip))
    c.check(len(trip) == 2 and trip[1][1][1] == sender,
            "the retry used the same MAIL FROM:<%s>" % sender, repr(trip))
    st = stats(d)
    c.eq(st.get("greylist_retries"), 1, "STATS greylist_retries=1")
    c.eq(st.get("verify"), 2, "STATS verify=2: no request made the retry")
    c.eq(st.get("probes"), 1, "STATS probes=1: the retry is the same flight")


@lab_case(budget=40)
def restart_and_kill(c):
    """Verdicts and domain facts survive SIGTERM and kill -9."""
    d1 = start(c)
    m = LAB.mark()
    want = [("alice@accept.test", "deliverable", "accepted"),
            ("nobody@accept.test", "undeliverable", "no_such_user"),
            ("x1@catchall.test", "risky", "catch_all")]
    for a, v, r in want:
        result(c, verify(d1, a), a, v, r, cached="no")
    c.eq(d1.stop(), 0, "probed exits 0 on SIGTERM")
    c.check(os.path.isfile(store_file(c)), "state_dir holds probed.mdb")

    d2 = again(c, d1, "probed-restarted")
    loaded = d2.wait_log(r"engine state=\S+ verdicts=(\d+) domains=(\d+)")
    c.check(loaded is not None and int(loaded.group(1)) == 3 and
            int(loaded.group(2)) >= 2, "the restarted probed loaded 3 verdicts "
            "and the 2 domains' facts",
            loaded.group(0) if loaded else "no engine state= line")
    for a, v, r in want:
        result(c, d2.request("CHECK %s" % a), a, v, r, cached="yes",
               age=is_int(0, 30), what="after SIGTERM and restart: CHECK %s "
               "%s (cached)" % (a, v))
    dk = domain_line(d2, "accept.test")
    c.check(dk.get("catch_all") == "no", "the domain's catch-all status "
            "survived (DOMAIN accept.test catch_all=no)", dk.get("_line"))
    before = mtime(c)
    m2 = LAB.mark()
    result(c, verify(d2, "bob@accept.test"), "bob@accept.test", "deliverable",
           "accepted", cached="no")
    # The engine commits a batch's verdicts before anyone hears them, so the
    # file changed by the time the answer arrived.
    c.check(mtime(c) > before, "the verdict was committed to probed.mdb before "
            "it was answered")
    rcpt_count_reaches("a", m2, 1)
    settle()
    c.eq(len(rcpts_of("a", m2)), 1, "a probe after restart needs no random "
         "RCPT: catch_all=no was remembered")
    d2.signal(signal.SIGKILL)
    c.eq(d2.wait(), -signal.SIGKILL, "probed killed with SIGKILL")

    d3 = again(c, d1, "probed-after-kill")
    for a, v, r in want + [("bob@accept.test", "deliverable", "accepted")]:
        result(c, d3.request("CHECK %s" % a), a, v, r, cached="yes",
               what="after kill -9 and restart: CHECK %s %s (cached)" % (a, v))
    settle()
    c.eq(len(postfix_mine("a", m)[1]), 3, "no probe after either restart "
         "(Postfix A saw only the 3 sessions asked for)")


@lab_case
def corrupt_store(c):
    """Garbage in probed.mdb: moved aside with a logged error; probed starts
    empty, works, and keeps new verdicts."""
    garbage = os.urandom(64 * 1024)
    with open(store_file(c), "wb") as f:
        f.write(garbage)
    give_to_probed(store_file(c))
    d = start(c)
    c.check(d.wait_log(r"store \S+probed\.mdb unusable .*moved aside") is not None,
            "probed logged that the store was unusable and moved aside")
    bad = glob.glob(store_file(c) + ".bad-*")
    bad = [b for b in bad if not b.endswith("-lock")]
    c.eq(len(bad), 1, "one probed.mdb.bad-* file exists")
    if bad:
        with open(bad[0], "rb") as f:
            c.check(f.read() == garbage, "it holds the damaged file, unchanged "
                    "(never a silent loss)")
    st = stats(d)
    c.eq(st.get("cache_entries"), 0, "probed started empty (cache_entries=0)")
    a = "alice@accept.test"
    result(c, d.request("CHECK %s" % a), a, "unknown", "not_cached")
    result(c, verify(d, a), a, "deliverable", "accepted", cached="no",
           what="probed works after moving the store aside")
    c.eq(d.stop(), 0, "exits 0")
    d2 = again(c, d, "probed-restarted")
    result(c, d2.request("CHECK %s" % a), a, "deliverable", "accepted",
           cached="yes", what="the new store keeps verdicts across a restart")
    c.eq(d2.stop(), 0, "exits 0")

    # A truncated store (shorter than its pages say): moved aside as well.
    size = os.path.getsize(store_file(c))
    with open(store_file(c), "r+b") as f:
        f.truncate(4096)
    d3 = again(c, d, "probed-truncated")
    c.check(d3.wait_log(r"store \S+probed\.mdb unusable") is not None,
            "a store truncated from %d to 4096 octets is refused with an "
            "error" % size)
    bad = [b for b in glob.glob(store_file(c) + ".bad-*") if not b.endswith("-lock")]
    c.eq(len(bad), 2, "and moved aside too (2 probed.mdb.bad-* files)")
    result(c, d3.request("CHECK %s" % a), a, "unknown", "not_cached",
           what="probed started empty rather than crash")
    c.check(d3.alive() and d3.request("PING") == "pong", "and serves")


@lab_case
def busy_at_inflight_cap(c):
    """limits.max_inflight = 3: the 4th distinct address in flight is
    refused at once with busy, the first three are not."""
    d = start(c, {"limits": {"max_inflight": 3}})
    names = ["a1", "a2", "a3"]
    with d.client() as cl:
        for n in names:
            line = cl.request("VERIFY %s@tarpit.test timeout=0.3" % n)
            result(c, line, "%s@tarpit.test" % n, "unknown", "pending",
                   what="probe %s@tarpit.test (%d in flight): pending, not busy"
                   % (n, names.index(n) + 1))
        st = stats(d)
        c.eq(st.get("inflight"), 3, "STATS inflight=3")
        t0 = now()
        line = cl.request("VERIFY a4@tarpit.test")
        took = now() - t0
        result(c, line, "a4@tarpit.test", "unknown", "busy",
               text=contains("max_inflight"),
               what="the 4th distinct address: unknown reason=busy")
        c.check(took < T(0.25), "busy is answered at once (%.3f s)" % took)
        line = cl.request("VERIFY a1@tarpit.test timeout=0.3")
        result(c, line, "a1@tarpit.test", "unknown", "pending",
               what="an address already in flight joins it: not busy")
        line = cl.request("CHECK a4@tarpit.test")
        result(c, line, "a4@tarpit.test", "unknown", "not_cached",
               what="busy is not cached")
        ok = wait(lambda: stats(d).get("inflight") == 0, 10, "inflight=0")
        c.check(ok, "the tarpit probes end (greeting_timeout)")
        line = cl.request("VERIFY a4@tarpit.test timeout=0.3")
        result(c, line, "a4@tarpit.test", "unknown", "pending",
               what="with room again the 4th address is probed (pending)")
    st = stats(d)
    c.eq(st.get("busy"), 1, "STATS busy=1")
    c.eq(st.get("reason_busy"), 1, "STATS reason_busy=1")


@lab_case
def backoff(c):
    """A 421 backs the host off; a block leaves it alone; meanwhile no
    session is opened and the answer says why."""
    d = start(c, {"limits": {"backoff_base": 30.0, "blocked_backoff": 60.0}})
    for peer, reason, code, left in (("ratelimit", "rate_limited", 421, 30),
                                     ("banner554", "blocked", 554, 60)):
        dom = "%s.test" % peer
        mx = "mx.%s" % dom
        m = LAB.mark()
        result(c, verify(d, "alice@%s" % dom), "alice@%s" % dom, "unknown",
               reason, code=code, mx=mx)
        wait(lambda: LAB.peer_sessions(peer, since=m) >= 1, 5, "a session")
        c.eq(LAB.peer_sessions(peer, since=m), 1, "%s saw one session" % peer)
        dk = domain_line(d, dom)
        bo = dk.get("backoff") or ""
        mm = re.match(r"^%s:%s:(\d+)$" % (re.escape(mx), reason), bo)
        c.check(mm is not None and 0 < int(mm.group(1)) <= left,
                "DOMAIN %s: backoff=%s:%s:<s <= %d>" % (dom, mx, reason, left),
                dk.get("_line"))
        result(c, verify(d, "bob@%s" % dom), "bob@%s" % dom, "unknown", reason,
               mx=mx, cached="no", text=contains("alone"),
               what="another address at %s: %s without asking" % (dom, reason))
        result(c, verify(d, "alice@%s" % dom, "fresh"), "alice@%s" % dom,
               "unknown", reason, cached="no",
               what="VERIFY fresh of the first: %s without asking" % reason)
        settle()
        c.eq(LAB.peer_sessions(peer, since=m), 1,
             "%s saw no new session during the backoff" % peer)
    st = stats(d)
    c.eq(st.get("backoffs"), 2, "STATS backoffs=2")


@lab_case
def failed_probe_keeps_positive(c):
    """A failed probe (DNS down) never overwrites a positive verdict that
    has not expired."""
    a = "alice@accept.test"
    d1 = start(c)
    result(c, verify(d1, a), a, "deliverable", "accepted", cached="no")
    c.eq(d1.stop(), 0, "exits 0")
    d2 = c.probed(settings({"dns": {"servers": [DEAD_DNS]}}), name="probed-deaddns")
    t0 = now()
    line = verify(d2, a, "fresh", timeout=20)
    result(c, line, a, "unknown", "dns_error", cached="no",
           what="restarted with a dead resolver: VERIFY fresh answers "
           "unknown dns_error")
    c.note("dns_error after %.1f s" % (now() - t0))
    result(c, d2.request("CHECK %s" % a), a, "deliverable", "accepted",
           cached="yes", what="CHECK still answers the positive verdict")
    result(c, verify(d2, a), a, "deliverable", "accepted", cached="yes",
           what="and so does VERIFY without fresh")
    c.eq(d2.stop(), 0, "exits 0")
    d3 = again(c, d1, "probed-lab-dns")
    result(c, d3.request("CHECK %s" % a), a, "deliverable", "accepted",
           cached="yes", what="the store kept it too")


@lab_case
def stats_counters(c):
    """STATS has every counter of issue #4, with values that add up."""
    d = start(c)
    m = LAB.mark()
    seq = [("VERIFY alice@accept.test", "accepted"),
           ("VERIFY alice@accept.test", "accepted"),
           ("CHECK bob@accept.test", "not_cached"),
           ("VERIFY bob@accept.test", "accepted"),
           ("VERIFY nobody@accept.test", "no_such_user"),
           ("CHECK alice@accept.test", "accepted")]
    for req, reason in seq:
        line = d.request(req, 15)
        r = parse_result(line)
        c.check(r is not None and r[2].get("reason") == reason,
                "%s: reason=%s" % (req, reason), repr(line))
    st = stats(d)
    for k in ("requests", "verify", "check", "cache_hits", "cache_misses",
              "probes", "sessions", "rcpts", "dns_queries", "dns_cache_hits",
              "coalesced", "busy", "batches", "inflight", "refreshes",
              "greylist_retries", "backoffs", "cache_entries", "commits"):
        c.check(isinstance(st.get(k), int), "STATS has %s" % k, repr(st))
    verbs = ("verify", "check", "domain", "forget", "stats", "ping", "quit")
    c.eq(st.get("requests"), sum(st.get(v, 0) for v in verbs),
         "requests = the sum of the per-verb counters")
    c.eq(st.get("stats"), 1, "stats=1 (this STATS counts itself)")
    c.eq((st.get("verify"), st.get("check")), (4, 2), "verify=4 check=2")
    c.eq(st.get("cache_hits"), 2, "cache_hits=2 (second VERIFY, CHECK alice)")
    c.eq(st.get("cache_misses"), 4, "cache_misses=4 (3 probing VERIFYs, CHECK bob)")
    c.eq(st.get("probes"), 3, "probes=3")
    c.eq(st.get("commits"), 3, "commits=3: batches that end apart commit "
         "apart (one group commit each, before its answer)")
    c.eq(st.get("cache_entries"), 3, "cache_entries=3")
    c.eq(st.get("reason_accepted"), 4, "reason_accepted=4")
    c.eq(st.get("reason_no_such_user"), 1, "reason_no_such_user=1")
    c.eq(st.get("reason_not_cached"), 1, "reason_not_cached=1")
    c.eq(sum(v for k, v in st.items() if k.startswith("reason_")),
         st.get("verify") + st.get("check"),
         "the reason_* counters add up to verify + check")
    c.eq(st.get("cache_hits") + st.get("cache_misses"),
         st.get("verify") + st.get("check"),
         "cache_hits + cache_misses = verify + check (no fresh here)")
    sessions_of("a", m, 3)
    rcpt_count_reaches("a", m, 4)
    settle()
    sess = postfix_mine("a", m)[1]
    rc = len(rcpts_of("a", m))
    c.eq((st.get("sessions"), st.get("rcpts")), (len(sess), rc),
         "sessions and rcpts match Postfix's log (%d sessions, %d RCPTs: "
         "alice + random, bob, nobody)" % (len(sess), rc))
    c.eq(rc, 4, "4 RCPTs in all: the random one only once")
    c.check(st.get("dns_queries", 0) >= 1, "dns_queries=%s >= 1"
            % st.get("dns_queries"))
    c.check(st.get("dns_cache_hits", 0) >= 2, "dns_cache_hits=%s >= 2 (the 2nd "
            "and 3rd probes found accept.test's MX in the DNS cache)"
            % st.get("dns_cache_hits"))
    q = st.get("dns_queries")
    verify(d, "alice@accept.test", "fresh")
    c.eq(stats(d).get("dns_queries"), q, "a 4th probe asks no DNS question")


@lab_case(budget=60)
def batch_with_rejections(c):
    """40 unknown users at one Postfix: its error limits (a 1 s delay per
    reply past smtpd_soft_error_limit = 10 errors, a disconnect at
    smtpd_hard_error_limit = 20) cost time, not answers."""
    d = start(c, {"smtp": {"max_rcpt_per_session": MAX_RCPT}})
    m = LAB.mark()
    addrs = ["gone%02d@accept.test" % i for i in range(1, 41)]
    t0 = now()
    with d.client() as cl:
        got = cl.pipeline(["VERIFY %s" % a for a in addrs], timeout=50)
    c.note("40 unknown users at accept.test answered in %.1f s" % (now() - t0))
    bad = [x for x, a in zip(got, addrs)
           if not (parse_result(x) and parse_result(x)[:2] == ("undeliverable", a)
                   and parse_result(x)[2].get("reason") == "no_such_user")]
    c.check(len(got) == 40 and not bad, "every answer is `undeliverable <address> "
            "reason=no_such_user`", repr(bad[:3]))
    st = stats(d)
    settle()
    sess = postfix_mine("a", m)[1]
    limit = math.ceil(40 / MAX_RCPT) + 1
    c.check(1 <= len(sess) <= limit, "Postfix A logged %d sessions (at most %d)"
            % (len(sess), limit), repr(sess))
    asked = [r.address.lower() for r in rcpts_of("a", m)]
    # Postfix answers each refused RCPT past the 10th a second late, well
    # within smtp.command_timeout (5 s) for each reply: nothing may time
    # out, so nothing is asked twice.
    c.check(all(asked.count(a) == 1 for a in addrs),
            "each address was asked exactly once (replies 1 s apart, "
            "command_timeout 5 s per reply)",
            repr({a: asked.count(a) for a in addrs if asked.count(a) != 1}))
    c.check(not d.wait_log(r"timeout=command_timeout", timeout=0.1),
            "no command_timeout in probed's log")
    c.eq(st.get("probes"), 40, "STATS probes=40")


@lab_case
def drop_mid_batch(c):
    """A server that drops the connection after each refused RCPT: what was
    not answered is asked again, until every address has its answer."""
    d = start(c)
    m = LAB.mark()
    addrs = ["u1@dropafterreject.test", "u2@dropafterreject.test",
             "u3@dropafterreject.test", "alice@dropafterreject.test"]
    with d.client() as cl:
        got = cl.pipeline(["VERIFY %s" % a for a in addrs], timeout=20)
    for line, a in zip(got, addrs):
        if a.startswith("alice"):
            result(c, line, a, "deliverable", "accepted",
                   what="%s (asked after 3 drops): deliverable" % a)
        else:
            result(c, line, a, "undeliverable", "no_such_user")
    settle()
    asked = [t for e in LAB.peer_events("dropafterreject", m)
             if e.kind == "cmd" and e.text.upper().startswith("RCPT")
             for t in [e.text]]
    c.note("dropafterreject saw: %r" % asked)
    for a in addrs:
        n = sum(1 for t in asked if ("<%s>" % a) in t.lower())
        c.eq(n, 1, "%s was asked once" % a)


@lab_case
def too_many_recipients(c):
    """A server that takes one accepted recipient per transaction (452
    4.5.3 after it): the rest are asked in further transactions — here in
    a second session, since the peer offers PIPELINING and QUIT went out
    with the first MAIL and RCPTs — and every address is answered once."""
    d = start(c)
    m = LAB.mark()
    addrs = ["alice@onercpt.test", "bob@onercpt.test", "carol@onercpt.test"]
    with d.client() as cl:
        got = cl.pipeline(["VERIFY %s" % a for a in addrs], timeout=20)
    c.eq(len(got), 3, "three VERIFYs, three answers")
    result(c, got[0] if got else None, addrs[0], "deliverable", "accepted")
    for line, a in zip(got[1:], addrs[1:]):
        result(c, line, a, "undeliverable", "no_such_user",
               what="%s, deferred by 452 in the first transaction: "
               "undeliverable no_such_user" % a)
    settle()
    ev = LAB.peer_events("onercpt", m)
    rcpts = [e.text.lower() for e in ev if e.kind == "cmd" and
             e.text.upper().startswith("RCPT")]
    verbs = [e.text.split(" ", 1)[0].upper() for e in ev if e.kind == "cmd"]
    c.note("onercpt saw: %r" % rcpts)
    c.eq([sum(1 for t in rcpts if "<%s>" % a in t) for a in addrs], [1, 2, 2],
         "alice asked once; bob and carol twice (452, then their answer)")
    c.eq((verbs.count("MAIL"), verbs.count("QUIT"), verbs.count("RSET")), (2, 2, 0),
         "two sessions, each one MAIL and one QUIT, no RSET")


@lab_case
def lru_bound(c):
    """cache.max_entries bounds the verdicts kept; the least recently used
    goes first, from memory and from the store."""
    d = start(c, {"cache": {"max_entries": 2}})
    for a in ("alice@accept.test", "bob@accept.test"):
        verify(d, a)
    result(c, d.request("CHECK alice@accept.test"), "alice@accept.test",
           "deliverable", "accepted", what="alice used again (now most recent)")
    verify(d, "nobody@accept.test")
    result(c, d.request("CHECK bob@accept.test"), "bob@accept.test", "unknown",
           "not_cached", what="a third verdict evicts the least recently used "
           "(bob)")
    result(c, d.request("CHECK alice@accept.test"), "alice@accept.test",
           "deliverable", "accepted", what="alice stays")
    st = stats(d)
    c.eq((st.get("cache_entries"), st.get("cache_evictions")), (2, 1),
         "STATS cache_entries=2 cache_evictions=1")
    c.eq(d.stop(), 0, "exits 0")
    d2 = again(c, d, "probed-restarted")
    loaded = d2.wait_log(r"engine state=\S+ verdicts=(\d+)")
    c.check(loaded is not None and loaded.group(1) == "2",
            "the evicted verdict left the store too (2 loaded)",
            loaded.group(0) if loaded else None)
    result(c, d2.request("CHECK bob@accept.test"), "bob@accept.test", "unknown",
           "not_cached", what="after restart bob is still gone")


@lab_case
def dns_cache(c):
    """MX answers are kept for their TTL clamped to dns.min_ttl/max_ttl;
    NXDOMAIN for dns.negative_ttl; a cached answer costs no query."""
    d = start(c, {"dns": {"min_ttl": 600, "negative_ttl": 120}})
    verify(d, "alice@accept.test")
    dk = domain_line(d, "accept.test")
    c.check(dk.get("dns") == "ok" and is_int(590, 600)(dk.get("dns_ttl")),
            "the zone's TTL 300 is raised to dns.min_ttl 600 (dns_ttl=%s)"
            % dk.get("dns_ttl"), dk.get("_line"))
    result(c, verify(d, "a@nosuch.test"), "a@nosuch.test", "undeliverable",
           "no_domain")
    dk = domain_line(d, "nosuch.test")
    c.check(dk.get("dns") == "nxdomain" and is_int(110, 120)(dk.get("dns_ttl")),
            "NXDOMAIN is kept for dns.negative_ttl 120 (dns_ttl=%s)"
            % dk.get("dns_ttl"), dk.get("_line"))
    q = stats(d).get("dns_queries")
    result(c, verify(d, "b@nosuch.test"), "b@nosuch.test", "undeliverable",
           "no_domain")
    result(c, verify(d, "bob@accept.test"), "bob@accept.test", "deliverable",
           "accepted")
    c.eq(stats(d).get("dns_queries"), q, "the next probes at both domains ask "
         "no DNS question")
    c.eq(d.stop(), 0, "exits 0")
    d2 = start(c, {"dns": {"max_ttl": 100}}, name="probed-maxttl")
    verify(d2, "alice@accept.test", "fresh")   # the store knows alice
    dk = domain_line(d2, "accept.test")
    c.check(is_int(90, 100)(dk.get("dns_ttl")), "the zone's TTL 300 is cut to "
            "dns.max_ttl 100 (dns_ttl=%s)" % dk.get("dns_ttl"), dk.get("_line"))


# ---------------------------------------------------------------- main

def main():
    global LAB, GREY_DELAY
    sys.stdout.reconfigure(errors="backslashreplace")
    try:
        harness.binary("PROBED")
    except harness.HardError as e:
        print("not ok - caches: %s" % e)
        print("0 passed, 1 failed")
        sys.exit(harness.EXIT_HARD)
    attach = os.environ.get("PROBED_LAB_DIR")
    t0 = now()
    try:
        if attach:
            if os.geteuid() != 0:
                raise labmod.LabSkip("the lab needs root")
            LAB = labmod.Lab.attach(attach)
            GREY_DELAY = LAB.grey_delay
        else:
            LAB = labmod.Lab(grey_delay=GREY_DELAY)
            LAB.start()
    except labmod.LabSkip as e:
        print("ok - caches: whole file # SKIP %s" % e)
        print("0 passed, 0 failed")
        sys.exit(harness.EXIT_SKIP)
    except (labmod.LabError, OSError, ValueError) as e:
        print("not ok - caches: the lab did not start: %s" % e)
        print("0 passed, 1 failed")
        sys.exit(harness.EXIT_HARD)
    print("# lab %s in %.1f s (%s)" % ("attached" if attach else "up",
                                       now() - t0, LAB.dir), flush=True)
    try:
        suite.main()
    finally:
        if not attach:
            if suite.failed or suite.hard:
                LAB.failed = True       # keep its directory for a look
            LAB.stop()


if __name__ == "__main__":
    main()
