"""probectl -- the admin's client against a running probed.

What an admin or a script relies on (design.md, "Command lines"): ping and
stats work; the exit status says 0 all deliverable, 1 any undeliverable,
2 otherwise, 64 usage, 69 daemon unreachable; --json prints one JSON object
per answer with address, verdict and reason; `check -` and `verify -` read
addresses from stdin and answer every one, in order, even 100,000 of them.

VERIFY probes, and these tests are about the client, not the network: a
VERIFY of a valid address goes to an address literal in a documentation
range, which the destination guard refuses at once (unknown, reason
not_allowed), or uses --timeout where `pending` is the answer (the
harness's DNS server never answers).  The bulk test uses `check -`.
tests/integration/engine.py runs probectl against real servers.
"""

import json
import socket

import harness

suite = harness.Suite("probectl")
suite.require_binary("PROBECTL")

GUARDED = "alice@[192.0.2.1]"    # TEST-NET-1: the guard always refuses it


def ctl(c, sock, *args, input=None, timeout=20.0):
    argv = [harness.binary("PROBECTL")]
    if sock is not None:
        argv += ["-s", sock]
    return c.run(argv + list(args), input=input, timeout=timeout)


def desc(rc, out, err):
    return "exit %d\nstdout: %r\nstderr: %r" % (rc, out[:2000], err[:2000])


@suite.case
def ping_and_stats(c):
    d = c.probed()
    rc, out, err = ctl(c, d.socket, "ping")
    c.check(rc == 0 and out.strip() == "pong", "probectl ping prints pong, exit 0",
            desc(rc, out, err))
    rc, out, err = ctl(c, d.socket, "stats")
    c.check(rc == 0 and "requests" in out and "uptime" in out,
            "probectl stats prints the counters, exit 0", desc(rc, out, err))


@suite.case
def verify_exit_status(c):
    d = c.probed()
    rc, out, err = ctl(c, d.socket, "verify", "bob@@example.org")
    c.check(rc == 1 and "undeliverable" in out and "bob@@example.org" in out,
            "verify of a bad address: undeliverable, exit 1", desc(rc, out, err))
    rc, out, err = ctl(c, d.socket, "verify", GUARDED)
    c.check(rc == 2 and "unknown" in out and "not_allowed" in out and GUARDED in out,
            "verify of an address the guard refuses: unknown not_allowed, exit 2",
            desc(rc, out, err))
    rc, out, err = ctl(c, d.socket, "verify", "--timeout", "0.2", "alice@example.org")
    c.check(rc == 2 and "pending" in out and "alice@example.org" in out,
            "verify --timeout 0.2 of a probe that cannot finish: pending, exit 2",
            desc(rc, out, err))
    rc, out, err = ctl(c, d.socket, "verify", GUARDED, "bob@@example.org")
    c.check(rc == 1, "verify of one unknown and one undeliverable: exit 1",
            desc(rc, out, err))
    rc, out, err = ctl(c, d.socket, "check", "carol@example.org")
    c.check(rc == 2 and "carol@example.org" in out, "check of a valid address: exit 2",
            desc(rc, out, err))
    rc, out, err = ctl(c, d.socket, "check", "carol@@example.org")
    c.check(rc == 1, "check of a bad address: exit 1", desc(rc, out, err))
    rc, out, err = ctl(c, d.socket, "domain", "example.org")
    c.check(rc not in (1, 64, 69) and "example.org" in out,
            "domain example.org answers", desc(rc, out, err))
    rc, out, err = ctl(c, d.socket, "forget", "alice@example.org")
    c.check(rc not in (1, 64, 69) and out.strip() != "",
            "forget alice@example.org answers", desc(rc, out, err))


@suite.case
def json_output(c):
    d = c.probed()
    addrs = [GUARDED, "bob@@example.org", '"john doe"@[192.0.2.1]',
             "jos\u00e9@[IPv6:2001:db8::1]"]
    want = [("unknown", "not_allowed"), ("undeliverable", "syntax"),
            ("unknown", "not_allowed"), ("unknown", "not_allowed")]
    rc, out, err = ctl(c, d.socket, "--json", "verify", *addrs)
    c.eq(rc, 1, "--json verify with one bad address exits 1")
    lines = out.splitlines()
    objs = []
    for line in lines:
        try:
            objs.append(json.loads(line))
        except ValueError as e:
            c.check(False, "every --json line parses with json.loads", "%r: %s" % (line, e))
            return
    c.eq(len(objs), len(addrs), "one JSON object per address")
    for a, (verdict, reason), o in zip(addrs, want, objs):
        c.check(isinstance(o, dict) and o.get("address") == a and
                o.get("verdict") == verdict and o.get("reason") == reason,
                "JSON for %s has address, verdict=%s, reason=%s" % (a, verdict, reason),
                repr(o))
    o = objs[0] if objs else None
    c.check(isinstance(o, dict) and isinstance(o.get("text"), str) and
            "192.0.2.1" in o["text"] and isinstance(o.get("ms"), int),
            "the not_allowed answer keeps its text (which address, why) and ms "
            "(a number)", repr(o))
    rc, out, err = ctl(c, d.socket, "--json", "verify", "--timeout", "0.2",
                       "alice@example.org")
    try:
        o = json.loads(out)
    except ValueError:
        o = None
    c.check(rc == 2 and isinstance(o, dict) and o.get("verdict") == "unknown" and
            o.get("reason") == "pending" and o.get("address") == "alice@example.org",
            "--json verify --timeout 0.2: one object, reason pending, exit 2",
            desc(rc, out, err))


