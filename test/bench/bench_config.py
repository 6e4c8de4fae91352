#!/usr/bin/python3
"""bench_config.py: what many managed domains cost when nothing is being
issued: `apache2 -t`, start until the first TLS answer, RSS, a graceful
restart until the new generation answers, CPU used while idle, one
/acme-status and one /acme-metrics request (wall and server CPU), and the fsync, rename and open
calls of a first start. For the same SSL vhosts with static certificates
and no ACME module, for mod_acme with N new domains, for mod_acme with a
store where every certificate is valid, and for Debian's mod_md.

Run by hand (not part of the test suite), as root, after building the module:
    MOD_ACME_BUILD_DIR=/tmp/build-x /usr/bin/python3 test/bench/bench_config.py -n 1000,10000

Variants (all with N SSL vhosts, one per domain):
- static: one wildcard certificate in every vhost, no ACME module;
- mod_acme-loaded: the same, with mod_acme loaded but no ManagedDomain: what
  the module costs before it manages anything (its libraries, its threads);
- mod_acme: N new domains; the CA URL is a closed loopback port, so jobs
  fail at once and no traffic leaves 127.0.0.1. The first start makes N
  temporary certificates, the second finds them;
- mod_acme-valid: the store already holds a valid certificate for every
  domain (the wildcard one) and the CA is Debian's pebble, which has no
  renewalInfo: nothing is due, so this is the steady state of a server;
- mod_md: N new domains against the closed port, like mod_acme.

Idle CPU is the utime+stime of every process of the server over --idle
seconds after --settle seconds, in seconds per minute. Syscalls are counted
with strace on `apache2 -X` (one process, no detach) until the first answer.
"""
import argparse
import datetime
import http.client
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import benchlib
from benchlib import say, util
from harness.httpd import APACHE_BIN, Httpd  # noqa: E402

VARIANTS = ("static", "mod_acme-loaded", "mod_acme", "mod_acme-valid", "mod_md")
CLK_TCK = os.sysconf("SC_CLK_TCK")
SYSCALLS = ("fsync", "fdatasync", "rename", "renameat", "renameat2", "open", "openat")


def domain_names(n):
    return ["d%05d.bench.example.org" % i for i in range(1, n + 1)]


