"""limits -- what probed does at and past its limits.

Bulk traffic is CHECK of unique valid addresses and VERIFY of syntactically
bad ones: their answers never depend on DNS or SMTP, so these tests stay
valid once the network engine answers VERIFY.

What a client relies on: a request line of up to 1024 octets (terminator
included, LF or CRLF) is served; a longer one is answered with exactly one
`error line_too_long` and the connection goes on; hundreds of clients at once
are all served; past limits.max_clients a connection gets `error busy` and is
closed, and room comes back when a client leaves; a client that pipelines
without reading neither starves others nor grows probed's memory, and still
gets every answer in order once it reads; a client that vanishes mid-response
harms nobody.  limits.client_inflight caps one client's unanswered requests
by not reading it (never by refusing), while others are served; a client
idle past limits.client_idle_timeout is closed (with `error timeout` when it
left half a request line), but one waiting on its own slow VERIFY is not.
"""

import resource
import time

import harness
from harness import T, error_reason, is_result, now, parse_stats, ping_ok, rss_kb

suite = harness.Suite("limits")

LINE_MAX = 1024


def long_verify(total, eol):
    """A VERIFY whose line, eol included, is `total` octets; its address is
    syntactically invalid (local part far over 64) so it echoes back whole."""
    pad = total - len(eol) - len("VERIFY ") - len("@example.org")
    addr = "a" * pad + "@example.org"
    return "VERIFY " + addr, addr


@suite.case
def line_length(c):
    d = c.probed()
    for eol in (b"\n", b"\r\n"):
        name = "LF" if eol == b"\n" else "CRLF"
        line, addr = long_verify(LINE_MAX, eol)
        with d.client() as cl:
            got = cl.exchange(harness._enc(line) + eol + b"PING\n", 2)
            c.check(len(got) == 2 and is_result(got[0], "undeliverable", addr, "syntax")
                    and got[1] == "pong",
                    "a request of exactly 1024 octets with %s is served" % name,
                    "got %r" % ([g[:80] + "..." for g in got],))
        line, addr = long_verify(LINE_MAX + 1, eol)
        with d.client() as cl:
            got = cl.exchange(harness._enc(line) + eol + b"PING\nCHECK alice@example.org\n", 3)
            c.check(len(got) == 3 and error_reason(got[0]) == "line_too_long" and
                    got[1] == "pong" and
                    is_result(got[2], "unknown", "alice@example.org", "not_cached"),
                    "a 1025-octet line with %s answers error line_too_long and the "
                    "next requests are served in order" % name,
                    "got %r" % ([g[:80] for g in got],))
    # a valid request padded to exactly 1024 octets with blanks between verb
    # and argument (one or more SP separate them)
    line = "CHECK" + " " * (LINE_MAX - 1 - len("CHECK") - len("alice@example.org")) \
        + "alice@example.org"
    with d.client() as cl:
        r = cl.request(line)
        c.check(len(line) + 1 == LINE_MAX and
                is_result(r, "unknown", "alice@example.org", "not_cached"),
                "a valid CHECK padded to 1024 octets is answered not_cached", repr(r))
    # CR LF counted: 1023 octets + CRLF is one too many
    with d.client() as cl:
        got = cl.exchange(b"P" * (LINE_MAX - 1) + b"\r\nPING\n", 2)
        c.check(len(got) == 2 and error_reason(got[0]) == "line_too_long" and
                got[1] == "pong", "1023 octets + CRLF (1025) is line_too_long",
                repr(got))


