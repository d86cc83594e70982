"""protocol -- the control protocol, version 1, against a running probed.

What a client relies on: every verb answers one line of the documented
shape; verbs are case-insensitive; LF and CRLF both end a request; bad
address syntax is a verdict (`undeliverable ... reason=syntax`), bad requests
are `error <reason>` and the connection stays usable; responses come back
complete, exactly once and in request order even for 10,000 pipelined
requests; STATS counts what was sent.

The random mix is seeded (PROBED_TEST_SEED overrides; the seed is printed).

VERIFY probes, and these tests are about the protocol, not the network: a
VERIFY of a valid address goes to an address literal in a documentation
range, which the destination guard refuses at once (`unknown ...
reason=not_allowed`, no DNS, no SMTP), or carries a short timeout= where
`pending` is the answer (the harness's DNS server never answers).  CHECK
covers valid addresses in bulk.  tests/integration/engine.py is where
VERIFY meets real servers.
"""

import os
import random
import re
import socket
import time

import harness
from harness import error_reason, is_result, parse_stats, parse_kv

suite = harness.Suite("protocol")

VALID = [
    "alice@example.org",
    "first.last+tag@sub.example.co.uk",
    "o'brien@example.org",
    "x_y-z=1{2}~3@example.net",
    '"john doe"@example.org',
    '"quote\\"inside"@example.org',
    "user@[192.0.2.1]",
    "user@[IPv6:2001:db8::1]",
    "a" * 64 + "@example.org",
    "jos\u00e9@example.org",
    "user@b\u00fccher.example",
    "Mixed.Case@Example.ORG",
]

INVALID = [
    "bob@@example.org",
    "alice",
    "@example.org",
    "alice@",
    ".alice@example.org",
    "alice.@example.org",
    "al..ice@example.org",
    "alice@-example.org",
    "alice@example-.org",
    "alice@exa..mple.org",
    "alice@.example.org",
    "a(comment)@example.org",
    "alice@exa_mple.org",
    "a" * 65 + "@example.org",
    "alice@[300.1.1.1]",
    "alice@[IPv6:zzzz::1]",
    "alice@" + "a" * 64 + ".org",
    "a" * 60 + "@" + ("b" * 60 + ".") * 4 + "org",
    "\udcff@example.org",               # octet 0xff: not UTF-8
    "alice@example.org.",
]

BAD_DOMAINS = ["-bad.example", "exa..mple.org", "a@example.org", "[192.0.2.1]",
               "exa_mple.org", "x" * 64 + ".org"]

STATS_KEYS = ["uptime", "clients", "clients_total", "clients_refused",
              "requests", "errors", "verify", "check", "domain", "forget",
              "ping", "stats", "quit", "lines_too_long", "reloads",
              "reload_errors"]

# Each bad request with the error reason the spec gives it.
ERRORS = [
    ("", "empty_request"),
    ("   ", "empty_request"),
    ("FROB", "unknown_verb"),
    ("FROB alice@example.org", "unknown_verb"),
    ("VERIFYX alice@example.org", "unknown_verb"),
    ("PIN", "unknown_verb"),
    ("PING\x00", "bad_request"),
    ("VERIFY al\x00ice@example.org", "bad_request"),
    ("VERIFY al\x01ice@example.org", "bad_request"),
    ("PI\rNG", "bad_request"),
    ("VERIFY alice@example.org\x1b", "bad_request"),
    ("VERIFY", "missing_argument"),
    ("VERIFY ", "missing_argument"),
    ("CHECK", "missing_argument"),
    ("DOMAIN", "missing_argument"),
    ("FORGET", "missing_argument"),
    ("PING now", "bad_argument"),
    ("STATS all", "bad_argument"),
    ("QUIT now", "bad_argument"),
    ("VERIFY alice@example.org bob@example.org", "bad_argument"),
    ("CHECK alice@example.org bob@example.org", "bad_argument"),
    ("CHECK alice@example.org fresh", "bad_argument"),
    ("CHECK alice@example.org timeout=5", "bad_argument"),
    ("DOMAIN example.org example.net", "bad_argument"),
    ("FORGET alice@example.org extra", "bad_argument"),
    ("VERIFY alice@example.org timeout=", "bad_argument"),
    ("VERIFY alice@example.org timeout=abc", "bad_argument"),
    ("VERIFY alice@example.org timeout=0", "bad_argument"),
    ("VERIFY alice@example.org timeout=-1", "bad_argument"),
    ("VERIFY alice@example.org timeout=3601", "bad_argument"),
    ("VERIFY alice@example.org timeout=5x", "bad_argument"),
    ("VERIFY alice@example.org frob", "bad_argument"),
    ("VERIFY alice@example.org frob=1", "bad_argument"),
    ("VERIFY alice@example.org fresher", "bad_argument"),
] + [("DOMAIN " + d, "bad_argument") for d in BAD_DOMAINS] + [
    ("FORGET bob@@example.org", "bad_argument"),
    ("FORGET -bad.example", "bad_argument"),
]


