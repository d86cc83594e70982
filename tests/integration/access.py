"""access -- who may talk to probed.

What an admin relies on:

- the socket file gets the mode, owner and group probed.conf names
  (socket_mode, socket_owner, socket_group), applied by probed while it is
  still root, and its own account and group when those are "";
- with socket_allow_users / socket_allow_groups set, a user named there,
  a user with a listed group as primary or supplementary group, root and
  probed's own account are served; anyone else gets exactly one line,
  `error not_authorized text="uid N is not in ..."`, and EOF, without a
  request of theirs being read; each refusal is one warning in the log
  (uid, gid, pid) and one count in STATS refused_unauthorized;
- SIGHUP applies new lists to new connections; a list naming an unknown
  account is refused (at start: exit 78, on reload: the old list stays);
- probectl says in one line why it was kept out -- the file's permissions
  (EACCES) or the allow-list -- and exits 69 for both; probed-policy logs
  the same line once and answers Postfix with policy.on_error.

Needs root: the clients are forked children that take other accounts'
IDs (setgroups/setresgid/setresuid), as Postfix or a user's shell would
be.  The accounts are picked from the system's passwd and group files.
"""

import errno
import grp
import json
import os
import pwd
import re
import select
import signal
import stat
import subprocess
import time

import harness
from harness import T, error_reason, now

suite = harness.Suite("access")
suite.require_binary("PROBED")
suite.require_binary("PROBECTL")
suite.require_binary("PROBED_POLICY")

ROOT = os.geteuid() == 0
REFUSAL = re.compile(r'^error not_authorized text="uid (\d+) is not in '
                     r'socket_allow_users/socket_allow_groups"$')


# ---------------------------------------------------------------- accounts

class Accounts:
    """Two unprivileged users (a, b) and a group (g) that is the primary
    group of neither, of probed's account, nor root's."""

    def __init__(self):
        me = pwd.getpwnam(harness.RUN_AS)
        self.probed_uid = me.pw_uid
        users = [p for p in pwd.getpwall()
                 if 0 < p.pw_uid < 65534 and p.pw_uid != me.pw_uid and p.pw_gid != 0]
        seen, picked = set(), []
        for p in users:
            if p.pw_uid not in seen:
                seen.add(p.pw_uid)
                picked.append(p)
        if len(picked) < 2:
            raise harness.Skip("fewer than two unprivileged accounts in passwd")
        self.a, self.b = picked[0], picked[1]
        busy = {0, self.a.pw_gid, self.b.pw_gid, me.pw_gid}
        groups = [g for g in grp.getgrall() if g.gr_gid not in busy and g.gr_gid < 65534]
        if not groups:
            raise harness.Skip("no spare group in the group file")
        self.g = groups[0]


def need_root():
    if not ROOT:
        raise harness.Skip("needs root to connect as other users")


def open_case_dir(c):
    """Other users must reach the socket inside the case directory."""
    os.chmod(c.dir, 0o711)


# ---------------------------------------------------------------- as another user

