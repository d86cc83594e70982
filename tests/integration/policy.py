"""policy -- probed-policy, the Postfix policy adapter, end to end.

What Postfix and its admin rely on (issue #5):

- the policy delegation protocol on stdin/stdout: many requests on one
  connection, each answered `action=...` and an empty line, in order;
  unknown attributes ignored; a malformed, oversized or hostile request
  answered with the fail-open action and logged, never a hang;
- probed not running, silent or going away: every request answered with
  policy.on_error within policy.wait plus half a second; a restarted probed
  is found again;
- the configuration: -t shows what a file means (the built-in rejection
  says Recipient or Sender), flags override the file, a broken file fails
  open;
- a systemd Accept=yes socket (systemd-socket-activate --accept --inetd:
  the connection on stdin/stdout, one process per connection), and the
  shipped units pass systemd-analyze;
- with a real Postfix from Debian (its own config directory, smtpd on
  127.0.4.1-4:25, check_policy_service pointing at probed-policy through
  spawn(8) in its master.cf) in front of the integration lab: swaks gets
  250 for a deliverable, 550 5.1.1 for an undeliverable, 250 for a
  catch-all and for an unreachable (tarpit) address once policy.wait has
  passed; sender verification (among smtpd_sender_restrictions, after
  reject_unauth_destination) rejects with "Sender address rejected" and
  never probes for mail Postfix would not relay;
  configured actions, skip_domains and the default loopback skip show in
  Postfix's replies; with probed stopped a whole message is still accepted
  (on_error DUNNO).

Owns: one lab (tests/lab/lab.py) for the file when it can run (root, the
Debian packages), and inside its directory one more Postfix instance made
the lab's way (texthash-free: relay_domains, every transport discard:, so
nothing is ever delivered; queue from Postfix's own manifest; `master -c
DIR` in the foreground, stopped by PID with its process group swept).  The
spawn(8) services run a copy of probed-policy from a file-level directory,
as `nobody`, with their configuration and logs there.  Each case starts its
own probed on the socket that directory holds.

Limits: without root (or without the lab's packages, or swaks) the Postfix
cases skip and the rest run.  The tarpit case waits policy.wait (2 s, 8 s
under valgrind).
"""

import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import harness
from harness import T, now
import lab as labmod

suite = harness.Suite("policy")
suite.require_binary("PROBED")
suite.require_binary("PROBED_POLICY")

TOP = os.environ.get("TOP_SRCDIR") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))

LAB = None
PF = None                       # the Postfix instance in front of probed-policy
LAB_WHY = "not started"         # why the Postfix cases cannot run
SHARED = None                   # file-level directory (configs, socket, logs)
SPAWN_USER = "nobody"
# policy.wait for the Postfix cases: a first probe through the lab takes
# well under 2 s, but up to ~3 s with probed under valgrind
# (PROBED_WRAPPER, make check-valgrind), where it is given 8 s.
WAIT = 2.0 if harness.SCALE == 1 else 8.0
GRACE = 0.5                     # probed-policy's margin past policy.wait

FAST = {
    "dns": {"timeout": T(1.0)},
    "smtp": {"connect_timeout": T(2.0), "greeting_timeout": T(3.0),
             "command_timeout": T(3.0)},
}

LISTEN = {                      # smtpd listener -> spawn service, config, flags
    "main": ("127.0.4.1", "probed-policy", "policy.conf", []),
    "sender": ("127.0.4.2", "probed-policy-sender", "policy.conf", ["-v", "sender"]),
    "custom": ("127.0.4.3", "probed-policy-custom", "custom.conf", []),
    "defaults": ("127.0.4.4", "probed-policy-defaults", "defaults.conf", []),
}

RELAY_DOMAINS = ("accept.test", "catchall.test", "tarpit.test", "relay.test")

# A request as Postfix 3.7 sends it at RCPT time; %s is the recipient.
REQUEST = (
    "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
    "helo_name=client.example.com\nqueue_id=\nsender=alice@example.com\n"
    "recipient=%s\nrecipient_count=0\nclient_address=192.0.2.10\n"
    "client_name=client.example.com\nreverse_client_name=client.example.com\n"
    "instance=12b4.6769a0b2.7c1a3.0\nsasl_method=\nsasl_username=\n"
    "sasl_sender=\nsize=0\nccert_subject=\nencryption_protocol=TLSv1.3\n"
    "future_attribute=whatever\nserver_address=192.0.2.1\nserver_port=25\n\n")

BUILTIN_RCPT = "550 5.1.1 undeliverable address (%r)"
BUILTIN_SENDER = "550 5.1.7 undeliverable sender address (%r)"


def policy_bin():
    return harness.binary("PROBED_POLICY")


# ---------------------------------------------------------------- helpers

