"""harness -- integration test support for probed (tier 3 of style.md).

Owns: a temporary directory per test case (kept and named when the case
fails), probed configuration files, starting probed (`-f -c FILE`, output to
a log file in the case directory, an optional PROBED_WRAPPER such as
"valgrind --error-exitcode=99 -q" in front of it), readiness by polling PING,
stopping by PID, a line-protocol client with deadlines, and the TAP-like
output `ok - ...` / `not ok - ...` with a final `N passed, N failed` line.

Exit status (automake): 0 pass, 1 a check failed, 77 nothing could run here,
99 the harness itself broke (an exception in test code, a missing binary).

Limits: every wait has a deadline, so a hung daemon fails the test instead of
hanging CI.  Deadlines are multiplied by PROBED_TIMEOUT_SCALE (default 1, or 10
when PROBED_WRAPPER is set, since valgrind is that much slower).  Each case
also runs under an interval timer (CASE_BUDGET seconds, scaled).

Safety: the harness only ever signals processes it started itself, by PID;
an atexit hook, SIGTERM/SIGINT/SIGHUP handlers and PR_SET_PDEATHSIG make sure
none outlive the test.  Nothing here talks to anything but Unix sockets in
the case directory; the DNS server probed is given by default is a UDP
socket on 127.0.0.1 that the case holds and never reads (Case.dns_sink), so
no probe ever leaves loopback or gets an answer.
"""

import atexit
import ctypes
import errno
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_SKIP = 77
EXIT_HARD = 99

READY_TIMEOUT = 10.0     # probed must answer PING this soon after start
STOP_TIMEOUT = 10.0      # and exit this soon after SIGTERM
IO_TIMEOUT = 5.0         # default for one request/response exchange
CASE_BUDGET = 40.0       # a whole case, unless the case says otherwise
FILE_BUDGET = 300.0      # a whole test file, however broken probed is
HUNG_CASES = 3           # this many cases in a row ending on a deadline: stop
LOG_TAIL_LINES = 200     # how much of a daemon log a failure prints
RUN_AS = "nobody"        # the account probed drops to when tests run as root


def _scale():
    v = os.environ.get("PROBED_TIMEOUT_SCALE")
    if v:
        try:
            f = float(v)
            if f > 0:
                return f
        except ValueError:
            pass
    return 10.0 if os.environ.get("PROBED_WRAPPER", "").strip() else 1.0


SCALE = _scale()


def T(seconds):
    """A deadline length, scaled for slow wrappers."""
    return seconds * SCALE


def now():
    return time.monotonic()


# ---------------------------------------------------------------- errors

class Failure(Exception):
    """A check failed in a way that ends the case (not a harness bug)."""


class Timeout(Failure):
    """A deadline passed.  `lines` holds what was read before it did."""

    def __init__(self, msg, lines=None):
        Failure.__init__(self, msg)
        self.lines = lines or []


class NotReady(Timeout):
    """probed never answered PING after start."""


class HardError(Exception):
    """The harness cannot do its job (missing binary, broken environment)."""


class Skip(Exception):
    """This case cannot run here."""


class _CaseTimeout(BaseException):
    """Raised from SIGALRM when a case overruns its budget."""


class _Terminated(BaseException):
    """Raised when the test process itself is asked to stop."""


# ---------------------------------------------------------------- processes

_started = []   # every Popen the harness made, for the last-resort cleanup


def _pdeathsig():
    # Runs in the child before exec: if this test process dies (even by
    # SIGKILL) the child gets SIGKILL instead of living on.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
    except Exception:
        pass


def spawn(argv, env=None, stdin=None, stdout=None, stderr=None, pass_fds=()):
    """Start a process the harness will be able to clean up."""
    p = subprocess.Popen(argv, env=env, stdin=stdin, stdout=stdout,
                         stderr=stderr, pass_fds=pass_fds,
                         start_new_session=True, preexec_fn=_pdeathsig)
    _started.append(p)
    return p


def _kill_started():
    for p in _started:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_started)


def _on_signal(signum, frame):
    raise _Terminated("test process got signal %d" % signum)


def _on_alarm(signum, frame):
    raise _CaseTimeout()


def binary(var):
    """Path of a program under test from the environment, or HardError."""
    path = os.environ.get(var)
    if not path:
        raise HardError("%s is not set (run through `make check`)" % var)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise HardError("%s=%s is not an executable file" % (var, path))
    return path