def as_user(uid, gid, groups, fn, timeout=10.0):
    """Run fn() in a forked child with these IDs; return what it returns
    (JSON-able).  The child never returns into the harness."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.close(r)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(int(T(timeout)) + 2)
            os.setgroups(groups)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            out = {"ok": fn()}
        except BaseException as e:          # noqa: the child must not escape
            out = {"exception": "%s: %s" % (type(e).__name__, e)}
            status = 1
        try:
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(status)
    os.close(w)
    data = b""
    deadline = now() + T(timeout) + 3
    try:
        while True:
            left = deadline - now()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise harness.Timeout("child as uid %d did not finish" % uid)
            rr, _, _ = select.select([r], [], [], left)
            if rr:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    out = json.loads(data.decode() or "{}")
    if "exception" in out or "ok" not in out:
        raise harness.Failure("child as uid %d: %s" % (uid, out.get("exception", out)))
    return out["ok"]


def converse(path, data="PING\n", want=1):
    """Connect, send, read until `want` lines or EOF.  For a child."""
    try:
        cl = harness.Client(path, 5.0)
    except OSError as e:
        return {"connect": errno.errorcode.get(e.errno, str(e.errno)), "lines": [],
                "eof": True}
    with cl:
        lines = cl.exchange(data, want, 5.0)
        eof = cl.eof
        if len(lines) >= want and not eof:
            # is anything else coming?  (a refused client: EOF at once)
            more, _ = ([], b"")
            if harness._poll1(cl.sock, select.POLLIN, 0.3):
                cl._recv_some()
                more = cl._take(len(cl.lines))
            lines += more
            eof = cl.eof
        return {"connect": "ok", "lines": lines, "eof": eof}


def ask_as(c, d, user, groups=(), gid=None, data="PING\n", want=1):
    return as_user(user.pw_uid, user.pw_gid if gid is None else gid, list(groups),
                   lambda: converse(d.socket, data, want))


def served(res):
    return res["connect"] == "ok" and res["lines"][:1] == ["pong"]


def refused(res, uid):
    m = REFUSAL.match(res["lines"][0]) if res["lines"] else None
    return (res["connect"] == "ok" and len(res["lines"]) == 1 and m is not None
            and int(m.group(1)) == uid and res["eof"])


def run_as(user, argv, groups=(), input=None, timeout=10.0):
    """A program under test as another user: (rc, stdout, stderr)."""
    p = subprocess.Popen(argv, env=harness.base_env(), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         user=user.pw_uid, group=user.pw_gid,
                         extra_groups=list(groups), start_new_session=True)
    harness._started.append(p)
    try:
        out, err = p.communicate(input=input, timeout=T(timeout))
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise harness.Timeout("%s as uid %d did not finish" % (argv[0], user.pw_uid))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


POLICY_REQUEST = ("request=smtpd_access_policy\nprotocol_state=RCPT\n"
                  "client_address=192.0.2.1\nsender=s@example.org\n"
                  "recipient=r%d@example.org\n\n")


def policy_as(c, user, sock, n, name):
    """probed-policy as user on pipes, n requests: (rc, answers, took, log)."""
    log = c.path(name + ".log")
    open(log, "w").close()
    os.chown(log, user.pw_uid, user.pw_gid)
    conf = c.write_config(name + ".conf", {
        "socket": sock, "log_level": "info",
        "policy": {"wait": 1.0, "skip_networks": [],
                   "on_error": "DEFER_IF_PERMIT 4.3.0 probed %v: %r"}})
    os.chmod(conf, 0o644)
    t0 = now()
    rc, out, err = run_as(user, [harness.binary("PROBED_POLICY"), "-c", conf, "-L", log],
                          input=("".join(POLICY_REQUEST % i for i in range(n))).encode())
    took = now() - t0
    with open(log) as f:
        text = f.read()
    return rc, [x for x in out.split("\n\n") if x], took, text + err


def wait_reloads(d, n):
    deadline = now() + T(5)
    while True:
        st = d.stats()
        if st.get("reloads", 0) + st.get("reload_errors", 0) >= n or now() >= deadline:
            return st
        time.sleep(0.02)


# ---------------------------------------------------------------- cases

@suite.case
def socket_file(c):
    need_root()
    acc = Accounts()
    me = pwd.getpwnam(harness.RUN_AS)
    d = c.probed(name="dflt")
    st = os.stat(d.socket)
    c.eq((st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))),
         (me.pw_uid, me.pw_gid, oct(0o660)),
         "by default the socket is probed's user's and group's, mode 0660")
    d.stop()
    d = c.probed({"socket_owner": acc.a.pw_name, "socket_group": acc.g.gr_name,
                  "socket_mode": "0640"}, name="own")
    st = os.stat(d.socket)
    c.eq((st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))),
         (acc.a.pw_uid, acc.g.gr_gid, oct(0o640)),
         "socket_owner=%s socket_group=%s socket_mode=0640 are applied (os.stat)"
         % (acc.a.pw_name, acc.g.gr_name))
    c.eq(d.request("PING"), "pong", "probed serves a socket it no longer owns")
    d.stop()
    c.check(not os.path.exists(d.socket), "and removes it at exit")
    d = c.probed({"socket_owner": "no-such-user-x"}, name="bad", ready=False)
    rc = d.wait()
    c.check(rc != 0 and "socket_owner 'no-such-user-x': no such user" in d.log(),
            "an unknown socket_owner stops probed with a message naming it",
            "exit %s\n%s" % (rc, d.log()))


@suite.case(budget=60)
def allow_lists(c):
    need_root()
    acc = Accounts()
    a, b, g = acc.a, acc.b, acc.g
    open_case_dir(c)
    settings = {"socket_mode": "0666",      # the file lets everyone in:
                "socket_allow_users": [a.pw_name],   # the lists decide
                "socket_allow_groups": [g.gr_name]}
    d = c.probed(settings)
    c.note("user a=%s(%d) b=%s(%d) group g=%s(%d)" % (
        a.pw_name, a.pw_uid, b.pw_name, b.pw_uid, g.gr_name, g.gr_gid))

    c.check(served(ask_as(c, d, a)), "a user in socket_allow_users is served")
    c.check(served(ask_as(c, d, b, groups=[g.gr_gid])),
            "a user with a socket_allow_groups group as supplementary group is served")
    c.check(served(ask_as(c, d, b, gid=g.gr_gid)),
            "a user with a socket_allow_groups group as primary group is served")
    # more supplementary groups than probed's first buffer holds (64):
    # SO_PEERGROUPS answers ERANGE and the buffer grows
    many = list(range(40000, 40200))
    c.check(served(ask_as(c, d, b, groups=many + [g.gr_gid])),
            "a user with 201 supplementary groups, the listed one among them, "
            "is served")
    c.check(refused(ask_as(c, d, b, groups=many), b.pw_uid),
            "with 200 supplementary groups, none listed, it is refused")
    res = ask_as(c, d, b, data="PING\nSTATS\n", want=3)
    c.check(refused(res, b.pw_uid), "anyone else gets exactly one line, error "
            "not_authorized naming their uid, then EOF; no request is answered",
            repr(res))
    c.eq(d.request("PING"), "pong", "root is always served")
    me = pwd.getpwnam(harness.RUN_AS)
    c.check(served(ask_as(c, d, me)), "probed's own user (%s) is always served"
            % me.pw_name)
    st = d.stats()
    c.eq(st.get("refused_unauthorized"), 2, "STATS refused_unauthorized=2")
    warn = re.findall(r"warning: c\d+ refused reason=not_authorized uid=(\d+) "
                      r"gid=(\d+) pid=(\d+)", d.log())
    c.check(len(warn) == 2 and all(int(w[0]) == b.pw_uid and int(w[1]) == b.pw_gid
                                   and int(w[2]) > 0 for w in warn),
            "each refusal is one warning with uid, gid and pid", repr(warn))

    # reload: b in, a out, for new connections
    c.write_config("probed.conf", c.settings(dict(settings,
                   socket_allow_users=[b.pw_name], socket_allow_groups=[])))
    d.signal(signal.SIGHUP)
    st = wait_reloads(d, 1)
    c.eq(st.get("reloads"), 1, "SIGHUP with new lists is applied")
    c.check(served(ask_as(c, d, b)), "after the reload the newly listed user is served")
    c.check(refused(ask_as(c, d, a), a.pw_uid),
            "and the user taken off the list is refused")
    c.check(refused(ask_as(c, d, a, groups=[g.gr_gid]), a.pw_uid),
            "and so is the group taken off the list")

    # a list naming nobody known: refused, the running list stays
    c.write_config("probed.conf", c.settings(dict(settings,
                   socket_allow_users=["no-such-user-x"])))
    d.signal(signal.SIGHUP)
    st = wait_reloads(d, 2)
    c.eq(st.get("reload_errors"), 1, "a reload naming an unknown user is refused")
    c.check(re.search(r"reload refused: .*key 'socket_allow_users': "
                      r"'no-such-user-x' is not a known user", d.log()),
            "the log names the key and the name")
    c.check(served(ask_as(c, d, b)) and refused(ask_as(c, d, a), a.pw_uid),
            "the running allow-list stays in force")

    # at start-up: exit 78 (and probed -t says the same)
    conf = c.write_config("bad.conf", c.settings(dict(settings,
                          socket_allow_groups=["no-such-group-x"]), name="bad"))
    rc, out, err = c.run([harness.binary("PROBED"), "-t", "-c", conf])
    c.check(rc == 78 and "key 'socket_allow_groups': 'no-such-group-x' is not a "
            "known group" in err, "probed -t: an unknown group is a config error "
            "(exit 78) naming key and name", "exit %d\n%s%s" % (rc, out, err))


@suite.case(budget=60)
def clients_explain(c):
    need_root()
    acc = Accounts()
    a, b = acc.a, acc.b
    open_case_dir(c)
    probectl = harness.binary("PROBECTL")

    # the socket file keeps b out (mode 0660, not b's group): EACCES
    d = c.probed(name="perm")
    rc, out, err = run_as(b, [probectl, "-s", d.socket, "ping"])
    want = ("probectl: cannot connect to %s: permission denied (is your user in "
            "the socket's group or socket_allow_users?)\n" % d.socket)
    c.check(rc == 69 and err == want and out == "",
            "probectl kept out by the file's permissions: one line, exit 69",
            "exit %d\nstderr %r\nwant   %r" % (rc, err, want))
    rc, answers, took, text = policy_as(c, b, d.socket, 2, "policy-perm")
    c.check(rc == 0 and answers == ["action=DEFER_IF_PERMIT 4.3.0 probed error: "
                                    "unavailable"] * 2,
            "probed-policy kept out by the file's permissions answers on_error "
            "(unavailable) at once", "exit %d %r %.2f s" % (rc, answers, took))
    lines = re.findall(r".*cannot connect to %s: permission denied \(is this user "
                       r"in the socket's group or socket_allow_users\?\).*"
                       % re.escape(d.socket), text)
    c.check(len(lines) == 1, "its log says why in one line, once", text)
    d.stop()

    # the allow-list keeps b out: error not_authorized
    d = c.probed({"socket_mode": "0666", "socket_allow_users": [a.pw_name]},
                 name="list")
    for cmd in (["ping"], ["verify", "x@example.org", "y@example.org"]):
        rc, out, err = run_as(b, [probectl, "-s", d.socket] + cmd)
        want = ("probectl: probed refused this user (uid %d): not in "
                "socket_allow_users/socket_allow_groups\n" % b.pw_uid)
        c.check(rc == 69 and err == want and out == "",
                "probectl %s refused by the allow-list: one line, exit 69" % cmd[0],
                "exit %d\nstderr %r\nwant   %r" % (rc, err, want))
    rc, out, err = run_as(a, [probectl, "-s", d.socket, "ping"])
    c.check(rc == 0 and out.strip() == "pong", "probectl as the listed user works",
            "exit %d %r %r" % (rc, out, err))

    # probed-policy as b: on_error, the reason logged once
    rc, answers, took, text = policy_as(c, b, d.socket, 3, "policy-list")
    c.check(rc == 0 and answers == ["action=DEFER_IF_PERMIT 4.3.0 probed error: "
                                    "not_authorized"] * 3,
            "probed-policy refused by the allow-list answers on_error (reason "
            "not_authorized) to every request and exits 0 at end of input",
            "exit %d\n%r\n%s" % (rc, answers, text))
    c.check(took < T(3.0), "without waiting for policy.wait (%.2f s)" % took)
    lines = re.findall(r".*probed refused this user \(uid %d\): not in "
                       r"socket_allow_users/socket_allow_groups.*" % b.pw_uid, text)
    c.check(len(lines) == 1, "its log says why in one line, once", text)
    st = d.stats()
    c.eq(st.get("refused_unauthorized"), 2 + 3,
         "probed counted each refused connection (2 probectl, 3 policy requests)")

if __name__ == "__main__":
    suite.main()