# ---------------------------------------------------------------- model

def matches(line, exp):
    """Does a response line fit what the request should get?"""
    kind = exp[0]
    if line is None:
        return False
    if kind == "line":
        return line == exp[1]
    if kind == "result":
        return is_result(line, exp[1], exp[2], exp[3])
    if kind == "error":
        return error_reason(line) == exp[1]
    if kind == "stats":
        st = parse_stats(line)
        return st is not None and all(isinstance(st.get(k), int) for k in STATS_KEYS)
    if kind == "domain":
        head = "domain " + exp[1]
        if not (line == head or line.startswith(head + " ")):
            return False
        try:
            return parse_kv(line[len(head):]).get("cached") == "no"
        except ValueError:
            return False
    if kind == "forgotten":
        return line == "forgotten n=0"
    raise AssertionError(kind)


def describe(exp):
    if exp[0] == "result":
        return "%s %s reason=%s" % exp[1:]
    if exp[0] == "error":
        return "error %s" % exp[1]
    if exp[0] == "stats":
        return "stats with %s" % " ".join(STATS_KEYS)
    if exp[0] == "domain":
        return "domain %s cached=no" % exp[1]
    if exp[0] == "forgotten":
        return "forgotten n=0"
    return exp[1]


def not_cached(addr):
    """What CHECK of a valid address answers while nothing is cached."""
    return ("result", "unknown", addr, "not_cached")


# A valid address whose one destination (192.0.2.1, TEST-NET-1) the
# destination guard always refuses: its VERIFY answers at once, touching
# neither DNS nor SMTP.
GUARDED = "alice@[192.0.2.1]"
GUARDED_RE = re.compile(r"@\[(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+\]$|"
                        r"@\[IPv6:2001:db8:", re.I)


def verify_ok(addr):
    """What VERIFY of a valid address answers without the network: for an
    address literal in a documentation range, `unknown ... not_allowed` at
    once; for anything else only `pending` can be promised (send it with a
    short timeout=), since the harness's DNS server never answers."""
    if GUARDED_RE.search(addr):
        return ("result", "unknown", addr, "not_allowed")
    return ("result", "unknown", addr, "pending")


def syntax(addr):
    return ("result", "undeliverable", addr, "syntax")


def errs(reason):
    return ("error", reason)


def check_exchange(c, requests, expected, got, what):
    """One check for the whole list, with the first few differences."""
    bad = []
    for i, exp in enumerate(expected):
        line = got[i] if i < len(got) else None
        if not matches(line, exp):
            bad.append("#%d sent %r\n     got %r\n    want %s" %
                       (i, requests[i][:120], line, describe(exp)))
    extra = len(got) - len(expected)
    detail = "\n".join(bad[:15])
    if len(bad) > 15:
        detail += "\n... %d differences in all" % len(bad)
    if extra > 0:
        detail += "\n%d unexpected extra lines, first %r" % (extra, got[len(expected)])
    return c.check(not bad and extra <= 0, what, detail)


# ---------------------------------------------------------------- cases

