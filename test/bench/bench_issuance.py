#!/usr/bin/python3
"""bench_issuance.py: time from httpd start until every managed domain serves
its CA-issued certificate, mod_acme against Debian's mod_md, on one pebble.

Run by hand (not part of the test suite), as root, after building the module:
    MOD_ACME_BUILD_DIR=/tmp/build-x /usr/bin/python3 test/bench/bench_issuance.py [-n 1,20,100]

For each N and product a fresh ServerRoot gets N SSL vhosts (one per domain)
and the product's directives; the clock starts right before `apache2 -k
start` and stops when an SNI handshake for every name returns a certificate
issued by pebble. mod_acme activates by its own graceful restart; mod_md only
stages, so this script runs `apache2 -k graceful` once its log says every
domain "has been setup", and that time counts. The memory columns are the
peak over 100 ms samples of the summed VmRSS (and VmHWM) of the parent and
all its descendants."""
import argparse
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

from cryptography.x509.oid import NameOID

import benchlib
from benchlib import say, util
from harness.httpd import Httpd  # noqa: E402
from harness.pki import cert_issuer_cn, load_pem_certs  # noqa: E402

# mod_acme runs with the harness' ManagedPreflight off (the names resolve only in
# pebble's DNS); mod_acme-preflight has it on, pointed at this server's ports.
PRODUCTS = ("mod_acme", "mod_acme-preflight", "mod_md", "floor")
# pebble's defaults reject 5% of nonces and reuse 50% of authorizations:
# both would make runs differ by luck, not by the product.
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
MD_SETUP = "has been setup and changes will be activated on next (graceful) server restart"


def domain_names(n):
    return ["d%03d.bench.example.org" % i for i in range(1, n + 1)]


KEYS = {"P-256": "secp256r1", "RSA-2048": "RSA 2048"}  # mod_acme name -> MDPrivateKeys


def product_config(product, httpd, pebble, names, module, parallel, debug=False, keys="P-256"):
    """Text after the harness' base config: the product's lines + one SSL vhost per name."""
    lines = []
    if product.startswith("mod_acme"):
        preflight = "off"
        if product == "mod_acme-preflight":
            preflight = "127.0.0.1 80:%d 443:%d" % (httpd.http_port, httpd.tls_port)
        lines.append(httpd.acme_config(pebble, preflight=preflight).rstrip("\n"))
        lines += ["ManagedContact admin@example.org",
                  "ManagedChallenges http-01",
                  "ManagedKeys %s" % keys,
                  # the harness sets acme:debug; both products log at info here
                  "LogLevel info acme:%s" % ("debug" if debug else "info")]
        if parallel:
            lines.append("ManagedParallelRenewals %d" % parallel)
        lines += ["ManagedDomain %s" % n for n in names]
    else:
        lines += ['LoadModule md_module "%s"' % benchlib.MOD_MD,
                  'MDStoreDir "%s"' % os.path.join(httpd.root, "md"),
                  "MDCertificateAuthority %s" % pebble.dir_url,
                  'MDCACertificateFile "%s"' % pebble.ca_file,
                  "MDCertificateAgreement accepted",
                  "MDContactEmail admin@example.org",
                  "MDPortMap 80:%d 443:%d" % (httpd.http_port, httpd.tls_port),
                  "MDCAChallenges http-01",
                  "MDPrivateKeys %s" % KEYS[keys]]
        lines += ["MDomain %s" % n for n in names]
    text = "\n".join(lines) + "\n"
    for n in names:
        text += httpd.vhost(n, tls=True)
    return text


def subject_cn(cert):
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else ""


def issued_by(httpd, host, issuer_cns):
    try:
        cert = httpd.get_cert(host)
    except (OSError, ssl.SSLError, ValueError):
        return False
    return cert_issuer_cn(cert) in issuer_cns