@suite.case
def huge_line(c):
    d = c.probed()
    before = d.stats()
    with d.client() as cl:
        big = b"VERIFY " + b"x" * (100 * 1024) + b"@example.org\n"
        got = cl.exchange(big + b"PING\nPING\n", 3, timeout=10)
        c.check(len(got) == 3 and error_reason(got[0]) == "line_too_long" and
                got[1:] == ["pong", "pong"],
                "a 100 KB line answers exactly one error line_too_long, then "
                "PING, PING are answered", "got %r" % ([g[:80] for g in got],))
        # a long line whose LF comes in a later write
        cl.send(b"y" * 5000)
        cl.send(b"z" * 5000)
        got = cl.exchange(b"zz\nPING\n", 2)
        c.check(len(got) == 2 and error_reason(got[0]) == "line_too_long" and
                got[1] == "pong",
                "a long line sent in pieces gets one line_too_long", repr(got))
    after = d.stats()
    c.eq(after.get("lines_too_long", 0) - before.get("lines_too_long", 0), 2,
         "STATS lines_too_long counts both long lines")
    c.eq(d.request("PING"), "pong", "still answering")


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return True
    if hard != resource.RLIM_INFINITY and hard < want:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return True


@suite.case(budget=60)
def many_clients(c):
    n = 500
    # probed inherits the raised limit: it needs ~600 descriptors too
    if not raise_nofile(2048):
        raise harness.Skip("RLIMIT_NOFILE hard limit below 2048")
    d = c.probed({"limits": {"max_clients": 600}, "log_level": "info"})
    clients = []
    try:
        for i in range(n):
            clients.append(d.client())
        jobs = []
        for i, cl in enumerate(clients):
            data = ("PING\nCHECK m%d@example.org\nCHECK m%d@@example.org\n"
                    "DOMAIN d%d.example.org\n" % (i, i, i))
            jobs.append((cl, data, 4))
        res = harness.exchange_all(jobs, timeout=30)
        bad = []
        for i, got in enumerate(res):
            ok = (len(got) == 4 and got[0] == "pong" and
                  is_result(got[1], "unknown", "m%d@example.org" % i, "not_cached") and
                  is_result(got[2], "undeliverable", "m%d@@example.org" % i, "syntax")
                  and got[3].startswith("domain d%d.example.org" % i))
            if not ok:
                bad.append("client %d got %r" % (i, got))
        c.check(not bad, "500 concurrent clients, 4 requests each, all answered "
                "with their own answers", "\n".join(bad[:10]))
        st = d.stats()
        c.eq(st.get("clients"), n + 1, "STATS clients= counts 500 + this one")
    finally:
        for cl in clients:
            cl.close()
    st = d.wait_clients(1, timeout=10)
    c.eq(st.get("clients"), 1, "after they all leave STATS clients= is back to 1")


@suite.case
def max_clients(c):
    d = c.probed({"limits": {"max_clients": 5}})
    held = []
    busy = 0
    try:
        for i in range(5):
            cl, b = d.served_client()
            busy += b
            held.append(cl)
        extra = d.client()
        lines, partial = extra.read_to_eof()
        extra.close()
        busy += 1
        c.check(len(lines) == 1 and error_reason(lines[0]) == "busy" and not partial,
                "the 6th connection gets `error busy` and is closed",
                "got %r partial %r" % (lines, partial))
        for i, cl in enumerate(held):
            if cl.request("PING") != "pong":
                c.check(False, "held connection %d still served" % (i + 1))
                break
        else:
            c.check(True, "the 5 held connections are still served")
        held.pop(0).close()
        # probed notices the close asynchronously: retry until served
        try:
            served, b = d.served_client()
            busy += b
        except harness.Failure:
            served = None
        c.check(served is not None, "after one of the 5 closes a new connection is served")
        if served:
            held.append(served)
            st = parse_stats(served.request("STATS"))
            c.check(st is not None and st.get("clients") == 5 and
                    st.get("clients_refused") == busy,
                    "STATS: clients=5 and clients_refused counts the busy ones (%d)" % busy,
                    repr(st))
            extra = d.client()
            lines, partial = extra.read_to_eof()
            extra.close()
            c.check(len(lines) == 1 and error_reason(lines[0]) == "busy",
                    "full again: one more connection gets error busy", repr(lines))
    finally:
        for cl in held:
            cl.close()