@suite.case
def verbs(c):
    """Every verb answers the documented shape."""
    d = c.probed()
    with d.client() as cl:
        c.eq(cl.request("PING"), "pong", "PING answers pong")
        r = cl.request("VERIFY " + GUARDED)
        c.check(matches(r, verify_ok(GUARDED)),
                "VERIFY of a valid address the guard refuses answers %s"
                % describe(verify_ok(GUARDED)), "got %r" % r)
        t0 = time.monotonic()
        r = cl.request("VERIFY alice@example.org timeout=0.2")
        took = time.monotonic() - t0
        c.check(is_result(r, "unknown", "alice@example.org", "pending"),
                "VERIFY with timeout=0.2 of a probe that cannot finish answers "
                "unknown reason=pending", "got %r" % r)
        c.check(0.15 <= took <= harness.T(2.0),
                "and it answers after about 0.2 s (%.2f s)" % took)
        c.eq(cl.request("VERIFY bob@@example.org"),
             "undeliverable bob@@example.org reason=syntax",
             "VERIFY bob@@example.org answers undeliverable reason=syntax")
        c.eq(cl.request("CHECK carol@example.org"),
             "unknown carol@example.org reason=not_cached",
             "CHECK of a valid address answers unknown reason=not_cached")
        c.eq(cl.request("CHECK carol@@example.org"),
             "undeliverable carol@@example.org reason=syntax",
             "CHECK of a bad address answers undeliverable reason=syntax")
        for opts in ("timeout=1", "timeout=3600", "fresh", "timeout=2 fresh",
                     "fresh timeout=2", "timeout=0.5", "TIMEOUT=1 FRESH"):
            r = cl.request("VERIFY %s %s" % (GUARDED, opts))
            c.check(matches(r, verify_ok(GUARDED)),
                    "VERIFY with %s is accepted" % opts, "got %r" % r)
        r = cl.request("DOMAIN example.org")
        c.check(matches(r, ("domain", "example.org")),
                "DOMAIN example.org answers domain example.org cached=no", "got %r" % r)
        r = cl.request("DOMAIN bad..example.org")
        c.check(error_reason(r) == "bad_argument",
                "DOMAIN of a bad domain answers error bad_argument", "got %r" % r)
        c.eq(cl.request("FORGET alice@example.org"), "forgotten n=0",
             "FORGET of an address answers forgotten n=0")
        c.eq(cl.request("FORGET example.org"), "forgotten n=0",
             "FORGET of a domain answers forgotten n=0")
        r = cl.request("FORGET bob@@example.org")
        c.check(error_reason(r) == "bad_argument",
                "FORGET of a bad address answers error bad_argument", "got %r" % r)
        r = cl.request("STATS")
        st = parse_stats(r)
        c.check(st is not None, "STATS answers a stats line", "got %r" % r)
        st = st or {}
        missing = [k for k in STATS_KEYS if not isinstance(st.get(k), int) or st[k] < 0]
        c.check(not missing, "STATS has every documented counter as an integer",
                "missing or not a count: %s\nline: %r" % (missing, r))
        c.check(st.get("clients", 0) >= 1, "STATS counts this client as connected",
                "clients=%r" % st.get("clients"))
        c.eq(cl.request("QUIT"), "bye", "QUIT answers bye")
        c.check(cl.expect_eof(), "the connection is closed after bye")
    c.eq(d.request("PING"), "pong", "probed still answers new connections")


@suite.case
def case_insensitive(c):
    d = c.probed()
    reqs, exp = [], []
    for verb in ("ping", "Ping", "pInG"):
        reqs.append(verb)
        exp.append(("line", "pong"))
    for verb in ("verify", "Verify", "vErIfY"):
        reqs.append(verb + " " + GUARDED)
        exp.append(verify_ok(GUARDED))
    for verb in ("check", "Check"):
        reqs.append(verb + " bob@@example.org")
        exp.append(syntax("bob@@example.org"))
    reqs.append("domain example.org")
    exp.append(("domain", "example.org"))
    reqs.append("Forget example.org")
    exp.append(("forgotten",))
    reqs.append("stats")
    exp.append(("stats",))
    reqs.append("frob")
    exp.append(errs("unknown_verb"))
    with d.client() as cl:
        got = cl.pipeline(reqs)
        check_exchange(c, reqs, exp, got, "verbs are case-insensitive")
        c.eq(cl.request("quit"), "bye", "quit in lower case answers bye")
        c.check(cl.expect_eof(), "and closes the connection")


@suite.case
def line_endings(c):
    d = c.probed()
    reqs = ["PING", "VERIFY " + GUARDED, "CHECK bob@@example.org",
            "DOMAIN example.org", "FORGET example.org", "FROB", ""]
    exp = [("line", "pong"), verify_ok(GUARDED),
           syntax("bob@@example.org"), ("domain", "example.org"),
           ("forgotten",), errs("unknown_verb"), errs("empty_request")]
    for eol, name in ((b"\n", "LF"), (b"\r\n", "CRLF")):
        with d.client() as cl:
            got = cl.pipeline(reqs, eol=eol)
            check_exchange(c, reqs, exp, got, "requests ending in %s are answered" % name)
            c.check(not any("\r" in x for x in got),
                    "responses to %s requests end in a bare LF" % name, repr(got))
    # LF and CRLF mixed in one write
    with d.client() as cl:
        data = ("PING\r\nPING\nVERIFY %s\r\nCHECK alice@example.org\n"
                % GUARDED).encode()
        got = cl.exchange(data, 4)
        c.check(got == ["pong", "pong"] + got[2:] and len(got) == 4 and
                matches(got[2], verify_ok(GUARDED)) and
                is_result(got[3], "unknown", "alice@example.org", "not_cached"),
                "LF and CRLF mixed on one connection", repr(got))
    # a request arriving one octet at a time
    with d.client() as cl:
        for b in ("VERIFY %s\r" % GUARDED).encode():
            cl.send(bytes([b]))
        cl.send(b"\n")
        r = cl.readline()
        c.check(matches(r, verify_ok(GUARDED)),
                "a request sent one octet at a time is answered", repr(r))