def run_one(product, n, work, pebble, http_port, tls_port, module, timeout, parallel,
            debug=False, keys="P-256"):
    names = domain_names(n)
    root = os.path.join(work, "%s-%d" % (product, n))
    shutil.rmtree(root, ignore_errors=True)
    httpd = Httpd(root, http_port, tls_port, module_path=module)
    httpd.write_config(product_config(product, httpd, pebble, names, module, parallel, debug,
                                      keys),
                       with_module=product.startswith("mod_acme"))
    rc, out = httpd.check_config()
    if rc != 0:
        raise RuntimeError("%s config rejected:\n%s" % (product, out))
    issuers = {subject_cn(c) for c in load_pem_certs(pebble.intermediates_pem())}
    orders_before = pebble.count_orders()
    log_before = len(pebble.log_text())
    sampler = benchlib.MemorySampler(httpd.pid)
    res = {"product": product, "n": n, "ok": False, "graceful_at": None, "served_at": {}}
    wall0 = time.time()
    t0 = time.monotonic()
    sampler.start()
    try:
        with util.time_limit(int(timeout) + 60, "%s N=%d" % (product, n)):
            httpd.start(timeout=120)
            res["started"] = time.monotonic() - t0
            pending = list(names)
            deadline = t0 + timeout
            while pending and time.monotonic() < deadline:
                # Names activate in batches: probe in order, stop at the first miss.
                while pending and issued_by(httpd, pending[0], issuers):
                    res["served_at"][pending.pop(0)] = time.monotonic() - t0
                if not pending:
                    break
                if product == "mod_md" and res["graceful_at"] is None:
                    log = httpd.error_log()
                    if all(("Managed Domain %s has been setup" % d) in log for d in names):
                        res["staged_at"] = time.monotonic() - t0
                        httpd.graceful(timeout=120)
                        res["graceful_at"] = time.monotonic() - t0
                        continue
                time.sleep(0.1)
            res["ok"] = not pending
            res["seconds"] = time.monotonic() - t0
    finally:
        sampler.stop()
        res["log"] = httpd.error_log()
        res["errors"] = httpd.unexpected_errors()
        res["restarts"] = res["log"].count("resuming normal operations") - 1
        res["orders"] = pebble.count_orders() - orders_before
        res["requests"] = ca_requests(pebble, log_before)
        try:
            if httpd.pid() is None:
                # interrupted inside `apache2 -k start`: the daemon may be
                # about to write its pid file
                util.wait_for(httpd.pid, 5, "the pid file")
        except util.WaitTimeout:
            pass
        try:
            httpd.stop()
        except Exception as e:  # noqa: BLE001 - keep the other runs going
            say("   (stopping httpd: %s)" % e)
    res["wall0"] = wall0
    res["peak_rss"] = sampler.peak_rss
    res["peak_hwm"] = sampler.peak_hwm
    res["peak_procs"] = sampler.peak_procs
    res["samples"] = sampler.samples
    return res


def ca_requests(pebble, since):
    """Requests pebble's web front end handled since the log offset."""
    return len(re.findall(r"-> calling handler\(\)", pebble.log_text()[since:]))


def run_floor(n, work, pebble, http_port, tls_port, build, timeout, keys="P-256", parallel=0):
    """The floor, timed like the products from start to all served: httpd
    starts (serving http-01 answers as static files), a minimal client
    (test/tools/acmeclient --each-name: the same engine, all certificates
    at once in threads that share the account, the directory and nonces)
    issues the N certificates, and one graceful restart serves them as
    static certificates."""
    names = domain_names(n)
    root = os.path.join(work, "floor-%d" % n)
    shutil.rmtree(root, ignore_errors=True)
    httpd = Httpd(os.path.join(root, "httpd"), http_port, tls_port)
    chal = os.path.join(httpd.root, "htdocs", ".well-known", "acme-challenge")
    certs = os.path.join(root, "certs")
    os.makedirs(chal)
    os.makedirs(certs)
    client = os.path.join(build, "test", "tools", "acmeclient")
    base = [client, "--dir", pebble.dir_url, "--ca-file", pebble.ca_file,
            "--account-key", os.path.join(root, "account.key"), "--contact",
            "mailto:admin@example.org"]
    res = {"product": "floor", "n": n, "ok": False, "served_at": {}, "restarts": 1,
           "peak_rss": 0, "peak_hwm": 0, "peak_procs": 0, "log": "", "errors": []}
    orders_before = pebble.count_orders()
    subprocess.run(base, check=True, capture_output=True, timeout=60)  # the account, untimed
    since = len(pebble.log_text())
    httpd.write_config("", with_module=False)  # port 80's answers only, no TLS vhost yet
    issuers = {subject_cn(c) for c in load_pem_certs(pebble.intermediates_pem())}
    try:
        t0 = time.monotonic()
        httpd.start(timeout=120)
        res["start"] = time.monotonic() - t0
        proc = subprocess.run(base + ["--each-name", ",".join(names), "--out-dir", certs,
                                      "--challenge-dir", chal, "--key-type", keys,
                                      "--parallel", str(parallel or n)],
                              capture_output=True, text=True, timeout=timeout)
        res["issue"] = time.monotonic() - t0 - res["start"]
        res["requests"] = ca_requests(pebble, since)
        res["orders"] = pebble.count_orders() - orders_before
        if proc.returncode != 0:
            res["errors"] = ["the floor client failed: %s" % proc.stderr[-500:]]
            res["seconds"] = time.monotonic() - t0
            return res
        text = ""
        for name in names:
            text += httpd.vhost(name, tls=True, extra='SSLCertificateFile "%s"\n'
                                'SSLCertificateKeyFile "%s"'
                                % (os.path.join(certs, name + ".crt"),
                                   os.path.join(certs, name + ".key")))
        httpd.write_config(text, with_module=False)
        t1 = time.monotonic()
        httpd.graceful(timeout=120)
        pending = list(names)
        while pending:
            util.wait_for(lambda: issued_by(httpd, pending[0], issuers), 60,
                          "the floor's certificates served")
            pending.pop(0)
        res["restart"] = time.monotonic() - t1
        res["seconds"] = time.monotonic() - t0
    finally:
        httpd.stop()
    res["ok"] = True
    return res


