#!/usr/bin/python3
"""bench_cluster.py: N domains on 3 httpd servers sharing a 3-member etcd
(ManagedStore etcd) against N domains on one server with the file store, on one
pebble; the CA reaches the cluster through a round-robin forwarder.

Run by hand (not part of the test suite), as root, after building the module:
    MOD_ACME_BUILD_DIR=/tmp/build-x /usr/bin/python3 test/bench/bench_cluster.py [-n 300]

Prints: seconds until every domain is served (by every server, for the
cluster) with the ratio; etcd requests per domain issued (etcd's own gRPC
counters, summed over the members, so the gateway's requests and the idle
polling of every server during the run count); etcd bytes per domain (keys and
values under the cluster's prefix); seconds from a certificate being stored
(the job's "staged" log line) to every server serving it."""
import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import say, util
from harness.etcd import EtcdCluster  # noqa: E402
from harness.forwarder import Forwarder  # noqa: E402
from harness.httpd import Httpd  # noqa: E402
from harness.pebble import Pebble, PebbleDNS  # noqa: E402
from harness.pki import ListenerPKI, cert_issuer_cn  # noqa: E402

PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
PREFIX = "bench/"


def names_of(n):
    return ["c%03d.bench.example.org" % i for i in range(1, n + 1)]


def config(httpd, pebble, names, store_lines):
    text = httpd.acme_config(pebble) + store_lines
    text += "ManagedChallenges http-01\nManagedRetryDelay 2s\nLogLevel info acme:info\n"
    for n in names:
        text += "ManagedDomain %s\n" % n + httpd.vhost(n, tls=True)
    return text


def served(httpd, host):
    try:
        cn = cert_issuer_cn(httpd.get_cert(host))
    except Exception:  # noqa: BLE001 - not up yet
        return False
    return bool(cn) and "mod_acme fallback" not in cn


def wait_all(servers, names, timeout, t0):
    """{(server index, name): seconds since t0 when first served}."""
    seen = {}
    deadline = t0 + timeout
    while len(seen) < len(servers) * len(names) and time.monotonic() < deadline:
        for i, s in enumerate(servers):
            for n in names:
                if (i, n) not in seen and served(s, n):
                    seen[(i, n)] = time.monotonic() - t0
        time.sleep(0.2)
    return seen