def wildcard_cert(directory):
    """One P-256 certificate for *.bench.example.org: the static vhosts use
    it, and the mod_acme-valid store holds a copy per domain."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench wildcard")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.bench.example.org")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    pems = (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
    cf, kf = os.path.join(directory, "static.crt"), os.path.join(directory, "static.key")
    with open(cf, "wb") as f:
        f.write(pems[0])
    with open(kf, "wb") as f:
        f.write(pems[1])
    os.chmod(kf, 0o600)
    return cf, kf, pems


def populate_valid_store(store_dir, names, pems, ca_url):
    """domains/<d>/ with the wildcard certificate, its key and meta.json."""
    for n in names:
        d = os.path.join(store_dir, "domains", n)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "cert.p256.pem"), "wb") as f:
            f.write(pems[0])
        fd = os.open(os.path.join(d, "privkey.p256.pem"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, pems[1])
        os.close(fd)
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump({"ca": ca_url, "key-types": ["P-256"], "names": [n]}, f)


def config_text(variant, httpd, names, ca_url, ca_file, cert):
    lines = []
    if variant in ("mod_acme", "mod_acme-valid"):
        lines += ["ManagedCA %s" % ca_url,
                  'ManagedCACertificateFile "%s"' % ca_file,
                  'ManagedStoreDir "%s"' % httpd.store_dir,
                  "ManagedAgreeTOS on",
                  "ManagedPortMap 80:%d 443:%d" % (httpd.http_port, httpd.tls_port),
                  "LogLevel info acme:info",
                  "<Location /acme-status>", "    SetHandler acme-status", "</Location>",
                  "<Location /acme-metrics>", "    SetHandler acme-metrics", "</Location>"]
        lines += ["ManagedDomain %s" % n for n in names]
    elif variant == "mod_md":
        lines += ['LoadModule md_module "%s"' % benchlib.MOD_MD,
                  'MDStoreDir "%s"' % os.path.join(httpd.root, "md"),
                  "MDCertificateAuthority %s" % ca_url,
                  'MDCACertificateFile "%s"' % ca_file,
                  "MDCertificateAgreement accepted",
                  "MDPortMap 80:%d 443:%d" % (httpd.http_port, httpd.tls_port),
                  "MDPrivateKeys secp256r1"]
        lines += ["MDomain %s" % n for n in names]
    text = "\n".join(lines) + "\n"
    extra = ""
    if variant in ("static", "mod_acme-loaded"):
        extra = 'SSLCertificateFile "%s"\nSSLCertificateKeyFile "%s"' % cert[:2]
    for n in names:
        text += httpd.vhost(n, tls=True, extra=extra)
    return text


def timed_check(httpd, runs):
    times = []
    for _ in range(runs):
        t = time.monotonic()
        rc, out = httpd.check_config()
        times.append(time.monotonic() - t)
        if rc != 0:
            raise RuntimeError("apache2 -t failed:\n%s" % out)
    return statistics.median(times)


def handshake_ok(httpd, host):
    try:
        httpd.get_cert_der(host)
        return True
    except (OSError, ssl.SSLError):
        return False


def timed_start(httpd, host, timeout):
    """Seconds from `apache2 -k start` until a TLS handshake for host succeeds."""
    if os.path.exists(httpd.pid_file):
        os.unlink(httpd.pid_file)
    t0 = time.monotonic()
    rc, out = httpd._cmd("-k", "start", timeout=timeout)
    if rc != 0:
        raise RuntimeError("apache2 -k start failed:\n%s" % out)
    pid = util.wait_for(httpd.pid, timeout, "the pid file", interval=0.01)
    httpd._pids.add(pid)
    util.wait_for(lambda: handshake_ok(httpd, host), timeout,
                  "a TLS handshake for %s" % host, interval=0.02)
    return time.monotonic() - t0


def timed_graceful(httpd, host, timeout):
    """Seconds from `apache2 -k graceful` until the new generation answers."""
    before = httpd.error_log().count("resuming normal operations")
    t0 = time.monotonic()
    rc, out = httpd._cmd("-k", "graceful", timeout=timeout)
    if rc != 0:
        raise RuntimeError("apache2 -k graceful failed:\n%s" % out)
    util.wait_for(lambda: httpd.error_log().count("resuming normal operations") > before,
                  timeout, "the new generation", interval=0.01)
    util.wait_for(lambda: handshake_ok(httpd, host), timeout,
                  "a TLS handshake for %s" % host, interval=0.01)
    return time.monotonic() - t0


def memory(httpd):
    """(parent RSS KiB, [child RSS KiB], total RSS KiB, total PSS KiB)."""
    pid = httpd.pid()
    tree = benchlib.process_tree(pid)
    parent = benchlib.rss_of(pid) or 0
    children = sorted((benchlib.rss_of(c) or 0) for c in tree if c != pid)
    pss = sum((benchlib.pss_of(c) or 0) for c in tree)
    return parent, children, parent + sum(children), pss


def cpu_ticks(pids):
    out = {}
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = int(fields[11]) + int(fields[12])  # utime, stime (all threads)
        except OSError:
            pass
    return out


def idle_cpu(httpd, seconds):
    """CPU seconds per minute used by the server's processes over `seconds`."""
    pids = benchlib.process_tree(httpd.pid())
    a = cpu_ticks(pids)
    time.sleep(seconds)
    b = cpu_ticks(pids)
    used = sum(b[p] - a[p] for p in b if p in a) / float(CLK_TCK)
    return used * 60.0 / seconds


def timed_get(httpd, path, runs=5):
    """One GET of path on the plain port first (it fills the child's caches),
    then `runs` more: their median wall seconds, the server's CPU seconds per
    request (utime + stime of all its processes over the runs: what the
    machine's noise and the client's reading do not change), and the body
    size."""
    def get():
        conn = http.client.HTTPConnection("127.0.0.1", httpd.http_port, timeout=120)
        t = time.monotonic()
        conn.request("GET", path, headers={"Host": "localhost"})
        r = conn.getresponse()
        body = r.read()
        took = time.monotonic() - t
        conn.close()
        if r.status != 200:
            raise RuntimeError("GET %s: %d" % (path, r.status))
        return took, len(body)

    get()
    pids = benchlib.process_tree(httpd.pid())
    a = cpu_ticks(pids)
    times = [get() for _ in range(runs)]
    b = cpu_ticks(pids)
    cpu = sum(b[p] - a[p] for p in b if p in a) / float(CLK_TCK) / runs
    return statistics.median(t for t, _ in times), times[-1][1], cpu


