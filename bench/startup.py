#!/usr/bin/env python3
"""startup -- how long probed takes to come up on a full persistent cache.

    bench/startup.py [BUILD_DIR] [--sizes 0,100000,1000000] [--runs 5]
                     [--base DIR] [--keep]

For each size N: bench/seed_store writes N verdicts (and their domains'
facts) into a fresh state_dir, exactly as probed would have left them;
then probed is started on it RUNS times and the benchmark measures, per
run, the time from exec to the first PING answered (probed loads the whole
store before it opens its socket, so this is the start-up a client waits
for) and probed's resident memory once it answers.  The table shows the
median run (and the range), the load time probed logs itself (load_ms),
RSS (which includes the store file's pages LMDB mapped while loading:
clean, shared, reclaimable) and its anonymous part (the caches themselves),
and one more run with the store file dropped from the page cache
(posix_fadvise DONTNEED on that file only): a start right after boot.
The target of issue #4 is < 2 s for 1,000,000 verdicts (warm).

Binaries: PROBED (default BUILD_DIR/src/probed/probed) and SEED_STORE
(default BUILD_DIR/bench/seed_store; when missing, `make -C BUILD_DIR
bench/seed_store` is tried, then a direct compile with cc from the
sources next to this script and BUILD_DIR's autoconfig.h and libprobe.a).
BUILD_DIR defaults to the current directory.

Figures, never pass/fail: the exit status is 0 when every run answered
PING, 1 otherwise (2 for bad usage).  As root, probed runs as `nobody`
(it refuses root) and the state directories are given to that account.
Safety: only processes started here are signalled, by PID; the
directories are made under --base (default $TMPDIR or /tmp) and removed
unless --keep.  Nothing touches the network: probed gets no VERIFY.
"""

import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)
TARGET_N = 1000000
TARGET_MS = 2000.0
READY_TIMEOUT = 120.0
RUN_AS = "nobody"


def die(msg, status=1):
    print("startup: %s" % msg, file=sys.stderr)
    sys.exit(status)


def executable(p):
    return p and os.path.isfile(p) and os.access(p, os.X_OK)


def find_probed(build):
    p = os.environ.get("PROBED") or os.path.join(build, "src/probed/probed")
    if not executable(p):
        die("no probed at %s (give a build directory or set PROBED)" % p, 2)
    return os.path.abspath(p)


def make_vars(build):
    """The configure results compiling and linking depend on, from the
    build directory's Makefile (a sanitizer build's libprobe.a wants its
    flags at link time too)."""
    want = ("CC", "SAN_CFLAGS", "SAN_LDFLAGS", "LMDB_CFLAGS", "LMDB_LIBS",
            "SYSTEMD_CFLAGS", "SYSTEMD_LIBS")
    out = {"CC": "cc", "LMDB_LIBS": "-llmdb", "SYSTEMD_LIBS": "-lsystemd"}
    try:
        with open(os.path.join(build, "Makefile")) as f:
            for line in f:
                k, sep, v = line.partition("=")
                k = k.strip()
                if sep and k in want and not k.endswith(":"):
                    out[k] = v.strip()
    except OSError:
        pass
    if os.environ.get("CC"):
        out["CC"] = os.environ["CC"]
    return out


def compile_seed_store(build, out):
    """cc the seeder from the sources, as Makefile.am's EXTRA_PROGRAMS
    entry would."""
    lib = os.path.join(build, "src/lib/libprobe.a")
    conf = os.path.join(build, "autoconfig.h")
    if not (os.path.isfile(lib) and os.path.isfile(conf)):
        return False
    mv = make_vars(build)
    src = os.path.join(SRCDIR, "src/probed")
    argv = mv["CC"].split() + ["-std=gnu11", "-O2", "-I", build,
                               "-I", os.path.join(SRCDIR, "include"), "-I", src] + \
        (mv.get("SAN_CFLAGS", "") + " " + mv.get("LMDB_CFLAGS", "") + " " +
         mv.get("SYSTEMD_CFLAGS", "")).split() + \
        ["-o", out, os.path.join(HERE, "seed_store.c")] + \
        [os.path.join(src, f) for f in ("cache.c", "domain.c", "hmap.c",
                                        "store.c")] + \
        [lib] + (mv.get("SAN_LDFLAGS", "") + " " + mv["LMDB_LIBS"] + " " +
                 mv["SYSTEMD_LIBS"]).split()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        print(r.stdout.decode("utf-8", "replace"), file=sys.stderr)
    return r.returncode == 0