@suite.case(budget=120)
def check_stdin_100k(c):
    d = c.probed({"log_level": "info"})
    n = 100000
    addrs = []
    for i in range(n):
        addrs.append(("s%d@@example.org" if i % 7 == 3 else "s%d@example.org") % i)
    rc, out, err = ctl(c, d.socket, "--json", "check", "-",
                       input="".join(a + "\n" for a in addrs), timeout=90)
    c.check(rc == 1, "check - of 100,000 addresses (some bad) exits 1",
            "exit %d, stderr %r" % (rc, err[:2000]))
    lines = out.splitlines()
    c.eq(len(lines), n, "100,000 lines of output")
    wrong = None
    for i, line in enumerate(lines[:n]):
        try:
            o = json.loads(line)
        except ValueError:
            wrong = (i, line)
            break
        bad = i % 7 == 3
        if (o.get("address") != addrs[i] or
                o.get("verdict") != ("undeliverable" if bad else "unknown") or
                o.get("reason") != ("syntax" if bad else "not_cached")):
            wrong = (i, line)
            break
    c.check(wrong is None and len(lines) == n,
            "every answer is complete, parses and comes in input order",
            wrong and "first wrong: #%d %r" % wrong)
    st = d.stats()
    c.check(st.get("check", 0) >= n, "probed saw all %d CHECK requests" % n,
            "check=%r" % st.get("check"))


@suite.case(budget=60)
def verify_stdin(c):
    """verify - past probectl's and probed's pipelining windows: every
    answer, in input order, including the few that only end at --timeout."""
    d = c.probed({"log_level": "info"})
    n = 3000
    addrs, want = [], []
    for i in range(n):
        if i % 7 == 3:
            addrs.append("v%d@@example.org" % i)
            want.append(("undeliverable", "syntax"))
        elif i % 600 == 5:
            addrs.append("v%d@example.org" % i)        # ends at --timeout
            want.append(("unknown", "pending"))
        elif i % 2:
            addrs.append("v%d@[192.0.2.%d]" % (i, i % 256))
            want.append(("unknown", "not_allowed"))
        else:
            addrs.append("v%d@[IPv6:2001:db8::%x]" % (i, i))
            want.append(("unknown", "not_allowed"))
    rc, out, err = ctl(c, d.socket, "--json", "verify", "--timeout", "0.3", "-",
                       input="# a comment line\n\n" +
                       "".join(a + "\n" for a in addrs), timeout=45)
    c.check(rc == 1, "verify - of %d addresses (some bad) exits 1" % n,
            "exit %d, stderr %r" % (rc, err[:2000]))
    lines = out.splitlines()
    c.eq(len(lines), n, "%d lines of output (comment and blank line skipped)" % n)
    wrong = None
    for i, line in enumerate(lines[:n]):
        try:
            o = json.loads(line)
        except ValueError:
            wrong = (i, line)
            break
        if (o.get("address"), o.get("verdict"), o.get("reason")) != \
                (addrs[i],) + want[i]:
            wrong = (i, line)
            break
    c.check(wrong is None and len(lines) == n,
            "every answer is complete, parses and comes in input order",
            wrong and "first wrong: #%d %r" % wrong)
    st = d.stats()
    c.check(st.get("verify", 0) >= n, "probed saw all %d VERIFY requests" % n,
            "verify=%r" % st.get("verify"))


@suite.case
def unreachable(c):
    missing = c.path("nobody.sock")
    rc, out, err = ctl(c, missing, "ping")
    c.check(rc == 69 and len(err.strip().splitlines()) == 1 and out == "",
            "no socket: exit 69 with a one-line message", desc(rc, out, err))
    stale = c.path("stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    rc, out, err = ctl(c, stale, "verify", GUARDED)
    c.check(rc == 69 and len(err.strip().splitlines()) == 1,
            "a socket nobody listens on: exit 69 with a one-line message",
            desc(rc, out, err))


@suite.case
def usage_errors(c):
    d = c.probed()
    cases = [((), "no command"),
             (("frobnicate",), "an unknown command"),
             (("verify",), "verify without an address"),
             (("--bogus", "ping"), "an unknown option")]
    for args, what in cases:
        rc, out, err = ctl(c, d.socket, *args)
        c.check(rc == 64 and err.strip() != "",
                "%s: exit 64 with a message on stderr" % what, desc(rc, out, err))


if __name__ == "__main__":
    suite.main()
