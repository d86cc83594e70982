"""lifecycle -- probed's life as an admin and systemd see it.

What they rely on: `probed -t` says whether a file is good and, if not,
names the file, the line and the key (exit 78, as when starting with it); a
stale socket left by a killed instance is replaced, a live one is not
stolen; SIGHUP reloads a good file and refuses a broken one while serving
on; SIGTERM answers what was read (a probe still running answers
`pending`), closes, removes the socket and exits 0;
the service side (sd_notify, the watchdog, socket activation, privileges,
the units) is tests/integration/service.py.
"""

import os
import re
import signal
import socket
import stat
import time

import harness
from harness import T, now, ping_ok, is_result

suite = harness.Suite("lifecycle")


def probed_argv(*args):
    return harness.wrapper() + [harness.binary("PROBED")] + list(args)


BAD_LINE = 6


def base_lines(c):
    """Good lines; a test's bad line goes right after, on line BAD_LINE."""
    text = harness.config_text(c.settings({"log_level": None, "dns": None}))
    while text.count("\n") < BAD_LINE - 2:
        text += "\n"
    return text + "# the next line is line %d\n" % BAD_LINE


# (what, line BAD_LINE of the file, a word the message must hold)
BAD_CONFIGS = [
    ("unknown key", "frobnicate = 1;", "frobnicate"),
    ("unknown key in a group", "limits = { max_klients = 5; };", "max_klients"),
    ("wrong type (string for a number)", 'smtp = { port = "25"; };', "smtp.port"),
    ("wrong type (number for a string)", "helo_name = 42;", "helo_name"),
    ("out of range", "smtp = { port = 70000; };", "smtp.port"),
    ("negative timeout", "dns = { timeout = -1.0; };", "dns.timeout"),
    ("unknown log level", 'log_level = "loud";', "log_level"),
    ("bad socket_mode", 'socket_mode = "0999";', "socket_mode"),
    ("syntax error", "= 5;", None),
    ("missing value", "socket_group = ;", None),
]


@suite.case
def config_check(c):
    good = c.write_config("good.conf", base_lines(c))
    rc, out, err = c.run(probed_argv("-t", "-c", good))
    c.eq(rc, 0, "probed -t on a good file exits 0")
    c.eq(out.strip(), "probed: %s: configuration ok" % good,
         "and prints `probed: FILE: configuration ok`")
    full = base_lines(c) + (
        'helo_name = "probe.example.org";\n'
        'mail_from = "";\n'
        'socket_mode = "0660";\n'
        'dns = { servers = [ "127.0.0.1" ]; timeout = 3.0; };\n'
        'smtp = { port = 25; connect_timeout = 10.0; greeting_timeout = 30.0;\n'
        '  command_timeout = 30.0; starttls = "opportunistic";\n'
        '  allow_networks = [ "127.0.0.0/8" ]; source_address = ""; };\n'
        'limits = { max_inflight = 10000; per_host = 4; max_clients = 1024; };\n'
        'cache = { positive_ttl = 604800; negative_ttl = 86400; tempfail_ttl = 300;\n'
        '  catch_all_ttl = 86400; max_entries = 1000000; };\n'
        'policy = { verify = "recipient"; wait = 8.0; };\n')
    full += 'log_level = "info";\n'
    p = c.write_config("full.conf", full)
    rc, out, err = c.run(probed_argv("-t", "-c", p))
    c.check(rc == 0, "probed -t accepts a file using the documented keys",
            "exit %d, stderr %r" % (rc, err))
    sample = os.path.join(os.environ.get("TOP_SRCDIR", ""), "etc", "probed.conf")
    if os.path.isfile(sample):
        rc, out, err = c.run(probed_argv("-t", "-c", sample))
        c.check(rc == 0, "probed -t accepts the shipped etc/probed.conf",
                "exit %d, stderr %r" % (rc, err))
    else:
        c.skip("shipped etc/probed.conf is valid", "%s not found" % sample)

    for what, line, word in BAD_CONFIGS:
        text = base_lines(c) + line + "\n"
        p = c.write_config("bad.conf", text)
        rc, out, err = c.run(probed_argv("-t", "-c", p))
        msg = err.strip()
        c.eq(rc, 78, "%s: probed -t exits 78" % what)
        ok = ("%s:%d:" % (p, BAD_LINE)) in msg and (word is None or word in msg)
        c.check(ok, "%s: the message names the file, line %d%s" %
                (what, BAD_LINE, " and %r" % word if word else ""), "stderr: %r" % err)
        c.check(len(msg.splitlines()) == 1 and msg.startswith("probed: "),
                "%s: the message is one line starting `probed: `" % what,
                "stderr: %r" % err)
        c.check("configuration ok" not in out,
                "%s: stdout does not say ok" % what, "stdout: %r" % out)

    missing = c.path("no-such.conf")
    rc, out, err = c.run(probed_argv("-t", "-c", missing))
    c.check(rc != 0 and missing in err,
            "a missing file fails with a message naming it",
            "rc %d stderr %r" % (rc, err))