@suite.case(budget=90)
def greedy_client(c):
    n = 100000
    d = c.probed({"log_level": "info"})
    reqs = ["CHECK g%d@example.org" % i for i in range(n)]
    data = "".join(r + "\n" for r in reqs).encode()
    with d.client() as warm:
        warm.pipeline(reqs[:1000], timeout=10)
    base = rss_kb(d.pid)
    g = d.client()
    try:
        sent = g.stuff(data, stall=0.5, timeout=20)
        c.check(sent < len(data), "probed stops reading a client that does not "
                "read its answers", "it took all %d octets" % sent)
        worst = 0.0
        fails = 0
        for _ in range(5):
            t0 = now()
            if not ping_ok(d.socket, timeout=1.0):
                fails += 1
            worst = max(worst, now() - t0)
        c.check(fails == 0 and worst <= T(1.0),
                "another client's PING is answered within 1 s meanwhile",
                "%d failed, slowest %.3f s" % (fails, worst))
        # push again: whatever probed took since, it must not hoard it
        sent += g.stuff(data[sent:], stall=0.3, timeout=5)
        grow = rss_kb(d.pid) - base
        c.check(grow < 64 * 1024, "probed's RSS grew by less than 64 MB "
                "(%d kB)" % grow, "baseline %d kB" % base)
        c.check(d.alive(), "probed is alive")
        got = g.exchange(data[sent:], n, timeout=60)
        c.eq(len(got), n, "the greedy client then gets all 100,000 answers")
        wrong = [i for i in range(min(n, len(got)))
                 if not is_result(got[i], "unknown", "g%d@example.org" % i, "not_cached")]
        c.check(not wrong, "all 100,000 answers are complete and in request order",
                "first wrong: #%d %r" % (wrong[0], got[wrong[0]]) if wrong else None)
        grow = rss_kb(d.pid) - base
        c.check(grow < 64 * 1024, "RSS growth still under 64 MB after draining "
                "(%d kB)" % grow)
    finally:
        g.close()
    c.eq(d.request("PING"), "pong", "still answering")


@suite.case(budget=60)
def vanishing_clients(c):
    d = c.probed({"log_level": "info"})
    data = "".join("CHECK v%d@example.org\n" % i for i in range(10000)).encode()
    for rnd in range(3):
        cl = d.client()
        cl.stuff(data, stall=0.3, timeout=10)
        cl.close()
    c.check(d.alive() and ping_ok(d.socket, 2),
            "after 3 clients sent 10,000 requests each and left without reading, "
            "probed answers others")
    # leave in the middle of reading the answers
    cl = d.client()
    cl.stuff(data, stall=0.3, timeout=10)
    part = cl.readlines(50)
    cl.close()
    c.check(len(part) == 50 and
            is_result(part[0], "unknown", "v0@example.org", "not_cached"),
            "a reader that leaves mid-response got what it read", repr(part[:2]))
    # and with the data all written but none read, many at once
    many = [d.client() for _ in range(20)]
    for cl in many:
        cl.stuff(data[:100000], stall=0.2, timeout=5)
    for cl in many:
        cl.close()
    c.check(d.alive() and ping_ok(d.socket, 2),
            "20 clients vanishing at once with queued answers harm nobody")
    st = d.wait_clients(1, timeout=10)
    c.eq(st.get("clients"), 1, "their connections are all closed (STATS clients=1)")
    with d.client() as cl:
        reqs = ["CHECK w%d@example.org" % i for i in range(1000)]
        got = cl.pipeline(reqs, timeout=10)
        c.check(len(got) == 1000 and all(
            is_result(got[i], "unknown", "w%d@example.org" % i, "not_cached")
            for i in range(1000)), "a new client's 1000 pipelined requests are "
            "all answered in order")


def stats_read(d, base, polls):
    """(STATS, requests read since base other than our polls): each STATS
    counts itself when it is read; polls[0] counts the polls (and PINGs)."""
    st = d.stats()
    polls[0] += 1
    return st, st["requests"] - base["requests"] - polls[0]