def analyse_acme(res):
    """Where mod_acme's time went, from its log: job starts, staged results, restarts."""
    log, w0 = res["log"], res["wall0"]
    starts = benchlib.timed_lines(log, "getting a first certificate")
    staged = benchlib.timed_lines(log, "certificate obtained and staged")
    restarts = benchlib.timed_lines(log, "restarting gracefully to activate them")
    resumed = benchlib.timed_lines(log, "resuming normal operations")
    out = []
    if starts and staged:
        start_of = {}
        durs = []
        for t, line in starts:
            start_of[line.split(": getting")[0].rsplit(" ", 1)[-1]] = t
        for t, line in staged:
            d = line.split(": certificate obtained")[0].rsplit(" ", 1)[-1]
            if d in start_of:
                durs.append(t - start_of[d])
        out.append("job starts %d (first %.1fs, last %.1fs); staged %d (first %.1fs, last %.1fs)"
                   % (len(starts), starts[0][0] - w0, starts[-1][0] - w0,
                      len(staged), staged[0][0] - w0, staged[-1][0] - w0))
        if durs:
            durs.sort()
            out.append("job duration start->staged: min %.2fs median %.2fs max %.2fs"
                       % (durs[0], durs[len(durs) // 2], durs[-1]))
        span = res["jobs_span"] = staged[-1][0] - starts[0][0]
        if span > 0:
            out.append("throughput %.1f domains/s over %.1fs of jobs" % (len(staged) / span, span))
    for t, line in restarts:
        out.append("restart at %.1fs: %s" % (t - w0, line.split("] ", 3)[-1][:90]))
    if resumed:
        out.append("generations started at: %s"
                   % ", ".join("%.1fs" % (t - w0) for t, _ in resumed))
    return out


def analyse_md(res):
    log, w0 = res["log"], res["wall0"]
    setup = benchlib.timed_lines(log, MD_SETUP)
    out = []
    if setup:
        out.append("domains set up %d (first %.1fs, last %.1fs)"
                   % (len(setup), setup[0][0] - w0, setup[-1][0] - w0))
        if len(setup) > 1:
            out.append("%.2fs per domain between first and last"
                       % ((setup[-1][0] - setup[0][0]) / (len(setup) - 1)))
    if res.get("staged_at") is not None:
        out.append("all staged seen at %.1fs, graceful restart done at %.1fs"
                   % (res["staged_at"], res["graceful_at"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", default="1,20,100", help="comma-separated domain counts")
    ap.add_argument("--products", default=",".join(PRODUCTS))
    ap.add_argument("--build", help="mod_acme build dir (default $MOD_ACME_BUILD_DIR)")
    ap.add_argument("--module", help="path of mod_acme.so (default: <build>/.libs/mod_acme.so)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run")
    ap.add_argument("--parallel", type=int, default=0,
                    help="ManagedParallelRenewals for mod_acme (default: the module's)")
    ap.add_argument("--floor-parallel", type=int, default=0,
                    help="the floor client's certificates at a time (default: all N)")
    ap.add_argument("--keys", default="P-256", choices=sorted(KEYS),
                    help="certificate key type for both products")
    ap.add_argument("--md-keys", choices=sorted(KEYS),
                    help="mod_md's key type, when it differs (RSA-2048: mod_md's default)")
    ap.add_argument("--debug", action="store_true", help="mod_acme logs at debug (slower)")
    ap.add_argument("--pebble-env", default="",
                    help="extra pebble environment, e.g. PEBBLE_WFE_NONCEREJECT=5")
    ap.add_argument("--work", help="work directory (default: a new one in /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    benchlib.exit_on_sigterm()
    counts = [int(x) for x in args.n.split(",") if x]
    products = [p for p in args.products.split(",") if p]
    for p in products:
        if p not in PRODUCTS:
            ap.error("unknown product %r" % p)
    module = args.module or benchlib.module_path(args.build)
    if any(p.startswith("mod_acme") for p in products) and not os.path.isfile(module):
        ap.error("%s not found: build first and set MOD_ACME_BUILD_DIR or --build" % module)
    if os.geteuid() != 0:
        ap.error("run as root (httpd binds, switches user and owns its store)")

    pebble_env = dict(PEBBLE_ENV)
    for kv in args.pebble_env.split():
        k, _, v = kv.partition("=")
        pebble_env[k] = v
    work = args.work or tempfile.mkdtemp(prefix="mod_acme-bench-")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    info = benchlib.machine_info()
    benchlib.print_machine(info)
    say("key type: %s%s" % (args.keys, ", mod_md %s" % args.md_keys if args.md_keys else ""))
    say("pebble env: %s" % " ".join("%s=%s" % kv for kv in sorted(pebble_env.items())))
    say("work dir: %s" % work)
    results = []
    dns = pebble = None
    try:
        http_port, tls_port = util.free_port(), util.free_port()
        dns, pebble = benchlib.start_pebble(work, http_port, tls_port, pebble_env)
        for n in counts:
            for product in products:
                say("== %s, N=%d" % (product, n))
                if product == "floor":
                    res = run_floor(n, work, pebble, http_port, tls_port,
                                    args.build or os.environ.get("MOD_ACME_BUILD_DIR")
                                    or os.path.dirname(os.path.dirname(module)), args.timeout,
                                    args.keys, args.floor_parallel)
                    say("   httpd up in %.2fs, issued in %.2fs, restart until all served %.2fs"
                        % (res.get("start", -1), res.get("issue", -1), res.get("restart", -1)))
                else:
                    res = run_one(product, n, work, pebble, http_port, tls_port, module,
                                  args.timeout, args.parallel, args.debug,
                                  args.md_keys if product == "mod_md" and args.md_keys
                                  else args.keys)
                results.append(res)
                state = "all served" if res["ok"] else "NOT all served (%d of %d)" % (
                    len(res["served_at"]), n)
                say("   %s after %.1fs (httpd up after %.1fs), %d restart(s), %d order(s), "
                    "peak RSS %.1f MiB over %d processes, VmHWM sum %.1f MiB"
                    % (state, res.get("seconds", -1), res.get("started", -1), res["restarts"],
                       res["orders"], res["peak_rss"] / 1024.0, res["peak_procs"],
                       res["peak_hwm"] / 1024.0))
                analyse = {"mod_acme": analyse_acme, "mod_acme-preflight": analyse_acme,
                           "mod_md": analyse_md}.get(product)
                for line in (analyse(res) if analyse else []):
                    say("   " + line)
                for line in res["errors"][:10]:
                    say("   error line: " + line)
    finally:
        for proc in (pebble, dns):
            if proc is not None:
                proc.stop()
    rows = []
    base = {}
    for r in results:
        if r["n"] == min(counts):
            base[r["product"]] = r["peak_rss"]
    for r in results:
        marginal = "-"
        if r["n"] > min(counts) and r["product"] in base:
            marginal = "%.0f" % ((r["peak_rss"] - base[r["product"]]) / (r["n"] - min(counts)))
        rows.append([r["product"], r["n"],
                     "%.1f" % r["seconds"] if r["ok"] else "timeout (%d/%d)" % (
                         len(r["served_at"]), r["n"]),
                     r["restarts"], "%.1f" % (r["peak_rss"] / 1024.0),
                     "%.1f" % (r["peak_hwm"] / 1024.0),
                     "%.0f" % (r["peak_rss"] / r["n"]), marginal,
                     "%.1f" % (r["requests"] / float(r["n"])) if r.get("requests") else "-"])
    say("")
    say(benchlib.table(["product", "N", "s to all served", "restarts", "peak RSS MiB",
                        "peak VmHWM sum MiB", "RSS/domain KiB",
                        "KiB/domain above N=%d" % min(counts), "CA requests/cert"], rows))
    by = {(r["product"], r["n"]): r for r in results}
    for n in counts:
        a, m, f = by.get(("mod_acme", n)), by.get(("mod_md", n)), by.get(("floor", n))
        if a and m and a["ok"] and m["ok"]:
            ratio = m["seconds"] / a["seconds"]
            say("N=%d: mod_md time / mod_acme time = %.2f (mod_acme %.1fx %s)"
                % (n, ratio, ratio if ratio >= 1 else 1 / ratio,
                   "faster" if ratio >= 1 else "slower"))
        if a and f and a["ok"] and f["ok"]:
            say("N=%d: mod_acme time / floor time = %.2f" % (n, a["seconds"] / f["seconds"]))
        on = by.get(("mod_acme-preflight", n))
        if a and on and a.get("jobs_span") and on.get("jobs_span"):
            say("N=%d: jobs with the pre-flight on %.2fs, off %.2fs: on adds %+.0f%%"
                % (n, on["jobs_span"], a["jobs_span"],
                   100.0 * (on["jobs_span"] / a["jobs_span"] - 1)))
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
