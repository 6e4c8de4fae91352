# The core's etcd client (through test/tools/etcdtool) against a real
# 3-member etcd cluster: kv, txn compares, leases, failover, TLS and auth.
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from harness import util
from harness.etcd import EtcdCluster, EtcdPKI


@pytest.fixture(scope="module")
def etcdtool_bin(build_dir):
    path = os.path.join(build_dir, "test", "tools", "etcdtool")
    if not os.access(path, os.X_OK):
        pytest.fail("%s is missing: run make first" % path)
    return path


class Tool:
    """Runs etcdtool; returns (exit code, parsed stdout or None, stderr)."""

    def __init__(self, path, endpoints, extra=()):
        self.path = path
        self.endpoints = list(endpoints)
        self.extra = list(extra)

    def __call__(self, *args, endpoints=None, extra=(), timeout=60):
        eps = endpoints if endpoints is not None else self.endpoints
        cmd = [self.path, "--endpoints", ",".join(eps)] + self.extra + list(extra) + list(args)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out = json.loads(res.stdout) if res.stdout.strip() else None
        return res.returncode, out, res.stderr

    def ok(self, *args, **kw):
        rc, out, err = self(*args, **kw)
        assert rc == 0, "etcdtool %s: rc=%d %s" % (" ".join(args), rc, err)
        return out


@pytest.fixture
def tool(etcdtool_bin, etcd_cluster):
    return Tool(etcdtool_bin, etcd_cluster.endpoints)


@pytest.fixture
def prefix():
    return "it-%s/" % uuid.uuid4().hex[:12]


def test_put_get_and_absent_key(tool, etcd_cluster, prefix):
    out = tool.ok("put", prefix + "a", "hello world")
    assert out["revision"] > 0
    got = tool.ok("get", prefix + "a")
    assert got["value"] == "hello world"
    assert got["create_revision"] == got["mod_revision"] == out["revision"]
    # what we wrote is what etcd's own client sees
    res = etcd_cluster.etcdctl("get", "--print-value-only", prefix + "a")
    assert res.stdout.strip() == "hello world"
    rc, out, err = tool("get", prefix + "nothing")
    assert rc == 2 and out is None, err


def test_prefix_listing_and_delete(tool, prefix):
    for name in ("b", "a", "c"):
        tool.ok("put", prefix + name, "v-" + name)
    tool.ok("put", prefix[:-1] + "0", "outside the prefix")
    out = tool.ok("list", prefix)
    assert [kv["key"] for kv in out["kvs"]] == [prefix + "a", prefix + "b", prefix + "c"]
    assert [kv["value"] for kv in out["kvs"]] == ["v-a", "v-b", "v-c"]
    out = tool.ok("keys", prefix, "2")
    assert [kv["key"] for kv in out["kvs"]] == [prefix + "a", prefix + "b"]
    assert out["more"] is True and "value" not in out["kvs"][0]
    assert tool.ok("del-prefix", prefix)["deleted"] == 3
    assert tool.ok("list", prefix)["kvs"] == []
    assert tool.ok("get", prefix[:-1] + "0")["value"] == "outside the prefix"


def test_txn_create_if_absent_and_compare_mod_revision(tool, prefix):
    lock = prefix + "lock"
    rc, first, err = tool("create", lock, "server-1")
    assert rc == 0 and first["succeeded"] is True, err
    token = first["kv"]["create_revision"]
    rc, second, err = tool("create", lock, "server-2")
    assert rc == 2 and second["succeeded"] is False
    assert second["kv"]["value"] == "server-1"          # the holder, from the ELSE branch
    assert second["kv"]["create_revision"] == token

    item = prefix + "item"
    rev = tool.ok("put", item, "v1")["revision"]
    rc, out, err = tool("cas", item, str(rev), "v2")
    assert rc == 0, err
    rc, out, err = tool("cas", item, str(rev), "stale write")   # rev is old now
    assert rc == 2 and out["kv"]["value"] == "v2"
    assert tool.ok("get", item)["value"] == "v2"


def test_lease_keeps_a_key_until_it_expires(tool, prefix):
    lease = tool.ok("lease-grant", "2")["id"]
    assert tool.ok("create", prefix + "lock", "me", lease)["kv"]["lease"] == int(lease)
    for _ in range(3):      # kept alive past its TTL
        time.sleep(1)
        assert tool.ok("lease-keepalive", lease)["ttl"] >= 1
    assert tool.ok("get", prefix + "lock")["value"] == "me"
    time.sleep(3.5)         # no keepalive: etcd expires it (checks every 500 ms)
    util.wait_for(lambda: tool("get", prefix + "lock")[0] == 2, 5, "leased key to vanish")
    rc, _, _ = tool("lease-keepalive", lease)
    assert rc == 2
    tool.ok("lease-revoke", lease)      # already gone: still fine
    # revoking a live lease removes its keys at once
    lease = tool.ok("lease-grant", "60")["id"]
    tool.ok("put", prefix + "x", "y", lease)
    tool.ok("lease-revoke", lease)
    assert tool("get", prefix + "x")[0] == 2


