# Several real httpd servers on one real etcd cluster (ManagedStore etcd), one
# real pebble reaching them through a round-robin forwarder: shared issuance,
# challenges answered by any server, crashes, fencing, etcd outages, secrets.
import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from harness import util
from harness.etcd import item_mac_value
from harness.forwarder import Forwarder
from harness.httpd import Httpd, served_by_ca

ISSUE_TIMEOUT = 120.0


def make_key_file(path, mode=0o400):
    subprocess.run(["openssl", "rand", "-out", path, "32"], check=True)
    os.chmod(path, mode)
    return path


class Cluster:
    """n Httpd servers with their own ports and local caches, sharing one etcd
    prefix and one encryption key; pebble's validation ports forward to them
    in turn."""

    def __init__(self, test_dir, n, etcd, ca, acme_ports, module_path):
        self.etcd = etcd
        self.ca = ca
        self.prefix = "it-cluster-%s/" % uuid.uuid4().hex[:10]
        self.key_file = make_key_file(os.path.join(test_dir, "acme-store.key"))
        self.servers = [Httpd(os.path.join(test_dir, "httpd%d" % i), util.free_port(),
                              util.free_port(), module_path=module_path) for i in range(n)]
        self.forwarders = [
            Forwarder(acme_ports["http"], [s.http_port for s in self.servers]).start(),
            Forwarder(acme_ports["tls"], [s.tls_port for s in self.servers]).start(),
        ]

    def store_config(self, server, key_file=None):
        return ("ManagedStore etcd %s\n" % " ".join(self.etcd.endpoints)
                + 'ManagedStoreEncryptionKey "%s"\n' % (key_file or self.key_file)
                + "ManagedStorePrefix %s\n" % self.prefix)

    def config(self, server, domains, challenges="http-01", extra=""):
        text = server.acme_config(self.ca) + self.store_config(server)
        text += "ManagedChallenges %s\nManagedRetryDelay 2s\n" % challenges + extra
        text += "<Location /acme-metrics>\n    SetHandler acme-metrics\n</Location>\n"
        for name in domains:
            text += "ManagedDomain %s\n" % name
            text += server.vhost(name, tls=True) + server.vhost(name, tls=False)
        return text

    def write_configs(self, domains, **kw):
        for s in self.servers:
            s.write_config(self.config(s, domains, **kw))

    def start(self):
        for s in self.servers:
            s.start()

    def serials(self, name):
        """The serial each server serves for name (None: fallback or nothing)."""
        out = []
        for s in self.servers:
            cert = served_by_ca(s, name)
            out.append(cert.serial_number if cert else None)
        return out

    def wait_served_everywhere(self, names, timeout=ISSUE_TIMEOUT):
        def same_everywhere():
            for n in names:
                got = self.serials(n)
                if None in got or len(set(got)) != 1:
                    return False
            return True
        util.wait_for(same_everywhere, timeout, "%s served by all %d servers with one "
                      "certificate each" % (names, len(self.servers)), interval=0.5)

    def metric(self, server, name, host):
        text = server.http_get("/acme-metrics", host).text
        m = re.search(r"^%s (\d+)$" % name, text, re.M)
        return int(m.group(1)) if m else None

    def etcd_values(self, raw=False):
        """Every key and value (bytes when raw) under this cluster's prefix."""
        import base64
        import json
        res = self.etcd.etcdctl("get", "--prefix", self.prefix, "-w", "json")
        kvs = json.loads(res.stdout).get("kvs", [])
        out = [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")))
               for kv in kvs]
        return out if raw else [(k, v.decode("utf-8", "replace")) for k, v in out]

    def tool(self, build_dir, *args):
        cmd = [os.path.join(build_dir, "test", "tools", "etcdtool"), "--endpoints",
               ",".join(self.etcd.endpoints), "--prefix", self.prefix, "--seal-key",
               self.key_file] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def failure_logs(self):
        out = []
        for i, s in enumerate(self.servers):
            out += [("server %d: %s" % (i, t), text) for t, text in s.failure_logs()]
        return out + self.etcd.failure_logs()

    def stop(self):
        for s in self.servers:
            s.stop()
        for f in self.forwarders:
            f.stop()


@pytest.fixture
def cluster_factory(test_dir, etcd_cluster, pebble, acme_ports, module_path):
    made = []

    def make(n=3, ca=None):
        c = Cluster(test_dir, n, etcd_cluster, ca or pebble, acme_ports, module_path)
        made.append(c)
        return c

    yield make
    bad = []
    for c in made:
        c.stop()
        for i, s in enumerate(c.servers):
            bad += ["server %d: %s" % (i, line) for line in s.unexpected_errors()]
    etcd_cluster.heal()
    if bad:
        pytest.fail("unexpected [error] lines:\n%s" % "\n".join(bad[:30]), pytrace=False)


def staged_by(cluster, name):
    """Indexes of the servers whose job obtained a certificate for name."""
    return [i for i, s in enumerate(cluster.servers)
            if re.search(r"ACME0321: %s: certificate obtained" % re.escape(name), s.error_log())]


def activated_by_thread(server):
    """Names whose activation the parent's restart thread logged (pid != tid):
    with etcd it is done before the restart signal, not in the configuration
    pass, during which nobody answers."""
    return [m.group(3) for m in re.finditer(r"\[pid (\d+):tid (\d+)\] ACME0303: (\S+): new",
                                            server.error_log()) if m.group(1) != m.group(2)]


def answered_by(cluster, name):
    return [i for i, s in enumerate(cluster.servers)
            if "http-01: answering the challenge for %s" % name in s.error_log()]


@pytest.mark.time_limit(400)
def test_three_servers_share_issuance_with_one_order_per_domain(cluster_factory, pebble,
                                                                acme_proxy):
    c = cluster_factory(3, ca=acme_proxy)
    names = ["a.cluster.test", "b.cluster.test", "c.cluster.test"]
    mark = pebble.log_mark()
    c.write_configs(names)
    # the CA answers once every server is up, so the forwarder has all three
    acme_proxy.set_down("close")
    for s in c.servers:
        s.expect_errors(r"ACME0322")
    c.start()
    acme_proxy.set_down(None)
    c.wait_served_everywhere(names)
    assert pebble.count_orders(since=mark) == len(names), pebble.log_text()[mark:][-3000:]
    for n in names:
        assert len(staged_by(c, n)) == 1, (n, staged_by(c, n))
    # the forwarder spread the CA's connections over all servers, and a
    # server whose job did not order a domain answered for it
    assert all(n > 0 for n in c.forwarders[0].counts), c.forwarders[0].counts
    assert all(answered_by(c, n) for n in names)
    assert any(set(answered_by(c, n)) - set(staged_by(c, n)) for n in names)
    # activations happened while the old generation served
    assert any(activated_by_thread(s) for s in c.servers), [s.error_log()[-2000:]
                                                             for s in c.servers]
    # etcd has one key per item, no big value; docs/cluster.md quotes the sizes
    values = c.etcd_values()
    assert values and max(len(v) for _, v in values) < 64 * 1024
    per_domain = {n: sum(len(k) + len(v) for k, v in values if "/%s/" % n in k) for n in names}
    shared = sum(len(k) + len(v) for k, v in values) - sum(per_domain.values())
    print("etcd bytes per domain: %s; shared (account, markers): %d; items of %s: %s"
          % (per_domain, shared, names[0],
             sorted((k[len(c.prefix):], len(k) + len(v)) for k, v in values
                    if "/%s/" % names[0] in k)))
    assert max(per_domain.values()) < 32 * 1024, per_domain


