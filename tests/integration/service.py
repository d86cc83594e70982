"""service -- probed as a system service, the way systemd and an admin see it.

What they rely on:

- supervisor notifications: with NOTIFY_SOCKET set, READY=1 once the
  socket answers, RELOADING=1 (with MONOTONIC_USEC=) then READY=1 around a
  SIGHUP, STOPPING=1 on SIGTERM; with WATCHDOG_USEC set too, WATCHDOG=1
  every half interval (none when WATCHDOG_PID names another process, none
  when no watchdog was asked for);
- socket activation (systemd-socket-activate): the passed socket is served,
  the configured path is not bound, the file is not unlinked at exit;
  notifications work under it as under systemd;
- privileges: started as root with `user`, probed runs as that user and
  group (/proc/PID/status), the socket keeps its mode and belongs to the
  daemon's account, a missing state_dir is created for it, and the socket
  is still removed at exit; started as root without a usable `user` it
  exits 78 with a message saying so and leaves no socket; started as an
  ordinary user, `user` changes nothing;
- the units: systemd/probed.service.in rendered as make renders it, and
  systemd/probed.socket, pass `systemd-analyze verify`, the service rates
  2.0 or better in `systemd-analyze security --offline=true`, and the
  units, the sysusers file and probed's defaults agree on the socket path,
  mode, group and account (systemd-sysusers creates that account).

The privilege cases need root (the suite runs as root in CI) and skip
otherwise; the unit checks skip where systemd-analyze is missing.
"""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import time

import harness
from harness import T, now, ping_ok

suite = harness.Suite("service")
suite.require_binary("PROBED")

TOP = os.environ.get("TOP_SRCDIR") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))

ROOT = os.geteuid() == 0


# ---------------------------------------------------------------- notify