@suite.case
def address_syntax(c):
    d = c.probed()
    # CHECK first: a VERIFY's verdict is cached, and CHECK would find it.
    for verb in ("CHECK", "VERIFY"):
        # VERIFY of a valid domain can only promise `pending`: a short
        # timeout= on every VERIFY (syntax is judged before it matters)
        opt = " timeout=0.3" if verb == "VERIFY" else ""
        reqs = ["%s %s%s" % (verb, a, opt) for a in INVALID + VALID]
        good = verify_ok if verb == "VERIFY" else not_cached
        exp = [syntax(a) for a in INVALID] + [good(a) for a in VALID]
        with d.client() as cl:
            got = cl.pipeline(reqs)
        for i, a in enumerate(INVALID):
            line = got[i] if i < len(got) else None
            c.check(matches(line, exp[i]),
                    "%s %r answers undeliverable reason=syntax" % (verb, a[:70]),
                    "got %r" % (line,))
        for j, a in enumerate(VALID):
            i = len(INVALID) + j
            line = got[i] if i < len(got) else None
            c.check(matches(line, exp[i]),
                    "%s %r is valid: %s reason=%s" % (verb, a[:70], exp[i][1], exp[i][3]),
                    "got %r" % (line,))
        c.eq(len(got), len(reqs), "%s: one response per request" % verb)
    c.eq(d.request("PING"), "pong", "still answering")


@suite.case
def error_paths(c):
    d = c.probed()
    # each error on a connection of its own, then PING and VERIFY on it
    for line, reason in ERRORS:
        with d.client() as cl:
            got = cl.pipeline([line, "PING", "VERIFY " + GUARDED])
            ok = (len(got) == 3 and error_reason(got[0]) == reason and
                  got[1] == "pong" and
                  matches(got[2], verify_ok(GUARDED)))
            c.check(ok, "%r answers error %s and the connection stays usable"
                    % (line[:60], reason), "got %r" % (got,))
    # all of them pipelined on one connection, PINGs in between
    reqs, exp = [], []
    for line, reason in ERRORS:
        reqs += [line, "PING"]
        exp += [errs(reason), ("line", "pong")]
    with d.client() as cl:
        got = cl.pipeline(reqs)
        check_exchange(c, reqs, exp, got, "every error pipelined on one connection, "
                       "each followed by a working PING")
    # error text, when present, is one well-formed quoted value
    with d.client() as cl:
        r = cl.request("FROB")
        c.check(harness._ERROR_RE.match(r or "") is not None,
                "an error line is `error <reason> [text=\"...\"]`", repr(r))


@suite.case
def quit_ends_pipeline(c):
    d = c.probed()
    with d.client() as cl:
        got = cl.exchange(b"PING\nQUIT\nPING\n", 3)
        c.eq(got, ["pong", "bye"], "requests before QUIT are answered, then bye, "
             "then the connection closes")
        c.check(cl.eof, "EOF after bye")


@suite.case
def half_close(c):
    """`printf 'VERIFY ...\\n' | socat - UNIX-CONNECT:...` shuts down its
    write side before reading: the answers must still come."""
    d = c.probed()
    with d.client() as cl:
        cl.send(("PING\nVERIFY %s\nCHECK bob@@example.org\n" % GUARDED).encode())
        cl.sock.shutdown(socket.SHUT_WR)
        lines, partial = cl.read_to_eof()
        c.check(len(lines) == 3 and lines[0] == "pong" and
                matches(lines[1], verify_ok(GUARDED)) and
                is_result(lines[2], "undeliverable", "bob@@example.org", "syntax")
                and partial == b"",
                "requests sent before a half-close are all answered, then EOF",
                "got %r partial %r" % (lines, partial))