def token_cluster(cluster_factory, name, n=3):
    """n servers whose domain's CA cannot be reached: only the challenge
    hooks are under test."""
    c = cluster_factory(n)
    for s in c.servers:
        s.write_config(c.config(s, [name]).replace(c.ca.dir_url, "https://127.0.0.1:9/dir"))
        s.expect_errors(r"ACME0322")
    c.start()
    return c


def publish_token(c, build_dir, token, *remove):
    r = c.tool(build_dir, *(("store-remove", "challenges", "http-01", token) if remove else
                            ("store-save", "challenges", "http-01", token, token + ".thumb")))
    assert r.returncode == 0, r.stderr


def token_status(server, name, token):
    return server.http_get("/.well-known/acme-challenge/" + token, name).status


def test_any_server_answers_a_token_published_elsewhere(cluster_factory, build_dir):
    name = "tok.cluster.test"
    c = token_cluster(cluster_factory, name)
    token = "T" + uuid.uuid4().hex
    publish_token(c, build_dir, token)
    for s in c.servers:
        resp = s.http_get("/.well-known/acme-challenge/" + token, name)
        assert resp.status == 200 and resp.text == token + ".thumb", (s.http_port, resp)
    # a token nobody published: 404, and repeated asking is answered from the
    # negative cache (no [error], no crash)
    for _ in range(200):
        assert c.servers[0].http_get("/.well-known/acme-challenge/Nope" + "x" * 20,
                                     name).status == 404
    for i in range(300):
        resp = c.servers[1].http_get("/.well-known/acme-challenge/Bogus%d" % i, name)
        assert resp.status == 404
    assert c.servers[1].http_get("/index.html", name).status == 200