def wrapper():
    return shlex.split(os.environ.get("PROBED_WRAPPER", ""))


def base_env(extra=None):
    """The environment for programs under test: ours, minus anything that
    would make probed think systemd is talking to it."""
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
              "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    if extra:
        env.update(extra)
    return env


def run(argv, input=None, timeout=30.0, env=None):
    """Run a short-lived program to completion with a deadline; returns
    (returncode, stdout, stderr) as text.  Timeout if it overruns."""
    p = spawn(argv, env=env if env is not None else base_env(),
              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE)
    if isinstance(input, str):
        input = input.encode("utf-8", "surrogateescape")
    try:
        out, err = p.communicate(input=input, timeout=T(timeout))
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise Timeout("%s did not finish within %.0f s" % (argv[0], T(timeout)))
    return (p.returncode, out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"))


def rss_kb(pid):
    """Resident set size of pid in kB, from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise HardError("no VmRSS for pid %d" % pid)


# ---------------------------------------------------------------- config

def _conf_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[ " + ", ".join(_conf_value(x) for x in v) + " ]"
    if isinstance(v, dict):
        return "{ " + " ".join("%s = %s;" % (k, _conf_value(x))
                               for k, x in v.items()) + " }"
    raise TypeError("cannot write %r into a config" % (v,))


def _merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        elif v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def config_text(settings):
    """libconfig text, one top-level key per line (so tests know lines)."""
    return "".join("%s = %s;\n" % (k, _conf_value(v)) for k, v in settings.items())


# ---------------------------------------------------------------- protocol

def parse_kv(text):
    """Split `k=v k="quoted \\" v"` into a dict; bare words map to None.
    Raises ValueError on an unterminated quote."""
    out = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] == " ":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and text[j] not in " =":
            j += 1
        key = text[i:j]
        if j >= n or text[j] == " ":
            out[key] = None
            i = j
            continue
        j += 1
        if j < n and text[j] == '"':
            j += 1
            val = []
            while True:
                if j >= n:
                    raise ValueError("unterminated quoted value in %r" % text)
                c = text[j]
                if c == "\\" and j + 1 < n:
                    val.append(text[j + 1])
                    j += 2
                elif c == '"':
                    j += 1
                    break
                else:
                    val.append(c)
                    j += 1
            out[key] = "".join(val)
        else:
            k = j
            while j < n and text[j] != " ":
                j += 1
            out[key] = text[k:j]
        i = j
    return out


_ERROR_RE = re.compile(r'^error ([a-z_]+)(?: text="(?:[^"\\]|\\.)*")?$')


def error_reason(line):
    """'bad_argument' for `error bad_argument text="..."`, else None."""
    if line is None:
        return None
    m = _ERROR_RE.match(line)
    return m.group(1) if m else None


def parse_stats(line):
    """Counters of a `stats k=v ...` line as ints (non-numeric kept as str);
    None when the line is not a stats line."""
    if line is None or not line.startswith("stats"):
        return None
    if line != "stats" and not line.startswith("stats "):
        return None
    try:
        kv = parse_kv(line[5:])
    except ValueError:
        return None
    out = {}
    for k, v in kv.items():
        try:
            out[k] = int(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


VERDICTS = ("deliverable", "undeliverable", "risky", "unknown")


def _address_end(text, i):
    """End of the address token starting at i: a quoted local part may hold
    spaces (RFC 5321 quoted string, backslash escapes the next octet)."""
    n = len(text)
    quoted = False
    while i < n:
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == " ":
            break
        i += 1
    return i


def parse_result(line):
    """(verdict, address, {key: value}) of a VERIFY/CHECK answer, or None."""
    if line is None:
        return None
    sp = line.find(" ")
    if sp < 0 or line[:sp] not in VERDICTS:
        return None
    end = _address_end(line, sp + 1)
    try:
        kv = parse_kv(line[end:])
    except ValueError:
        return None
    if "reason" not in kv:
        return None
    return line[:sp], line[sp + 1:end], kv


def is_result(line, verdict, address, reason):
    r = parse_result(line)
    return r is not None and r[0] == verdict and r[1] == address and \
        r[2].get("reason") == reason


def _poll1(sock, events, timeout):
    """poll(2) on one socket (select() cannot take descriptors >= 1024)."""
    p = select.poll()
    p.register(sock.fileno(), events)
    r = p.poll(max(0, int(timeout * 1000)))
    return r[0][1] if r else 0


def _enc(x):
    if isinstance(x, str):
        return x.encode("utf-8", "surrogateescape")
    return bytes(x)


def _dec(b):
    return bytes(b).decode("utf-8", "surrogateescape")


class Client:
    """One connection to the control socket.  Non-blocking underneath; every
    method has a deadline.  Lines come back as str without the LF (octets
    that are not UTF-8 survive as surrogate escapes)."""

    def __init__(self, path, timeout=IO_TIMEOUT):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        # A non-blocking connect to a Unix socket whose backlog is full
        # fails with EAGAIN (there is no EINPROGRESS): retry to a deadline.
        deadline = now() + T(timeout)
        while True:
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                if now() >= deadline:
                    self.sock.close()
                    raise Timeout("connect to %s: backlog full for %.1f s" %
                                  (path, T(timeout)))
                time.sleep(0.005)
            except BaseException:
                self.sock.close()
                raise
        self.buf = bytearray()     # a partial line not yet terminated
        self.lines = []            # complete lines not yet taken
        self.eof = False
        self.send_error = None     # errno name when the daemon stopped reading us
        self.sent = 0

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # -- low level: one non-blocking step each
    def _recv_some(self):
        try:
            chunk = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return
        if b"\n" in chunk:
            self.buf += chunk
            k = self.buf.rfind(b"\n")
            done = bytes(self.buf[:k])
            del self.buf[:k + 1]
            self.lines.extend(_dec(x) for x in done.split(b"\n"))
        else:
            self.buf += chunk

    def _send_some(self, view):
        try:
            n = self.sock.send(view[:262144])
        except (BlockingIOError, InterruptedError):
            return 0
        except (BrokenPipeError, ConnectionResetError) as e:
            self.send_error = errno.errorcode.get(e.errno, str(e.errno))
            return -1
        self.sent += n
        return n

    def _take(self, n):
        got = self.lines[:n]
        del self.lines[:n]
        return got

    # -- the pump everything else is built on
    def exchange(self, data=b"", nlines=0, timeout=IO_TIMEOUT, stop_at_eof=True):
        """Send data while reading, until nlines lines came back.  Returns
        the lines; fewer only when the daemon closed the connection.
        Raises Timeout (with the partial lines) at the deadline."""
        data = memoryview(_enc(data))
        pos = 0
        got = []
        deadline = now() + T(timeout)
        poller = select.poll()
        fd = self.sock.fileno()
        registered = None
        while True:
            if self.lines:
                got.extend(self._take(nlines - len(got)))
            if len(got) >= nlines:
                return got
            if self.eof:
                if stop_at_eof:
                    return got
                raise Failure("connection closed after %d of %d lines" %
                              (len(got), nlines))
            want = select.POLLIN
            if pos < len(data) and self.send_error is None:
                want |= select.POLLOUT
            if want != registered:
                if registered is None:
                    poller.register(fd, want)
                else:
                    poller.modify(fd, want)
                registered = want
            left = deadline - now()
            if left <= 0:
                raise Timeout("%d of %d lines after %.1f s (sent %d of %d octets)"
                              % (len(got), nlines, T(timeout), pos, len(data)), got)
            for _, ev in poller.poll(max(1, int(left * 1000))):
                if ev & select.POLLOUT and pos < len(data):
                    n = self._send_some(data[pos:])
                    if n > 0:
                        pos += n
                if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    self._recv_some()
                    if ev & (select.POLLHUP | select.POLLERR) and not self.eof:
                        # drain what is left, then the EOF
                        self._recv_some()

    def send(self, data, timeout=IO_TIMEOUT):
        """Send all of data, reading nothing (responses stay queued in the
        socket).  Only for amounts probed will take without us reading."""
        data = memoryview(_enc(data))
        pos = 0
        deadline = now() + T(timeout)
        while pos < len(data):
            left = deadline - now()
            if left <= 0:
                raise Timeout("sent only %d of %d octets in %.1f s" %
                              (pos, len(data), T(timeout)))
            if _poll1(self.sock, select.POLLOUT, left):
                n = self._send_some(data[pos:])
                if n < 0:
                    raise Failure("send failed: %s" % self.send_error)
                pos += n

    def sendline(self, line, timeout=IO_TIMEOUT):
        self.send(_enc(line) + b"\n", timeout)

    def stuff(self, data, stall=0.5, timeout=20.0):
        """Send without ever reading until all is sent or the daemon has
        taken nothing for `stall` seconds (it stopped reading us).  Returns
        the number of octets sent.  (Like every duration the harness takes,
        stall and timeout are unscaled: T() is applied here.)"""
        data = memoryview(_enc(data))
        pos = 0
        deadline = now() + T(timeout)
        stall = T(stall)
        last_progress = now()
        while pos < len(data) and self.send_error is None:
            t = now()
            if t >= deadline or t - last_progress >= stall:
                break
            if _poll1(self.sock, select.POLLOUT,
                      min(deadline - t, stall - (t - last_progress))):
                n = self._send_some(data[pos:])
                if n > 0:
                    pos += n
                    last_progress = now()
        return pos

    def readline(self, timeout=IO_TIMEOUT):
        """Next line, or None at EOF.  Raises Timeout."""
        got = self.exchange(b"", 1, timeout)
        return got[0] if got else None

    def readlines(self, n, timeout=IO_TIMEOUT):
        return self.exchange(b"", n, timeout)

    def request(self, line, timeout=IO_TIMEOUT):
        """Send one line, return its response (None when the daemon closed)."""
        got = self.exchange(_enc(line) + b"\n", 1, timeout)
        return got[0] if got else None

    def pipeline(self, lines, timeout=IO_TIMEOUT, eol=b"\n"):
        """Send all lines in one go while reading; one response per line."""
        data = b"".join(_enc(x) + eol for x in lines)
        return self.exchange(data, len(lines), timeout)

    def read_to_eof(self, timeout=IO_TIMEOUT):
        """All lines until the daemon closes.  Returns (lines, partial) where
        partial holds octets after the last LF.  Raises Timeout."""
        got = []
        deadline = now() + T(timeout)
        while True:
            got.extend(self._take(len(self.lines)))
            if self.eof:
                return got, bytes(self.buf)
            left = deadline - now()
            if left <= 0:
                raise Timeout("no EOF after %.1f s (%d lines read)" %
                              (T(timeout), len(got)), got)
            if _poll1(self.sock, select.POLLIN, left):
                self._recv_some()

    def expect_eof(self, timeout=IO_TIMEOUT):
        """True when the daemon closes with nothing more to say."""
        lines, partial = self.read_to_eof(timeout)
        return not lines and not partial


def exchange_all(jobs, timeout=IO_TIMEOUT):
    """Drive many clients at once: jobs is a list of (client, data, nlines).
    Returns the list of line lists, in job order.  Raises Timeout naming how
    many clients are still waiting."""
    state = []
    poller = select.poll()
    byfd = {}
    for i, (c, data, n) in enumerate(jobs):
        st = {"c": c, "data": memoryview(_enc(data)), "pos": 0, "n": n,
              "got": [], "done": False}
        state.append(st)
        byfd[c.fileno()] = st
        poller.register(c.fileno(), select.POLLIN | select.POLLOUT)
    pending = len(state)

    def settle(st):
        nonlocal pending
        c = st["c"]
        if c.lines:
            st["got"].extend(c._take(st["n"] - len(st["got"])))
        if len(st["got"]) >= st["n"] or c.eof:
            st["done"] = True
            pending -= 1
            poller.unregister(c.fileno())
        elif st["pos"] >= len(st["data"]) or c.send_error is not None:
            poller.modify(c.fileno(), select.POLLIN)

    deadline = now() + T(timeout)
    while pending:
        left = deadline - now()
        if left <= 0:
            raise Timeout("%d of %d clients still waiting after %.1f s" %
                          (pending, len(state), T(timeout)))
        for fd, ev in poller.poll(max(1, int(left * 1000))):
            st = byfd[fd]
            if st["done"]:
                continue
            c = st["c"]
            if ev & select.POLLOUT and st["pos"] < len(st["data"]):
                k = c._send_some(st["data"][st["pos"]:])
                if k > 0:
                    st["pos"] += k
            if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                c._recv_some()
            settle(st)
    return [st["got"] for st in state]


def ping_ok(path, timeout=1.0):
    """One fresh connection, one PING; True when `pong` came back in time."""
    try:
        with Client(path, timeout) as c:
            return c.request("PING", timeout) == "pong"
    except (OSError, Failure):
        return False


# ---------------------------------------------------------------- probed

class Probed:
    """One probed process started by a case."""

    def __init__(self, case, name, conf_path, socket_path, argv_extra=(),
                 env=None, prefix=()):
        self.case = case
        self.name = name
        self.conf = conf_path
        self.socket = socket_path
        self.log_path = os.path.join(case.dir, name + ".log")
        self.argv = (list(prefix) + wrapper() + [binary("PROBED"), "-f",
                     "-c", conf_path] + list(argv_extra))
        self.env = base_env(env)
        self.proc = None
        self.reaped = False        # the test saw it exit: teardown leaves it be

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        logf = open(self.log_path, "ab")
        try:
            self.proc = spawn(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                              stdout=logf, stderr=subprocess.STDOUT)
        finally:
            logf.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Poll PING until `pong`; Failure when probed exits or the deadline
        passes."""
        deadline = now() + T(timeout)
        last = "no attempt"
        while True:
            if not self.alive():
                raise Failure("%s exited with status %s before answering PING"
                              % (self.name, self.proc.returncode))
            left = deadline - now()
            if left <= 0:
                raise NotReady("%s not ready after %.0f s (%s)" %
                              (self.name, T(timeout), last))
            attempt = min(left / SCALE, 1.0)    # unscaled, as Client wants
            try:
                with Client(self.socket, attempt) as c:
                    r = c.request("PING", attempt)
                    if r == "pong":
                        return self
                    last = "PING answered %r" % (r,)
            except (OSError, Failure) as e:     # not there yet, refused, ...
                last = str(e)
            time.sleep(0.02)

    def client(self, timeout=IO_TIMEOUT):
        return Client(self.socket, timeout)

    def request(self, line, timeout=IO_TIMEOUT):
        with self.client() as c:
            return c.request(line, timeout)

    def served_client(self, timeout=IO_TIMEOUT):
        """A connection that PING proves probed serves, retrying while it
        answers `error busy` (clients that just closed may not be reaped
        yet).  Returns (client, number of busy refusals seen)."""
        deadline = now() + T(timeout)
        busy = 0
        while True:
            cl = self.client()
            try:
                r = cl.request("PING")
            except Failure:
                r = None
            if r == "pong":
                return cl, busy
            cl.close()
            if error_reason(r) == "busy":
                busy += 1
            if now() >= deadline:
                raise Failure("no connection served within %.1f s (last answer %r)"
                              % (T(timeout), r))
            time.sleep(0.02)

    def stats(self, timeout=IO_TIMEOUT):
        line = self.request("STATS", timeout)
        st = parse_stats(line)
        if st is None:
            raise Failure("STATS answered %r" % (line,))
        return st

    def wait_clients(self, n, timeout=IO_TIMEOUT):
        """Poll STATS until clients=n (the STATS connection included);
        returns the last stats seen."""
        deadline = now() + T(timeout)
        while True:
            try:
                st = self.stats()
            except Failure:
                # refused while closed clients are not yet reaped (busy)
                if now() >= deadline:
                    raise
                time.sleep(0.02)
                continue
            if st.get("clients") == n or now() >= deadline:
                return st
            time.sleep(0.02)

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Exit status, or Timeout."""
        try:
            status = self.proc.wait(timeout=T(timeout))
        except subprocess.TimeoutExpired:
            raise Timeout("%s (pid %d) still running after %.0f s" %
                          (self.name, self.proc.pid, T(timeout)))
        self.reaped = True
        return status

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait; SIGKILL as the last resort.  Returns the status
        (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.alive():
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            status = self.proc.wait(timeout=T(timeout))
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            status = "hung, SIGKILLed"
        self.reaped = True
        return status

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=IO_TIMEOUT):
        """Poll the log for a regex; returns the match or None at the deadline."""
        rx = re.compile(pattern)
        deadline = now() + T(timeout)
        while True:
            m = rx.search(self.log())
            if m or now() >= deadline:
                return m
            time.sleep(0.02)


_SANITIZER_RE = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                           r"runtime error:|==\d+== (Invalid|Conditional|"
                           r"Syscall param|Mismatched)|definitely lost: [1-9])")


class Case:
    """One test case: its directory, its daemons, its checks."""

    def __init__(self, suite, name):
        self.suite = suite
        self.name = name
        base = os.environ.get("TMPDIR") or "/tmp"
        # sun_path holds 108 octets: keep socket paths short
        if len(base) > 40:
            base = "/tmp"
        self.dir = tempfile.mkdtemp(prefix="probed-%s-" % name[:12], dir=base)
        if os.geteuid() == 0:
            # probed started as root drops to RUN_AS (settings()): it must
            # read its config here on SIGHUP and remove its socket at exit
            pw = pwd.getpwnam(RUN_AS)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.daemons = []
        self.failed = 0
        self.passed = 0
        self._dns_sink = None

    # -- checks
    def check(self, cond, desc, detail=None):
        self.suite.n_checks += 1
        if cond:
            self.passed += 1
            self.suite.passed += 1
            print("ok - %s: %s" % (self.name, desc), flush=True)
        else:
            self.failed += 1
            self.suite.failed += 1
            print("not ok - %s: %s" % (self.name, desc), flush=True)
            if detail is not None:
                for line in str(detail).splitlines() or [""]:
                    print("#   %s" % line[:2000])
            sys.stdout.flush()
        return bool(cond)

    def eq(self, got, want, desc):
        return self.check(got == want, desc,
                          "got:  %r\nwant: %r" % (got, want))

    def require(self, cond, desc, detail=None):
        """A check whose failure makes the rest of the case meaningless."""
        if not self.check(cond, desc, detail):
            raise Failure("stopping case after: %s" % desc)

    def skip(self, desc, why):
        self.suite.skipped += 1
        print("ok - %s: %s # SKIP %s" % (self.name, desc, why), flush=True)

    def note(self, text):
        for line in str(text).splitlines():
            print("# %s" % line)

    # -- files and daemons
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def dns_sink(self):
        """"127.0.0.1:PORT" of a UDP socket this case holds and never reads:
        a DNS server that never answers (no ICMP error either), whatever
        the host runs on 127.0.0.1:53.  A VERIFY of a domain name then
        stays in DNS until dns.timeout (x3, udns retries) runs out."""
        if self._dns_sink is None:
            self._dns_sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._dns_sink.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % self._dns_sink.getsockname()[1]

    def settings(self, overrides=None, socket_path=None, name="probed"):
        """Minimal settings plus overrides (nested dicts merge; None drops)."""
        s = {
            "socket": socket_path or self.path(name + ".sock"),
            "state_dir": self.dir,
            "log_level": "debug",
            # never the host's resolvers: tests stay on loopback, and only
            # tests/integration/engine.py (the lab) gets DNS answers
            "dns": {"servers": [self.dns_sink()]},
        }
        if os.geteuid() == 0:
            s["user"] = RUN_AS      # probed refuses to run as root
        return _merge(s, overrides or {})

    def write_config(self, name, content):
        """content: a settings dict or raw text."""
        p = self.path(name)
        if isinstance(content, dict):
            content = config_text(content)
        with open(p, "w") as f:
            f.write(content)
        return p

    def probed(self, overrides=None, name="probed", start=True, ready=True,
               env=None, conf=None, socket_path=None, argv_extra=(), prefix=()):
        """Write a config (unless conf is given), start probed, wait for PING."""
        sock = socket_path
        if conf is None:
            settings = self.settings(overrides, socket_path, name)
            sock = settings["socket"]
            conf = self.write_config(name + ".conf", settings)
        elif sock is None:
            sock = self.path(name + ".sock")
        d = Probed(self, name, conf, sock, argv_extra, env, prefix)
        self.daemons.append(d)
        if start:
            d.start()
            if ready:
                d.wait_ready()
        return d

    def run(self, argv, input=None, timeout=30.0, env=None):
        return run(argv, input, timeout, env)

    # -- end of case
    def teardown(self):
        """Stop what is still running and check it ends cleanly: exit 0 on
        SIGTERM, no sanitizer or valgrind report in its log."""
        for d in self.daemons:
            if d.proc is None:
                continue
            if not d.reaped:
                was_alive = d.alive()
                status = d.stop()
                if not was_alive:
                    if self.failed:
                        self.note("%s had exited with status %s before the end"
                                  % (d.name, status))
                    else:
                        self.check(False, "%s was still running at the end" % d.name,
                                   "it had exited with status %s" % status)
                else:
                    self.eq(status, 0, "%s exits 0 on SIGTERM at the end" % d.name)
            m = _SANITIZER_RE.search(d.log())
            self.check(m is None, "%s log has no sanitizer/valgrind report" % d.name,
                       m and m.group(0))
        if self._dns_sink is not None:
            self._dns_sink.close()
            self._dns_sink = None

    def dump_logs(self):
        for d in self.daemons:
            text = d.log()
            lines = text.splitlines()
            print("# ---- %s log (%s), last %d of %d lines ----" %
                  (d.name, d.log_path, min(len(lines), LOG_TAIL_LINES), len(lines)))
            for line in lines[-LOG_TAIL_LINES:]:
                print("# | %s" % line[:1000])
            print("# ---- end of %s log ----" % d.name)


class Suite:
    """The cases of one test file.

        suite = harness.Suite("protocol")

        @suite.case
        def verbs(c): ...

        suite.main()
    """

    def __init__(self, name):
        self.name = name
        self.cases = []
        self.passed = self.failed = self.skipped = self.n_checks = 0
        self.hard = False
        self.needs = []
        self.file_deadline = now() + T(FILE_BUDGET)

    def case(self, fn=None, budget=CASE_BUDGET):
        def add(f):
            self.cases.append((f.__name__, f, budget))
            return f
        return add(fn) if fn is not None else add

    def require_binary(self, var):
        self.needs.append(var)

    def _run_case(self, name, fn, budget):
        """Run one case; returns True when it ended on a deadline."""
        c = Case(self, name)
        errored = False
        hung = False
        budget = min(T(budget), max(1.0, self.file_deadline - now()))
        signal.setitimer(signal.ITIMER_REAL, budget)
        try:
            try:
                fn(c)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except Skip as e:
            c.skip("whole case", str(e))
        except Failure as e:
            c.check(False, "case ended early", str(e))
            if isinstance(e, Timeout):
                hung = True
                if e.lines:
                    c.note("last lines read: %r" % (e.lines[-5:],))
        except _CaseTimeout:
            c.check(False, "case finished within %.0f s" % budget)
            hung = True
        except (ConnectionError, FileNotFoundError) as e:
            # the daemon went away or never made its socket: its fault
            c.check(False, "case ended early: connection error",
                    traceback.format_exc())
        except HardError as e:
            c.check(False, "harness error", str(e))
            errored = True
        except Exception:
            c.check(False, "harness error (exception in test code)",
                    traceback.format_exc())
            errored = True
        try:
            signal.setitimer(signal.ITIMER_REAL, T(STOP_TIMEOUT) * 3)
            try:
                c.teardown()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _CaseTimeout:
            c.check(False, "teardown finished in time")
        except Exception:
            c.check(False, "harness error in teardown", traceback.format_exc())
            errored = True
        if c.failed:
            c.dump_logs()
            print("# %s: case directory kept: %s" % (name, c.dir), flush=True)
        else:
            shutil.rmtree(c.dir, ignore_errors=True)
        if errored:
            self.hard = True
        return hung

    def main(self):
        # Responses may hold any octet: never die printing one.
        sys.stdout.reconfigure(errors="backslashreplace")
        signal.signal(signal.SIGALRM, _on_alarm)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, _on_signal)
        # Writing to a daemon that closed on us must be an error, not death.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        status = EXIT_PASS
        try:
            try:
                for var in self.needs:
                    binary(var)
            except HardError as e:
                print("not ok - %s: %s" % (self.name, e))
                print("0 passed, 1 failed")
                sys.exit(EXIT_HARD)
            only = os.environ.get("PROBED_TEST_ONLY")   # developer convenience
            self.file_deadline = now() + T(FILE_BUDGET)
            hung = 0
            for name, fn, budget in self.cases:
                if only and name not in only.split(","):
                    continue
                if hung >= HUNG_CASES or now() >= self.file_deadline:
                    # probed hangs: do not spend minutes proving it again
                    self.failed += 1
                    print("not ok - %s: not run (%s)" % (name,
                          "%d cases in a row hit a deadline" % hung
                          if hung >= HUNG_CASES else "test file out of time"))
                    continue
                hung = hung + 1 if self._run_case(name, fn, budget) else 0
        except _Terminated as e:
            print("not ok - %s: interrupted (%s)" % (self.name, e))
            self.failed += 1
        finally:
            _kill_started()
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        if self.hard:
            status = EXIT_HARD
        elif self.failed:
            status = EXIT_FAIL
        elif self.passed == 0 and self.skipped:
            status = EXIT_SKIP
        sys.exit(status)