def count_syscalls(httpd, host, timeout, work):
    """fsync, rename and open calls of `apache2 -X` until its first TLS answer."""
    out = os.path.join(work, "strace-%d.txt" % os.getpid())
    cmd = ["strace", "-f", "-qq", "-e", "trace=" + ",".join(SYSCALLS), "-o", out,
           APACHE_BIN, "-X", "-d", httpd.root, "-f", httpd.conf_file]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        util.wait_for(lambda: handshake_ok(httpd, host), timeout,
                      "a TLS handshake under strace", interval=0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    counts = {"fsync": 0, "rename": 0, "open": 0}
    with open(out) as f:
        for line in f:
            call = line.split(None, 1)[1].split("(", 1)[0] if " " in line else ""
            if call in ("fsync", "fdatasync"):
                counts["fsync"] += 1
            elif call.startswith("rename"):
                counts["rename"] += 1
            elif call in ("open", "openat"):
                counts["open"] += 1
    os.unlink(out)
    return counts


def run_variant(variant, n, work, names, cert, ca, args, module):
    root = os.path.join(work, "%s-%d" % (variant, n))
    shutil.rmtree(root, ignore_errors=True)
    ports = (util.free_port(), util.free_port())
    httpd = Httpd(root, ports[0], ports[1], module_path=module)
    ca_url, ca_file = ca[variant == "mod_acme-valid"]
    httpd.write_config(config_text(variant, httpd, names, ca_url, ca_file, cert),
                       with_module=variant.startswith("mod_acme"))
    if variant == "mod_acme-valid":
        populate_valid_store(httpd.store_dir, names, cert[2], ca_url)
    row = {"variant": variant, "n": n, "check": timed_check(httpd, args.check_runs)}
    host = names[-1]
    starts = 2 if variant in ("mod_acme", "mod_md") else 1
    try:
        for i in range(starts):
            row["start%d" % (i + 1)] = timed_start(httpd, host, args.timeout)
            if i + 1 < starts:
                httpd.stop()
        time.sleep(args.settle)
        row["mem"] = memory(httpd)
        row["idle"] = idle_cpu(httpd, args.idle)
        if variant in ("mod_acme", "mod_acme-valid"):
            row["status"] = timed_get(httpd, "/acme-status")
            row["metrics"] = timed_get(httpd, "/acme-metrics")
        row["graceful"] = statistics.median(timed_graceful(httpd, host, args.timeout)
                                            for _ in range(args.graceful_runs))
        row["errors"] = len(httpd.error_lines())
    finally:
        httpd.stop()
    if args.syscalls and variant in ("static", "mod_acme"):
        # last: a first start once more, under strace (its store removed;
        # creating files where many were just deleted is slow on ext4, so
        # this run is not timed)
        shutil.rmtree(httpd.store_dir, ignore_errors=True)
        shutil.rmtree(os.path.join(root, "md"), ignore_errors=True)
        row["syscalls"] = count_syscalls(httpd, host, args.timeout, work)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return row


def fmt(v, f="%.2f"):
    return "-" if v is None else f % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", default="1000", help="comma-separated domain counts")
    ap.add_argument("--variants", default="static,mod_acme-loaded,mod_acme,mod_acme-valid")
    ap.add_argument("--build", help="mod_acme build dir (default $MOD_ACME_BUILD_DIR)")
    ap.add_argument("--module", help="path of mod_acme.so (default: <build>/.libs/mod_acme.so)")
    ap.add_argument("--settle", type=float, default=10.0,
                    help="seconds after the first answer before measuring memory and CPU")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    ap.add_argument("--check-runs", type=int, default=3, help="apache2 -t runs (median)")
    ap.add_argument("--graceful-runs", type=int, default=3, help="graceful restarts (median)")
    ap.add_argument("--syscalls", action="store_true",
                    help="also count the syscalls of a first start (strace; slow)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per start")
    ap.add_argument("--work", help="work directory (default: a new one in /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    benchlib.exit_on_sigterm()
    counts = [int(x) for x in args.n.split(",") if x]
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            ap.error("unknown variant %r" % v)
    module = args.module or benchlib.module_path(args.build)
    if any(v.startswith("mod_acme") for v in variants) and not os.path.isfile(module):
        ap.error("%s not found: build first and set MOD_ACME_BUILD_DIR or --build" % module)
    if os.geteuid() != 0:
        ap.error("run as root")

    work = args.work or tempfile.mkdtemp(prefix="mod_acme-bench-config-")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    benchlib.print_machine(benchlib.machine_info())
    say("work dir: %s, N=%s" % (work, args.n))
    cert = wildcard_cert(work)
    dns = pebble = None
    rows = []
    try:
        # A CA on a port where nothing listens: jobs fail with "connection refused".
        ca = [("https://127.0.0.1:%d/dir" % util.free_port(), cert[0])]
        if "mod_acme-valid" in variants:
            dns, pebble = benchlib.start_pebble(work, util.free_port(), util.free_port())
            ca.append((pebble.dir_url, pebble.ca_file))
        for n in counts:
            names = domain_names(n)
            for variant in variants:
                say("== %s, N=%d" % (variant, n))
                with util.time_limit(int(args.timeout) * 6, "%s N=%d" % (variant, n)):
                    r = run_variant(variant, n, work, names, cert, ca, args, module)
                rows.append(r)
                say("   %s" % {k: v for k, v in r.items() if k not in ("variant", "n")})
    finally:
        if pebble:
            pebble.stop()
        if dns:
            dns.stop()
    out = []
    for r in rows:
        base = [b for b in rows if b["variant"] == "static" and b["n"] == r["n"]]
        over = over_pss = None
        if base and r["variant"] != "static":
            over = (r["mem"][2] - base[0]["mem"][2]) / 1024.0
            over_pss = (r["mem"][3] - base[0]["mem"][3]) / 1024.0
        sc = r.get("syscalls")
        per = (lambda k: "%.2f" % (sc[k] / float(r["n"]))) if sc else (lambda k: "-")
        out.append([r["variant"], str(r["n"]), fmt(r["check"]), fmt(r.get("start1")),
                    fmt(r.get("start2")), fmt(r["graceful"]),
                    "%.1f" % (r["mem"][2] / 1024.0), fmt(over, "%+.1f"),
                    "%.1f" % (r["mem"][3] / 1024.0), fmt(over_pss, "%+.1f"),
                    fmt(r["idle"], "%.3f"),
                    fmt(r["status"][0] if "status" in r else None, "%.3f"),
                    fmt(r["status"][2] if "status" in r else None, "%.3f"),
                    fmt(r["metrics"][0] if "metrics" in r else None, "%.3f"),
                    fmt(r["metrics"][2] if "metrics" in r else None, "%.3f"),
                    per("fsync"), per("rename"), per("open"), str(r["errors"])])
    say("")
    say(benchlib.table(["variant", "N", "apache2 -t s", "start s", "2nd start s",
                        "graceful s", "RSS MiB", "RSS over static", "PSS MiB",
                        "PSS over static", "idle CPU s/min",
                        "acme-status s", "its CPU s", "acme-metrics s", "its CPU s", "fsync/dom", "rename/dom",
                        "open/dom", "error lines"], out))
    # every figure at the largest N against the smallest: linear means <= ratio of N
    if len(counts) > 1:
        lo, hi = min(counts), max(counts)
        say("")
        say("ratio N=%d / N=%d (linear: at most %.0f)" % (hi, lo, hi / float(lo)))
        keys = [("check", "apache2 -t"), ("start1", "start"), ("graceful", "graceful"),
                ("mem", "RSS"), ("idle", "idle CPU"), ("status", "acme-status"),
                ("status-cpu", "its CPU"), ("metrics", "acme-metrics"),
                ("metrics-cpu", "its CPU")]
        table = []
        for v in variants:
            a = [r for r in rows if r["variant"] == v and r["n"] == lo]
            b = [r for r in rows if r["variant"] == v and r["n"] == hi]
            if not a or not b:
                continue
            cells = [v]
            for k, _ in keys:
                x, y = a[0].get(k.split("-")[0]), b[0].get(k.split("-")[0])
                if k.endswith("-cpu") and x and y:
                    x, y = (x[2],), (y[2],)
                if isinstance(x, tuple):
                    x, y = x[2] if k == "mem" else x[0], y[2] if k == "mem" else y[0]
                cells.append("%.1f" % (y / x) if x and y is not None else "-")
            table.append(cells)
        say(benchlib.table(["variant"] + [label for _, label in keys], table))
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
