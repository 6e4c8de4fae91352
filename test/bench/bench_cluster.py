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
    """{(server index, name): seconds since t0 when first served}. The
    handshakes of a round go 16 at a time: one after the other, a round over
    3 servers and 300 names took 4 s, which the stored -> served figures
    would count."""
    from concurrent.futures import ThreadPoolExecutor
    seen = {}
    deadline = t0 + timeout
    with ThreadPoolExecutor(max_workers=16) as pool:
        while len(seen) < len(servers) * len(names) and time.monotonic() < deadline:
            todo = [(i, n) for i in range(len(servers)) for n in names if (i, n) not in seen]
            for (i, n), ok in zip(todo, pool.map(lambda k: served(servers[k[0]], k[1]), todo)):
                if ok:
                    seen[(i, n)] = time.monotonic() - t0
            time.sleep(0.2)
    return seen


def grpc_by_method(cluster):
    """{gRPC method: requests handled}, summed over the members."""
    out = {}
    for m in cluster.members:
        text = cluster.http.get(m.client_url + "/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("grpc_server_handled_total{"):
                method = re.search(r'grpc_method="([^"]*)"', line)
                key = method.group(1) if method else "?"
                out[key] = out.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return out


def grpc_total(cluster):
    return sum(grpc_by_method(cluster).values())


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


def quantiles(values):
    """'median / max' of values in seconds, or '-'."""
    v = sorted(values)
    return "%.1f / %.1f" % (v[len(v) // 2], v[-1]) if v else "-"


def breakdown(servers, names, seen, staged, w0):
    """Where the time from stored to served everywhere goes, per domain,
    from the servers' error logs (seconds since w0): staged -> activated
    (ACME0303 on the server that moved it: the restart's hold and the
    activations before it in the same thread), activated -> the last
    server's new generation that followed its restart signal (ACME0312),
    and that generation -> the probe saw it served (the probe's own lag).
    Also the restarts of each server and the activations' pace."""
    activated, restarts, gens = {}, [], []
    for i, s in enumerate(servers):
        log = s.error_log()
        for t, line in benchlib.timed_lines(log, "ACME0303: "):
            m = re.search(r"ACME0303: (\S+): new certificate activated", line)
            if m:
                activated.setdefault(m.group(1), t - w0)
        sig = [(t - w0, set(re.findall(r"(\S+)@\S+", line.split("ready (", 1)[-1])))
               for t, line in benchlib.timed_lines(log, "ACME0312: ")]
        gen = sorted(t - w0 for t, _ in benchlib.timed_lines(log, "resuming normal operations"))
        restarts.append(sig)
        gens.append(gen)
    hold, restart, probe = [], [], []
    for n in names:
        if n not in staged or n not in activated:
            continue
        last_gen = 0
        for i in range(len(servers)):
            at = next((t for t, items in restarts[i] if n in items), None)
            g = next((t for t in gens[i] if at is not None and t > at), None)
            if g is None:
                last_gen = None
                break
            last_gen = max(last_gen, g)
        served = max([seen.get((i, n), 0) for i in range(len(servers))])
        hold.append(activated[n] - staged[n])
        if last_gen is not None:
            restart.append(last_gen - activated[n])
            probe.append(served - last_gen)
    acts = sorted(activated.values())
    say("   stored -> served everywhere, by component (median / max s): staged -> activated "
        "%s; activated -> the last server's new generation %s; -> the probe saw it %s"
        % (quantiles(hold), quantiles(restart), quantiles(probe)))
    for i, sig in enumerate(restarts):
        say("   server %d: restart signals at %s s (items %s); new generations at %s s"
            % (i, ", ".join("%.1f" % t for t, _ in sig), ", ".join(str(len(x)) for _, x in sig),
               ", ".join("%.1f" % t for t in gens[i])))
    if acts:
        say("   activations: %d, from %.1f to %.1f s" % (len(acts), acts[0], acts[-1]))


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


def request_kind(path, body):
    """'group operation' of one etcd gateway request: the group is the first
    name below the prefix of the key it reads or writes (a txn: its first
    operation's key, else its first compare's)."""
    op = path.rsplit("/", 1)[-1]
    key = None
    if isinstance(body, dict):
        key = body.get("key") or (body.get("create_request") or {}).get("key")
        # a fenced write compares the claim's key first: count it by what it writes
        for part in (body.get("success") or []) + (body.get("compare") or []):
            if key:
                break
            if isinstance(part, dict):
                key = part.get("key") or next((v.get("key") for v in part.values()
                                               if isinstance(v, dict) and v.get("key")), None)
    group = "-"
    if key:
        try:
            k = base64.b64decode(key).decode("utf-8", "replace")
            group = k[len(PREFIX):].split("/", 1)[0] if k.startswith(PREFIX) else "(other)"
            if group == "staging" and "/_batch/" in k:
                group = "staging/_batch"
        except ValueError:
            group = "?"
    return "%s %s" % (group, op)


def own_host_names(work):
    """An apache2 wrapper that gives each server (ServerRoot .../srvN) a host
    name of its own in a UTS namespace: docs/cluster.md asks that of a fleet
    (a claim held under this host's name is taken for this server's older
    generation, and looked at every 0.2 s)."""
    path = os.path.join(work, "apache2-own-host")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nn=x\nfor a; do case "$a" in */srv[0-9]*) n=${a##*/srv}; n=${n%%/*};; esac; done\n'
                'exec unshare --uts sh -c \'hostname "bench-srv$0" && exec /usr/sbin/apache2 "$@"\' '
                '"$n" "$@"\n')
    os.chmod(path, 0o755)
    return path


def run_cluster(work, pebble, ports, module, names, timeout, etcd, nservers, count_keys=False):
    import harness.httpd
    harness.httpd.APACHE_BIN = own_host_names(work)
    key = os.path.join(work, "store.key")
    subprocess.run(["openssl", "rand", "-out", key, "32"], check=True)
    os.chmod(key, 0o400)
    servers = [Httpd(os.path.join(work, "srv%d" % i), util.free_port(), util.free_port(),
                     module_path=module) for i in range(nservers)]
    members = [int(u.rsplit(":", 1)[1]) for u in etcd.endpoints]
    proxies = [Forwarder(util.free_port(), members, http=True).start()
               for _ in range(nservers if count_keys else 0)]
    for i, s in enumerate(servers):
        where = ("http://127.0.0.1:%d" % proxies[i].listen_port if count_keys
                 else " ".join(etcd.endpoints))
        store = ("ManagedStore etcd %s\nManagedStoreEncryptionKey %s\nManagedStorePrefix %s\n"
                 % (where, key, PREFIX))
        s.write_config(config(s, pebble, names, store))
        os.chmod(s.run_dir, 0o1777)   # a crashed child (www-data) leaves its core there
    fwd = [Forwarder(ports[0], [s.http_port for s in servers]).start(),
           Forwarder(ports[1], [s.tls_port for s in servers]).start()]
    mark = pebble.log_mark()
    by0 = grpc_by_method(etcd)
    req0 = sum(by0.values())
    w0 = time.time()
    t0 = time.monotonic()
    try:
        for s in servers:
            s.start(timeout=120)
        seen = wait_all(servers, names, timeout, t0)
        by1 = grpc_by_method(etcd)
        reqs = sum(by1.values()) - req0
        say("   etcd requests per domain by method: %s" % ", ".join(
            "%s %.1f" % (k, (v - by0.get(k, 0)) / len(names))
            for k, v in sorted(by1.items(), key=lambda kv: by0.get(kv[0], 0) - kv[1])
            if v - by0.get(k, 0) > 0))
        nbytes = etcd_bytes(etcd)
        staged = {}
        for s in servers:
            staged.update(staged_times(s, w0))
        breakdown(servers, names, seen, staged, w0)
        if count_keys:
            kinds = {}
            for px in proxies:
                for path, body in list(px.requests):
                    k = request_kind(path, body)
                    kinds[k] = kinds.get(k, 0) + 1
            say("   requests per domain by group and operation (through the counting proxies, "
                "all servers): %s" % ", ".join("%s %.1f" % (k, v / len(names)) for k, v in
                                               sorted(kinds.items(), key=lambda kv: -kv[1])))
        lag = []
        for n in names:
            got = [seen.get((i, n)) for i in range(nservers)]
            if n in staged and None not in got:
                lag.append(max(got) - staged[n])
    finally:
        errors = [l for s in servers for l in s.unexpected_errors()]
        stop_all(servers)
        for px in proxies:
            px.stop()
        harness.httpd.APACHE_BIN = "/usr/sbin/apache2"
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


# ---- restart mode: what a graceful restart costs with many valid domains ----

def seed_file_store(root, names, ca_url):
    """A file store under root with a valid certificate, key and meta.json
    for each name (one local CA, one key): what migrate copies to etcd."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench restart CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    staged = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    os.makedirs(root, mode=0o755)
    with open(os.path.join(root, "store.json"), "w") as f:
        f.write('{"schema": 1}\n')
    for n in names:
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=90))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n)]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        d = os.path.join(root, "domains", n)
        os.makedirs(d, mode=0o700)
        with open(os.path.join(d, "cert.p256.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
        fd = os.open(os.path.join(d, "privkey.p256.pem"), os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump({"ca": ca_url, "key-types": ["P-256"], "names": [n], "staged": staged}, f)


def proxy_counts(proxies):
    return [(len(p.requests), p.bytes_out) for p in proxies]


def restart_config(httpd, pebble, names, store_lines, vhosts):
    text = httpd.acme_config(pebble) + store_lines
    # each domain's status looked at every minute, not every hour: the idle
    # requests per minute that grow with N show within the measured minutes
    text += "ManagedChallenges http-01\nLogLevel info acme:info\nManagedCheckInterval 60s\n"
    if not vhosts:
        text += "ManagedRenewMode always\n"
    for n in names:
        text += "ManagedDomain %s\n" % n
        if vhosts:
            text += httpd.vhost(n, tls=True)
    return text


def run_restart(work, pebble, module, n, etcd, nservers, vhosts, idle_seconds):
    """N valid domains seeded into etcd (a file store, then acmectl store
    migrate); nservers servers, each talking to etcd through a counting
    proxy of its own. Measures a graceful restart of server 0 (seconds until
    the new generation serves; requests and bytes read through its proxy
    during it, and in the 30 s after, when its new children start) and the
    idle requests per minute of each server."""
    # the first start of 10,000 domains takes longer than the harness's 60 s
    Httpd._cmd.__kwdefaults__ = {"timeout": 1800.0}
    prefix = "restart-%d/" % n
    key = os.path.join(work, "store-%d.key" % n)
    subprocess.run(["openssl", "rand", "-out", key, "32"], check=True)
    os.chmod(key, 0o400)
    members = [int(u.rsplit(":", 1)[1]) for u in etcd.endpoints]
    proxies = [Forwarder(util.free_port(), members, http=True).start() for _ in range(nservers)]
    servers = [Httpd(os.path.join(work, "r%d-srv%d" % (n, i)), util.free_port(),
                     util.free_port(), module_path=module) for i in range(nservers)]
    names = ["r%05d.bench.example.org" % i for i in range(1, n + 1)]
    for s, p in zip(servers, proxies):
        store = ("ManagedStore etcd http://127.0.0.1:%d\nManagedStoreEncryptionKey %s\n"
                 "ManagedStorePrefix %s\n" % (p.listen_port, key, prefix))
        s.write_config(restart_config(s, pebble, names, store, vhosts))
    out = {"n": n}
    try:
        seed = os.path.join(work, "seed-%d" % n)
        t = time.monotonic()
        seed_file_store(seed, names, pebble.dir_url)
        out["seed_gen_s"] = time.monotonic() - t
        conf = os.path.join(work, "migrate-%d.conf" % n)
        with open(servers[0].conf_file) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(re.sub(r'ManagedStoreDir "[^"]*"', 'ManagedStoreDir "%s"' % seed, text))
        t = time.monotonic()
        res = subprocess.run([os.path.join(os.path.dirname(os.path.dirname(module)), "tools",
                                           "acmectl"), "-f", conf, "store", "migrate", "--to",
                              "etcd"], capture_output=True, text=True, timeout=3600)
        out["migrate_s"] = time.monotonic() - t
        if res.returncode != 0:
            raise RuntimeError("migrate: %s" % (res.stdout + res.stderr)[-2000:])
        say("   seeded %d domains: certificates %.1f s, acmectl store migrate %.1f s (%s)"
            % (n, out["seed_gen_s"], out["migrate_s"], res.stdout.strip().splitlines()[-1]))
        mark = pebble.log_mark()
        t = time.monotonic()
        for s in servers:
            s.start(timeout=1800)
        out["start_s"] = time.monotonic() - t
        # settled: the first look at each domain asks the CA for its renewal
        # information (a job per domain, which writes the domain's job.json)
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            res = etcd.etcdctl("get", "--prefix", prefix + "jobs/", "--keys-only", timeout=120)
            done = sum(1 for line in res.stdout.splitlines() if line.endswith("/job.json"))
            if done >= n:
                break
            time.sleep(5)
        out["settled_s"] = time.monotonic() - t
        time.sleep(30)
        c0 = proxy_counts(proxies)
        time.sleep(idle_seconds)
        c1 = proxy_counts(proxies)
        out["idle_per_min"] = [round((b[0] - a[0]) * 60.0 / idle_seconds) for a, b in zip(c0, c1)]
        s = servers[0]
        # the first graceful after the start: every domain's job.json was
        # written since (the renewal information); the second: nothing was
        for run in ("graceful1", "graceful2"):
            at = len(s.error_log())
            c0 = proxy_counts(proxies)[0]
            t = time.monotonic()
            s.graceful(timeout=1800)
            out[run + "_s"] = round(time.monotonic() - t, 2)
            c1 = proxy_counts(proxies)[0]
            time.sleep(30)
            c2 = proxy_counts(proxies)[0]
            out[run + "_requests"] = c1[0] - c0[0]
            out[run + "_bytes"] = c1[1] - c0[1]
            out[run + "_after30s_requests"] = c2[0] - c1[0]
            out[run + "_after30s_bytes"] = c2[1] - c1[1]
            out[run + "_lines"] = [m.group(2) for m in re.finditer(
                r"\[pid (\d+):tid \1\] ACME240[01]: store: \S+?/(.*)", s.error_log()[at:])][:3]
        out["orders"] = pebble.count_orders(since=mark)
    finally:
        out["errors"] = [l for s in servers for l in s.unexpected_errors()][:5]
        stop_all(servers)
        for p in proxies:
            p.stop()
    return out


def main():
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=300, help="domains")
    ap.add_argument("--servers", type=int, default=3)
    ap.add_argument("--count-keys", action="store_true", help="each server talks to etcd "
                    "through a counting proxy: requests by key group and operation")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run")
    ap.add_argument("--build", help="mod_acme build dir (default $MOD_ACME_BUILD_DIR)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--restart", help="restart mode: comma-separated domain counts (e.g. "
                    "1000,10000) of valid domains seeded into etcd; measures a graceful "
                    "restart of one server and the idle requests per minute, then exits")
    ap.add_argument("--vhosts", action="store_true", help="restart mode: a TLS vhost per "
                    "domain (default: ManagedRenewMode always, no vhost: mod_ssl's own "
                    "loading of the certificates left out)")
    ap.add_argument("--idle", type=float, default=120, help="restart mode: idle seconds measured")
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
        if args.restart:
            for n in [int(v) for v in args.restart.split(",")]:
                say("== restart, etcd store, %d servers, N=%d valid domains" % (args.servers, n))
                r = run_restart(work, pebble, module, n, etcd, args.servers, args.vhosts,
                                args.idle)
                say("   %s" % json.dumps(r))
            return 0
        say("== file store, 1 server, N=%d" % args.n)
        f = run_file(work, pebble, ports, module, names, args.timeout)
        say("   %s" % f)
        say("== etcd store, %d servers, N=%d" % (args.servers, args.n))
        c = run_cluster(work, pebble, ports, module, names, args.timeout, etcd, args.servers,
                        args.count_keys)
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