def grpc_total(cluster):
    total = 0
    for m in cluster.members:
        text = cluster.http.get(m.client_url + "/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("grpc_server_handled_total{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def etcd_bytes(cluster):
    res = cluster.etcdctl("get", "--prefix", PREFIX, "-w", "json")
    kvs = json.loads(res.stdout).get("kvs", [])
    return sum(len(base64.b64decode(kv["key"])) + len(base64.b64decode(kv.get("value", "")))
               for kv in kvs)


def staged_times(httpd, w0):
    """name -> seconds since w0 of its "staged" log line."""
    out = {}
    for t, line in benchlib.timed_lines(httpd.error_log(), "certificate obtained and staged"):
        m = re.search(r"ACME0321: (\S+): certificate obtained", line)
        if m:
            out[m.group(1)] = t - w0
    return out


def stop_all(servers):
    for s in servers:
        try:
            s.stop()
        except Exception as e:  # noqa: BLE001 - keep going
            say("   (stopping httpd: %s)" % e)


def run_file(work, pebble, ports, module, names, timeout):
    s = Httpd(os.path.join(work, "file"), ports[0], ports[1], module_path=module)
    s.write_config(config(s, pebble, names, ""))
    mark = pebble.log_mark()
    t0 = time.monotonic()
    try:
        s.start(timeout=120)
        seen = wait_all([s], names, timeout, t0)
    finally:
        stop_all([s])
    return {"ok": len(seen) == len(names), "seconds": max(seen.values()) if seen else None,
            "orders": pebble.count_orders(since=mark), "served": len(seen)}


def run_cluster(work, pebble, ports, module, names, timeout, etcd, nservers):
    key = os.path.join(work, "store.key")
    subprocess.run(["openssl", "rand", "-out", key, "32"], check=True)
    os.chmod(key, 0o400)
    servers = [Httpd(os.path.join(work, "srv%d" % i), util.free_port(), util.free_port(),
                     module_path=module) for i in range(nservers)]
    store = ("ManagedStore etcd %s\nManagedStoreEncryptionKey %s\nManagedStorePrefix %s\n"
             % (" ".join(etcd.endpoints), key, PREFIX))
    for s in servers:
        s.write_config(config(s, pebble, names, store))
    fwd = [Forwarder(ports[0], [s.http_port for s in servers]).start(),
           Forwarder(ports[1], [s.tls_port for s in servers]).start()]
    mark = pebble.log_mark()
    req0 = grpc_total(etcd)
    w0 = time.time()
    t0 = time.monotonic()
    try:
        for s in servers:
            s.start(timeout=120)
        seen = wait_all(servers, names, timeout, t0)
        reqs = grpc_total(etcd) - req0
        nbytes = etcd_bytes(etcd)
        staged = {}
        for s in servers:
            staged.update(staged_times(s, w0))
        lag = []
        for n in names:
            got = [seen.get((i, n)) for i in range(nservers)]
            if n in staged and None not in got:
                lag.append(max(got) - staged[n])
    finally:
        errors = [l for s in servers for l in s.unexpected_errors()]
        stop_all(servers)
        for f in fwd:
            f.stop()
    for line in errors[:8]:
        say("   error line: " + line[:300])
    say("   %d error line(s)" % len(errors))
    lag.sort()
    return {"ok": len(seen) == len(names) * nservers,
            "seconds": max(seen.values()) if seen else None, "served": len(seen),
            "orders": pebble.count_orders(since=mark), "requests": reqs, "bytes": nbytes,
            "lag_median": lag[len(lag) // 2] if lag else None, "lag_max": lag[-1] if lag else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=300, help="domains")
    ap.add_argument("--servers", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run")
    ap.add_argument("--build", help="mod_acme build dir (default $MOD_ACME_BUILD_DIR)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()
    benchlib.exit_on_sigterm()
    module = benchlib.module_path(args.build)
    if not os.path.isfile(module):
        ap.error("%s not found: build first" % module)
    if os.geteuid() != 0:
        ap.error("run as root")
    work = tempfile.mkdtemp(prefix="mod_acme-bench-cluster-")
    os.chmod(work, 0o755)
    benchlib.print_machine(benchlib.machine_info())
    names = names_of(args.n)
    dns = pebble = etcd = None
    try:
        dns = PebbleDNS(os.path.join(work, "dns"))
        os.makedirs(dns.workdir, exist_ok=True)
        dns.start()
        pki_dir = os.path.join(work, "pki")
        os.makedirs(pki_dir)
        os.chmod(pki_dir, 0o755)
        pki = ListenerPKI(pki_dir).generate()
        ports = (util.free_port(), util.free_port())
        pebble = Pebble(work, "pebble", pki, dns, ports[0], ports[1], env=PEBBLE_ENV).start()
        etcd = EtcdCluster(os.path.join(work, "etcd"), size=3).start()
        say("== file store, 1 server, N=%d" % args.n)
        f = run_file(work, pebble, ports, module, names, args.timeout)
        say("   %s" % f)
        say("== etcd store, %d servers, N=%d" % (args.servers, args.n))
        c = run_cluster(work, pebble, ports, module, names, args.timeout, etcd, args.servers)
        say("   %s" % c)
    finally:
        for proc in (pebble, dns):
            if proc is not None:
                proc.stop()
        if etcd is not None:
            etcd.stop()
    fmt = lambda v: "-" if v is None else "%.1f" % v  # noqa: E731
    rows = [["file, 1 server", args.n, fmt(f["seconds"]) if f["ok"] else "timeout", f["orders"],
             "-", "-", "-"],
            ["etcd, %d servers" % args.servers, args.n,
             fmt(c["seconds"]) if c["ok"] else "timeout (%d)" % c["served"], c["orders"],
             "%.0f" % (c["requests"] / args.n), "%.0f" % (c["bytes"] / args.n),
             "%s / %s" % (fmt(c["lag_median"]), fmt(c["lag_max"]))]]
    say("")
    say(benchlib.table(["store", "N", "s to all served everywhere", "orders",
                        "etcd requests/domain", "etcd bytes/domain",
                        "s stored->served everywhere (median / max)"], rows))
    if f["ok"] and c["ok"]:
        say("cluster time / file time = %.2f" % (c["seconds"] / f["seconds"]))
    if args.keep:
        say("work dir kept: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if f["ok"] and c["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