@suite.case
def clients_isolated(c):
    """Two clients pipelining at once each get only their own answers."""
    d = c.probed()
    a, b = d.client(), d.client()
    try:
        ra = ["CHECK a%d@example.org" % i for i in range(2000)]
        rb = ["VERIFY b%d@@example.org" % i for i in range(2000)]
        ga, gb = harness.exchange_all([
            (a, "".join(x + "\n" for x in ra), len(ra)),
            (b, "".join(x + "\n" for x in rb), len(rb))], timeout=20)
        check_exchange(c, ra, [not_cached("a%d@example.org" % i) for i in range(2000)],
                       ga, "client A gets its 2000 answers in order")
        check_exchange(c, rb, [syntax("b%d@@example.org" % i) for i in range(2000)],
                       gb, "client B gets its 2000 answers in order")
    finally:
        a.close()
        b.close()


def verb_case(rng, verb):
    k = rng.randrange(4)
    if k == 0:
        return verb
    if k == 1:
        return verb.lower()
    if k == 2:
        return verb.capitalize()
    return "".join(ch.lower() if rng.random() < 0.5 else ch for ch in verb)


def make_mix(rng, n):
    """n requests with what each must get, and the counters they should move."""
    reqs, exp = [], []
    counts = dict.fromkeys(("verify", "check", "domain", "forget", "ping",
                            "stats", "errors"), 0)
    kinds = (["verify_ok"] * 20 + ["verify_bad"] * 12 + ["check_ok"] * 8 +
             ["check_bad"] * 6 + ["domain_ok"] * 4 + ["domain_bad"] * 2 +
             ["forget_ok"] * 3 + ["forget_bad"] * 1 + ["ping"] * 10 +
             ["stats"] * 1 + ["error"] * 12)
    for i in range(n):
        # A few VERIFYs that can only end at their timeout=: answers that
        # complete out of request order.  Few, since each holds back the
        # answers behind it and probed reads at most 128 requests ahead.
        kind = "verify_pending" if rng.random() < 0.001 else rng.choice(kinds)
        if kind == "verify_ok":
            # destinations the guard refuses: answered at once, no network
            form = rng.randrange(5)
            if form == 0:
                addr = "user%d@[192.0.2.%d]" % (i, i % 256)
            elif form == 1:
                addr = "first.last%d+x@[198.51.100.%d]" % (i, i % 256)
            elif form == 2:
                addr = '"john doe %d"@[203.0.113.7]' % i
            elif form == 3:
                addr = "u%d@[IPv6:2001:db8::%x]" % (i, i)
            else:
                addr = "jos\u00e9%d@[192.0.2.1]" % i
            verb = "VERIFY"
            line = "%s %s" % (verb_case(rng, verb), addr)
            if verb == "VERIFY" and rng.random() < 0.3:
                line += rng.choice([" timeout=%d" % rng.randint(1, 3600), " fresh",
                                    " fresh timeout=7"])
            counts[verb.lower()] += 1
            e = verify_ok(addr)
        elif kind == "verify_pending":
            # a probe that cannot finish: its slot waits for timeout=,
            # holding back the answers pipelined after it
            addr = rng.choice(["p%d@example.org", "p%d@sub.example.co.uk"]) % i
            line = "%s %s timeout=0.%d" % (verb_case(rng, "VERIFY"), addr,
                                           rng.randint(1, 2))
            if rng.random() < 0.3:
                line += " fresh"
            counts["verify"] += 1
            e = ("result", "unknown", addr, "pending")
        elif kind == "check_ok":
            form = rng.randrange(5)
            if form == 0:
                addr = "user%d@example.org" % i
            elif form == 1:
                addr = "first.last%d+x@sub.example.co.uk" % i
            elif form == 2:
                addr = '"john doe %d"@example.org' % i
            elif form == 3:
                addr = "u%d@[192.0.2.%d]" % (i, i % 256)
            else:
                addr = "jos\u00e9%d@example.org" % i
            line = "%s %s" % (verb_case(rng, "CHECK"), addr)
            counts["check"] += 1
            e = not_cached(addr)
        elif kind in ("verify_bad", "check_bad"):
            form = rng.randrange(6)
            addr = ["bob%d@@example.org", "nobody%d", "user%d@", ".dot%d@example.org",
                    "a..b%d@example.org", "u%d@exa..mple.org"][form] % i
            verb = "VERIFY" if kind == "verify_bad" else "CHECK"
            line = "%s %s" % (verb_case(rng, verb), addr)
            counts[verb.lower()] += 1
            e = syntax(addr)
        elif kind == "domain_ok":
            dom = "d%d.example.org" % i
            line = "%s %s" % (verb_case(rng, "DOMAIN"), dom)
            counts["domain"] += 1
            e = ("domain", dom)
        elif kind == "domain_bad":
            line = "%s -d%d.example.org" % (verb_case(rng, "DOMAIN"), i)
            counts["domain"] += 1
            counts["errors"] += 1
            e = errs("bad_argument")
        elif kind == "forget_ok":
            arg = rng.choice(["f%d@example.org", "f%d.example.org"]) % i
            line = "%s %s" % (verb_case(rng, "FORGET"), arg)
            counts["forget"] += 1
            e = ("forgotten",)
        elif kind == "forget_bad":
            line = "%s f%d@@example.org" % (verb_case(rng, "FORGET"), i)
            counts["forget"] += 1
            counts["errors"] += 1
            e = errs("bad_argument")
        elif kind == "ping":
            line = verb_case(rng, "PING")
            counts["ping"] += 1
            e = ("line", "pong")
        elif kind == "stats":
            line = verb_case(rng, "STATS")
            counts["stats"] += 1
            e = ("stats",)
        else:
            form = rng.randrange(8)
            if form == 0:
                line, reason = "", "empty_request"
            elif form == 1:
                line, reason = "FROB%d" % i, "unknown_verb"
            elif form == 2:
                line, reason = "VERIFY a%d\x01b@example.org" % i, "bad_request"
            elif form == 3:
                line, reason = "PING\x00%d" % i, "bad_request"
            elif form == 4:
                line, reason = rng.choice(["VERIFY", "CHECK", "DOMAIN", "FORGET"]), \
                    "missing_argument"
            elif form == 5:
                line, reason = "CHECK c%d@example.org extra" % i, "bad_argument"
            elif form == 6:
                line, reason = "VERIFY t%d@example.org timeout=%s" % (
                    i, rng.choice(["0", "abc", "-5", "3601", ""])), "bad_argument"
            else:
                line, reason = "VERIFY o%d@example.org frob" % i, "bad_argument"
            counts["errors"] += 1
            e = errs(reason)
        reqs.append(line)
        exp.append(e)
    return reqs, exp, counts