class Notify:
    """The supervisor's end of NOTIFY_SOCKET: an AF_UNIX datagram socket in
    the case directory.  Keeps every datagram with its arrival time."""

    def __init__(self, c):
        self.path = c.path("notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        if ROOT:
            # probed sends from its unprivileged account
            os.chmod(self.path, 0o666)
        self.got = []          # (time, [assignments]) per datagram

    def close(self):
        self.sock.close()

    def _recv(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            msg = self.sock.recv(65536)
        except socket.timeout:
            return None
        dg = [a for a in msg.decode("utf-8", "replace").split("\n") if a]
        self.got.append((now(), dg))
        return dg

    def wait_for(self, d, want, timeout=10.0):
        """Read datagrams until the assignments in `want` were all seen, in
        that order (counting from now).  Returns (assignments seen, found)."""
        seen, idx = [], 0
        deadline = now() + T(timeout)
        while idx < len(want):
            left = deadline - now()
            if left <= 0:
                break
            dg = self._recv(min(left, 0.2))
            if dg is None:
                if not d.alive():
                    break
                continue
            for a in dg:
                seen.append(a)
                if idx < len(want) and a == want[idx]:
                    idx += 1
        return seen, idx == len(want)

    def collect(self, seconds):
        """Every datagram for `seconds` (unscaled: a rate is measured)."""
        out = []
        deadline = now() + seconds
        while True:
            left = deadline - now()
            if left <= 0:
                return out
            dg = self._recv(left)
            if dg is not None:
                out.append(self.got[-1])


def watchdog_times(datagrams):
    return [t for t, dg in datagrams if "WATCHDOG=1" in dg]


@suite.case
def notify(c):
    ns = Notify(c)
    try:
        d = c.probed(env={"NOTIFY_SOCKET": ns.path}, ready=False)
        seen, ok = ns.wait_for(d, ["READY=1"])
        c.check(ok, "READY=1 is sent at start", repr(seen))
        if ok:
            # Type=notify means: once READY=1 is out, clients may connect
            c.check(ping_ok(d.socket, 2), "the socket answers PING as soon as READY=1 is out")
        c.check(any(a.startswith("STATUS=") for a in seen), "a STATUS= line is sent",
                repr(seen))
        d.signal(signal.SIGHUP)
        seen, ok = ns.wait_for(d, ["RELOADING=1", "READY=1"])
        c.check(ok, "SIGHUP sends RELOADING=1 then READY=1", repr(seen))
        reload_dg = [dg for _, dg in ns.got if "RELOADING=1" in dg]
        c.check(reload_dg and any(re.fullmatch(r"MONOTONIC_USEC=[1-9][0-9]*", a)
                                  for a in reload_dg[-1]),
                "RELOADING=1 comes with MONOTONIC_USEC= (systemd's notify-reload "
                "protocol)", repr(reload_dg))
        # a refused reload: still READY=1 (probed serves on with what it
        # has), and `systemctl status` says why
        c.write_config("probed.conf", "smtp = { port = 70000; };\n")
        d.signal(signal.SIGHUP)
        seen, ok = ns.wait_for(d, ["RELOADING=1", "READY=1"])
        c.check(ok, "a refused reload sends RELOADING=1 then READY=1", repr(seen))
        status = [a for a in seen if a.startswith("STATUS=")]
        c.check(status and "reload refused" in status[-1] and "smtp.port" in status[-1],
                "and its STATUS= line says the reload was refused, and why",
                repr(status))
        c.eq(d.request("PING"), "pong", "probed serves on after the refused reload")
        d.signal(signal.SIGTERM)
        seen, ok = ns.wait_for(d, ["STOPPING=1"])
        c.check(ok, "SIGTERM sends STOPPING=1", repr(seen))
        c.eq(d.wait(), 0, "probed exits 0")
        c.check(not any("WATCHDOG=1" in dg for _, dg in ns.got),
                "no WATCHDOG=1 when no watchdog was asked for (no WATCHDOG_USEC)")
    finally:
        ns.close()


WATCHDOG_USEC = 400000      # pings every 0.2 s


@suite.case
def watchdog(c):
    ns = Notify(c)
    try:
        d = c.probed(env={"NOTIFY_SOCKET": ns.path,
                          "WATCHDOG_USEC": str(WATCHDOG_USEC)}, ready=False)
        seen, ok = ns.wait_for(d, ["READY=1"])
        c.require(ok, "READY=1 is sent with a watchdog asked for", repr(seen))
        window = 2.0
        times = watchdog_times(ns.collect(window))
        want = int(window / (WATCHDOG_USEC / 2e6)) // 2
        c.check(len(times) >= want,
                "WATCHDOG=1 arrives periodically: %d in %.0f s, at least %d "
                "expected at one per WATCHDOG_USEC/2" % (len(times), window, want))
        gaps = [b - a for a, b in zip(times, times[1:])]
        c.check(gaps and max(gaps) < T(WATCHDOG_USEC / 1e6),
                "no gap between pings reaches the watchdog interval (%.1f s)"
                % (WATCHDOG_USEC / 1e6),
                "gaps: %s" % ", ".join("%.3f" % g for g in gaps))
        c.eq(d.request("PING"), "pong", "probed serves while pinging")
        d.signal(signal.SIGTERM)
        seen, ok = ns.wait_for(d, ["STOPPING=1"])
        c.check(ok, "SIGTERM sends STOPPING=1 with a watchdog too", repr(seen))
        c.eq(d.wait(), 0, "probed exits 0")
    finally:
        ns.close()


@suite.case
def watchdog_pid(c):
    """WATCHDOG_PID says whose watchdog it is (sd_watchdog_enabled(3))."""
    ns = Notify(c)
    try:
        # a pid that is not probed's: the variables were meant for another
        # process, and probed must not ping on its behalf
        d = c.probed(name="other", env={"NOTIFY_SOCKET": ns.path,
                                        "WATCHDOG_USEC": str(WATCHDOG_USEC),
                                        "WATCHDOG_PID": "1"}, ready=False)
        seen, ok = ns.wait_for(d, ["READY=1"])
        c.require(ok, "READY=1 is sent", repr(seen))
        times = watchdog_times(ns.collect(1.0))
        c.eq(len(times), 0, "no WATCHDOG=1 when WATCHDOG_PID names another process")
        d.stop()

        # its own pid, as systemd sets it: the shell execs probed and keeps
        # its pid
        ns.got = []
        prefix = ["/bin/sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"',
                  "sh"]
        d = c.probed(name="own", env={"NOTIFY_SOCKET": ns.path,
                                      "WATCHDOG_USEC": str(WATCHDOG_USEC)},
                     ready=False, prefix=prefix)
        seen, ok = ns.wait_for(d, ["READY=1"])
        c.require(ok, "READY=1 is sent", repr(seen))
        times = watchdog_times(ns.collect(1.0))
        c.check(len(times) >= 2, "WATCHDOG=1 arrives when WATCHDOG_PID is probed's "
                "own (%d in 1 s)" % len(times))
    finally:
        ns.close()


# ---------------------------------------------------------------- socket activation

def activate_tool():
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        raise harness.Skip("systemd-socket-activate is not installed")
    return tool


@suite.case
def socket_activation(c):
    tool = activate_tool()
    act = c.path("act.sock")
    # the configured path differs: a passed socket is used instead of binding
    conf = c.write_config("probed.conf", c.settings())
    d = c.probed(conf=conf, socket_path=act, prefix=[tool, "-l", act])
    configured = c.path("probed.sock")
    c.eq(d.request("PING"), "pong", "probed answers PING on the passed socket")
    c.eq(d.request("CHECK alice@example.org"),
         "unknown alice@example.org reason=not_cached", "and CHECK")
    c.check(not os.path.exists(configured),
            "it does not bind the configured path when a socket is passed")
    c.check(d.wait_log(r"socket activation") is not None,
            "the start-up line says the socket came from socket activation")
    if ROOT:
        c.eq(proc_ids(d.pid)["Uid"], [uid_of(harness.RUN_AS)] * 4,
             "started as root under socket activation, it still drops to %s"
             % harness.RUN_AS)
    d.signal(signal.SIGTERM)
    c.eq(d.wait(), 0, "probed exits 0 on SIGTERM")
    c.check(os.path.exists(act), "the passed socket's file is not unlinked at exit")


@suite.case
def socket_activation_notify(c):
    """What systemd does with probed.socket + probed.service: the socket and
    the notifications together."""
    tool = activate_tool()
    ns = Notify(c)
    try:
        act = c.path("act.sock")
        conf = c.write_config("probed.conf", c.settings())
        # systemd-socket-activate passes on only the variables it is given
        d = c.probed(conf=conf, socket_path=act, ready=False,
                     prefix=[tool, "-l", act, "-E", "NOTIFY_SOCKET=" + ns.path])
        # it starts probed on the first connection, which then waits in the
        # backlog: exactly what a client sees while probed (re)starts
        deadline = now() + T(10)
        while not os.path.exists(act) and d.alive() and now() < deadline:
            time.sleep(0.02)
        with harness.Client(act) as cl:
            c.eq(cl.request("PING", timeout=10), "pong",
                 "the first connection starts probed and is answered")
        seen, ok = ns.wait_for(d, ["READY=1"])
        c.check(ok, "READY=1 is sent under socket activation", repr(seen))
        d.signal(signal.SIGTERM)
        seen, ok = ns.wait_for(d, ["STOPPING=1"])
        c.check(ok, "STOPPING=1 is sent under socket activation", repr(seen))
        c.eq(d.wait(), 0, "probed exits 0")
        c.check(stat.S_ISSOCK(os.lstat(act).st_mode),
                "the passed socket is left in place for the next start")
    finally:
        ns.close()


# ---------------------------------------------------------------- privileges

def proc_ids(pid):
    """{"Uid": [real, effective, saved, fs], "Gid": [...], "Groups": [...]}"""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out


def uid_of(name):
    return pwd.getpwnam(name).pw_uid


def need_root():
    if not ROOT:
        raise harness.Skip("needs root (probed drops privileges only when "
                           "started as root)")


def other_group(avoid):
    """A group (name, gid) other than `avoid` and root, for the group keys."""
    for name in ("daemon", "mail", "users", "nogroup"):
        try:
            g = grp.getgrnam(name)
        except KeyError:
            continue
        if g.gr_gid not in (0, avoid):
            return name, g.gr_gid
    raise harness.Skip("no second unprivileged group on this system")


@suite.case
def privilege_drop(c):
    need_root()
    pw = pwd.getpwnam(harness.RUN_AS)
    state = c.path("state")
    d = c.probed({"state_dir": state})
    ids = proc_ids(d.pid)
    c.eq(ids["Uid"], [pw.pw_uid] * 4,
         "started as root with user = %r: real, effective, saved and fs UID are %s's"
         % (harness.RUN_AS, harness.RUN_AS))
    c.eq(ids["Gid"], [pw.pw_gid] * 4, "and every GID is its primary group")
    want_groups = sorted({pw.pw_gid} | {g.gr_gid for g in grp.getgrall()
                                         if pw.pw_name in g.gr_mem})
    c.eq(sorted(ids["Groups"]), want_groups,
         "supplementary groups are the user's own (initgroups), root's are gone")
    st = os.stat(d.socket)
    c.eq(oct(stat.S_IMODE(st.st_mode)), oct(0o660), "the socket keeps socket_mode 0660")
    c.eq((st.st_uid, st.st_gid), (pw.pw_uid, pw.pw_gid),
         "the socket belongs to the daemon's user and group")
    c.eq(d.request("PING"), "pong", "the socket is served after the drop")
    c.eq(d.request("CHECK alice@example.org"),
         "unknown alice@example.org reason=not_cached", "and requests are answered")
    try:
        sst = os.stat(state)
        c.check(stat.S_ISDIR(sst.st_mode) and stat.S_IMODE(sst.st_mode) == 0o750 and
                (sst.st_uid, sst.st_gid) == (pw.pw_uid, pw.pw_gid),
                "a missing state_dir is created, mode 0750, owned by the user",
                "mode %o owner %d:%d" % (sst.st_mode, sst.st_uid, sst.st_gid))
    except FileNotFoundError:
        c.check(False, "a missing state_dir is created")
    c.check(d.wait_log(r"running as user=%s" % re.escape(pw.pw_name)) is not None,
            "the log says which user probed runs as")
    # a reload reads the file again as the unprivileged user
    c.write_config("probed.conf", c.settings({"state_dir": state, "log_level": "info"}))
    d.signal(signal.SIGHUP)
    deadline = now() + T(5)
    while d.stats().get("reloads") != 1 and now() < deadline:
        time.sleep(0.02)
    c.eq(d.stats().get("reloads"), 1, "SIGHUP reloads after the drop")
    d.signal(signal.SIGTERM)
    c.eq(d.wait(), 0, "probed exits 0 on SIGTERM")
    c.check(not os.path.exists(d.socket),
            "the unprivileged daemon removes its socket at exit")


@suite.case
def privilege_drop_groups(c):
    need_root()
    pw = pwd.getpwnam(harness.RUN_AS)
    gname, gid = other_group(pw.pw_gid)
    d = c.probed({"group": gname})
    ids = proc_ids(d.pid)
    c.eq(ids["Uid"], [pw.pw_uid] * 4, "user = %r: UID dropped" % harness.RUN_AS)
    c.eq(ids["Gid"], [gid] * 4, "group = %r: every GID is that group's" % gname)
    c.eq(os.stat(d.socket).st_gid, gid,
         "socket_group \"\": the socket is in the group probed runs as")
    d.stop()

    sgname, sgid = other_group(gid) if gid != pw.pw_gid else other_group(pw.pw_gid)
    d = c.probed({"socket_group": sgname}, name="sg")
    st = os.stat(d.socket)
    c.eq((st.st_uid, st.st_gid), (pw.pw_uid, sgid),
         "socket_group = %r: the socket is the user's, in that group" % sgname)
    c.eq(d.request("PING"), "pong", "and it is served")


def refused(c, name, overrides, what, words):
    d = c.probed(overrides, name=name, ready=False)
    rc = d.wait()
    c.eq(rc, 78, "%s: probed exits 78" % what)
    log = d.log()
    c.check(all(w in log for w in words),
            "%s: the message says %s" % (what, " / ".join(repr(w) for w in words)),
            log)
    c.check(not os.path.exists(d.socket), "%s: no socket is left behind" % what)


@suite.case
def refuses_root(c):
    need_root()
    refused(c, "nouser", {"user": None}, "started as root without `user`",
            ["will not run as root", "set `user` in " + c.path("nouser.conf")])
    refused(c, "empty", {"user": ""}, "user = \"\"", ["will not run as root"])
    refused(c, "root", {"user": "root"}, "user = \"root\"",
            ["will not run as root", "UID 0"])
    refused(c, "rootgrp", {"group": "root"}, "group = \"root\"",
            ["will not run in group root"])
    refused(c, "nosuch", {"user": "no-such-user-probed"}, "a user that does not exist",
            ["no-such-user-probed", "no such user"])
    refused(c, "nogrp", {"group": "no-such-group-probed"},
            "a group that does not exist", ["no-such-group-probed", "no such group"])


@suite.case
def not_root_ignores_user(c):
    """Started unprivileged (as systemd's User= does), `user` drops nothing."""
    need_root()    # to become someone else first
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise harness.Skip("setpriv (util-linux) is not installed")
    pw = pwd.getpwnam(harness.RUN_AS)
    prefix = [setpriv, "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
              "--init-groups", "--"]
    d = c.probed({"user": harness.RUN_AS}, name="same", prefix=prefix)
    c.eq(proc_ids(d.pid)["Uid"], [pw.pw_uid] * 4,
         "started as %s with user = %r: runs on as %s" %
         (harness.RUN_AS, harness.RUN_AS, harness.RUN_AS))
    c.eq(d.request("PING"), "pong", "and serves")
    d.stop()
    d = c.probed({"user": "root"}, name="other", prefix=prefix)
    c.eq(d.request("PING"), "pong",
         "started unprivileged, user = \"root\" is ignored: it serves")
    c.eq(proc_ids(d.pid)["Uid"], [pw.pw_uid] * 4, "still as %s" % harness.RUN_AS)
    c.check(d.wait_log(r"user=root ignored") is not None,
            "and logs that `user` was ignored")


# ---------------------------------------------------------------- units

def render_units(c):
    """systemd/probed.service.in rendered the way Makefile.am does, with
    ExecStart naming the probed under test (verify checks that it exists),
    and systemd/probed.socket beside it.  Returns their paths."""
    with open(os.path.join(TOP, "systemd", "probed.service.in")) as f:
        text = f.read()
    probed = harness.binary("PROBED")
    text = text.replace("@sbindir@", os.path.dirname(probed))
    text = text.replace("@sysconfdir@", "/etc")
    left = re.findall(r"@[a-z_]+@", text)
    c.check(not left, "make's substitutions leave no @...@ in probed.service",
            repr(left))
    units = c.path("units")
    os.mkdir(units)
    service = os.path.join(units, "probed.service")
    with open(service, "w") as f:
        f.write(text)
    sock = os.path.join(units, "probed.socket")
    shutil.copy(os.path.join(TOP, "systemd", "probed.socket"), sock)
    return service, sock


def unit_settings(path):
    """{section.key: [values]} of a unit file (no continuation lines)."""
    out, section = {}, ""
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.setdefault("%s.%s" % (section, k.strip()), []).append(v.strip())
    return out


def probed_exe_name():
    """The executable ExecStart names must be called probed for the
    rendered unit to be what gets installed."""
    return os.path.basename(harness.binary("PROBED"))


@suite.case
def units(c):
    service, sock = render_units(c)
    s = unit_settings(service)
    k = unit_settings(sock)

    # what the units must say, whatever systemd-analyze thinks of them
    c.eq(s.get("Service.Type"), ["notify"], "probed.service is Type=notify")
    c.check(s.get("Service.WatchdogSec", [""])[0] not in ("", "0"),
            "probed.service sets WatchdogSec", repr(s.get("Service.WatchdogSec")))
    c.check(any("kill -HUP $MAINPID" in v for v in s.get("Service.ExecReload", [])),
            "ExecReload sends SIGHUP", repr(s.get("Service.ExecReload")))
    c.eq((s.get("Service.User"), s.get("Service.Group")), (["probed"], ["probed"]),
         "probed.service runs as user and group probed")
    c.eq((s.get("Service.RuntimeDirectory"), s.get("Service.StateDirectory")),
         (["probed"], ["probed"]), "RuntimeDirectory=probed, StateDirectory=probed")
    c.eq(s.get("Service.RestartPreventExitStatus"), ["78"],
         "a configuration error (78) is not restarted")
    for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                      ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                      ("PrivateDevices", "yes"), ("ProtectKernelTunables", "yes"),
                      ("ProtectKernelModules", "yes"), ("ProtectKernelLogs", "yes"),
                      ("ProtectControlGroups", "yes"),
                      ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
                      ("CapabilityBoundingSet", ""), ("MemoryDenyWriteExecute", "yes"),
                      ("LockPersonality", "yes"), ("RestrictNamespaces", "yes")):
        c.eq(s.get("Service." + key, [None])[0], want,
             "probed.service: %s=%s" % (key, want))
    c.check("@system-service" in s.get("Service.SystemCallFilter", []),
            "probed.service: SystemCallFilter=@system-service",
            repr(s.get("Service.SystemCallFilter")))
    c.check(s.get("Service.ExecStart", [""])[0].split()[0].endswith(
            "/" + probed_exe_name()), "ExecStart runs probed")

    # probed.socket: where probectl and probed's defaults look, for Postfix
    c.eq(k.get("Socket.ListenStream"), ["/run/probed/probed.sock"],
         "probed.socket listens on probed's default socket path")
    c.eq((k.get("Socket.SocketMode"), k.get("Socket.SocketGroup")),
         (["0660"], ["probed"]), "probed.socket: mode 0660, group probed")
    with open(os.path.join(TOP, "include", "codec.h")) as f:
        m = re.search(r'#\s*define\s+CTL_DEFAULT_SOCKET\s+"([^"]+)"', f.read())
    c.eq(k.get("Socket.ListenStream"), [m.group(1) if m else None],
         "probed.socket listens where probectl and probed look by default "
         "(CTL_DEFAULT_SOCKET)")
    c.check(m is not None and m.group(1).startswith("/run/probed/"),
            "the default socket is in /run/probed, the service's RuntimeDirectory")

    # the account the units name is the one sysusers.d creates
    with open(os.path.join(TOP, "systemd", "probed.sysusers")) as f:
        rows = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    c.check(any(r[:2] == ["u", "probed"] for r in rows),
            "probed.sysusers creates the user probed (and its group)", repr(rows))
    tool = shutil.which("systemd-sysusers")
    if tool is None:
        c.skip("systemd-sysusers creates the account", "systemd-sysusers is missing")
    else:
        root = c.path("root")
        os.makedirs(os.path.join(root, "etc"))
        rc, out, err = c.run([tool, "--root=" + root,
                              os.path.join(TOP, "systemd", "probed.sysusers")])
        passwd = open(os.path.join(root, "etc", "passwd")).read() if rc == 0 else ""
        group = open(os.path.join(root, "etc", "group")).read() if rc == 0 else ""
        m = re.search(r"^probed:x:(\d+):(\d+):[^:]*:[^:]*:(.*)$", passwd, re.M)
        g = re.search(r"^probed:x:(\d+):", group, re.M)
        c.check(rc == 0 and m and g and m.group(2) == g.group(1) and
                "nologin" in m.group(3),
                "systemd-sysusers makes a system user probed whose primary group "
                "is probed, with no login shell",
                "rc %d\n%s%s\n%s\n%s" % (rc, out, err, passwd, group))

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        c.skip("systemd-analyze verify / security", "systemd-analyze is not installed")
        return
    rc, out, err = c.run([analyze, "verify", "--man=no", service, sock], timeout=60)
    c.check(rc == 0 and not (out + err).strip(),
            "systemd-analyze verify probed.service probed.socket: clean",
            "exit %d\n%s%s" % (rc, out, err))
    rc, out, err = c.run([analyze, "security", "--offline=true", "--no-pager",
                          service], timeout=60)
    m = re.search(r"Overall exposure level for probed\.service:\s*([0-9.]+)", out + err)
    score = float(m.group(1)) if m else None
    c.note("systemd-analyze security --offline=true probed.service: %s" %
           (score if score is not None else "no score"))
    c.check(score is not None and score <= 2.0,
            "systemd-analyze security rates probed.service 2.0 or better (%s)"
            % score, "exit %d\n%s%s" % (rc, out[-3000:], err))


if __name__ == "__main__":
    suite.main()