def test_failover_when_members_die(tool, etcd_cluster, prefix):
    try:
        tool.ok("put", prefix + "k", "before")
        etcd_cluster.kill(0)
        # the dead member is first in the list: the client moves on
        start = time.monotonic()
        out = tool.ok("put", prefix + "k", "after")
        assert out["endpoint"] != etcd_cluster.members[0].client_url
        assert tool.ok("get", prefix + "k")["value"] == "after"
        assert time.monotonic() - start < 10
        # only a dead member configured: a clear network error
        rc, out, err = tool("get", prefix + "k", endpoints=[etcd_cluster.members[0].client_url])
        assert rc == 1 and "no endpoint answered" in err, err
        # quorum lost: writes fail (with an error, not a hang) ...
        etcd_cluster.kill(1)
        rc, out, err = tool("put", prefix + "k", "no quorum", extra=["--timeout", "3"])
        assert rc == 1, err
        # ... and succeed again once the members are back
        etcd_cluster.heal()
        assert tool.ok("put", prefix + "k", "healed")["revision"] > 0
        assert tool.ok("get", prefix + "k")["value"] == "healed"
    finally:
        etcd_cluster.heal()


def test_a_paused_member_is_skipped_by_the_timeout(tool, etcd_cluster, prefix):
    try:
        etcd_cluster.kill(0, signal.SIGSTOP)
        rc, out, err = tool("put", prefix + "p", "v", extra=["--timeout", "2"])
        assert rc == 0, err
        assert out["endpoint"] != etcd_cluster.members[0].client_url
    finally:
        etcd_cluster.heal()


# ---------------------------------------------------------------- TLS and auth
@pytest.fixture(scope="module")
def secure_etcd(work_root):
    """A 1-member cluster that wants HTTPS with a client certificate."""
    d = os.path.join(work_root, "etcd-tls")
    pki = EtcdPKI(os.path.join(d, "pki")).generate()
    cluster = EtcdCluster(d, size=1, pki=pki)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def tls_args(pki, ca=None, client=True):
    args = ["--ca-file", ca or pki.ca_file]
    if client:
        args += ["--cert", pki.client_cert, "--key", pki.client_key]
    return args


def test_tls_with_client_certificate(etcdtool_bin, secure_etcd, prefix):
    pki = secure_etcd.pki
    tool = Tool(etcdtool_bin, secure_etcd.endpoints)
    assert secure_etcd.endpoints[0].startswith("https://127.0.0.1:")
    tool.ok("put", prefix + "t", "over tls", extra=tls_args(pki))
    assert tool.ok("get", prefix + "t", extra=tls_args(pki))["value"] == "over tls"
    # without a client certificate the member refuses the handshake
    rc, _, err = tool("get", prefix + "t", extra=tls_args(pki, client=False))
    assert rc == 1 and "no endpoint answered" in err, err
    # a server certificate from another CA is not trusted
    rc, _, err = tool("get", prefix + "t", extra=tls_args(pki, ca=pki.other_ca_file))
    assert rc == 1 and "certificate" in err.lower(), err


def test_auth_token_user_and_password_file(etcdtool_bin, secure_etcd, test_dir):
    pki = secure_etcd.pki
    pw = uuid.uuid4().hex
    pw_file = os.path.join(test_dir, "etcd-password")
    with open(pw_file, "w") as f:
        f.write(pw + "\n")
    secure_etcd.enable_auth("mod_acme", pw, "mod_acme/")
    tool = Tool(etcdtool_bin, secure_etcd.endpoints,
                extra=tls_args(pki) + ["--user", "mod_acme", "--password-file", pw_file])
    # a password that others can read is refused, as the encryption key is
    os.chmod(pw_file, 0o644)
    rc, _, err = tool("get", "mod_acme/x")
    assert rc == 1 and pw_file in err and "group or others" in err, err
    assert pw not in err
    os.chmod(pw_file, 0o600)
    tool.ok("put", "mod_acme/x", "with a token")
    assert tool.ok("get", "mod_acme/x")["value"] == "with a token"
    res = secure_etcd.etcdctl("get", "--print-value-only", "mod_acme/x")
    assert res.stdout.strip() == "with a token"
    # the role covers mod_acme/ only
    rc, _, err = tool("put", "elsewhere/x", "v")
    assert rc == 1 and "permission denied" in err, err
    # no token at all: refused
    rc, _, err = Tool(etcdtool_bin, secure_etcd.endpoints, extra=tls_args(pki))(
        "get", "mod_acme/x")
    assert rc == 1, err
    # a wrong password is a configuration error that names the user, not the password
    with open(pw_file, "w") as f:
        f.write("wrong-password\n")
    rc, _, err = tool("get", "mod_acme/x")
    assert rc == 1 and "authentication as 'mod_acme' failed" in err, err
    assert "wrong-password" not in err