@suite.case(budget=60)
def pipeline_10k(c):
    seed = int(os.environ.get("PROBED_TEST_SEED") or random.SystemRandom().randrange(1 << 30))
    c.note("seed %d (set PROBED_TEST_SEED=%d to repeat)" % (seed, seed))
    rng = random.Random(seed)
    d = c.probed({"log_level": "info"})
    n = 10000
    reqs, exp, counts = make_mix(rng, n)
    eols = [b"\r\n" if rng.random() < 0.25 else b"\n" for _ in range(n)]
    data = b"".join(harness._enc(r) + e for r, e in zip(reqs, eols))
    before = d.stats()
    with d.client() as cl:
        got = cl.exchange(data, n, timeout=30)
        c.eq(len(got), n, "10,000 pipelined requests get 10,000 responses")
        check_exchange(c, reqs, exp, got,
                       "every response complete, exactly once, in request order")
        # STATS answered inside the pipeline never go backwards
        seen = [parse_stats(x) for x in got if x.startswith("stats")]
        reqseq = [s.get("requests") for s in seen if s]
        c.check(all(isinstance(v, int) for v in reqseq) and reqseq == sorted(reqseq),
                "requests= never decreases across the pipeline", reqseq[:20])
        c.eq(cl.request("QUIT"), "bye", "QUIT after the pipeline answers bye")
        c.check(cl.expect_eof(), "and closes the connection")
    after = d.stats()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after
             if isinstance(after.get(k), int) and isinstance(before.get(k), int)}
    # The "after" STATS is itself counted (stats and requests), the QUIT too.
    want = {
        "verify": counts["verify"],
        "check": counts["check"],
        "domain": counts["domain"],
        "forget": counts["forget"],
        "ping": counts["ping"],
        "stats": counts["stats"] + 1,
        "quit": 1,
        "errors": counts["errors"],
        "requests": n + 2,
        "clients_total": 2,
    }
    for k, v in want.items():
        c.eq(delta.get(k), v, "STATS %s= moved by what was sent" % k)


if __name__ == "__main__":
    suite.main()
