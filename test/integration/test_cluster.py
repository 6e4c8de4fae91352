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

    def __init__(self, test_dir, n, etcd, pebble, acme_ports, module_path):
        self.etcd = etcd
        self.pebble = pebble
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
        text = server.acme_config(self.pebble) + self.store_config(server)
        text += "ManagedChallenges %s\nManagedRetryDelay 2s\n" % challenges + extra
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

    def etcd_values(self):
        """Every key and value under this cluster's prefix."""
        res = self.etcd.etcdctl("get", "--prefix", self.prefix)
        lines = res.stdout.split("\n")
        return list(zip(lines[0::2], lines[1::2]))

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

    def make(n=3):
        c = Cluster(test_dir, n, etcd_cluster, pebble, acme_ports, module_path)
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


def answered_by(cluster, name):
    return [i for i, s in enumerate(cluster.servers)
            if "http-01: answering the challenge for %s" % name in s.error_log()]


@pytest.mark.time_limit(400)
def test_three_servers_share_issuance_with_one_order_per_domain(cluster_factory, pebble):
    c = cluster_factory(3)
    names = ["a.cluster.test", "b.cluster.test", "c.cluster.test"]
    mark = pebble.log_mark()
    c.write_configs(names)
    c.start()
    c.wait_served_everywhere(names)
    assert pebble.count_orders(since=mark) == len(names), pebble.log_text()[mark:][-3000:]
    for n in names:
        assert len(staged_by(c, n)) == 1, (n, staged_by(c, n))
    # the forwarder spread the CA's connections over all servers
    assert all(n > 0 for n in c.forwarders[0].counts), c.forwarders[0].counts
    assert all(answered_by(c, n) for n in names)
    # etcd has one key per item, no big value
    sizes = [len(v) for _, v in c.etcd_values()]
    assert sizes and max(sizes) < 64 * 1024


def test_any_server_answers_a_token_published_elsewhere(cluster_factory, build_dir):
    c = cluster_factory(3)
    name = "tok.cluster.test"
    c.write_configs([name])
    for s in c.servers:
        # no CA reachable for this domain: only the challenge hook is under test
        s.write_config(c.config(s, [name]).replace(c.pebble.dir_url, "https://127.0.0.1:9/dir"))
        s.expect_errors(r"ACME0322")
    c.start()
    token = "T" + uuid.uuid4().hex
    r = c.tool(build_dir, "store-save", "challenges", "http-01", token, token + ".thumb")
    assert r.returncode == 0, r.stderr
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
    assert c.servers[1].http_get("/", name).status == 200