def test_new_children_answer_a_whole_batch_published_before_them(cluster_factory, build_dir):
    """A CA validates a whole batch at once: a server's new children (after a
    start or a restart) must answer every token published before they
    started, not two lookups at a time and 404 for the rest (each 404 is a
    failed validation at the CA and a new order). The watch first feeds what
    etcd holds."""
    import threading
    name = "batch.cluster.test"
    c = token_cluster(cluster_factory, name, n=2)
    tokens = ["B%02d" % i + uuid.uuid4().hex for i in range(16)]
    for t in tokens:
        publish_token(c, build_dir, t)
    target = c.servers[1]
    target.graceful()   # new children: nothing in their cache yet
    # the new child's watch is made (so what it read first is in the cache):
    # a token withdrawn now is seen gone at once, which only the watch can
    # tell (a looked-up answer is kept 30 s). The 16 older tokens come only
    # through what the watch read first.
    canary = "C" + uuid.uuid4().hex
    publish_token(c, build_dir, canary)
    util.wait_for(lambda: token_status(target, name, canary) == 200, 10, "the canary served")
    publish_token(c, build_dir, canary, "remove")
    util.wait_for(lambda: token_status(target, name, canary) == 404, 10, "the watch of the new child")
    ready = threading.Barrier(len(tokens))
    status = {}

    def ask(t):
        ready.wait()
        status[t] = token_status(target, name, t)

    threads = [threading.Thread(target=ask, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status.values()) == [200] * len(tokens), status


def test_a_child_exits_cleanly_while_the_watch_brings_changes(cluster_factory, build_dir):
    """A child's exit destroys its pools while the challenge watch may still
    be writing what etcd sends into the caches there: the watch thread must
    be joined first (before: a segfault at most gracefuls of a busy cluster,
    and the jobs in flight cut off without their answers: orders made again)."""
    import threading
    name = "exit.cluster.test"
    c = token_cluster(cluster_factory, name, n=2)
    target = c.servers[1]
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            token = "X%d" % i + uuid.uuid4().hex
            publish_token(c, build_dir, token)
            publish_token(c, build_dir, token, "remove")
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(6):
            target.graceful()
    finally:
        stop.set()
        worker.join()
    target.graceful()   # the last generation's children have exited too
    crashes = [l for l in target.error_lines() if "exit signal" in l]
    assert crashes == [], crashes


def test_the_watch_withdraws_a_token_everywhere_at_once(cluster_factory, build_dir):
    name = "gone.cluster.test"
    c = token_cluster(cluster_factory, name)
    token = "G" + uuid.uuid4().hex
    publish_token(c, build_dir, token)
    for s in c.servers:
        util.wait_for(lambda: token_status(s, name, token) == 200, 10, "token served")
    publish_token(c, build_dir, token, "remove")
    # a looked-up answer is kept 30 s; the watch brings the withdrawal
    for s in c.servers:
        util.wait_for(lambda: token_status(s, name, token) == 404, 3,
                      "withdrawn token gone on server %d" % c.servers.index(s))


def test_answers_older_than_a_day_leave_etcd_and_younger_ones_stay_served(cluster_factory,
                                                                        build_dir):
    """Issue 24: an answer that a run which died left in etcd (its server gone,
    its domain taken out of the configuration, job.json lost) stayed there for
    good, and every server kept serving it. Each server's renewal child sweeps
    challenges/ when it starts and every hour: answers written more than a day
    ago go, each removed once though both servers sweep at once; a younger
    one and one published now stay, and are served."""
    name = "sweep.cluster.test"
    c = cluster_factory(2)
    with open(c.key_file, "rb") as f:
        store_key = f.read()
    now = int(time.time() * 1e6)
    day = 86400 * 10 ** 6

    def plant(rest, mtime, data):
        key = c.prefix + "challenges/" + rest
        res = c.etcd.etcdctl("put", key, item_mac_value(store_key, key, mtime, data).decode())
        assert res.returncode == 0, res.stderr
        return key

    old, young, fresh = ("%s%s" % (k, uuid.uuid4().hex) for k in "OYF")
    stale = [plant("http-01/" + old, now - day - 60 * 10 ** 6, old.encode() + b".thumb"),
             plant("tls-alpn-01/gone.cluster.test.crt", now - 2 * day, b"a certificate")]
    plant("http-01/" + young, now - day + 3600 * 10 ** 6, young.encode() + b".thumb")
    publish_token(c, build_dir, fresh)
    for s in c.servers:
        s.write_config(c.config(s, [name]).replace(c.ca.dir_url, "https://127.0.0.1:9/dir"))
        s.expect_errors(r"ACME0322")
    c.start()

    def removed():
        return sum(int(n) for s in c.servers
                   for n in re.findall(r"ACME2500: store: removed (\d+) challenge answer",
                                       s.error_log()))
    # the sweeps' count ends each pass: then the answers after them were looked at too
    util.wait_for(lambda: removed() >= len(stale), 30, "the stale answers swept")
    assert removed() == len(stale)
    keys = [k for k, _ in c.etcd_values()]
    assert not set(stale) & set(keys), keys
    for s in c.servers:
        assert token_status(s, name, old) == 404
        assert token_status(s, name, young) == 200
        assert token_status(s, name, fresh) == 200


def test_a_flood_of_bogus_tokens_does_not_hide_a_real_one(cluster_factory, build_dir):
    """Lookups in etcd are limited per second and process; the watch brings
    real tokens without one, so a flood of made-up tokens cannot make the
    CA's request for a real one a 404."""
    import threading
    name = "flood.cluster.test"
    c = token_cluster(cluster_factory, name, n=2)
    target = c.servers[1]
    # the watch is up before the flood: a token published now reaches the server
    warm = "W" + uuid.uuid4().hex
    publish_token(c, build_dir, warm)
    util.wait_for(lambda: token_status(target, name, warm) == 200, 10, "the warm-up token")
    stop = threading.Event()
    sent = []

    def flood(k):
        i = 0
        while not stop.is_set():
            target.http_get("/.well-known/acme-challenge/Flood%d_%d" % (k, i), name)
            i += 1
        sent.append(i)

    threads = [threading.Thread(target=flood, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        for k in range(3):
            token = "R%d" % k + uuid.uuid4().hex
            publish_token(c, build_dir, token)
            time.sleep(1.0)
            assert token_status(target, name, token) == 200, (k, token)
    finally:
        stop.set()
        for t in threads:
            t.join()
    # the flood was one: far more than the lookups allowed per second
    assert sum(sent) > 200, sent


def etcd_reads(etcd):
    """Range requests (reads) that the etcd members have started so far."""
    total = 0
    for url in etcd.endpoints:
        text = etcd.http.get(url + "/metrics", timeout=10).text
        total += sum(int(float(v)) for v in re.findall(
            r'^grpc_server_started_total\{[^}]*grpc_method="Range"[^}]*\} (\S+)$', text, re.M))
    return total


@pytest.mark.time_limit(300)
def test_misses_never_push_out_an_answer_the_watch_brought(cluster_factory, build_dir,
                                                         etcd_cluster):
    """More made-up tokens than the miss cache holds, then etcd lost: the
    token the watch brought is still answered (the cache used to start over
    at 2,000 entries, answers included)."""
    import threading
    name = "keep.cluster.test"
    c = cluster_factory(1)
    s = c.servers[0]
    # one child process: every lookup fills the same cache
    one_child = "ServerLimit 1\nThreadsPerChild 16\nMaxRequestWorkers 16\n"
    s.write_config(c.config(s, [name], extra=one_child)
                   .replace(c.ca.dir_url, "https://127.0.0.1:9/dir"))
    s.expect_errors(r"ACME0322", *OUTAGE_ERRORS)
    s.start()
    token = "K" + uuid.uuid4().hex
    publish_token(c, build_dir, token)
    util.wait_for(lambda: token_status(s, name, token) == 200, 10, "the token served")
    stop = threading.Event()
    statuses = {}

    def flood(k):
        i = 0
        while not stop.is_set():
            status = token_status(s, name, "Miss%d_%d" % (k, i))
            statuses[status] = statuses.get(status, 0) + 1
            i += 1

    threads = [threading.Thread(target=flood, args=(k,)) for k in range(4)]
    reads = etcd_reads(etcd_cluster)
    for t in threads:
        t.start()
    try:
        # each lookup is one read; 300 more for the server's other reads
        util.wait_for(lambda: etcd_reads(etcd_cluster) - reads >= 2100 + 300, 120,
                      "2,100 lookups of made-up tokens", interval=1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert list(statuses) == [404], statuses
    etcd_cluster.kill_all()
    assert token_status(s, name, token) == 200


def test_a_challenge_value_that_does_not_open_is_a_miss_not_an_etcd_failure(cluster_factory):
    """A value written to etcd by something else is refused, naming the key;
    etcd answered, so the lookups do not stop as they do when etcd fails."""
    name = "garbage.cluster.test"
    c = token_cluster(cluster_factory, name, n=1)
    s = c.servers[0]
    s.expect_errors(r"ACME1105")
    token = "B" + uuid.uuid4().hex
    c.etcd.etcdctl("put", c.prefix + "challenges/http-01/" + token, "garbage")
    for _ in range(3):
        assert token_status(s, name, token) == 404
    assert re.search(r"ACME1105: .*challenges/http-01/%s" % token, s.error_log())
    assert "ACME1600" not in s.error_log()


def test_a_server_without_the_name_answers_a_token_the_store_holds(cluster_factory, build_dir):
    """In a rolling change the CA may ask a server that does not have the new
    name yet: a token in the store is answered whatever the Host, and for a
    name not configured here, what the store lacks is left to the files."""
    configured, new = "here.rolling.test", "elsewhere.rolling.test"
    c = token_cluster(cluster_factory, configured, n=1)
    s = c.servers[0]
    token = "N" + uuid.uuid4().hex
    publish_token(c, build_dir, token)
    resp = s.http_get("/.well-known/acme-challenge/" + token, new)
    assert resp.status == 200 and resp.text == token + ".thumb", resp
    assert "http-01: answering the challenge for %s" % new in s.error_log()
    # another ACME client's file for a name that is not ours is still served
    own = os.path.join(s.docroot, ".well-known", "acme-challenge")
    os.makedirs(own)
    with open(os.path.join(own, "FileToken1"), "w") as f:
        f.write("from a file")
    for d in (os.path.dirname(own), own):
        os.chmod(d, 0o755)
    os.chmod(os.path.join(own, "FileToken1"), 0o644)
    resp = s.http_get("/.well-known/acme-challenge/FileToken1", new)
    assert resp.status == 200 and resp.text == "from a file", resp
    assert token_status(s, new, "Unpublished" + uuid.uuid4().hex) == 404
    assert token_status(s, configured, "Unpublished" + uuid.uuid4().hex) == 404


@pytest.mark.time_limit(300)
def test_rolling_change_the_ca_validates_at_a_server_without_the_new_name(cluster_factory,
                                                                          pebble):
    c = cluster_factory(2)
    a, b = c.servers
    fleet, new = "fleet.rolling.test", "first.rolling.test"
    c.write_configs([fleet])
    c.start()
    c.wait_served_everywhere([fleet])
    # the new name reaches server A first; the balancer sends every
    # validation to B, which does not have it yet
    c.forwarders[0].set_backends([b.http_port])
    a.write_config(c.config(a, [fleet, new]))
    mark = pebble.log_mark()
    a.graceful()

    def issued():
        # an invalid authorization fails A's job (ACME0322): no use waiting on
        assert "ACME0322" not in a.error_log(), util.tail(a.error_log(), 20)
        return served_by_ca(a, new)

    util.wait_for(issued, ISSUE_TIMEOUT, "server A's certificate for %s" % new, interval=0.5,
                  fatal=(AssertionError,))
    assert "http-01: answering the challenge for %s" % new in b.error_log()
    assert c.forwarders[0].counts[0] > 0
    assert pebble.count_orders(since=mark) == 1, pebble.log_text()[mark:][-3000:]


def secrets_in_etcd(c):
    return [k for k, v in c.etcd_values() if "PRIVATE KEY" in v or "BEGIN EC" in v
            or "BEGIN RSA" in v]


def test_no_private_key_in_etcd_and_cache_keys_are_private(cluster_factory):
    c = cluster_factory(2)
    name = "secret.cluster.test"
    c.write_configs([name])
    c.start()
    c.wait_served_everywhere([name])
    values = c.etcd_values()
    keys = [k for k, _ in values]
    assert any("/accounts/" in k for k in keys), keys
    assert any(k.endswith("/domains/%s/privkey.p256.pem" % name) for k in keys), keys
    assert secrets_in_etcd(c) == []
    for s in c.servers:
        key = os.path.join(s.store_dir, "domains", name, "privkey.p256.pem")
        st = os.stat(key)
        assert st.st_uid == 0 and st.st_mode & 0o077 == 0, oct(st.st_mode)


EAB_KID = "kid-cluster"
EAB_HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"


def test_no_eab_hmac_in_etcd(cluster_factory, pebble_factory):
    import base64
    ca = pebble_factory(config={"externalAccountBindingRequired": True,
                                "externalAccountMACKeys": {EAB_KID: EAB_HMAC}})
    c = cluster_factory(2, ca=ca)
    name = "eab.cluster.test"
    c.write_configs([name], extra="ManagedEAB %s %s\n" % (EAB_KID, EAB_HMAC))
    c.start()
    c.wait_served_everywhere([name])
    hmac = base64.urlsafe_b64decode(EAB_HMAC + "=" * (-len(EAB_HMAC) % 4))
    forms = [EAB_HMAC.encode(), base64.b64encode(hmac).rstrip(b"="), hmac.hex().encode(),
             hmac.hex().upper().encode(), hmac]
    values = c.etcd_values(raw=True)
    # the servers share the account bound to the key id: the binding worked
    assert any("/accounts/" in k and "-eab-kid-cluster" in k for k, _ in values), values
    # the scan sees what is stored in the clear: the key id, not its HMAC
    assert any(EAB_KID.encode() in v for _, v in values)
    found = [(k, f) for k, v in values for f in forms if f in v or f in k.encode()]
    assert found == [], found
    assert secrets_in_etcd(c) == []
    for s in c.servers:
        assert EAB_HMAC not in s.error_log()


def test_store_directives_are_checked_by_apachectl_t(cluster_factory, test_dir):
    c = cluster_factory(1)
    s = c.servers[0]
    name = "conf.cluster.test"
    good = c.config(s, [name])
    # no encryption key with etcd
    s.write_config(re.sub(r"ManagedStoreEncryptionKey .*\n", "", good))
    rc, out = s.check_config()
    assert rc != 0 and "needs ManagedStoreEncryptionKey" in out and "openssl rand" in out, out
    # readable by others
    loose = make_key_file(os.path.join(test_dir, "loose.key"), 0o644)
    s.write_config(good.replace(c.key_file, loose))
    rc, out = s.check_config()
    assert rc != 0 and "group or others" in out and "chmod 0400" in out, out
    # wrong size
    short = os.path.join(test_dir, "short.key")
    with open(short, "wb") as f:
        f.write(b"0123456789")
    os.chmod(short, 0o400)
    s.write_config(good.replace(c.key_file, short))
    rc, out = s.check_config()
    assert rc != 0 and "exactly 32 random bytes" in out, out
    # not root's
    other_owner = make_key_file(os.path.join(test_dir, "nobody.key"), 0o400)
    os.chown(other_owner, 65534, 65534)
    s.write_config(good.replace(c.key_file, other_owner))
    rc, out = s.check_config()
    assert rc != 0 and "not owned by root" in out, out
    # the etcd password file (ManagedStoreAuth) by the same rule
    password = os.path.join(test_dir, "etcd.pw")
    with open(password, "w") as f:
        f.write("secret\n")
    os.chmod(password, 0o644)
    s.write_config(good + "ManagedStoreAuth acme %s\n" % password)
    rc, out = s.check_config()
    assert rc != 0 and "ManagedStoreAuth" in out and "etcd password file" in out \
        and "group or others" in out and "chmod 0400" in out, out
    os.chmod(password, 0o400)
    os.chown(password, 65534, 65534)
    rc, out = s.check_config()
    assert rc != 0 and "etcd password file" in out and "not owned by root" in out, out
    os.chown(password, 0, 0)
    rc, out = s.check_config()
    assert rc == 0, out
    # an endpoint that is not a URL
    s.write_config(good.replace("ManagedStore etcd ", "ManagedStore etcd 10.0.0.1:2379 "))
    rc, out = s.check_config()
    assert rc != 0 and "is not an etcd endpoint" in out, out
    # the start fails the same way
    s.write_config(good.replace(c.key_file, loose))
    with pytest.raises(Exception):
        s.start()
    s.write_config(good)
    rc, out = s.check_config()
    assert rc == 0, out


def kill_server(server):
    pid = server.pid()
    util.kill_tree(pid)
    util.wait_for(lambda: not util.pid_alive(pid), 10, "httpd %d gone" % pid)


def signal_server(server, sig):
    pid = server.pid()
    for child in util.child_pids(pid):
        util.kill_pid(child, sig)
    util.kill_pid(pid, sig)


def order_holder(c, name):
    """Index of the server whose job created an order for name, or None."""
    for i, s in enumerate(c.servers):
        if re.search(r"ACME0404: %s: order \S+ created" % re.escape(name), s.error_log()):
            return i
    return None


@pytest.mark.time_limit(300)
def test_kill9_of_the_lease_holder_mid_order_another_server_finishes(cluster_factory,
                                                                     acme_proxy):
    c = cluster_factory(2, ca=acme_proxy)
    name = "kill.cluster.test"
    hang = acme_proxy.inject(method="POST", path_prefix="/finalize-order/", mode="hang",
                             count=1)
    c.write_configs([name])
    c.start()
    util.wait_for(lambda: hang.hits >= 1, 60, "the holder's job to reach finalize")
    holder = order_holder(c, name)
    assert holder is not None
    t0 = time.monotonic()
    kill_server(c.servers[holder])
    other = c.servers[1 - holder]
    util.wait_for(lambda: served_by_ca(other, name), 90, "the other server to finish %s"
                  % name, interval=0.5)
    took = time.monotonic() - t0
    assert took < 30 + 40, took  # lease TTL, busy wait and retry delay, issuance
    assert 1 <= len(acme_proxy.orders) <= 2, acme_proxy.orders  # without pebble's badNonce


def stored_pair_matches(c, build_dir, name):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    import json
    cert = c.tool(build_dir, "store-load", "domains", name, "cert.p256.pem")
    key = c.tool(build_dir, "store-load", "domains", name, "privkey.p256.pem")
    assert cert.returncode == 0 and key.returncode == 0, (cert.stderr, key.stderr)
    cert_pem = json.loads(cert.stdout)["data"].encode()
    key_pem = json.loads(key.stdout)["data"].encode()
    leaf = x509.load_pem_x509_certificate(cert_pem)
    pkey = serialization.load_pem_private_key(key_pem, None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return (leaf.public_key().public_bytes(enc, pub) == pkey.public_key().public_bytes(enc, pub),
            leaf.serial_number)


@pytest.mark.time_limit(300)
def test_fencing_a_paused_holder_cannot_overwrite_the_new_holders_work(cluster_factory,
                                                                       acme_proxy, build_dir):
    c = cluster_factory(2, ca=acme_proxy)
    name = "fence.cluster.test"
    hang = acme_proxy.inject(method="POST", path_prefix="/finalize-order/", mode="hang",
                             count=1)
    c.write_configs([name])
    c.start()
    util.wait_for(lambda: hang.hits >= 1, 60, "the holder's job to reach finalize")
    holder = order_holder(c, name)
    assert holder is not None
    paused, other = c.servers[holder], c.servers[1 - holder]
    signal_server(paused, signal.SIGSTOP)
    try:
        cert = util.wait_for(lambda: served_by_ca(other, name), 120,
                             "the other server to take over %s" % name, interval=0.5)
    finally:
        signal_server(paused, signal.SIGCONT)
    acme_proxy.set_down(None)  # the paused job's finalize now fails or answers late
    util.wait_for(lambda: "ACME1107" in paused.error_log(), 60,
                  "the stale holder's write to be refused")
    paused.expect_errors(r"ACME1107", r"ACME0403", r"ACME0322", r"ACME1102")
    time.sleep(3)
    ok, serial = stored_pair_matches(c, build_dir, name)
    assert ok, "stored certificate and key do not match"
    assert serial == cert.serial_number, "the stored certificate is the new holder's"
    refused = [l for l in paused.error_log().splitlines() if "ACME1107" in l]
    assert name in refused[0], refused[0]
    # the lines say what went wrong, not APR's words for a private code
    assert "APR does not understand" not in paused.error_log(), refused[0]


OUTAGE_ERRORS = (r"ACME0011", r"ACME0329", r"ACME1102", r"ACME0322", r"ACME0403")


@pytest.mark.time_limit(500)
def test_etcd_member_loss_changes_nothing_and_total_outage_serves_the_cache(cluster_factory,
                                                                            etcd_cluster):
    c = cluster_factory(2)
    first, second, pending = "one.outage.test", "two.outage.test", "three.outage.test"
    c.write_configs([first])
    c.start()
    c.wait_served_everywhere([first])
    serial = c.serials(first)[0]
    # one member of three lost: a new domain is issued as before
    etcd_cluster.kill(0)
    c.write_configs([first, second])
    for s in c.servers:
        s.graceful()
    c.wait_served_everywhere([first, second])
    assert c.metric(c.servers[0], "acme_store_up", first) == 1
    # every member lost: both keep serving, and the metrics say it
    etcd_cluster.kill_all()
    for s in c.servers:
        s.expect_errors(*OUTAGE_ERRORS)
    time.sleep(3)
    assert c.serials(first) == [serial, serial]
    assert c.metric(c.servers[1], "acme_store_up", first) == 0
    assert c.metric(c.servers[1], "acme_store_errors_total", first) > 0
    # a restart while etcd is down comes up with the cached certificates;
    # a domain added meanwhile waits for etcd
    c.write_configs([first, second, pending])
    s0, s1 = c.servers
    s0.stop()
    s0.start()
    s1.graceful()
    for s in c.servers:
        assert served_by_ca(s, first).serial_number == serial
        assert served_by_ca(s, second) is not None
        assert served_by_ca(s, pending) is None
        assert "ACME0011" in s.error_log()
    # etcd back: the pending domain completes without any restart by hand
    etcd_cluster.start_all()
    c.wait_served_everywhere([pending], timeout=120)
    assert c.serials(first) == [serial, serial]


# How long etcd stays down below: twenty ManagedRetryDelay periods (2 s).
# The old scheduler charged the order guard (16 orders an hour for two
# domains) at every attempt and tripped it well within that.
OUTAGE_SECONDS = 40


@pytest.mark.time_limit(500)
def test_an_etcd_outage_with_a_domain_added_meanwhile_orders_nothing_until_etcd_returns(
        cluster_factory, etcd_cluster, pebble):
    c = cluster_factory(2)
    first, added = "one.guard.test", "two.guard.test"
    c.write_configs([first])
    c.start()
    c.wait_served_everywhere([first])
    serial = c.serials(first)[0]
    etcd_cluster.kill_all()
    down = time.monotonic()
    for s in c.servers:
        s.expect_errors(*OUTAGE_ERRORS)
    mark = pebble.log_mark()
    # a domain added while etcd is down: a new generation that cannot claim it
    c.write_configs([first, added])
    for s in c.servers:
        s.graceful()
    # the fault's length, not a wait for a state: the outage lasts this long
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down)))
    assert pebble.count_orders(mark) == 0
    for s in c.servers:
        assert served_by_ca(s, first).serial_number == serial
        assert served_by_ca(s, added) is None
    # etcd back: the added domain is ordered once, by itself, and served
    etcd_cluster.start_all()
    c.wait_served_everywhere([added], timeout=120)
    assert c.serials(first) == [serial, serial]
    assert pebble.count_orders(mark) == 1
    for i, s in enumerate(c.servers):
        assert "ACME0335" not in s.error_log(), "server %d: SAFETY STOP" % i


@pytest.mark.time_limit(300)
def test_bad_values_in_etcd_are_refused_naming_the_key_and_the_cache_serves(
        cluster_factory, build_dir, test_dir):
    c = cluster_factory(1)
    s = c.servers[0]
    name = "bad.cluster.test"
    c.write_configs([name])
    c.start()
    c.wait_served_everywhere([name])
    serial = c.serials(name)[0]
    pre = c.prefix
    # not JSON
    assert c.tool(build_dir, "store-save", "domains", name, "meta.json", "{no json").returncode == 0
    # sealed with another key: does not decrypt
    other = make_key_file(os.path.join(test_dir, "other.key"), 0o600)
    cmd = [os.path.join(build_dir, "test", "tools", "etcdtool"), "--endpoints",
           ",".join(c.etcd.endpoints), "--prefix", pre, "--seal-key", other,
           "store-save", "domains", name, "privkey.p256.pem", "-----BEGIN PRIVATE KEY-----",
           "secret"]
    assert subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    # not in the item format at all
    c.etcd.etcdctl("put", pre + "domains/%s/cert.p256.pem" % name, "garbage")
    # too large (above the 1 MiB the client accepts)
    subprocess.run(["etcdctl"] + c.etcd.client_args() + ["put", pre + "jobs/%s/job.json" % name],
                   input="x" * (1100 * 1024), text=True, check=True, capture_output=True,
                   env=dict(os.environ, ETCDCTL_API="3"))
    s.expect_errors(r"ACME1104", r"ACME1105", r"ACME1102", r"ACME0908", r"ACME0322",
                    r"ACME0106")
    s.graceful()
    assert served_by_ca(s, name).serial_number == serial, "the last good copy is served"
    log = s.error_log()
    assert re.search(r"ACME1104: .*%sdomains/%s/privkey.p256.pem" % (pre, name), log)
    assert re.search(r"ACME1105: .*%sdomains/%s/cert.p256.pem" % (pre, name), log)
    assert re.search(r"ACME0908: .*domains/%s/meta.json" % name, log)
    util.wait_for(lambda: re.search(r"larger than the limit.*jobs/%s/job.json|jobs/%s/job.json"
                                    r".*larger than the limit" % (name, name), s.error_log()),
                  60, "the too large job.json refused by name")
    assert s.is_running()


def public_der(obj):
    from cryptography.hazmat.primitives import serialization
    return obj.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.time_limit(420)
def test_a_key_planted_in_etcd_without_the_encryption_key_is_never_certified(
        cluster_factory, build_dir):
    """Issue 23 item 4: a writer to etcd without the store key plants the
    renewal job's private key: in the earlier plain item form, with a MAC
    made up, with a MAC made right but under another store key, and as the
    module's own sealed key copied from another etcd key. A renewal is
    requested each time. Each renewal uses a new key the module made; the
    log names the refused key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    c = cluster_factory(1)
    s = c.servers[0]
    name = "plant.cluster.test"
    acmectl = os.path.join(build_dir, "tools", "acmectl")
    c.write_configs([name])
    c.start()
    c.wait_served_everywhere([name])
    planted = ec.generate_private_key(ec.SECP256R1())
    pem = planted.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key_item = c.prefix + "jobs/%s/privkey.p256.pem" % name
    domain_key_item = c.prefix + "domains/%s/privkey.p256.pem" % name
    cert_item = c.prefix + "domains/%s/cert.p256.pem" % name
    s.expect_errors(r"ACME1400: .*%s" % re.escape(key_item),
                    r"ACME1104: .*%s" % re.escape(key_item))

    def now():
        return int(time.time() * 1e6)

    def foreign_mac():
        # made as the module makes it: with the cluster's own key it gives
        # the MAC the module wrote on the certificate, so only the key differs
        with open(c.key_file, "rb") as f:
            store_key = f.read()
        written = dict(c.etcd_values(raw=True))[cert_item]
        head, data = written.split(b"\n", 1)
        assert item_mac_value(store_key, cert_item, int(head.split(b" ")[2]), data) == written
        return item_mac_value(os.urandom(32), key_item, now(), pem)

    forms = [
        (lambda: b"acme-item 1 %d p\n%s" % (now(), pem), r"ACME1400: .*%s.*plain item"),
        (lambda: b"acme-item 2 %d m %s\n%s" % (now(), b"A" * 43, pem),
         r"ACME1400: .*%s.*MAC does not match"),
        (foreign_mac, r"ACME1400: .*%s.*MAC does not match"),
        (lambda: dict(c.etcd_values(raw=True))[domain_key_item],
         r"ACME1104: .*%s.*does not decrypt"),
    ]
    if not os.environ.get("MOD_ACME_LONG"):
        # the MAC forms are the unit test's too (test_etcd.c,
        # item_envelope_refuses_plain_tampered_moved_and_foreign_key_items):
        # here the plain form (the issue's reproduction) and the copied key
        forms = [forms[0], forms[3]]
    for value, logged in forms:
        before = served_by_ca(s, name)
        log_before = len(s.error_log())
        res = c.etcd.etcdctl("put", key_item, value().decode())
        assert res.returncode == 0, res.stderr
        res = subprocess.run([acmectl, "-f", s.conf_file, "renew", name], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        util.wait_for(lambda: c.serials(name)[0] not in (before.serial_number, None),
                      ISSUE_TIMEOUT, "the requested renewal served", interval=0.5)
        served = served_by_ca(s, name)
        # neither the planted key nor the one copied from the domain's item
        assert public_der(served) != public_der(planted), "a certificate for the planted key"
        assert public_der(served) != public_der(before), "a certificate for the copied key"
        matches, serial = stored_pair_matches(c, build_dir, name)
        assert matches and serial == served.serial_number
        assert re.search(logged % re.escape(key_item), s.error_log()[log_before:]), logged
        # the planted item is gone with the job's work, or replaced by the module's own key
        raw = dict(c.etcd_values()).get(key_item)
        assert raw is None or (raw.startswith("acme-item 2 ") and " s\nv1:" in raw), raw[:40]
    assert "BEGIN PRIVATE KEY" not in s.error_log()


@pytest.mark.time_limit(300)
def test_acmectl_store_migrate_then_two_servers_serve_without_ordering(cluster_factory, pebble,
                                                                       build_dir):
    c = cluster_factory(2)
    s0, s1 = c.servers
    name = "migrate.cluster.test"
    file_conf = c.config(s0, [name])
    file_conf = re.sub(r"ManagedStore(EncryptionKey|Prefix)? .*\n", "", file_conf)
    s0.write_config(file_conf)
    s0.start()
    serial = util.wait_for(lambda: served_by_ca(s0, name), ISSUE_TIMEOUT,
                           "the file store's certificate", interval=0.5).serial_number
    s0.stop()
    c.write_configs([name])
    acmectl = os.path.join(build_dir, "tools", "acmectl")

    def migrate():
        res = subprocess.run([acmectl, "-f", s0.conf_file, "store", "migrate", "--to", "etcd"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        return int(re.search(r": (\d+) item\(s\) copied", res.stdout).group(1))

    assert migrate() >= 5        # account (2), certificate, key, meta, job state
    assert migrate() == 0        # idempotent: nothing newer to copy
    # every value is in the authenticated form
    items = [(k, v) for k, v in c.etcd_values() if not k.startswith(c.prefix + "locks/")]
    assert items and all(v.startswith("acme-item 2 ") for _, v in items), items
    # a plain item written without the key, with a later time, does not keep
    # the file store's copy out: it is refused and replaced
    meta = c.prefix + "domains/%s/meta.json" % name
    c.etcd.etcdctl("put", meta, "acme-item 1 %d p\n{}" % (int(time.time() * 1e6) + 10 ** 12))
    assert migrate() == 1
    assert migrate() == 0
    assert secrets_in_etcd(c) == []
    mark = pebble.log_mark()
    c.start()
    c.wait_served_everywhere([name], timeout=60)
    assert c.serials(name) == [serial, serial]
    time.sleep(3)
    assert pebble.count_orders(since=mark) == 0, "the migrated certificate was ordered again"


@pytest.mark.time_limit(300)
def test_one_servers_rate_limit_pauses_the_other_servers(cluster_factory, acme_proxy):
    c = cluster_factory(2, ca=acme_proxy)
    a, b = c.servers
    limited, other = "limited.cluster.test", "paused.cluster.test"
    pause = 30
    acme_proxy.inject(endpoint="newOrder", status=429, retry_after=pause, count=1)
    # one job at a time: A's own pause (in memory) holds its second domain
    c.write_configs([limited, other], extra="ManagedParallelRenewals 1\n")
    a.expect_errors(r"ACME0322")
    a.start()
    # wait for the record: the injection counts a hit before the proxy has answered and recorded it
    answered = util.wait_for(
        lambda: [r for r in acme_proxy.requests_to(endpoint="newOrder") if r.injected], 60,
        "server A's newOrder to get the 429")
    t429 = answered[0].time
    util.wait_for(lambda: any("/jobs/_ca/" in k for k, _ in c.etcd_values()), 20,
                  "the CA's pause in etcd")
    # B has never talked to the CA: only the stored pause holds it back
    b.start()
    util.wait_for(lambda: served_by_ca(b, other), pause + 90,
                  "server B to get %s after the pause" % other, interval=0.5)
    orders = [r for r in acme_proxy.requests_to(endpoint="newOrder") if not r.injected]
    assert orders, acme_proxy.requests
    early = [r for r in orders if r.time < t429 + pause - 1]
    assert early == [], (t429, early)


@pytest.mark.time_limit(500)
def test_acmectl_works_on_the_etcd_store_with_the_file_stores_output(cluster_factory,
                                                                    build_dir):
    c = cluster_factory(2)
    s0, s1 = c.servers
    name = "ctl.cluster.test"
    acmectl = os.path.join(build_dir, "tools", "acmectl")

    def ctl(*args):
        # a server's job may hold the domain's claim for a moment: acmectl
        # then says so and asks to try again, as an operator would
        deadline = time.monotonic() + 30
        while True:
            res = subprocess.run([acmectl, "-f", s0.conf_file] + list(args),
                                 capture_output=True, text=True, timeout=60)
            if res.returncode == 0 or "is working on" not in res.stderr \
                    or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res.stdout

    def same_view():
        import json
        status = json.loads(ctl("status", "--json"))
        store = status.pop("store")
        status.pop("time")
        # the account's place in the store is the one line that differs
        account = re.sub(r"(?m)^Directory: .*$", "Directory: -", ctl("account"))
        return (store, status, ctl("status"), ctl("show", name), account)

    # the file store's view, then the same data in etcd seen through the same config file
    s0.write_config(re.sub(r"ManagedStore(EncryptionKey|Prefix)? .*\n", "",
                           c.config(s0, [name])))
    s0.start()
    util.wait_for(lambda: served_by_ca(s0, name), ISSUE_TIMEOUT, "the file store's certificate",
                  interval=0.5)
    s0.stop()
    file_store, *file_view = same_view()
    c.write_configs([name])
    ctl("store", "migrate", "--to", "etcd")
    etcd_store, *etcd_view = same_view()
    assert file_store == s0.store_dir and etcd_store.startswith("etcd "), etcd_store
    assert etcd_view == file_view
    # renew and revoke act on etcd: the servers of the cluster carry them out
    c.start()
    c.wait_served_everywhere([name], timeout=60)
    first = c.serials(name)[0]
    ctl("renew", name)
    assert any(k.endswith("/jobs/%s/renew.json" % name) for k, _ in c.etcd_values())
    util.wait_for(lambda: set(c.serials(name)) not in ({first}, {None}) and
                  len(set(c.serials(name))) == 1, 120, "the renewal requested in etcd",
                  interval=1)
    second = c.serials(name)[0]
    out = ctl("revoke", name)
    m = re.search(r"Revoked the P-256 certificate of %s, serial ([0-9A-Fa-f:]+)" % re.escape(name),
                  out)
    assert m and int(m.group(1).replace(":", ""), 16) == second, (out, "%x" % second)
    util.wait_for(lambda: len(set(c.serials(name))) == 1
                  and c.serials(name)[0] not in (first, second, None), 120,
                  "the renewal after the revocation", interval=1)


@pytest.mark.time_limit(300)
def test_a_server_with_other_settings_warns_and_does_not_fight(cluster_factory, pebble):
    c = cluster_factory(2)
    a, b = c.servers
    name = "differ.cluster.test"
    a.write_config(c.config(a, [name]))
    b.write_config(c.config(b, [name], extra="ManagedKeys P-256 P-384\n"))
    a.start()
    serial = util.wait_for(lambda: served_by_ca(a, name), ISSUE_TIMEOUT,
                           "server A's certificate", interval=0.5).serial_number
    mark = pebble.log_mark()
    b.start()
    util.wait_for(lambda: "ACME0410" in b.error_log(), 30, "server B's warning")
    time.sleep(15)
    warnings = [l for l in b.error_log().splitlines() if "ACME0410" in l]
    assert len(warnings) == 1, warnings
    assert name in warnings[0] and "key types: here P-256 P-384, stored P-256" in warnings[0]
    # B did not order its P-384 certificate over A's set, and serves the stored one
    assert pebble.count_orders(since=mark) == 0
    assert served_by_ca(b, name).serial_number == serial
    assert served_by_ca(a, name).serial_number == serial
    assert "ACME0410" not in a.error_log()


# ---- a fleet whose servers differ, and a holder killed after staging -------

def stored_items(c, group, name):
    """The etcd keys of name's items in group ("staging" or "domains")."""
    return [k for k, _ in c.etcd_values() if k.startswith("%s%s/%s/" % (c.prefix, group, name))]


def differing_pair(c, name, maker_extra, other_config):
    """Server 0 (the maker, with maker_extra) stages name's certificate alone;
    ManagedAutoRestart is off everywhere, so it stays staged until a graceful.
    Then server 1 starts with its own configuration: its configuration pass
    is the one that used to throw the staged result away."""
    maker, other = c.servers
    off = "ManagedAutoRestart off\n"
    maker.write_config(c.config(maker, [name], extra=off + maker_extra))
    other.write_config(other_config(off))
    maker.start()
    util.wait_for(lambda: staged_by(c, name) == [0], ISSUE_TIMEOUT, "server 0 to stage %s"
                  % name, interval=0.5)
    staged = stored_items(c, "staging", name)
    assert staged
    other.start()
    return maker, other, staged


def gracefuls_serve_the_one_certificate(c, name, staged, mark, pebble):
    """The staged result is activated, not thrown away, by the gracefuls of
    each server, and every server serves it, with the one order."""
    assert stored_items(c, "staging", name) in (staged, []), "the staged result was changed"
    assert len(stored_items(c, "domains", name)) + len(stored_items(c, "staging", name)) \
        >= len(staged), "the staged result was removed by the server that did not make it"
    for s in c.servers:  # the maker first: its activation, then the other's copy
        s.graceful()
    util.wait_for(lambda: None not in c.serials(name), 60, "every server serving %s" % name,
                  interval=0.5)
    assert len(set(c.serials(name))) == 1, c.serials(name)
    util.wait_for(lambda: "ACME0410" in c.servers[1].error_log(), 30,
                  "the difference logged by server 1")
    assert pebble.count_orders(since=mark) == 1, pebble.log_text()[mark:][-3000:]
    assert len(staged_by(c, name)) == 1, staged_by(c, name)


@pytest.mark.time_limit(300)
def test_a_server_with_other_key_types_keeps_and_serves_the_fleets_certificate(
        cluster_factory, pebble):
    c = cluster_factory(2)
    name = "keys.cluster.test"
    mark = pebble.log_mark()
    maker, other, staged = differing_pair(
        c, name, "", lambda off: c.config(c.servers[1], [name],
                                          extra=off + "ManagedKeys P-384\n"))
    gracefuls_serve_the_one_certificate(c, name, staged, mark, pebble)
    # the P-384 server serves the stored P-256 certificate, not its 503
    assert other.https_get("/", name).status != 503
    assert "key types: here P-384, stored P-256" in other.error_log()


@pytest.mark.time_limit(300)
def test_a_server_with_other_names_leaves_the_staged_result_to_its_maker(cluster_factory,
                                                                        pebble):
    c = cluster_factory(2)
    name = "names.cluster.test"
    alias = "www." + name
    mark = pebble.log_mark()

    def more_names(off):
        s = c.servers[1]
        return (c.config(s, [], extra=off) + "ManagedDomain %s %s\n" % (name, alias)
                + s.vhost(name, tls=True, aliases=(alias,))
                + s.vhost(name, tls=False, aliases=(alias,)))
    maker, other, staged = differing_pair(c, name, "", more_names)
    util.wait_for(lambda: "ACME0410" in other.error_log(), 30,
                  "server 1's parent to log the difference")
    gracefuls_serve_the_one_certificate(c, name, staged, mark, pebble)
    # once per difference, not at every graceful of the parent
    said = [l for l in other.error_log().splitlines()
            if "ACME0410" in l and "only here %s" % alias in l]
    parent = [l for l in said if re.search(r"\[pid (\d+):tid \1\]", l)]  # main thread
    assert len(parent) == 1, said
    assert "ACME0301" not in other.error_log()


@pytest.mark.time_limit(300)
def test_a_holder_killed_after_staging_leaves_no_domain_stuck(cluster_factory, pebble,
                                                              build_dir):
    c = cluster_factory(3)
    holder, rest = c.servers[0], c.servers[1:]
    name = "stuck.cluster.test"
    mark = pebble.log_mark()
    holder.write_config(c.config(holder, [name], extra="ManagedAutoRestart off\n"))
    for s in rest:
        s.write_config(c.config(s, [name]))
    holder.start()
    util.wait_for(lambda: staged_by(c, name) == [0], ISSUE_TIMEOUT, "the holder to stage %s"
                  % name, interval=0.5)
    # The holder dies between staging and releasing its claim: the claim
    # stays until its lease runs out (30 s, as a job's). The window is
    # milliseconds wide, so the claim is taken for it, and the holder killed.
    claim = c.tool(build_dir, "store-claim", name, "mod_acme-pid-1@killed.example", "30")
    assert claim.returncode == 0, claim.stderr
    t0 = time.monotonic()
    kill_server(holder)
    for s in rest:
        s.start()
    util.wait_for(lambda: all(served_by_ca(s, name) for s in rest), 30 + 30,
                  "the staged %s activated by the others without a manual restart" % name,
                  interval=0.5)
    assert time.monotonic() - t0 < 30 + 30
    assert pebble.count_orders(since=mark) == 1, pebble.log_text()[mark:][-3000:]


def domains_reads(proxy, prefix, since):
    """The range requests on domains/ since index `since` of the proxy's
    log, as (key, range_end?, min_mod_revision, keys_only)."""
    import base64
    out = []
    for path, body in proxy.requests[since:]:
        if path != "/v3/kv/range" or not body:
            continue
        key = base64.b64decode(body.get("key", "")).decode("latin-1")
        if key.startswith(prefix + "domains/"):
            out.append((key, "range_end" in body, int(body.get("min_mod_revision", 0)),
                        bool(body.get("keys_only"))))
    return out


def snapshot_line(server, since):
    """What the last configuration pass after log offset `since` logged of
    its view of domains/ (the parent's main thread: pid = tid; the
    children's scheduler and the parent's restart thread have views too):
    (items read, items kept, items removed), or None."""
    found = [m.groups()[2:] for m in re.finditer(
        r"\[pid (\d+):tid (\d+)\] ACME2400: store: \S+domains/ read: (\d+) item\(s\) written "
        r"since revision \d+ of (\d+), (\d+) removed", server.error_log()[since:])
        if m.group(1) == m.group(2)]
    return tuple(int(v) for v in found[-1]) if found else None


@pytest.mark.time_limit(400)
def test_a_graceful_restart_reads_only_the_domain_that_changed(cluster_factory, build_dir,
                                                              etcd_cluster):
    """Issue 24: the configuration pass reads the values of the items written
    since the last pass only, and never serves a changed or removed item from
    what it kept."""
    c = cluster_factory(1)
    s = c.servers[0]
    names = ["r%d.changed.test" % i for i in range(3)]
    port = int(etcd_cluster.endpoints[0].rsplit(":", 1)[1])
    proxy = Forwarder(util.free_port(), [port], http=True).start()
    try:
        conf = c.config(s, names).replace(" ".join(etcd_cluster.endpoints),
                                          "http://127.0.0.1:%d" % proxy.listen_port)
        s.write_config(conf)
        s.start()
        c.wait_served_everywhere(names)
        # nothing changed: the pass asks for what was written since its last
        # one (min_mod_revision), and reads no value of domains/ again (the
        # new children's first look at each domain reads its items one by
        # one: that is theirs, see docs/BENCHMARKS.md)
        mark, at = len(proxy.requests), len(s.error_log())
        s.graceful()
        reads = domains_reads(proxy, c.prefix, mark)
        assert [r for r in reads if r[1] and r[2]], "no range for the changes: %s" % reads
        full = [r for r in reads if r[1] and not r[2] and not r[3]]
        assert not full, "all of domains/ read again: %s" % full
        read, kept, removed = snapshot_line(s, at)
        items = len([k for k, _ in c.etcd_values() if k.startswith(c.prefix + "domains/")])
        assert (read, kept, removed) == (0, items, 0)

        # one domain renewed: the restart reads its items only, and serves it
        before = c.serials(names[1])[0]
        acmectl = os.path.join(build_dir, "tools", "acmectl")
        res = subprocess.run([acmectl, "-f", s.conf_file, "renew", names[1]],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        at = len(s.error_log())
        util.wait_for(lambda: c.serials(names[1])[0] not in (before, None), ISSUE_TIMEOUT,
                      "the renewed certificate served", interval=0.5)
        mine = len(stored_items(c, "domains", names[1]))
        read, kept, removed = util.wait_for(lambda: snapshot_line(s, at), 30,
                                            "the restart's snapshot line")
        assert 1 <= read <= mine, (read, mine)
        assert c.serials(names[0]) != [None] and c.serials(names[2]) != [None]

        # a domain's items removed from etcd: dropped, not served from the kept copy
        gone = stored_items(c, "domains", names[2])
        etcd_cluster.etcdctl("del", "--prefix", "%sdomains/%s/" % (c.prefix, names[2]))
        at = len(s.error_log())
        s.graceful()
        read, kept, removed = snapshot_line(s, at)
        assert removed == len(gone), (removed, gone)
        assert kept == len([k for k, _ in c.etcd_values()
                            if k.startswith(c.prefix + "domains/")])
    finally:
        s.stop()    # before its etcd endpoint goes
        proxy.stop()