@suite.case(budget=60)
def client_inflight(c):
    # A VERIFY of a domain whose DNS never answers takes 3 x dns.timeout
    # (udns retries): long enough to watch what probed holds meanwhile.
    n, cap = 12, 4
    d = c.probed({"limits": {"client_inflight": cap}, "dns": {"timeout": 1.0},
                  "log_level": "info"})
    base = d.stats()
    polls = [0]
    reqs = ["VERIFY a@slow%d.example" % i for i in range(n)]
    slow = d.client()
    t0 = now()
    slow.send("".join(r + "\n" for r in reqs))
    # probed takes the first four at once
    deadline = now() + T(2.0)
    while True:
        st, read = stats_read(d, base, polls)
        if st.get("inflight", 0) >= cap or now() >= deadline:
            break
        time.sleep(0.02)
    most_inflight, most_read, slowest_ping = 0, 0, 0.0
    # watch for 1.5 s, well inside the 3 s the first four take
    while now() - t0 < 2.0:
        st, read = stats_read(d, base, polls)
        most_inflight = max(most_inflight, st.get("inflight", 0))
        most_read = max(most_read, read)
        t1 = now()
        ok = ping_ok(d.socket, timeout=1.0)
        polls[0] += 1       # that PING is a request read too
        slowest_ping = max(slowest_ping, now() - t1 if ok else 99.0)
        time.sleep(0.05)
    c.eq((most_read, most_inflight), (cap, cap),
         "client_inflight = 4: of 12 pipelined VERIFYs probed reads and works on "
         "exactly 4 (STATS requests, inflight) while they are pending")
    c.check(slowest_ping < T(0.5), "meanwhile another client's PING is answered "
            "(slowest %.3f s)" % slowest_ping)
    got = slow.readlines(n, timeout=30)
    took = now() - t0
    c.check(len(got) == n and all(
        is_result(got[i], "unknown", "a@slow%d.example" % i, "dns_error")
        for i in range(n)),
        "all 12 are answered, in order, none refused or dropped",
        "\n".join(got))
    c.check(took >= 3 * 2.9, "answered in waves of 4 (%.1f s for 3 waves of 3 s)"
            % took)
    slow.close()
    st = d.stats()
    c.eq(st.get("errors"), 0, "no request was answered with an error")


@suite.case(budget=40)
def client_idle_timeout(c):
    d = c.probed({"limits": {"client_idle_timeout": 1}, "dns": {"timeout": 1.0}})
    t0 = now()
    half = d.client()
    half.send(b"VERIFY a@exa")
    silent = d.client()
    busy = d.client()
    busy.send(b"VERIFY b@slow.example\n")
    lines, partial = half.read_to_eof(timeout=5)
    took = now() - t0
    c.check(len(lines) == 1 and error_reason(lines[0]) == "timeout" and not partial,
            "half a request line for 1 s: exactly one `error timeout`, then EOF",
            "got %r partial %r" % (lines, partial))
    c.check(0.9 <= took < 1.0 + T(1.5), "closed after about 1 s (%.2f s)" % took)
    lines, partial = silent.read_to_eof(timeout=5)
    c.check(not lines and not partial, "a client that sent nothing is closed "
            "without a line (an unasked line would read as the next answer)",
            "got %r partial %r" % (lines, partial))
    # activity keeps a client: a PING every 0.4 s for 2 s
    with d.client() as chatty:
        answers = []
        while now() - t0 < 2.8:
            answers.append(chatty.request("PING"))
            time.sleep(0.4)
        c.check(answers and all(a == "pong" for a in answers),
                "a client sending a request every 0.4 s is kept past 1 s (%d PINGs)"
                % len(answers), repr(answers))
    r = busy.readline(timeout=10)
    c.check(is_result(r, "unknown", "b@slow.example", "dns_error") and now() - t0 > 2.5,
            "a client waiting 3 s on its own VERIFY is not idle: it gets the answer",
            repr(r))
    lines, partial = busy.read_to_eof(timeout=5)
    c.check(not lines and not partial, "then, idle, it is closed")
    st = d.stats()
    c.eq(st.get("idle_timeouts"), 3, "STATS idle_timeouts counts the three")
    for cl in (half, silent, busy):
        cl.close()


if __name__ == "__main__":
    suite.main()