def find_seed_store(build, scratch):
    p = os.environ.get("SEED_STORE")
    if p:
        if not executable(p):
            die("SEED_STORE=%s is not executable" % p, 2)
        return os.path.abspath(p)
    p = os.path.join(build, "bench/seed_store")
    if executable(p):
        return os.path.abspath(p)
    if os.path.isfile(os.path.join(build, "Makefile")):
        subprocess.run(["make", "-C", build, "-s", "bench/seed_store"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if executable(p):
            return os.path.abspath(p)
    out = os.path.join(scratch, "seed_store")
    if compile_seed_store(build, out):
        return out
    die("no seed_store: set SEED_STORE or build bench/seed_store in %s" % build)


def give(path, uid, gid):
    """As root, probed runs as RUN_AS: its directories must be its own."""
    if uid is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for f in files:
            os.chown(os.path.join(root, f), uid, gid)


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def ping(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5.0)
    try:
        s.connect(path)
        s.sendall(b"PING\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(64)
            if not chunk:
                return False
            buf += chunk
        return buf.split(b"\n", 1)[0] == b"pong"
    except OSError:
        return False
    finally:
        s.close()


def request(path, line):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10.0)
    try:
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf.split(b"\n", 1)[0].decode("utf-8", "replace")
    finally:
        s.close()


def drop_page_cache(path):
    """Evict one file's pages (only that file's, not the machine's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def one_run(probed, conf, sock, logpath):
    """Start probed, wait for PING; returns (ms, rss_kb, anon_kb, load_ms,
    stats line) and stops it."""
    with open(logpath, "ab") as log:
        t0 = time.perf_counter()
        p = subprocess.Popen([probed, "-f", "-c", conf], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = t0 + READY_TIMEOUT
        while True:
            if os.path.exists(sock) and ping(sock):
                ms = (time.perf_counter() - t0) * 1000.0
                break
            if p.poll() is not None:
                raise RuntimeError("probed exited with status %s (log %s)"
                                   % (p.returncode, logpath))
            if time.perf_counter() > deadline:
                raise RuntimeError("probed did not answer PING within %.0f s"
                                   % READY_TIMEOUT)
            time.sleep(0.0005)
        rss = rss_kb(p.pid)
        anon = rss_kb(p.pid, "RssAnon")
        st = request(sock, "STATS")
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    load_ms = None
    with open(logpath, "rb") as f:
        found = re.findall(rb"engine state=\S+ verdicts=\d+ domains=\d+ load_ms=(\d+)",
                           f.read())
        if found:
            load_ms = int(found[-1])
    return ms, rss, anon, load_ms, st


def stat_value(line, key):
    m = re.search(r"\b%s=(\d+)" % re.escape(key), line or "")
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description="probed start-up time on a full store")
    ap.add_argument("build", nargs="?", default=".",
                    help="build directory (default: .)")
    ap.add_argument("--sizes", default="0,100000,1000000",
                    help="comma-separated verdict counts (default 0,100000,1000000)")
    ap.add_argument("--runs", type=int, default=5, help="runs per size (default 5)")
    ap.add_argument("--base", default=os.environ.get("TMPDIR") or "/tmp",
                    help="where the state directories are made")
    ap.add_argument("--keep", action="store_true", help="keep the directories")
    a = ap.parse_args()
    try:
        sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
    except ValueError:
        die("--sizes wants numbers", 2)
    if a.runs < 1 or any(n < 0 for n in sizes):
        die("--runs >= 1 and sizes >= 0", 2)

    build = os.path.abspath(a.build)
    probed = find_probed(build)
    base = a.base if len(a.base) <= 40 else "/tmp"   # sun_path is short
    top = tempfile.mkdtemp(prefix="probed-startup-", dir=base)
    uid = gid = None
    if os.geteuid() == 0:
        pw = pwd.getpwnam(RUN_AS)
        uid, gid = pw.pw_uid, pw.pw_gid
    os.chmod(top, 0o755)

    rows = []
    failed = False
    try:
        seed = find_seed_store(build, top)
        for n in sizes:
            d = os.path.join(top, "n%d" % n)
            os.mkdir(d)
            t0 = time.perf_counter()
            r = subprocess.run([seed, "-n", str(n), d], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            seed_s = time.perf_counter() - t0
            if r.returncode != 0:
                die("seed_store -n %d failed: %s" % (n, r.stdout.decode().strip()))
            give(d, uid, gid)
            sock = os.path.join(d, "p.sock")
            conf = os.path.join(d, "probed.conf")
            with open(conf, "w") as f:
                f.write('socket = "%s";\nstate_dir = "%s";\nlog_level = "notice";\n'
                        'cache: { max_entries = %d; };\n'
                        % (sock, d, max(n, 1000000)))
                if uid is not None:
                    f.write('user = "%s";\n' % RUN_AS)
            give(d, uid, gid)
            logpath = os.path.join(d, "probed.log")
            mdb = os.path.join(d, "probed.mdb")
            size_mib = os.path.getsize(mdb) / 1048576.0 if os.path.exists(mdb) else 0
            runs = []
            entries = None
            try:
                for _ in range(a.runs):
                    ms, rss, anon, load_ms, st = one_run(probed, conf, sock, logpath)
                    runs.append((ms, rss, anon, load_ms))
                    entries = stat_value(st, "cache_entries")
                drop_page_cache(mdb)
                cold = one_run(probed, conf, sock, logpath)
            except RuntimeError as e:
                print("startup: N=%d: %s" % (n, e), file=sys.stderr)
                failed = True
                continue
            ms_sorted = sorted(r[0] for r in runs)
            med = statistics.median(ms_sorted)
            rows.append({
                "n": n, "mib": size_mib, "seed_s": seed_s, "median": med,
                "min": ms_sorted[0], "max": ms_sorted[-1],
                "load": statistics.median([r[3] for r in runs if r[3] is not None] or [0]),
                "rss": statistics.median([r[1] for r in runs]) / 1024.0,
                "anon": statistics.median([r[2] for r in runs]) / 1024.0,
                "cold": cold[0], "entries": entries,
            })
            print("# N=%d: median %.0f ms (%d runs), RSS %.0f MiB, cold %.0f ms"
                  % (n, med, len(runs), rows[-1]["rss"], cold[0]), flush=True)
    finally:
        if a.keep:
            print("# kept %s" % top)
        else:
            shutil.rmtree(top, ignore_errors=True)

    print()
    print("probed start-up: exec -> first PING answered, median of %d runs "
          "(warm page cache)" % a.runs)
    hdr = ("%9s %9s %7s %9s %15s %8s %8s %8s %8s %10s %s" %
           ("verdicts", "file MiB", "seed s", "start ms", "min..max ms", "load ms",
            "RSS MiB", "anon MiB", "cold ms", "cached", "target"))
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        if r["n"] >= TARGET_N:
            target = "< %.0f ms: %s" % (TARGET_MS, "met" if r["median"] < TARGET_MS
                                          else "MISSED")
        else:
            target = ""
        print("%9d %9.1f %7.1f %9.0f %15s %8.0f %8.1f %8.1f %8.0f %10s %s" %
              (r["n"], r["mib"], r["seed_s"], r["median"],
               "%.0f..%.0f" % (r["min"], r["max"]), r["load"], r["rss"], r["anon"],
               r["cold"], r["entries"], target))
    bad = [r for r in rows if r["entries"] is not None and r["entries"] != r["n"]]
    for r in bad:
        print("warning: N=%d but STATS cache_entries=%s" % (r["n"], r["entries"]))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
