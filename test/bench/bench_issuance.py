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
all its descendants.

--realistic turns pebble's validation delays on (PEBBLE_VA_NOSLEEP unset:
each of its 3 validation attempts per authorization sleeps 0-4 s, the
authorization waits for the longest), as a real CA takes seconds; the floor
gets the same delays from the same pebble. --graceful-every S sends
`apache2 -k graceful` to the httpd every S seconds until all are served.
Beside the times: restarts, orders, validations per name, authorizations
pebble set invalid, the longest claim wait, and a table of ratios from the
one run with the issue's targets marked.

A benchmark only: nothing here is a test, and no test asserts a time."""
import argparse
import collections
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from cryptography.x509.oid import NameOID

import benchlib
from benchlib import say, util
from harness.httpd import Httpd  # noqa: E402
from harness.pki import cert_issuer_cn, load_pem_certs  # noqa: E402

PRODUCTS = ("mod_acme", "mod_md", "floor")
# pebble's defaults reject 5% of nonces and reuse 50% of authorizations:
# both would make runs differ by luck, not by the product.
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
# --realistic: a real CA's latency (None unsets the harness' PEBBLE_VA_NOSLEEP=1)
REALISTIC_ENV = {"PEBBLE_VA_NOSLEEP": None}
MD_SETUP = "has been setup and changes will be activated on next (graceful) server restart"


def domain_names(n):
    return ["d%03d.bench.example.org" % i for i in range(1, n + 1)]


KEYS = {"P-256": "secp256r1", "RSA-2048": "RSA 2048"}  # mod_acme name -> MDPrivateKeys


def preflight_value(httpd, preflight):
    """ManagedPreflight for `on` (the default users get): the names resolve
    to 127.0.0.1 only in pebble's DNS, not in the system's resolver, so the
    pre-flight is given the address and ports that `on` finds for a name
    pointing at this server."""
    if preflight == "off":
        return "off"
    return "127.0.0.1 80:%d 443:%d" % (httpd.http_port, httpd.tls_port)


def product_config(product, httpd, pebble, names, module, parallel, debug=False, keys="P-256",
                   preflight="on"):
    """Text after the harness' base config: the product's lines + one SSL vhost per name."""
    lines = []
    if product == "mod_acme":
        lines.append(httpd.acme_config(pebble, preflight=preflight_value(httpd, preflight))
                     .rstrip("\n"))
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


class Graceful(threading.Thread):
    """`apache2 -k graceful` to a running httpd every `every` s, without
    waiting for the new generation, until stopped (scenario c)."""

    def __init__(self, httpd, every):
        super().__init__(daemon=True)
        self.httpd = httpd
        self.every = every
        self.sent = 0
        self._stop_evt = threading.Event()

    def run(self):
        while not self._stop_evt.wait(self.every):
            if self.httpd.is_running() and self.httpd._cmd("-k", "graceful")[0] == 0:
                self.sent += 1

    def stop(self):
        self._stop_evt.set()
        self.join(60)


def start_graceful(httpd, every):
    if not every:
        return None
    g = Graceful(httpd, every)
    g.start()
    return g


def stop_graceful(g, res):
    if g is not None:
        g.stop()
        res["bench_gracefuls"] = g.sent


def run_one(product, n, work, pebble, http_port, tls_port, module, timeout, parallel,
            debug=False, keys="P-256", preflight="on", graceful_every=0):
    names = domain_names(n)
    root = os.path.join(work, "%s-%d" % (product, n))
    shutil.rmtree(root, ignore_errors=True)
    httpd = Httpd(root, http_port, tls_port, module_path=module)
    httpd.write_config(product_config(product, httpd, pebble, names, module, parallel, debug,
                                      keys, preflight),
                       with_module=(product == "mod_acme"))
    rc, out = httpd.check_config()
    if rc != 0:
        raise RuntimeError("%s config rejected:\n%s" % (product, out))
    issuers = {subject_cn(c) for c in load_pem_certs(pebble.intermediates_pem())}
    orders_before = pebble.count_orders()
    log_before = len(pebble.log_text())
    sampler = benchlib.MemorySampler(httpd.pid)
    res = {"product": product, "n": n, "ok": False, "graceful_at": None, "served_at": {},
           "bench_gracefuls": 0}
    periodic = None
    wall0 = time.time()
    t0 = time.monotonic()
    sampler.start()
    try:
        with util.time_limit(int(timeout) + 60, "%s N=%d" % (product, n)):
            httpd.start(timeout=120)
            res["started"] = time.monotonic() - t0
            periodic = start_graceful(httpd, graceful_every)
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
        stop_graceful(periodic, res)
        sampler.stop()
        settle_validations(pebble, log_before)
        res["log"] = httpd.error_log()
        res["errors"] = httpd.unexpected_errors()
        res["generations"] = res["log"].count("resuming normal operations") - 1
        # the restarts the product asked for: mod_acme's own (ACME0312);
        # mod_md's is the one this script does for it
        res["restarts"] = (res["log"].count("ACME0312: ") if product == "mod_acme"
                           else int(res["graceful_at"] is not None))
        res["orders"] = pebble.count_orders() - orders_before
        res.update(pebble_facts(pebble.log_text()[log_before:]))
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


def pebble_facts(text):
    """What pebble's log (the part of one run) says: requests handled,
    validations per name (PEBBLE_AUTHZREUSE=0: a second one for a name is a
    second order's), authorizations set invalid, and the validation delay of
    each authorization (its concurrent attempts each sleep, it waits for
    the longest)."""
    lines = text.splitlines()
    per_name = collections.Counter(
        re.findall(r'Pulled a task from the Tasks queue: .*?Value:"([^"]+)"', text))
    delays = []
    for i, line in enumerate(lines):
        m = re.search(r"Starting (\d+) validations", line)
        if not m:
            continue
        sleeps = []
        for later in lines[i + 1:i + 200]:
            s = re.search(r"Sleeping for (\d+)s seconds", later)
            if s:
                sleeps.append(int(s.group(1)))
                if len(sleeps) == int(m.group(1)):
                    break
        if sleeps:
            delays.append(max(sleeps))
    return {"requests": len(re.findall(r"-> calling handler\(\)", text)),
            "validations": sum(per_name.values()),
            "validations_max": max(per_name.values()) if per_name else 0,
            "invalid": len(re.findall(r"authz \S+ set INVALID", text)),
            "va_delays": delays}


def settle_validations(pebble, since, timeout=30):
    """Wait (untimed, httpd still up) until every validation pebble started
    since the log offset has ended, so that none is counted in the next
    run's part of the log; whether it ended valid or invalid counts here."""
    def settled():
        text = pebble.log_text()[since:]
        return (text.count("Pulled a task from the Tasks queue")
                <= len(re.findall(r"authz \S+ set (?:VALID|INVALID)", text)))
    try:
        util.wait_for(settled, timeout, "pebble's validations to end", interval=0.2)
    except util.WaitTimeout:
        say("   (pebble still validating after %ds)" % timeout)


def claim_waits(log, end):
    """(longest claim wait in s, domains that waited, open): ACME1951 gives the
    wait of a claim taken over; a domain whose ACME0336 ("is being worked
    on ... waiting") has no later ACME1951 counts as waiting until `end`
    (epoch s), and is also counted in open."""
    since, longest, waited = {}, 0.0, set()
    for line in log.splitlines():
        if "ACME0336: " in line:
            d = line.split("ACME0336: ", 1)[1].split(" ", 1)[0]
            waited.add(d)
            since.setdefault(d, benchlib.log_time(line))
        elif "ACME1951: " in line:
            d = line.split("ACME1951: ", 1)[1].split(":", 1)[0]
            m = re.search(r"after waiting (\d+) ms", line)
            if m:
                longest = max(longest, int(m.group(1)) / 1000.0)
            since.pop(d, None)
    for t in since.values():
        if t is not None:
            longest = max(longest, end - t)
    return longest, len(waited), len(since)


def run_floor(n, work, pebble, http_port, tls_port, build, timeout, keys="P-256", parallel=0,
              graceful_every=0, label="floor"):
    """The floor, timed like the products from start to all served: httpd
    starts (serving http-01 answers as static files), a minimal client
    (test/tools/acmeclient --each-name: the same engine, all certificates
    at once in threads that share the account, the directory and nonces)
    issues the N certificates, and one graceful restart serves them as
    static certificates."""
    names = domain_names(n)
    root = os.path.join(work, "%s-%d" % (label.replace(":", "-"), n))
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
    res = {"product": label, "n": n, "ok": False, "served_at": {}, "restarts": 1,
           "peak_rss": 0, "peak_hwm": 0, "peak_procs": 0, "log": "", "errors": [],
           "bench_gracefuls": 0}
    orders_before = pebble.count_orders()
    subprocess.run(base, check=True, capture_output=True, timeout=60)  # the account, untimed
    since = len(pebble.log_text())
    httpd.write_config("", with_module=False)  # port 80's answers only, no TLS vhost yet
    issuers = {subject_cn(c) for c in load_pem_certs(pebble.intermediates_pem())}
    periodic = None
    try:
        t0 = time.monotonic()
        httpd.start(timeout=120)
        res["start"] = time.monotonic() - t0
        periodic = start_graceful(httpd, graceful_every)
        proc = subprocess.run(base + ["--each-name", ",".join(names), "--out-dir", certs,
                                      "--challenge-dir", chal, "--key-type", keys,
                                      "--parallel", str(parallel or n)],
                              capture_output=True, text=True, timeout=timeout)
        res["issue"] = time.monotonic() - t0 - res["start"]
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
        stop_graceful(periodic, res)
        settle_validations(pebble, since)
        res.update(pebble_facts(pebble.log_text()[since:]))
        res["generations"] = httpd.resuming_count() - 1
        httpd.stop()
    res["ok"] = True
    return res


def _after(line, tag):
    """The word after "ACMEnnnn: " (the domain of most lines), without a colon."""
    return line.split(tag, 1)[1].split(" ", 1)[0].rstrip(":")


def job_phases(log):
    """Per staged domain, the phases of the job that staged it, from the
    log's times: start (ACME0324) -> order created (ACME0404: pre-flight,
    account, newOrder) -> the CA's last fetch of the answer (ACME0202:
    pebble's validation delay) -> staged (ACME0321: the poll noticing the
    order ready, finalize, download, store). Jobs that resumed an order
    (ACME0407, after a restart) are left out: their phases are split."""
    state, phases = {}, []
    for line in log.splitlines():
        if "ACME0" not in line:
            continue
        t = benchlib.log_time(line)
        if "ACME0324: " in line:
            state[_after(line, "ACME0324: ")] = {"start": t}
        elif "ACME0404: " in line:
            state.setdefault(_after(line, "ACME0404: "), {})["order"] = t
        elif "ACME0407: " in line:
            state.setdefault(_after(line, "ACME0407: "), {})["resumed"] = t
        elif "ACME0202: " in line:
            st = state.get(line.rsplit(" ", 1)[-1])
            if st and "order" in st:
                st["fetch"] = t
        elif "ACME0321: " in line:
            st = state.pop(_after(line, "ACME0321: "), {})
            st["staged"] = t
            phases.append(st)
    return phases


def _spread(values):
    values = sorted(values)
    if not values:
        return "-"
    return "median %.2fs, max %.2fs" % (values[len(values) // 2], values[-1])


def analyse_acme(res):
    """Where mod_acme's time went, from its log: job phases, restarts, claim waits."""
    log, w0 = res["log"], res["wall0"]
    starts = benchlib.timed_lines(log, "getting a first certificate")
    staged = benchlib.timed_lines(log, "certificate obtained and staged")
    restarts = benchlib.timed_lines(log, "restarting gracefully to activate them")
    resumed = benchlib.timed_lines(log, "resuming normal operations")
    out = []
    if starts and staged:
        out.append("job starts %d (first %.1fs, last %.1fs); staged %d (first %.1fs, last %.1fs)"
                   % (len(starts), starts[0][0] - w0, starts[-1][0] - w0,
                      len(staged), staged[0][0] - w0, staged[-1][0] - w0))
        phases = job_phases(log)
        whole = [p["staged"] - p["start"] for p in phases if "start" in p]
        out.append("job start->staged (the job that staged): %s" % _spread(whole))
        plain = [p for p in phases if "start" in p and "order" in p and "fetch" in p
                 and "resumed" not in p]
        if plain:
            out.append("phases of %d jobs in one piece: start->order %s; order->CA's last "
                       "fetch %s; CA's last fetch->staged %s"
                       % (len(plain), _spread([p["order"] - p["start"] for p in plain]),
                          _spread([p["fetch"] - p["order"] for p in plain]),
                          _spread([p["staged"] - p["fetch"] for p in plain])))
        delays = res.get("va_delays")
        if delays:
            out.append("pebble's validation delay: mean %.2fs per authorization (max %ds, %d "
                       "authorizations)" % (sum(delays) / float(len(delays)), max(delays),
                                            len(delays)))
        # domains in flight at once (a start to the domain's staged line;
        # a job cut off by a restart and started again counts once)
        events = sorted([(t, 1, _after(line, "ACME0324: ")) for t, line in starts]
                        + [(t, 0, _after(line, "ACME0321: ")) for t, line in staged])
        flying, peak = set(), 0
        for _, begin, d in events:
            (flying.add if begin else flying.discard)(d)
            peak = max(peak, len(flying))
        out.append("domains in flight at once: at most %d; job starts that staged nothing "
                   "(cut off, busy, failed): %d" % (peak, len(starts) - len(staged)))
        span = staged[-1][0] - starts[0][0]
        if span > 0:
            out.append("throughput %.1f domains/s over %.1fs of jobs" % (len(staged) / span, span))
    for t, line in restarts:
        out.append("restart at %.1fs: %s" % (t - w0, line.split("] ", 3)[-1][:70]))
    for t, line in benchlib.timed_lines(log, "ACME1952: "):
        out.append("held at %.1fs: %s" % (t - w0, line.split("ACME1952: ", 1)[1][:90]))
    longest, waited, still = claim_waits(log, w0 + res.get("seconds", 0))
    out.append("claim waits: %d domain(s) waited (ACME0336), %d never got it; longest %.2fs"
               % (waited, still, longest))
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


def ratio_report(results, counts, args):
    """The side-by-side table of one run: times as ratios, restarts, orders,
    claim waits, invalid authorizations; then each of the issue's targets
    marked met or MISSED (scenario a without --realistic, b with it, c with
    --graceful-every)."""
    by = {(r["product"], r["n"]): r for r in results}
    rows, out = [], []
    for n in counts:
        f, m = by.get(("floor", n)), by.get(("mod_md", n))
        for r in (r for r in results if r["n"] == n):
            def ratio(other, flip=False):
                if not (other and other["ok"] and r["ok"]) or other is r:
                    return "-"
                a, b = (other, r) if flip else (r, other)
                return "%.2f" % (a["seconds"] / b["seconds"])
            wait = (claim_waits(r["log"], r["wall0"] + r.get("seconds", 0))[0]
                    if r["product"] == "mod_acme" else None)
            rows.append([r["product"], n, "%.1f" % r["seconds"] if r["ok"] else
                         "NOT all served (%d/%d)" % (len(r["served_at"]), n),
                         ratio(f), ratio(m, flip=True), r["restarts"], r.get("generations", "-"),
                         r["bench_gracefuls"], r["orders"], "%.2f" % (r["orders"] / float(n)),
                         r.get("validations_max", "-"), r.get("invalid", "-"),
                         "%.2f" % wait if wait is not None else "-",
                         "%.1f" % (r["requests"] / float(n)) if r.get("requests") else "-"])
    out.append(benchlib.table(
        ["product", "N", "s to all served", "/ floor", "mod_md s / this", "restarts",
         "generations", "gracefuls sent", "orders", "orders/domain", "max validations/name",
         "authz invalid", "longest claim wait s", "CA requests/cert"], rows))
    out.append("")

    def mark(ok):
        return "met" if ok else "MISSED"
    for n in counts:
        a, m, f = by.get(("mod_acme", n)), by.get(("mod_md", n)), by.get(("floor", n))
        if not a:
            continue
        if args.graceful_every:
            out.append("N=%d, graceful every %g s: %s; orders/domain %.2f; %d authorization(s) "
                       "set invalid; %d graceful(s) sent" % (
                           n, args.graceful_every, "all served" if a["ok"] else "NOT all served",
                           a["orders"] / float(n), a.get("invalid", 0), a["bench_gracefuls"]))
            continue
        if not args.realistic:
            if m and m["ok"] and a["ok"]:
                x = m["seconds"] / a["seconds"]
                out.append("N=%d: mod_acme %.2fx faster than mod_md (target >= 3.5x): %s"
                           % (n, x, mark(x >= 3.5)))
            if f and f["ok"] and a["ok"]:
                x = a["seconds"] / f["seconds"]
                out.append("N=%d: mod_acme / floor %.2f (target <= 1.3): %s"
                           % (n, x, mark(x <= 1.3)))
            continue
        wait = claim_waits(a["log"], a["wall0"] + a.get("seconds", 0))[0]
        out.append("N=%d: restarts %d (target <= 2): %s" % (n, a["restarts"],
                                                           mark(a["restarts"] <= 2)))
        out.append("N=%d: longest claim wait %.2fs (target <= 1 s): %s" % (n, wait,
                                                                          mark(wait <= 1.0)))
        out.append("N=%d: %d orders for %d domains (target one per domain): %s"
                   % (n, a["orders"], n, mark(a["orders"] == n)))
        if f and f["ok"] and a["ok"]:
            bound = 1.2 * f["seconds"] + f["restart"]
            out.append("N=%d: mod_acme %.1fs against 1.2 x floor %.1fs + one restart %.1fs = "
                       "%.1fs: %s" % (n, a["seconds"], f["seconds"], f["restart"], bound,
                                      mark(a["seconds"] <= bound)))
        if m and m["ok"] and a["ok"]:
            out.append("N=%d: mod_md / mod_acme %.2f" % (n, m["seconds"] / a["seconds"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", default="1,20,100", help="comma-separated domain counts")
    ap.add_argument("--products", default=",".join(PRODUCTS))
    ap.add_argument("--build", help="mod_acme build dir (default $MOD_ACME_BUILD_DIR)")
    ap.add_argument("--module", help="path of mod_acme.so (default: <build>/.libs/mod_acme.so)")
    ap.add_argument("--timeout", type=float, help="seconds per run (default 300, 900 with "
                    "--realistic)")
    ap.add_argument("--realistic", action="store_true",
                    help="pebble's validation delays on (PEBBLE_VA_NOSLEEP unset), as at a "
                    "real CA, for every product and the floor")
    ap.add_argument("--graceful-every", type=float, default=0, metavar="S",
                    help="send `apache2 -k graceful` to the httpd every S s until all are "
                    "served")
    ap.add_argument("--preflight", choices=("on", "off"), default="on",
                    help="mod_acme's pre-flight (default on, as users get it)")
    ap.add_argument("--parallel", type=int, default=0,
                    help="ManagedParallelRenewals for mod_acme (default: the module's)")
    ap.add_argument("--floor-parallel", type=int, default=0,
                    help="the floor client's certificates at a time (default: all N); "
                    "a product floor:K runs the floor with K at a time beside it")
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
        name, _, k = p.partition(":")
        if name not in PRODUCTS or (k and (name != "floor" or not k.isdigit())):
            ap.error("unknown product %r" % p)
    if args.timeout is None:
        args.timeout = 900 if args.realistic else 300
    module = args.module or benchlib.module_path(args.build)
    if "mod_acme" in products and not os.path.isfile(module):
        ap.error("%s not found: build first and set MOD_ACME_BUILD_DIR or --build" % module)
    if os.geteuid() != 0:
        ap.error("run as root (httpd binds, switches user and owns its store)")

    pebble_env = dict(PEBBLE_ENV)
    if args.realistic:
        pebble_env.update(REALISTIC_ENV)
    for kv in args.pebble_env.split():
        k, _, v = kv.partition("=")
        pebble_env[k] = v
    work = args.work or tempfile.mkdtemp(prefix="mod_acme-bench-")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    info = benchlib.machine_info()
    benchlib.print_machine(info)
    say("key type: %s%s" % (args.keys, ", mod_md %s" % args.md_keys if args.md_keys else ""))
    say("pebble env: %s" % " ".join("%s=%s" % kv if kv[1] is not None else "-u " + kv[0]
                                    for kv in sorted(pebble_env.items())))
    say("mod_acme pre-flight %s; graceful every %s" % (args.preflight, "%g s" % args.graceful_every
                                                      if args.graceful_every else "-"))
    say("work dir: %s" % work)
    results = []
    dns = pebble = None
    try:
        http_port, tls_port = util.free_port(), util.free_port()
        dns, pebble = benchlib.start_pebble(work, http_port, tls_port, pebble_env)
        for n in counts:
            for product in products:
                say("== %s, N=%d" % (product, n))
                if product.startswith("floor"):
                    k = product.partition(":")[2]
                    res = run_floor(n, work, pebble, http_port, tls_port,
                                    args.build or os.environ.get("MOD_ACME_BUILD_DIR")
                                    or os.path.dirname(os.path.dirname(module)), args.timeout,
                                    args.keys, int(k) if k else args.floor_parallel,
                                    args.graceful_every, product)
                    say("   httpd up in %.2fs, issued in %.2fs, restart until all served %.2fs"
                        % (res.get("start", -1), res.get("issue", -1), res.get("restart", -1)))
                else:
                    res = run_one(product, n, work, pebble, http_port, tls_port, module,
                                  args.timeout, args.parallel, args.debug,
                                  args.md_keys if product == "mod_md" and args.md_keys
                                  else args.keys, args.preflight, args.graceful_every)
                results.append(res)
                state = "all served" if res["ok"] else "NOT all served (%d of %d)" % (
                    len(res["served_at"]), n)
                say("   %s after %.1fs (httpd up after %.1fs), %d restart(s), %d generation(s), "
                    "%d graceful(s) sent, %d order(s), %d validation(s) (at most %d for a "
                    "name), %d authorization(s) set invalid, peak RSS %.1f MiB over %d "
                    "processes, VmHWM sum %.1f MiB"
                    % (state, res.get("seconds", -1), res.get("started", -1), res["restarts"],
                       res.get("generations", -1), res["bench_gracefuls"], res["orders"],
                       res.get("validations", 0), res.get("validations_max", 0),
                       res.get("invalid", 0), res["peak_rss"] / 1024.0, res["peak_procs"],
                       res["peak_hwm"] / 1024.0))
                if res.get("va_delays"):
                    d = res["va_delays"]
                    say("   pebble's validation delay per authorization: mean %.2fs, max %ds"
                        % (sum(d) / float(len(d)), max(d)))
                analyse = {"mod_acme": analyse_acme, "mod_md": analyse_md}.get(product)
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
    say("")
    for line in ratio_report(results, counts, args):
        say(line)
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