@suite.case
def start_with_bad_config(c):
    text = base_lines(c) + "smtp = { port = 70000; };\n"
    conf = c.write_config("bad.conf", text)
    d = c.probed(conf=conf, ready=False)
    rc = d.wait()
    c.eq(rc, 78, "starting with an out-of-range value exits 78")
    log = d.log()
    c.check(("%s:%d:" % (conf, BAD_LINE)) in log and "smtp.port" in log,
            "the message names the file, line and key", log)
    c.check(not os.path.exists(d.socket), "no socket is left behind")


@suite.case
def command_line(c):
    rc, out, err = c.run(probed_argv("-h"))
    c.check(rc == 0 and "usage" in (out + err).lower(),
            "probed -h prints usage and exits 0", "rc %d out %r err %r" % (rc, out, err))
    rc, out, err = c.run(probed_argv("-V"))
    c.check(rc == 0 and out.strip() != "", "probed -V prints a version and exits 0",
            "rc %d out %r err %r" % (rc, out, err))
    rc, out, err = c.run(probed_argv("-Z"))
    c.check(rc == 64 and "usage" in err.lower(),
            "an unknown option prints usage on stderr and exits 64",
            "rc %d out %r err %r" % (rc, out, err))


@suite.case
def stale_socket(c):
    path = c.path("probed.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    s.close()      # the file stays: what a SIGKILLed instance leaves
    c.require(os.path.exists(path), "a stale socket file exists before start")
    d = c.probed()
    c.eq(d.request("PING"), "pong", "probed replaces a stale socket and serves on it")
    c.check(stat.S_ISSOCK(os.stat(path).st_mode), "the path is a socket")


@suite.case
def second_instance(c):
    a = c.probed(name="a")
    held = a.client()
    try:
        c.eq(held.request("PING"), "pong", "first instance serves")
        b = c.probed(name="b", conf=a.conf, socket_path=a.socket, ready=False)
        rc = b.wait()
        c.eq(rc, 1, "a second probed on the same socket exits 1")
        log = b.log()
        c.check("another instance" in log and a.socket in log,
                "with a message naming the socket", log)
        c.check(os.path.exists(a.socket), "the socket file is left in place")
        c.eq(held.request("PING"), "pong", "the first instance's client is still served")
        c.check(ping_ok(a.socket, 2), "the first instance accepts new connections")
    finally:
        held.close()


@suite.case
def cannot_bind(c):
    blocker = c.path("file")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    bad = os.path.join(blocker, "probed.sock")
    d = c.probed(socket_path=bad, ready=False,
                 conf=c.write_config("probed.conf", c.settings({"socket": bad})))
    rc = d.wait()
    c.eq(rc, 1, "a socket path that cannot be bound: exit 1")
    log = d.log().strip()
    c.check(bad in log, "the message names the socket path", log)


@suite.case
def socket_permissions(c):
    d = c.probed()
    mode = stat.S_IMODE(os.stat(d.socket).st_mode)
    c.eq(oct(mode), oct(0o660), "the socket's mode defaults to 0660")
    d.stop()
    d2 = c.probed({"socket_mode": "0600"}, name="p600")
    mode = stat.S_IMODE(os.stat(d2.socket).st_mode)
    c.eq(oct(mode), oct(0o600), "socket_mode = \"0600\" gives mode 0600")
    # a group other than our primary one that we may hand files to
    try:
        import grp
        groups = [g for g in os.getgroups() if g != os.getegid()]
        if os.geteuid() == 0:
            groups = [g.gr_gid for g in grp.getgrall() if g.gr_gid != os.getegid()]
        name = grp.getgrgid(groups[0]).gr_name if groups else None
    except (ImportError, KeyError):
        name = None
    if name is None:
        c.skip("socket_group sets the socket's group", "no second group available")
        return
    d3 = c.probed({"socket_group": name}, name="grp")
    gid = os.stat(d3.socket).st_gid
    c.eq(grp.getgrgid(gid).gr_name, name, "socket_group = %r sets the socket's group" % name)


def wait_stats(d, pred, timeout=5.0):
    deadline = now() + T(timeout)
    while True:
        st = d.stats()
        if pred(st) or now() >= deadline:
            return st


@suite.case
def reload_good(c):
    d = c.probed()
    held = d.client()
    try:
        c.eq(held.request("PING"), "pong", "a client is connected before SIGHUP")
        before = d.stats()
        c.check(before.get("reloads") == 0 and before.get("reload_errors") == 0,
                "STATS starts with reloads=0 reload_errors=0", repr(before))
        c.write_config("probed.conf", c.settings({"log_level": "info"}))
        d.signal(signal.SIGHUP)
        st = wait_stats(d, lambda s: s.get("reloads") == 1)
        c.eq((st.get("reloads"), st.get("reload_errors")), (1, 0),
             "SIGHUP with a changed valid file: reloads=1 reload_errors=0")
        c.eq(held.request("PING"), "pong", "the connected client is still served")
        c.eq(d.request("CHECK alice@example.org"),
             "unknown alice@example.org reason=not_cached", "new requests are served")
        d.signal(signal.SIGHUP)
        st = wait_stats(d, lambda s: s.get("reloads") == 2)
        c.eq(st.get("reloads"), 2, "a second SIGHUP: reloads=2")
    finally:
        held.close()


@suite.case
def reload_applies(c):
    """A reload changes what the daemon does, not just a counter."""
    d = c.probed({"limits": {"max_clients": 2}})
    held = []
    try:
        held.append(d.served_client()[0])
        held.append(d.served_client()[0])
        extra = d.client()
        lines, _ = extra.read_to_eof()
        extra.close()
        c.check(len(lines) == 1 and harness.error_reason(lines[0]) == "busy",
                "with max_clients = 2 a third client gets error busy", repr(lines))
        c.write_config("probed.conf", c.settings({"limits": {"max_clients": 3},
                                                  "log_level": "info"}))
        d.signal(signal.SIGHUP)
        try:
            held.append(d.served_client()[0])
        except harness.Failure:
            held.append(None)
        c.check(held[-1] is not None,
                "after SIGHUP with max_clients = 3 a third client is served")
        for cl in held:
            if cl is not None:
                cl.close()
        held = []
        d.wait_clients(1)
        # log_level went from debug to info: no new debug lines from now on
        mark = len(d.log())
        with d.client() as cl:
            got = cl.pipeline(["VERIFY bob@@example.org", "CHECK x@example.org", "FROB"])
        c.check(len(got) == 3 and got[2].startswith("error unknown_verb"),
                "requests are served after the reload", repr(got))
        d.wait_clients(1)
        new = d.log()[mark:]
        c.check(re.search(r"\bdebug\b", new) is None,
                "after log_level = \"info\" is reloaded nothing is logged at debug",
                new[-2000:])
        c.write_config("probed.conf", c.settings({"limits": {"max_clients": 3}}))
        d.signal(signal.SIGHUP)
        st = wait_stats(d, lambda s: s.get("reloads") == 2)
        c.eq(st.get("reloads"), 2, "reloading log_level = \"debug\" again")
        mark = len(d.log())
        with d.client() as cl:
            cl.pipeline(["VERIFY bob@@example.org", "FROB"])
        d.wait_clients(1)
        deadline = now() + T(2)
        while re.search(r"\bdebug\b", d.log()[mark:]) is None and now() < deadline:
            time.sleep(0.02)
        c.check(re.search(r"\bdebug\b", d.log()[mark:]) is not None,
                "and debug lines are logged again (the level really changes)")
    finally:
        for cl in held:
            if cl is not None:
                cl.close()


@suite.case(budget=60)
def reload_under_load(c):
    """SIGHUPs while a client pipelines: every answer still arrives in order."""
    d = c.probed({"log_level": "info"})
    n, blocks = 20000, 5
    per = n // blocks
    got = []
    with d.client() as cl:
        for k in range(blocks):
            data = "".join("CHECK r%d@example.org\n" % i
                           for i in range(k * per, (k + 1) * per)).encode()
            # fill probed up to its backpressure limit, then reload under it
            sent = cl.stuff(data, stall=0.1, timeout=5)
            d.signal(signal.SIGHUP)
            got += cl.exchange(data[sent:], per, timeout=20)
            # signals do not queue: let this reload finish before the next
            wait_stats(d, lambda s: s.get("reloads") == k + 1)
        wrong = [i for i in range(len(got))
                 if not is_result(got[i], "unknown", "r%d@example.org" % i, "not_cached")]
        c.check(len(got) == n and not wrong,
                "5 SIGHUPs during a 20,000-request pipeline: all answered in order",
                "%d answers, first wrong %r" % (len(got), wrong and got[wrong[0]]))
    st = d.stats()
    c.eq((st.get("reloads"), st.get("reload_errors")), (5, 0), "5 reloads counted")


@suite.case
def reload_restart_only_key(c):
    d = c.probed()
    other = c.path("other.sock")
    c.write_config("probed.conf", c.settings({"socket": other, "log_level": "info"}))
    d.signal(signal.SIGHUP)
    st = wait_stats(d, lambda s: s.get("reloads", 0) + s.get("reload_errors", 0) >= 1)
    c.check(st.get("reloads", 0) + st.get("reload_errors", 0) >= 1,
            "SIGHUP with a changed socket path is processed", repr(st))
    c.check(not os.path.exists(other), "probed does not move to the new socket path")
    c.check(ping_ok(d.socket, 2), "it keeps serving on the old one")
    c.check(d.wait_log(r"(?i)restart") is not None,
            "the log says the socket change needs a restart")


@suite.case
def reload_broken(c):
    d = c.probed()
    held = d.client()
    try:
        c.eq(held.request("PING"), "pong", "a client is connected before SIGHUP")
        broken = base_lines(c) + "smtp = { port = 70000; };\n"
        c.write_config("probed.conf", broken)
        d.signal(signal.SIGHUP)
        st = wait_stats(d, lambda s: s.get("reload_errors") == 1)
        c.eq((st.get("reloads"), st.get("reload_errors")), (0, 1),
             "SIGHUP with a broken file: reloads=0 reload_errors=1")
        m = d.wait_log(r"reload refused: %s:%d:" % (re.escape(d.conf), BAD_LINE))
        c.check(m is not None, "the log says `reload refused: FILE:LINE: ...`")
        c.eq(held.request("PING"), "pong", "the connected client is still served")
        c.check(ping_ok(d.socket, 2), "new connections are still served")
        c.write_config("probed.conf", c.settings({"log_level": "info"}))
        d.signal(signal.SIGHUP)
        st = wait_stats(d, lambda s: s.get("reloads") == 1)
        c.eq((st.get("reloads"), st.get("reload_errors")), (1, 1),
             "after the file is fixed, SIGHUP reloads it (reloads=1)")
    finally:
        held.close()


@suite.case
def sigterm_drains(c):
    d = c.probed({"log_level": "info"})
    idle = d.client()
    busy = d.client()
    try:
        c.eq(idle.request("PING"), "pong", "an idle client is connected")
        n = 20000
        data = "".join("CHECK t%d@example.org\n" % i for i in range(n)).encode()
        sent = busy.stuff(data, stall=0.3, timeout=10)
        # probed stopped reading (backpressure): what it has read so far it
        # has counted; the readiness PING, the idle PING and this STATS are
        # the only other requests, so at least requests - 3 came from busy
        read = d.stats().get("requests", 0) - 3
        first = busy.readline()
        c.check(is_result(first, "unknown", "t0@example.org", "not_cached"),
                "the busy client's first answer arrives", repr(first))
        d.signal(signal.SIGTERM)
        lines, partial = busy.read_to_eof(timeout=10)
        lines = [first] + lines
        wrong = [i for i, x in enumerate(lines)
                 if not is_result(x, "unknown", "t%d@example.org" % i, "not_cached")]
        c.check(not wrong and partial == b"",
                "after SIGTERM the busy client gets whole answers, in order, then EOF",
                "%d answers; first wrong %r; partial %r" %
                (len(lines), wrong and lines[wrong[0]], partial))
        c.check(len(lines) >= read, "every request probed had read is answered "
                "before EOF (%d read, %d answered)" % (read, len(lines)))
        c.check(idle.expect_eof(), "the idle client gets EOF")
        rc = d.wait()
        c.eq(rc, 0, "probed exits 0 on SIGTERM")
        c.check(not os.path.exists(d.socket), "the socket file is removed")
    finally:
        idle.close()
        busy.close()


@suite.case
def sigterm_with_probes_running(c):
    """Probes whose DNS never answers (the harness's DNS server is silent)
    are running at SIGTERM: each VERIFY still gets its one answer,
    `pending`, before the connection closes and probed exits 0."""
    d = c.probed({"log_level": "info"})
    cl = d.client()
    try:
        cl.send(b"VERIFY a1@example.org\nVERIFY a2@example.org fresh\nPING\n")
        st = wait_stats(d, lambda s: s.get("inflight") == 2)
        c.check(st.get("inflight") == 2, "two probes are in flight", repr(st))
        t0 = now()
        d.signal(signal.SIGTERM)
        lines, partial = cl.read_to_eof(timeout=10)
        took = now() - t0
        ok = (len(lines) == 3 and partial == b"" and lines[2] == "pong" and
              all(is_result(lines[i], "unknown", "a%d@example.org" % (i + 1),
                            "pending") and 'text="probed is stopping"' in lines[i]
                  for i in (0, 1)))
        c.check(ok, "after SIGTERM both VERIFYs answer unknown reason=pending "
                "text=\"probed is stopping\", then PING, in order, then EOF",
                "got %r partial %r" % (lines, partial))
        c.check(took < T(3), "without waiting for the probes (%.1f s)" % took)
        c.eq(d.wait(), 0, "probed exits 0")
    finally:
        cl.close()


@suite.case
def sigint_stops(c):
    d = c.probed()
    d.signal(signal.SIGINT)
    c.eq(d.wait(), 0, "probed exits 0 on SIGINT")
    c.check(not os.path.exists(d.socket), "the socket file is removed")


if __name__ == "__main__":
    suite.main()
