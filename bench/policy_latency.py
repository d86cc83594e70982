#!/usr/bin/env python3
"""policy_latency -- what probed-policy adds to a cache hit.

    python3 bench/policy_latency.py [-n 10000] [--addresses 100] [--rounds 2]
        [--probed PATH] [--policy PATH] [--json]

Starts its own probed on a temporary socket, with a tiny SMTP responder on
127.0.0.1 (the addresses are address literals, user<N>@[127.0.0.1], so no
DNS is involved) that knows user0..user<K>; asks probed about each address
once so every one is in its cache (deliverable, cached=yes from then on),
then measures, one request at a time as Postfix sends them:

  direct   VERIFY <address> timeout=8 on probed's socket, answer read;
  policy   a Postfix policy request (the attributes Postfix 3.7 sends) on
           probed-policy's stdin, its action read from stdout -- the same
           VERIFY underneath, plus the adapter's work and one more pipe hop.

Each series is n requests over the cached addresses in turn, after a
warm-up of 500; the series alternate for --rounds rounds.  Reported: p50,
p90, p99 and max of each, and the difference of the percentiles (policy -
direct), which is what probed-policy adds.  Also the pipelined rate: n
requests written to probed-policy's stdin at once while its answers are
read.  probed-policy logs one line per decision to a file (-L) here, so
its logging is counted; probed logs at `info` to a file.

Figures, not a pass/fail test: run it by hand (it needs PROBED and
PROBED_POLICY, or --probed/--policy; as root, probed drops to `nobody`).
Timings include this script's own Python overhead on both sides, which
the difference cancels.
"""

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


