#!/usr/bin/python3
"""bench_config.py: cost of many managed domains at configuration time and
startup: `apache2 -t`, `apache2 -k start` until a TLS handshake succeeds, and
the RSS of the parent and of each child, for mod_acme, for the same vhosts
with static certificates and no ACME module, and for Debian's mod_md.

Run by hand (not part of the test suite), as root, after building the module:
    MOD_ACME_BUILD_DIR=/tmp/build-x /usr/bin/python3 test/bench/bench_config.py [-n 1000]

Every variant has N SSL vhosts (one per domain). The ACME modules point at a
CA URL on a closed loopback port, so their jobs fail at once and no traffic
leaves 127.0.0.1; mod_acme's first start creates N fallback certificates
(P-256 key + self-signed), the second start finds them in its store."""
import argparse
import datetime
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import benchlib
from benchlib import say, util
from harness.httpd import Httpd  # noqa: E402

VARIANTS = ("static", "mod_acme", "mod_md")


def domain_names(n):
    return ["d%04d.bench.example.org" % i for i in range(1, n + 1)]


def static_cert(directory):
    """One self-signed P-256 certificate for every static vhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench static")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.bench.example.org")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cf, kf = os.path.join(directory, "static.crt"), os.path.join(directory, "static.key")
    with open(cf, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kf, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(kf, 0o600)
    return cf, kf


def config_text(variant, httpd, names, dead_ca, ca_file, cert):
    lines = []
    if variant == "mod_acme":
        lines += ["ManagedCA %s" % dead_ca,
                  'ManagedCACertificateFile "%s"' % ca_file,
                  'ManagedStoreDir "%s"' % httpd.store_dir,
                  "ManagedAgreeTOS on",
                  "ManagedPortMap 80:%d 443:%d" % (httpd.http_port, httpd.tls_port),
                  "LogLevel info acme:info"]
        lines += ["ManagedDomain %s" % n for n in names]
    elif variant == "mod_md":
        lines += ['LoadModule md_module "%s"' % benchlib.MOD_MD,
                  'MDStoreDir "%s"' % os.path.join(httpd.root, "md"),
                  "MDCertificateAuthority %s" % dead_ca,
                  'MDCACertificateFile "%s"' % ca_file,
                  "MDCertificateAgreement accepted",
                  "MDPortMap 80:%d 443:%d" % (httpd.http_port, httpd.tls_port),
                  "MDPrivateKeys secp256r1"]
        lines += ["MDomain %s" % n for n in names]
    text = "\n".join(lines) + "\n"
    extra = ""
    if variant == "static":
        extra = 'SSLCertificateFile "%s"\nSSLCertificateKeyFile "%s"' % cert
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
    """Seconds from `apache2 -k start` until a TLS handshake for host succeeds,
    and seconds until the command returned."""
    if os.path.exists(httpd.pid_file):
        os.unlink(httpd.pid_file)
    t0 = time.monotonic()
    rc, out = httpd._cmd("-k", "start", timeout=timeout)
    t_cmd = time.monotonic() - t0
    if rc != 0:
        raise RuntimeError("apache2 -k start failed:\n%s" % out)
    pid = util.wait_for(httpd.pid, timeout, "the pid file", interval=0.01)
    httpd._pids.add(pid)
    util.wait_for(lambda: handshake_ok(httpd, host), timeout,
                  "a TLS handshake for %s" % host, interval=0.02)
    return time.monotonic() - t0, t_cmd


def memory(httpd):
    """(parent RSS KiB, [child RSS KiB], total RSS KiB)."""
    pid = httpd.pid()
    tree = benchlib.process_tree(pid)
    parent = benchlib.rss_of(pid) or 0
    children = sorted((benchlib.rss_of(c) or 0) for c in tree if c != pid)
    return parent, children, parent + sum(children)


def measure(label, variant, httpd, names, settle, timeout, check_runs, restarts):
    """One row per start of the same ServerRoot (the first creates the stores)."""
    rows = []
    t_check = timed_check(httpd, check_runs)
    for i in range(restarts):
        t_start, t_cmd = timed_start(httpd, names[0], timeout)
        time.sleep(settle)
        parent, children, total = memory(httpd)
        errors = len(httpd.error_lines())
        httpd.stop()
        which = "first start" if i == 0 else "start %d" % (i + 1)
        if variant == "static":
            which = "start %d" % (i + 1)
        rows.append({"label": "%s, %s" % (label, which), "variant": variant,
                     "check": t_check, "start": t_start, "cmd": t_cmd, "parent": parent,
                     "children": children, "total": total, "errors": errors})
        say("   %-28s -t %.2fs  start->answers %.2fs (command %.2fs)  parent %.1f MiB  "
            "children %s MiB  total %.1f MiB"
            % (rows[-1]["label"], t_check, t_start, t_cmd, parent / 1024.0,
               "+".join("%.1f" % (c / 1024.0) for c in children), total / 1024.0))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000, help="managed domains (SSL vhosts)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--build", help="mod_acme build dir (default $MOD_ACME_BUILD_DIR)")
    ap.add_argument("--module", help="path of mod_acme.so (default: <build>/.libs/mod_acme.so)")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after the first answer before measuring memory")
    ap.add_argument("--check-runs", type=int, default=3, help="apache2 -t runs (median)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per start")
    ap.add_argument("--work", help="work directory (default: a new one in /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    benchlib.exit_on_sigterm()
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            ap.error("unknown variant %r" % v)
    module = args.module or benchlib.module_path(args.build)
    if "mod_acme" in variants and not os.path.isfile(module):
        ap.error("%s not found: build first and set MOD_ACME_BUILD_DIR or --build" % module)
    if os.geteuid() != 0:
        ap.error("run as root")

    work = args.work or tempfile.mkdtemp(prefix="mod_acme-bench-config-")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    benchlib.print_machine(benchlib.machine_info())
    say("work dir: %s, N=%d" % (work, args.n))
    names = domain_names(args.n)
    cert = static_cert(work)
    # A CA on a port where nothing listens: jobs fail with "connection refused".
    dead_ca = "https://127.0.0.1:%d/dir" % util.free_port()
    http_port, tls_port = util.free_port(), util.free_port()
    rows = []
    with util.time_limit(int(args.timeout) * 8, "bench_config"):
        for variant in variants:
            say("== %s" % variant)
            root = os.path.join(work, variant)
            shutil.rmtree(root, ignore_errors=True)
            httpd = Httpd(root, http_port, tls_port, module_path=module)
            httpd.write_config(config_text(variant, httpd, names, dead_ca, cert[0], cert),
                               with_module=(variant == "mod_acme"))
            try:
                rows += measure(variant, variant, httpd, names, args.settle, args.timeout,
                                args.check_runs, 1 if variant == "static" else 2)
            finally:
                httpd.stop()
    base = [r for r in rows if r["variant"] == "static"]
    out = []
    for r in rows:
        per = "-"
        if base and r["variant"] != "static":
            per = "%.1f" % ((r["total"] - base[0]["total"]) / float(args.n))
        out.append([r["label"], "%.2f" % r["check"], "%.2f" % r["start"],
                    "%.1f" % (r["parent"] / 1024.0),
                    " + ".join("%.1f" % (c / 1024.0) for c in r["children"]),
                    "%.1f" % (r["total"] / 1024.0), per])
    say("")
    say("N = %d SSL vhosts" % args.n)
    say(benchlib.table(["variant", "apache2 -t s", "start->answers s", "parent RSS MiB",
                        "child RSS MiB", "total RSS MiB", "KiB/domain over static"], out))
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