class Policy:
    """probed-policy on pipes, as spawn(8) runs it: requests on stdin,
    answers on stdout, the log in a file."""

    def __init__(self, c, conf, args=(), name="policy"):
        self.log_path = c.path(name + ".log")
        self.argv = [policy_bin(), "-c", conf, "-L", self.log_path] + list(args)
        self.proc = harness.spawn(self.argv, env=harness.base_env(),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.buf = b""
        os.set_blocking(self.proc.stdout.fileno(), False)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def answers(self, n, timeout=10.0):
        """n answers (the action values), or Timeout with what came."""
        fd = self.proc.stdout.fileno()
        deadline = now() + T(timeout)
        got = []
        while True:
            while b"\n\n" in self.buf and len(got) < n:
                i = self.buf.index(b"\n\n")
                got.append(self.buf[:i].decode("utf-8", "replace"))
                self.buf = self.buf[i + 2:]
            if len(got) >= n:
                return got
            left = deadline - now()
            if left <= 0:
                raise harness.Timeout("%d of %d answers after %.1f s" %
                                      (len(got), n, T(timeout)), got)
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise harness.Failure("probed-policy closed its output after "
                                          "%d of %d answers" % (len(got), n))
                self.buf += chunk

    def ask(self, request, timeout=10.0):
        self.send(request)
        return self.answers(1, timeout)[0]

    def close(self, timeout=10.0):
        """End of input: it must exit 0 by itself."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout=T(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "hung"
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def decisions(text):
    """[(address, outcome, reason, ms, action)] of the decision lines."""
    out = []
    for m in re.finditer(r"decision (?:recipient|sender)=<(.*?)> outcome=(\w+) "
                         r"reason=(\S+)(?: cached=yes)? (?:ms=([\d.]+) )?"
                         r"client=\S+ id=\S+ action=\"(.*?)\"", text):
        out.append((m.group(1), m.group(2), m.group(3),
                    float(m.group(4)) if m.group(4) is not None else None, m.group(5)))
    return out


def eq(c, got, want, desc, detail=""):
    """c.eq with more to print on failure."""
    return c.check(got == want, desc, "got:  %r\nwant: %r\n%s" % (got, want, detail))


def check_log_clean(c, text, what):
    m = harness._SANITIZER_RE.search(text)
    c.check(m is None, "%s has no sanitizer report" % what, m and m.group(0))


def policy_conf(c, name, policy, socket_path=None, extra=None):
    """A probed.conf for probed-policy: socket and policy section."""
    s = {"socket": socket_path or c.path("probed.sock"), "log_level": "debug",
         "policy": policy}
    if extra:
        s.update(extra)
    return c.write_config(name, s)


def expand(template, address, reason):
    return template.replace("%a", address).replace("%r", reason)


# ---------------------------------------------------------------- -t and flags

@suite.case
def settings(c):
    conf = policy_conf(c, "p.conf", {"wait": 1.5, "skip_domains": ["Example.ORG"]})
    rc, out, err = c.run([policy_bin(), "-t", "-c", conf])
    c.eq(rc, 0, "-t exits 0 on a good file")
    kv = dict(line.split(" ", 1) if " " in line else (line, "")
              for line in out.splitlines())
    c.eq(kv.get("action_undeliverable"), BUILTIN_RCPT,
         "the built-in rejection names the recipient")
    c.eq((kv.get("verify"), kv.get("wait"), kv.get("on_error"),
          kv.get("skip_networks"), kv.get("skip_domains")),
         ("recipient", "1.5", "DUNNO", "127.0.0.0/8 ::1/128", "Example.ORG"),
         "-t shows the file's policy settings and the defaults")

    rc, out, err = c.run([policy_bin(), "-t", "-c", conf, "-v", "sender", "-w", "0.25",
                          "-s", "/run/other.sock"])
    kv = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    c.eq((rc, kv.get("verify"), kv.get("wait"), kv.get("socket"),
          kv.get("action_undeliverable")),
         (0, "sender", "0.25", "/run/other.sock", BUILTIN_SENDER),
         "flags override the file; with -v sender the rejection names the sender")

    bad = c.write_config("bad.conf", 'policy: { on_error = "DUNNO\\nREJECT"; };\n')
    rc, out, err = c.run([policy_bin(), "-t", "-c", bad])
    c.check(rc == 78 and "contains CR or LF" in err and bad in err,
            "-t refuses an action holding a newline: exit 78 naming the file",
            "rc %d\n%s" % (rc, err))
    for argv, why in ((["-v", "both"], "-v takes recipient or sender"),
                      (["-w", "0"], "-w takes seconds"),
                      (["-w", "3601"], "-w takes seconds"),
                      (["-x"], "unknown option"),
                      (["extra"], "unexpected argument"),
                      (["-f", "-L", "/dev/null"], "exclude each other")):
        rc, out, err = c.run([policy_bin()] + argv)
        c.check(rc == 64 and why in err, "usage error %s: exit 64" % " ".join(argv),
                "rc %d\n%s" % (rc, err))
    rc, out, err = c.run([policy_bin(), "--help"])
    c.check(rc == 0 and "-c, --config FILE" in out and "-w, --wait SECONDS" in out,
            "--help lists the options")


# ---------------------------------------------------------------- protocol

@suite.case
def protocol(c):
    """Many requests on one connection against a real probed that gets no
    DNS answers: syntax is judged at once, the rest is pending at wait."""
    d = c.probed({"policy": {"wait": 0.5}})
    conf = policy_conf(c, "p.conf", {"wait": 0.5, "skip_networks": []},
                       socket_path=d.socket)
    p = Policy(c, conf)
    bad_syntax = "a@-bad-.example"
    t0 = now()
    p.send(REQUEST % bad_syntax)                     # undeliverable, syntax
    p.send(REQUEST % "x@nosuch.invalid")            # pending after 0.5 s
    p.send("request=smtpd_access_policy\nrecipient\n\n")            # malformed
    p.send("request=smtpd_access_policy\nrecipient=" + "a" * 5000 + "@x.example\n"
           "sender=s@example.com\n\n")                              # oversized line
    p.send("request=smtpd_access_policy\n" +
           "".join("filler%d=%s\n" % (i, "v" * 100) for i in range(200)) + "\n")
    p.send(REQUEST % "a\rb@x.example")             # control octet
    p.send(REQUEST.replace("sender=alice@example.com", "sender=") % "y@x.example")
    p.send(REQUEST % "postmaster")                  # unqualified
    p.send("\n")                                     # empty request
    p.send(REQUEST % bad_syntax)                     # still in step
    got = p.answers(10, timeout=20)
    want = ["action=" + expand(BUILTIN_RCPT, bad_syntax, "syntax"),
            "action=DUNNO", "action=DUNNO", "action=DUNNO", "action=DUNNO",
            "action=DUNNO", "action=DUNNO", "action=DUNNO", "action=DUNNO",
            "action=" + expand(BUILTIN_RCPT, bad_syntax, "syntax")]
    c.eq(got, want, "ten requests on one connection: ten answers, in order")
    c.check(now() - t0 < T(3.0), "the pending probe cost about policy.wait, "
            "not a DNS timeout (%.1f s)" % (now() - t0))
    c.eq(p.close(), 0, "end of input: probed-policy exits 0")
    log = p.log()
    ds = decisions(log)
    eq(c, [(x[1], x[2]) for x in ds],
         [("undeliverable", "syntax"), ("pending", "pending"), ("error", "malformed"),
          ("error", "malformed"), ("error", "malformed"), ("error", "bad_address"),
          ("skip", "null_sender"), ("skip", "unqualified"), ("error", "malformed"),
          ("undeliverable", "syntax")],
         "one decision line per request, saying why", log)
    pend = ds[1][3] if len(ds) > 1 else None
    c.check(pend is not None and 450 <= pend <= 500 + 400,
            "the pending answer came at policy.wait (ms=%s)" % pend)
    for why in ("attribute line without '='", "attribute line over 4096 octets",
                "request over 16384 octets", "empty request"):
        c.check("malformed request: " + why in log,
                "the log says what is malformed: %s" % why)
    check_log_clean(c, log, "probed-policy's log")

    # The same over CRLF, with a quoted local part: Postfix's internal
    # form `john doe@...` goes to probed quoted, as one address.
    p = Policy(c, conf, name="policy2")
    got = p.ask((REQUEST % "john doe@-bad-.example").replace("\n", "\r\n"))
    c.eq(got, "action=" + expand(BUILTIN_RCPT, '"john doe"@-bad-.example', "syntax"),
         "CRLF lines work; a local part with a space is quoted for probed")
    c.eq(p.close(), 0, "exits 0")


@suite.case
def probed_unavailable(c):
    """on_error, at once when probed is not there, by the deadline when it
    says nothing; a restarted probed is found again."""
    sock = c.path("probed.sock")
    conf = policy_conf(c, "p.conf", {
        "wait": 0.5, "skip_networks": [],
        "on_error": "DEFER_IF_PERMIT 4.3.0 probed %v: %r (%a)"}, socket_path=sock)
    p = Policy(c, conf)
    t0 = now()
    got = p.ask(REQUEST % "a@-bad-.example")
    c.eq(got, "action=DEFER_IF_PERMIT 4.3.0 probed error: unavailable (a@-bad-.example)",
         "no probed: on_error, with %v %r %a filled in")
    c.check(now() - t0 < T(1.0), "answered at once (%.2f s)" % (now() - t0))

    # A socket that takes the request and never answers.
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(sock)
    mute.listen(8)
    held = []

    def accept():
        try:
            while True:
                conn, _ = mute.accept()
                held.append(conn)
        except OSError:
            pass
    th = threading.Thread(target=accept, daemon=True)
    th.start()
    t0 = now()
    got = p.ask(REQUEST % "b@-bad-.example", timeout=5)
    took = now() - t0
    c.eq(got, "action=DEFER_IF_PERMIT 4.3.0 probed error: timeout (b@-bad-.example)",
         "a silent probed: on_error, reason timeout")
    c.check(0.5 <= took < 0.5 + GRACE + T(0.5),
            "answered by policy.wait + %.1f s (%.2f s)" % (GRACE, took))
    mute.close()
    for h in held:
        h.close()
    os.unlink(sock)

    # The real probed comes; then it restarts under the same connection.
    d = c.probed(socket_path=sock)
    c.eq(p.ask(REQUEST % "c@-bad-.example"),
         "action=" + expand(BUILTIN_RCPT, "c@-bad-.example", "syntax"),
         "probed started: answers come from it")
    d.stop()
    d.start()
    d.reaped = False            # running again: teardown stops it
    d.wait_ready()
    c.eq(p.ask(REQUEST % "d@-bad-.example"),
         "action=" + expand(BUILTIN_RCPT, "d@-bad-.example", "syntax"),
         "probed restarted: the next request reconnects and is answered by it")
    c.eq(p.close(), 0, "exits 0")
    log = p.log()
    c.check(re.search(r"probed unavailable: connect .*probed\.sock", log) and
            "probed answers again" in log,
            "the log says when probed went away and when it came back", log)
    check_log_clean(c, log, "probed-policy's log")


@suite.case
def broken_config(c):
    bad = c.write_config("bad.conf", "policy: { wait = 0; };\n")
    p = Policy(c, bad)
    got = [p.ask(REQUEST % "a@-bad-.example") for _ in range(2)]
    c.eq(got, ["action=DUNNO"] * 2,
         "a configuration that does not load: every request answered DUNNO")
    c.eq(p.close(), 0, "exits 0")
    log = p.log()
    c.check("config error=" in log and "out of range" in log and
            "reason=config_error" in log,
            "the log says the file is broken and why each answer was DUNNO", log)


@suite.case
def accept_socket(c):
    """Under a systemd Accept=yes socket: systemd-socket-activate --accept
    --inetd puts each connection on a new process's stdin and stdout."""
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        raise harness.Skip("systemd-socket-activate is not installed")
    d = c.probed()
    conf = policy_conf(c, "p.conf", {"wait": 0.5, "skip_networks": []},
                       socket_path=d.socket)
    path = c.path("policy.sock")
    log = c.path("accept.log")
    act = harness.spawn([tool, "--listen=" + path, "--accept", "--inetd",
                         policy_bin(), "-c", conf, "-L", log],
                        env=harness.base_env(), stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = now() + T(5)
        while not os.path.exists(path) and now() < deadline:
            time.sleep(0.02)
        clients = [harness.Client(path) for _ in range(3)]
        jobs = [(cl, (REQUEST % ("u%d@-bad-.example" % i)) * 2, 4)
                for i, cl in enumerate(clients)]
        res = harness.exchange_all(jobs, timeout=10)
        for i, lines in enumerate(res):
            want = "action=" + expand(BUILTIN_RCPT, "u%d@-bad-.example" % i, "syntax")
            c.eq(lines, [want, "", want, ""],
                 "connection %d: two requests, two answers" % i)
        for cl in clients:
            cl.close()
        time.sleep(0.3)
        with open(log) as f:
            text = f.read()
        pids = set(re.findall(r"probed-policy\[(\d+)\] \w+: r\d+ decision", text))
        c.eq(len(pids), 3, "one process per connection")
    finally:
        act.terminate()
        try:
            act.wait(timeout=5)
        except subprocess.TimeoutExpired:
            act.kill()
            act.wait()
        act.stderr.close()


@suite.case
def units(c):
    with open(os.path.join(TOP, "systemd", "probed-policy@.service.in")) as f:
        text = f.read()
    text = text.replace("@sbindir@", os.path.dirname(policy_bin()))
    text = text.replace("@sysconfdir@", "/etc")
    c.check(not re.findall(r"@[a-z_]+@", text),
            "make's substitutions leave no @...@ in probed-policy@.service")
    units = c.path("units")
    os.mkdir(units)
    exe = os.path.basename(policy_bin())
    service = os.path.join(units, "probed-policy@.service")
    with open(service, "w") as f:
        f.write(text)
    sock = os.path.join(units, "probed-policy.socket")
    shutil.copy(os.path.join(TOP, "systemd", "probed-policy.socket"), sock)

    def settings_of(path):
        out, section = {}, ""
        for line in open(path):
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.setdefault("%s.%s" % (section, k.strip()), []).append(v.strip())
        return out
    s, k = settings_of(service), settings_of(sock)
    c.eq((k.get("Socket.Accept"), k.get("Socket.ListenStream")),
         (["yes"], ["/var/spool/postfix/private/probed-policy"]),
         "the socket accepts each connection itself, in Postfix's queue "
         "directory (smtpd is chrooted there on Debian)")
    c.eq((s.get("Service.StandardInput"), s.get("Service.StandardOutput"),
          s.get("Service.StandardError")), (["socket"], ["socket"], ["journal"]),
         "the connection is stdin/stdout; stderr never shares it")
    c.eq((s.get("Service.User"), s.get("Service.Group")), (["probed"], ["probed"]),
         "runs as probed (reads probed.conf, connects to probed's socket)")
    c.check(s.get("Service.ExecStart", [""])[0].split()[0].endswith("/" + exe),
            "ExecStart runs probed-policy")
    for doc in ("README", "doc/probed-policy.8"):
        with open(os.path.join(TOP, doc)) as f:
            c.check("unix:private/probed-policy" in f.read(),
                    "%s tells Postfix the socket's name" % doc)
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        c.skip("systemd-analyze verify / security", "systemd-analyze is not installed")
        return
    rc, out, err = c.run([analyze, "verify", "--man=no", sock, service], timeout=60)
    c.check(rc == 0 and not (out + err).strip(),
            "systemd-analyze verify probed-policy.socket probed-policy@.service: "
            "clean", "exit %d\n%s%s" % (rc, out, err))
    rc, out, err = c.run([analyze, "security", "--offline=true", "--no-pager",
                          service], timeout=60)
    m = re.search(r"Overall exposure level for \S+:\s*([0-9.]+)", out + err)
    score = float(m.group(1)) if m else None
    c.check(score is not None and score <= 2.0,
            "systemd-analyze security rates probed-policy@.service 2.0 or "
            "better (%s)" % score, "exit %d\n%s%s" % (rc, out[-3000:], err))


# ---------------------------------------------------------------- Postfix

class PolicyPostfix:
    """A Postfix instance in the lab's directory, made the lab's way, with
    one smtpd listener and one spawn(8) service per entry of LISTEN."""

    def __init__(self, lab, shared, exe):
        self.lab = lab
        self.shared = shared
        self.exe = exe
        self.base = lab.postfix_dir("policy")
        self.conf = os.path.join(self.base, "conf")
        self.log_path = lab.postfix_log("policy")
        self.proc = None

    def write(self):
        os.makedirs(self.conf)
        os.makedirs(os.path.join(self.base, "queue"))
        for d in (self.base, self.conf, os.path.join(self.base, "queue")):
            os.chmod(d, 0o755)
        discard = "discard:probed-policy test never delivers"
        restrictions = {}
        for name, (addr, svc, conf, flags) in LISTEN.items():
            restrictions[name] = ("reject_unauth_destination, check_policy_service "
                                  "unix:private/%s, permit" % svc)
        # Sender verification where the docs say: among the sender
        # restrictions, so that Postfix's reply names the sender.
        restrictions["plain"] = "reject_unauth_destination, permit"
        main = "\n".join([
            "# probed-policy's test instance (tests/integration/policy.py).",
            "# Relays nothing anywhere: every transport is discard:.",
            "compatibility_level = 3.6",
            "queue_directory = %s" % os.path.join(self.base, "queue"),
            "data_directory = %s" % os.path.join(self.base, "data"),
            "maillog_file = %s" % self.log_path,
            "maillog_file_prefixes = %s" % self.lab.dir,
            "syslog_name = postfix-policy",
            "multi_instance_enable = no",
            "multi_instance_wrapper =",
            "multi_instance_name = lab-policy",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "myhostname = mx.policy.test",
            "mydomain = lab.test",
            "myorigin = $myhostname",
            "mydestination =",
            "relay_domains = %s" % " ".join(RELAY_DOMAINS),
            "local_recipient_maps =",
            "alias_maps =",
            "alias_database =",
            "biff = no",
            "smtpd_banner = $myhostname ESMTP Postfix (probed-policy test)",
            "smtpd_peername_lookup = no",
            "default_transport = " + discard,
            "relay_transport = " + discard,
            "local_transport = " + discard,
            "virtual_transport = " + discard,
            "smtpd_relay_restrictions = reject_unauth_destination",
            "smtpd_recipient_restrictions = " + restrictions["main"],
        ] + ["%s_policy_restrictions = %s" % (n, r) for n, r in restrictions.items()
             if n != "main"] + [
            "smtpd_log_access_permit_actions = static:all",
        ] + ["%s_time_limit = 3600s" % svc for _, svc, _, _ in LISTEN.values()]) + "\n"
        master = labmod._template("master.cf.in", {"LISTEN": LISTEN["main"][0],
                                                    "NAME": "policy"})
        for name, (addr, svc, conf, flags) in LISTEN.items():
            if name == "sender":
                master += ("%s:smtp inet n - n - - smtpd\n"
                           "  -o smtpd_sender_restrictions=$sender_policy_restrictions\n"
                           "  -o smtpd_recipient_restrictions=$plain_policy_restrictions\n"
                           % addr)
            elif name != "main":
                master += ("%s:smtp inet n - n - - smtpd\n"
                           "  -o smtpd_recipient_restrictions=$%s_policy_restrictions\n"
                           % (addr, name))
        for name, (addr, svc, conf, flags) in LISTEN.items():
            master += ("%s unix - n n - 0 spawn\n"
                       "  user=%s argv=%s -c %s -L %s%s\n"
                       % (svc, SPAWN_USER, self.exe, os.path.join(self.shared, conf),
                          os.path.join(self.shared, svc + ".log"),
                          "".join(" " + f for f in flags)))
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(master)
        self.lab._make_queue("policy")

    def start(self, timeout=20.0):
        for addr, _, _, _ in LISTEN.values():
            for ip in (addr, "0.0.0.0"):
                if labmod.is_listening(ip, 25):
                    raise labmod.LabError("%s:25 is taken: cannot start the "
                                          "probed-policy test Postfix" % ip)
        r = subprocess.run(["/usr/sbin/postconf", "-c", self.conf, "-n"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=T(20))
        self.postconf = r.stdout.decode("utf-8", "replace")
        # Postfix's master makes its own session: not a new one here.
        proc = self.lab._spawn("master-policy", [
            os.path.join(self.lab.daemon_dir, "master"), "-c", self.conf],
            new_session=False)
        self.proc = proc
        deadline = now() + T(timeout)
        while not all(labmod.is_listening(a, 25) for a, _, _, _ in LISTEN.values()):
            po = self.lab._popen.get(proc.pid)
            if po is not None and po.poll() is not None:
                raise labmod.LabError("Postfix (policy) exited with status %s"
                                      % po.returncode)
            if now() > deadline:
                raise labmod.LabError("Postfix (policy) not listening after %.0f s"
                                      % T(timeout))
            time.sleep(0.05)

    def stop(self):
        """SIGTERM by PID, then whatever is left of its process group
        (smtpd, spawn, the probed-policy processes it runs)."""
        if self.proc is None:
            return
        po = self.lab._popen.get(self.proc.pid)
        if po is not None and po.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                po.wait(timeout=T(10))
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                po.wait()
        end = now() + T(3)
        members = labmod._group_members({self.proc.pgid})
        for pid in members:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        while members and now() < end:
            time.sleep(0.05)
            members = labmod._group_members({self.proc.pgid})
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def swaks(server, to, sender="someone@example.com", data=False, timeout=30.0):
    """One SMTP session with swaks.  Returns a dict: rcpt (code, text) of
    Postfix's reply to RCPT TO, data (code, text) of its reply to the
    message (when data=True), seconds, output."""
    argv = ["swaks", "--server", server, "--port", "25", "--from", sender,
            "--to", to, "--helo", "client.policy.test",
            "--timeout", "%d" % int(T(timeout))]
    if data:
        argv += ["--body", "probed-policy test: discarded\n"]
    else:
        argv += ["--quit-after", "RCPT"]
    t0 = now()
    rc, out, err = harness.run(argv, timeout=timeout + 10)
    res = {"rc": rc, "seconds": now() - t0, "output": out + err,
           "rcpt": None, "data": None}
    lines = out.splitlines()
    stage = None
    for line in lines:
        if line.startswith(" -> RCPT TO:"):
            stage = "rcpt"
        elif line.strip() == "-> .":
            stage = "data"
        elif stage and (line.startswith("<-") or line.startswith("<**")):
            m = re.match(r"<(?:-|\*\*)\s+(\d{3})([ -])(.*)$", line)
            if m and m.group(2) == " ":
                res[stage] = (int(m.group(1)), m.group(3))
                stage = None
    return res


def lab_case(fn):
    """A case that needs the lab and the Postfix instance; on failure the
    Postfix log and the probed-policy logs of the case are printed."""
    def run(c):
        if PF is None:
            raise harness.Skip(LAB_WHY)
        marks = {p: os.path.getsize(p) for p in policy_logs() + [PF.log_path]
                 if os.path.exists(p)}
        try:
            fn(c)
        finally:
            if c.failed:
                for p in [PF.log_path] + policy_logs():
                    try:
                        with open(p, "rb") as f:
                            f.seek(marks.get(p, 0))
                            text = f.read().decode("utf-8", "replace")
                    except OSError:
                        continue
                    lines = text.splitlines()
                    print("# ---- %s, this case: %d lines ----" % (p, len(lines)))
                    for line in lines[-80:]:
                        print("# | %s" % line[:600])
    run.__name__ = fn.__name__
    return suite.case(run, budget=60)


def policy_logs():
    return [os.path.join(SHARED, svc + ".log") for _, svc, _, _ in LISTEN.values()]


def read_policy_log(svc, since=0):
    try:
        with open(os.path.join(SHARED, svc + ".log"), "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def log_size(svc):
    try:
        return os.path.getsize(os.path.join(SHARED, svc + ".log"))
    except OSError:
        return 0


def start_probed(c):
    over = harness._merge(LAB.probed_config(), FAST)
    return c.probed(over, socket_path=os.path.join(SHARED, "probed.sock"))


def reply_is(c, res, stage, code, text_re, what):
    got = res[stage]
    ok = got is not None and got[0] == code and re.search(text_re, got[1])
    c.check(ok, "%s: Postfix answers %d %s" % (what, code, text_re),
            "got %r\n%s" % (got, res["output"][-3000:]))


@lab_case
def postfix_recipient(c):
    c.check("warning" not in PF.postconf,
            "postconf -n: Postfix understands the instance's main.cf, "
            "<service>_time_limit for the spawn services included", PF.postconf)
    start_probed(c)
    main = LISTEN["main"][0]
    since = log_size("probed-policy")

    res = swaks(main, "alice@accept.test")
    reply_is(c, res, "rcpt", 250, r"^2\.1\.5 Ok$", "deliverable alice@accept.test")
    res = swaks(main, "nosuch@accept.test")
    reply_is(c, res, "rcpt", 550, r"^5\.1\.1 <nosuch@accept\.test>: Recipient address "
             r"rejected: undeliverable address \(no_such_user\)$",
             "undeliverable nosuch@accept.test (the built-in action)")
    res = swaks(main, "x@catchall.test")
    reply_is(c, res, "rcpt", 250, r"^2\.1\.5 Ok$", "catch-all x@catchall.test (risky, DUNNO)")
    res = swaks(main, "a@tarpit.test")
    reply_is(c, res, "rcpt", 250, r"^2\.1\.5 Ok$",
             "unreachable a@tarpit.test (pending after policy.wait, DUNNO)")
    c.check(WAIT <= res["seconds"] < WAIT + GRACE + T(2.0),
            "Postfix waited about policy.wait = %.0f s for it (%.1f s)"
            % (WAIT, res["seconds"]))
    # A whole message to a deliverable address is accepted (and discarded).
    res = swaks(main, "alice@accept.test", data=True)
    reply_is(c, res, "data", 250, r"queued as", "a message to alice@accept.test")
    # The undeliverable one again: now from probed's cache.
    res = swaks(main, "nosuch@accept.test")
    reply_is(c, res, "rcpt", 550, r"undeliverable address \(no_such_user\)",
             "nosuch@accept.test again")

    log = read_policy_log("probed-policy", since)
    ds = decisions(log)
    eq(c, [(x[0], x[1], x[2]) for x in ds],
         [("alice@accept.test", "deliverable", "accepted"),
          ("nosuch@accept.test", "undeliverable", "no_such_user"),
          ("x@catchall.test", "risky", "catch_all"),
          ("a@tarpit.test", "pending", "pending"),
          ("alice@accept.test", "deliverable", "accepted"),
          ("nosuch@accept.test", "undeliverable", "no_such_user")],
         "probed-policy logged one decision per RCPT, with probed's verdict", log)
    pend = [x[3] for x in ds if x[1] == "pending"]
    c.check(pend and WAIT * 1000 - 50 <= pend[0] <= (WAIT + GRACE) * 1000,
            "the pending answer came at policy.wait (ms=%s)" % pend)
    c.check(re.search(r"nosuch@accept\.test.*cached=yes", log),
            "the second ask was a cache hit", log)
    c.check("client=127.0.0.1" in log, "the decision names Postfix's client")
    check_log_clean(c, log, "probed-policy's log")


@lab_case
def postfix_sender(c):
    start_probed(c)
    sender = LISTEN["sender"][0]
    since = log_size("probed-policy-sender")
    res = swaks(sender, "alice@accept.test", sender="nosuch@accept.test")
    reply_is(c, res, "rcpt", 550, r"^5\.1\.7 <nosuch@accept\.test>: Sender address "
             r"rejected: undeliverable sender address \(no_such_user\)$",
             "sender verification: undeliverable sender nosuch@accept.test")
    res = swaks(sender, "x@elsewhere.example", sender="other@accept.test")
    reply_is(c, res, "rcpt", 554, r"^5\.7\.1 <x@elsewhere\.example>: Relay access denied",
             "sender verification after reject_unauth_destination: relaying refused")
    log = read_policy_log("probed-policy-sender", since)
    c.check("other@accept.test" not in log,
            "... before any probe of its sender", log)
    res = swaks(sender, "nosuch@accept.test", sender="bob@accept.test")
    reply_is(c, res, "rcpt", 250, r"^2\.1\.5 Ok$",
             "sender verification: deliverable sender, whatever the recipient")
    res = swaks(sender, "alice@accept.test", sender="<>", data=True)
    reply_is(c, res, "data", 250, r"queued as",
             "sender verification: the null sender is skipped (a bounce is accepted)")


@lab_case
def postfix_configured(c):
    """custom.conf: risky rejected with the verdict interpolated, pending
    deferred, relay.test skipped."""
    start_probed(c)
    custom = LISTEN["custom"][0]
    since = log_size("probed-policy-custom")
    res = swaks(custom, "x@catchall.test")
    reply_is(c, res, "rcpt", 554, r"^5\.7\.1 <x@catchall\.test>: Recipient address "
             r"rejected: risky address \(catch_all\)$",
             "action_risky = REJECT 5.7.1 %v address (%r)")
    res = swaks(custom, "b@tarpit.test")
    reply_is(c, res, "rcpt", 450, r"^4\.1\.1 <b@tarpit\.test>: Recipient address "
             r"rejected: verification of b@tarpit\.test in progress$",
             "action_pending = DEFER_IF_PERMIT 4.1.1 verification of %a in progress")
    res = swaks(custom, "nosuch@relay.test")
    reply_is(c, res, "rcpt", 250, r"^2\.1\.5 Ok$", "skip_domains: relay.test not verified")
    res = swaks(LISTEN["main"][0], "nosuch@relay.test")
    reply_is(c, res, "rcpt", 550, r"undeliverable address \(relay_denied\)",
             "... while the main listener verifies it")
    log = read_policy_log("probed-policy-custom", since)
    eq(c, [(x[0], x[1], x[2]) for x in decisions(log)],
         [("x@catchall.test", "risky", "catch_all"),
          ("b@tarpit.test", "pending", "pending"),
          ("nosuch@relay.test", "skip", "domain")],
         "the custom service's decisions", log)


@lab_case
def postfix_defaults(c):
    """A file with no policy section: loopback clients are not verified."""
    start_probed(c)
    since = log_size("probed-policy-defaults")
    res = swaks(LISTEN["defaults"][0], "nosuch@accept.test")
    reply_is(c, res, "rcpt", 250, r"^2\.1\.5 Ok$",
             "default skip_networks: mail from 127.0.0.1 is not verified")
    log = read_policy_log("probed-policy-defaults", since)
    eq(c, [(x[1], x[2]) for x in decisions(log)], [("skip", "network")],
         "logged as skipped for its network", log)


@lab_case
def postfix_probed_stopped(c):
    d = start_probed(c)
    main = LISTEN["main"][0]
    res = swaks(main, "nosuch@accept.test")
    reply_is(c, res, "rcpt", 550, r"no_such_user", "probed running: rejected")
    since = log_size("probed-policy")
    d.stop()
    res = swaks(main, "nosuch@accept.test", data=True)
    reply_is(c, res, "rcpt", 250, r"^2\.1\.5 Ok$", "probed stopped: the RCPT is accepted")
    reply_is(c, res, "data", 250, r"queued as",
             "probed stopped: the whole message is accepted (on_error DUNNO)")
    c.check(res["seconds"] < T(5.0), "and at once (%.1f s)" % res["seconds"])
    log = read_policy_log("probed-policy", since)
    c.check(re.search(r"outcome=error reason=(unavailable|lost)", log),
            "logged as an error of probed's", log)
    d.start()
    d.reaped = False            # running again: teardown stops it
    d.wait_ready()
    res = swaks(main, "nosuch@accept.test")
    reply_is(c, res, "rcpt", 550, r"no_such_user", "probed back: rejected again")


# ---------------------------------------------------------------- main

def setup_shared():
    """The directory spawn(8)'s probed-policy processes use: its own copy
    of the binary, the configurations, the logs, probed's socket."""
    global SHARED
    SHARED = tempfile.mkdtemp(prefix="probed-policy-", dir="/tmp")
    os.chmod(SHARED, 0o755)
    pw = pwd.getpwnam(SPAWN_USER)
    # probed (dropping to nobody) makes its socket here.
    os.chown(SHARED, pw.pw_uid, pw.pw_gid)
    exe = os.path.join(SHARED, "probed-policy")
    shutil.copy(policy_bin(), exe)
    os.chmod(exe, 0o755)
    sock = os.path.join(SHARED, "probed.sock")
    files = {
        "policy.conf": {"socket": sock, "log_level": "debug",
                        "policy": {"wait": WAIT, "skip_networks": []}},
        "custom.conf": {"socket": sock, "log_level": "debug",
                        "policy": {"wait": WAIT, "skip_networks": [],
                                   "skip_domains": ["relay.test"],
                                   "action_risky": "REJECT 5.7.1 %v address (%r)",
                                   "action_pending": "DEFER_IF_PERMIT 4.1.1 "
                                                     "verification of %a in progress"}},
        "defaults.conf": {"socket": sock, "log_level": "debug"},
    }
    for name, s in files.items():
        with open(os.path.join(SHARED, name), "w") as f:
            f.write(harness.config_text(s))
    for _, svc, _, _ in LISTEN.values():
        p = os.path.join(SHARED, svc + ".log")
        open(p, "a").close()
        os.chown(p, pw.pw_uid, pw.pw_gid)
    return exe


def main():
    global LAB, PF, LAB_WHY
    sys.stdout.reconfigure(errors="backslashreplace")
    try:
        for var in ("PROBED", "PROBED_POLICY"):
            harness.binary(var)
    except harness.HardError as e:
        print("not ok - policy: %s" % e)
        print("0 passed, 1 failed")
        sys.exit(harness.EXIT_HARD)
    hard = False
    only = os.environ.get("PROBED_TEST_ONLY")   # developer convenience
    if only and not any(n.startswith("postfix_") for n in only.split(",")):
        LAB_WHY = "not selected (PROBED_TEST_ONLY)"
    elif os.geteuid() != 0:
        LAB_WHY = "the Postfix cases need root (the lab)"
    elif shutil.which("swaks") is None:
        LAB_WHY = "swaks is not installed (Debian package swaks)"
    else:
        try:
            exe = setup_shared()
            LAB = labmod.Lab()
            LAB.start()
            PF = PolicyPostfix(LAB, SHARED, exe)
            PF.write()
            PF.start()
            print("# Postfix for probed-policy up: %s" % ", ".join(
                a for a, _, _, _ in LISTEN.values()), flush=True)
        except labmod.LabSkip as e:
            LAB_WHY = str(e)
        except labmod.LabError as e:
            print("not ok - policy: the lab or its Postfix did not start: %s" % e)
            suite.failed += 1
            suite.hard = True
            hard = True
            LAB_WHY = "the lab did not start"
            PF = None
    try:
        suite.main()
    finally:
        if PF is not None:
            PF.stop()
        if LAB is not None:
            if suite.failed or suite.hard or hard:
                LAB.failed = True
            LAB.stop()
        if SHARED is not None:
            if suite.failed or hard:
                print("# kept %s" % SHARED)
            else:
                shutil.rmtree(SHARED, ignore_errors=True)


if __name__ == "__main__":
    main()