def smtp_responder(sock, stop):
    """Accept sessions; RCPT for user* is 250, anything else 550 5.1.1."""
    def session(conn):
        f = conn.makefile("rwb", buffering=0)
        try:
            f.write(b"220 bench.test ESMTP\r\n")
            for raw in f:
                line = raw.decode("ascii", "replace").strip()
                verb = line[:4].upper()
                if verb in ("EHLO", "HELO"):
                    f.write(b"250-bench.test\r\n250-PIPELINING\r\n"
                            b"250 ENHANCEDSTATUSCODES\r\n")
                elif verb == "MAIL" or verb == "RSET" or verb == "NOOP":
                    f.write(b"250 2.0.0 Ok\r\n")
                elif verb == "RCPT":
                    local = line.split("<", 1)[-1].split("@", 1)[0]
                    if local.startswith("user"):
                        f.write(b"250 2.1.5 Ok\r\n")
                    else:
                        f.write(b"550 5.1.1 User unknown\r\n")
                elif verb == "QUIT":
                    f.write(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    f.write(b"502 5.5.2 Error\r\n")
        except OSError:
            pass
        finally:
            conn.close()

    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        except OSError:
            break
        threading.Thread(target=session, args=(conn,), daemon=True).start()


def percentile(sorted_ns, p):
    k = min(len(sorted_ns) - 1, max(0, int(round(p / 100.0 * (len(sorted_ns) - 1)))))
    return sorted_ns[k]


def summary(ns):
    s = sorted(ns)
    return {"p50": percentile(s, 50), "p90": percentile(s, 90),
            "p99": percentile(s, 99), "max": s[-1], "n": len(s)}


def read_line(sock, buf):
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("probed closed the connection")
        buf += chunk
    i = buf.index(b"\n")
    return bytes(buf[:i]), buf[i + 1:]


def direct_series(path, addrs, n, warm):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    buf = b""
    reqs = [("VERIFY %s timeout=8\n" % a).encode() for a in addrs]
    out = []
    clock = time.perf_counter_ns
    for i in range(warm + n):
        r = reqs[i % len(reqs)]
        t0 = clock()
        s.sendall(r)
        line, buf = read_line(s, buf)
        t1 = clock()
        if not line.startswith(b"deliverable "):
            raise SystemExit("unexpected answer from probed: %r" % line)
        if i >= warm:
            out.append(t1 - t0)
    s.close()
    return out


POLICY_ATTRS = (
    "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
    "helo_name=client.example.com\nqueue_id=\nsender=alice@example.com\n"
    "recipient=%s\nrecipient_count=0\nclient_address=192.0.2.10\n"
    "client_name=client.example.com\nreverse_client_name=client.example.com\n"
    "instance=12b4.6769a0b2.7c1a3.0\nsasl_method=\nsasl_username=\n"
    "sasl_sender=\nsize=0\nccert_subject=\nccert_issuer=\nccert_fingerprint=\n"
    "ccert_pubkey_fingerprint=\nencryption_protocol=TLSv1.3\n"
    "encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\n"
    "etrn_domain=\nstress=\nserver_address=192.0.2.1\nserver_port=25\n"
    "compatibility_level=3.6\nmail_version=3.7.11\n\n")


def start_policy(policy, conf, log):
    return subprocess.Popen([policy, "-c", conf, "-L", log],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def read_answer(fd, buf):
    while b"\n\n" not in buf:
        chunk = os.read(fd, 65536)
        if not chunk:
            raise SystemExit("probed-policy closed its output")
        buf += chunk
    i = buf.index(b"\n\n")
    return bytes(buf[:i]), buf[i + 2:]


def policy_series(policy, conf, log, addrs, n, warm):
    p = start_policy(policy, conf, log)
    wfd, rfd = p.stdin.fileno(), p.stdout.fileno()
    reqs = [(POLICY_ATTRS % a).encode() for a in addrs]
    buf = b""
    out = []
    clock = time.perf_counter_ns
    for i in range(warm + n):
        r = reqs[i % len(reqs)]
        t0 = clock()
        os.write(wfd, r)
        ans, buf = read_answer(rfd, buf)
        t1 = clock()
        if ans != b"action=DUNNO":
            raise SystemExit("unexpected answer from probed-policy: %r" % ans)
        if i >= warm:
            out.append(t1 - t0)
    p.stdin.close()
    p.wait(timeout=10)
    p.stdout.close()
    return out


def policy_pipelined(policy, conf, log, addrs, n):
    p = start_policy(policy, conf, log)
    data = b"".join((POLICY_ATTRS % addrs[i % len(addrs)]).encode()
                    for i in range(n))

    def writer():
        p.stdin.write(data)
        p.stdin.close()

    t0 = time.perf_counter_ns()
    th = threading.Thread(target=writer)
    th.start()
    got = p.stdout.read()
    t1 = time.perf_counter_ns()
    th.join()
    p.wait(timeout=10)
    answers = got.count(b"action=DUNNO\n\n")
    if answers != n:
        raise SystemExit("pipelined: %d answers for %d requests" % (answers, n))
    return (t1 - t0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--addresses", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--warm", type=int, default=500)
    ap.add_argument("--probed", default=os.environ.get("PROBED"))
    ap.add_argument("--policy", default=os.environ.get("PROBED_POLICY"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    for what, p in (("probed (--probed or PROBED)", a.probed),
                    ("probed-policy (--policy or PROBED_POLICY)", a.policy)):
        if not p or not os.access(p, os.X_OK):
            ap.error("need %s" % what)

    d = tempfile.mkdtemp(prefix="policy-bench-", dir="/tmp")
    os.chmod(d, 0o755)
    root = os.geteuid() == 0
    if root:
        nobody = pwd.getpwnam("nobody")
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    smtp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    smtp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    smtp.bind(("127.0.0.1", 0))
    smtp.listen(64)
    stop = threading.Event()
    threading.Thread(target=smtp_responder, args=(smtp, stop), daemon=True).start()

    sock = os.path.join(d, "probed.sock")
    conf = os.path.join(d, "probed.conf")
    with open(conf, "w") as f:
        f.write('socket = "%s";\nstate_dir = "%s";\nhelo_name = "bench.test";\n'
                'log_level = "info";\n%s'
                'dns: { servers = [ "127.0.0.1:9" ]; };\n'
                'smtp: { port = %d; allow_networks = [ "127.0.0.0/8" ]; };\n'
                'limits: { domain_rate = 1000.0; domain_burst = 1000; };\n'
                'policy: { wait = 8.0; };\n'
                % (sock, d, 'user = "nobody";\n' if root else "",
                   smtp.getsockname()[1]))
    plog = os.path.join(d, "probed.log")
    with open(plog, "ab") as lf:
        probed = subprocess.Popen([a.probed, "-f", "-c", conf], stdout=lf,
                                  stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(sock)
                s.sendall(b"PING\n")
                if s.recv(100).startswith(b"pong"):
                    s.close()
                    break
                s.close()
            except OSError:
                pass
            if time.monotonic() > deadline or probed.poll() is not None:
                raise SystemExit("probed did not start; see %s" % plog)
            time.sleep(0.05)

        addrs = ["user%d@[127.0.0.1]" % i for i in range(a.addresses)]
        # Warm the cache: one probe per address, pipelined.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(b"".join(("VERIFY %s timeout=30\n" % x).encode() for x in addrs))
        buf = b""
        for x in addrs:
            line, buf = read_line(s, buf)
            if not line.startswith(b"deliverable "):
                raise SystemExit("warming %s: %r" % (x, line))
        s.close()

        log = os.path.join(d, "policy.log")
        direct, policy = [], []
        for _ in range(a.rounds):
            direct += direct_series(sock, addrs, a.n, a.warm)
            policy += policy_series(a.policy, conf, log, addrs, a.n, a.warm)
        per_req_pipelined = policy_pipelined(a.policy, conf, log, addrs, a.n)
        ds, ps = summary(direct), summary(policy)
        added = {k: ps[k] - ds[k] for k in ("p50", "p90", "p99")}
        result = {"requests_per_series": a.n, "rounds": a.rounds,
                  "addresses": a.addresses, "direct_ns": ds, "policy_ns": ps,
                  "added_ns": added, "pipelined_ns_per_request": per_req_pipelined}
        if a.json:
            print(json.dumps(result, indent=1))
        else:
            us = lambda v: "%8.1f us" % (v / 1000.0)
            print("policy_latency: %d requests x %d rounds, %d cached addresses"
                  % (a.n, a.rounds, a.addresses))
            print("%-34s %11s %11s %11s %11s" % ("", "p50", "p90", "p99", "max"))
            print("%-34s %s %s %s %s" % ("VERIFY on probed's socket",
                  us(ds["p50"]), us(ds["p90"]), us(ds["p99"]), us(ds["max"])))
            print("%-34s %s %s %s %s" % ("policy request to probed-policy",
                  us(ps["p50"]), us(ps["p90"]), us(ps["p99"]), us(ps["max"])))
            print("%-34s %s %s %s" % ("added by probed-policy",
                  us(added["p50"]), us(added["p90"]), us(added["p99"])))
            print("pipelined through probed-policy: %.1f us per request "
                  "(%.0f requests/s)" % (per_req_pipelined / 1000.0,
                                         1e9 / per_req_pipelined))
            print("target: p99 added < 1000 us: %s" %
                  ("met" if added["p99"] < 1e6 else "NOT met"))
    finally:
        probed.send_signal(signal.SIGTERM)
        try:
            probed.wait(timeout=10)
        except subprocess.TimeoutExpired:
            probed.kill()
            probed.wait()
        stop.set()
        smtp.close()
        if a.keep:
            print("kept %s" % d, file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
