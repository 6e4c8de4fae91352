# The etcd store (acme_store_etcd through test/tools/etcdtool) against the real
# 3-member cluster: sealed secrets, refusal of bad values, move/archive, locks.
import json
import os
import subprocess
import time
import uuid

import pytest

from harness import util


@pytest.fixture(scope="module")
def etcdtool_bin(build_dir):
    path = os.path.join(build_dir, "test", "tools", "etcdtool")
    if not os.access(path, os.X_OK):
        pytest.fail("%s is missing: run make first" % path)
    return path


def make_key_file(path):
    subprocess.run(["openssl", "rand", "-out", path, "32"], check=True)
    os.chmod(path, 0o600)
    return path


class Store:
    """etcdtool store-* commands on one prefix and one encryption key."""

    def __init__(self, tool, cluster, prefix, key_file):
        self.tool = tool
        self.cluster = cluster
        self.prefix = prefix
        self.key_file = key_file

    def __call__(self, *args, key_file=None, extra=()):
        cmd = [self.tool, "--endpoints", ",".join(self.cluster.endpoints),
               "--prefix", self.prefix, "--seal-key", key_file or self.key_file]
        cmd += list(extra) + list(args)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        out = json.loads(res.stdout) if res.stdout.strip() else None
        return res.returncode, out, res.stderr

    def ok(self, *args, **kw):
        rc, out, err = self(*args, **kw)
        assert rc == 0, "etcdtool %s: rc=%d %s" % (" ".join(args), rc, err)
        return out

    def raw(self, key):
        res = self.cluster.etcdctl("get", "--print-value-only", key)
        return res.stdout[:-1] if res.stdout.endswith("\n") else res.stdout

    def put_raw(self, key, value):
        subprocess.run(["etcdctl"] + self.cluster.client_args() + ["put", key], input=value,
                       text=True, check=True, capture_output=True,
                       env=dict(os.environ, ETCDCTL_API="3"))

    def key(self, group, name, aspect):
        return self.ok("store-key", group, name, aspect)["key"]


@pytest.fixture
def store(etcdtool_bin, etcd_cluster, test_dir):
    prefix = "it-store-%s/" % uuid.uuid4().hex[:10]
    return Store(etcdtool_bin, etcd_cluster, prefix,
                 make_key_file(os.path.join(test_dir, "store.key")))


PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"


def test_secret_items_are_sealed_in_etcd_and_open_on_load(store):
    store.ok("store-save", "domains", "example.org", "privkey.p256.pem", PEM, "secret")
    store.ok("store-save", "domains", "example.org", "cert.p256.pem", "CERT")
    key = store.key("domains", "example.org", "privkey.p256.pem")
    assert key == store.prefix + "domains/example.org/privkey.p256.pem"
    raw = store.raw(key)
    assert raw.startswith("acme-item 2 ") and " s\nv1:" in raw
    assert "PRIVATE KEY" not in raw and "MIGHAgEA" not in raw
    assert store.raw(store.key("domains", "example.org", "cert.p256.pem")).endswith("\nCERT")
    assert store.ok("store-load", "domains", "example.org", "privkey.p256.pem")["data"] == PEM
    # a scan of everything under the prefix finds no private key text
    dump = store.cluster.etcdctl("get", "--prefix", store.prefix).stdout
    assert "PRIVATE KEY" not in dump


def test_a_value_that_does_not_decrypt_is_refused_naming_the_key(store, test_dir):
    store.ok("store-save", "domains", "a.example", "privkey.pem", PEM, "secret")
    src = store.key("domains", "a.example", "privkey.pem")
    # moved to another item: the key name is the associated data
    dst = store.key("domains", "b.example", "privkey.pem")
    store.put_raw(dst, store.raw(src))
    rc, out, err = store("store-load", "domains", "b.example", "privkey.pem")
    assert rc == 1 and out is None
    assert dst in err and "does not decrypt" in err, err
    assert "PRIVATE KEY" not in err
    # another encryption key (a server with the wrong key file)
    other = make_key_file(os.path.join(test_dir, "other.key"))
    rc, _, err = store("store-load", "domains", "a.example", "privkey.pem", key_file=other)
    assert rc == 1 and src in err and "does not decrypt" in err, err
    # altered in etcd
    raw = store.raw(src)
    store.put_raw(src, raw[:-6] + ("AAAAAA" if not raw.endswith("AAAAAA") else "BBBBBB"))
    rc, _, err = store("store-load", "domains", "a.example", "privkey.pem")
    assert rc == 1 and src in err and "does not decrypt" in err, err


def test_garbage_and_oversized_values_are_refused_naming_the_key(store):
    key = store.key("staging", "c.example", "job.json")
    store.put_raw(key, '{"written": "by someone else"}')
    rc, _, err = store("store-load", "staging", "c.example", "job.json")
    assert rc == 1 and key in err and "not in mod_acme's item format" in err, err
    # a header that claims a sealed value, with no sealed value after it
    store.put_raw(key, "acme-item 1 1 s\nnot sealed")
    rc, _, err = store("store-load", "staging", "c.example", "job.json")
    assert rc == 1 and key in err and "does not decrypt" in err, err
    # above the client's value limit (1 MiB by default)
    store.put_raw(key, "acme-item 1 1 p\n" + "x" * (1024 * 1024 + 10))
    rc, _, err = store("store-load", "staging", "c.example", "job.json")
    assert rc == 1 and key in err and "larger than the limit" in err, err
    # the tool still works for other items afterwards
    store.ok("store-save", "staging", "c.example", "other", "fine")
    assert store.ok("store-load", "staging", "c.example", "other")["data"] == "fine"


def test_list_mtime_and_remove(store):
    before = time.time()
    for name in ("b.example", "a.example", "a.example.org"):
        store.ok("store-save", "domains", name, "cert.pem", "C-" + name)
    store.ok("store-save", "domains", "a.example", "chain.pem", "CH")
    # keys that are no items of ours are not listed
    store.put_raw(store.prefix + "domains/stray", "x")
    store.put_raw(store.prefix + "domains/a.example/sub/deeper", "x")
    assert store.ok("store-list", "domains")["names"] == ["a.example", "a.example.org",
                                                        "b.example"]
    assert store.ok("store-list", "domains", "a.example")["names"] == ["cert.pem", "chain.pem"]
    rc, _, _ = store("store-list", "domains", "nothing.example")
    assert rc == 2
    mtime = store.ok("store-mtime", "domains", "a.example", "cert.pem")["mtime"] / 1e6
    assert before - 1 <= mtime <= time.time() + 1
    assert store.ok("store-mtime", "domains", "a.example")["mtime"] / 1e6 >= mtime
    store.ok("store-remove", "domains", "a.example", "chain.pem")
    assert store.ok("store-list", "domains", "a.example")["names"] == ["cert.pem"]
    store.ok("store-remove", "domains", "a.example")
    assert store.ok("store-list", "domains")["names"] == ["a.example.org", "b.example"]
    rc, _, _ = store("store-load", "domains", "a.example", "cert.pem")
    assert rc == 2


def test_move_replaces_archives_and_bounds_the_archive(store):
    name = "m.example"
    rc, _, _ = store("store-move", "staging", "domains", name, "2")
    assert rc == 2                                  # nothing staged
    for gen in range(4):
        store.ok("store-save", "staging", name, "cert.pem", "cert-%d" % gen)
        store.ok("store-save", "staging", name, "privkey.pem", "key-%d" % gen, "secret")
        if gen == 0:
            store.ok("store-save", "staging", name, "only-in-first", "x")
        store.ok("store-move", "staging", "domains", name, "2")
        assert store.ok("store-load", "domains", name, "cert.pem")["data"] == "cert-%d" % gen
        # resealed for its new name
        assert store.ok("store-load", "domains", name, "privkey.pem")["data"] == "key-%d" % gen
        assert store("store-list", "staging", name)[0] == 2
    assert store.ok("store-list", "domains", name)["names"] == ["cert.pem", "privkey.pem"]
    archived = [n for n in store.ok("store-list", "archive")["names"] if n.startswith(name + ".")]
    assert len(archived) == 2, archived
    # the newest two replaced generations (1 and 2) are kept
    certs = sorted(store.ok("store-load", "archive", a, "cert.pem")["data"] for a in archived)
    assert certs == ["cert-1", "cert-2"]
    for a in archived:
        assert store.ok("store-load", "archive", a, "privkey.pem")["data"].startswith("key-")


def test_claims_are_exclusive_renewable_and_expire(store):
    name = "c.example"
    t1 = store.ok("store-claim", name, "server-1", "30")["token"]
    assert t1 > 0
    rc, _, err = store("store-claim", name, "server-2", "30")
    assert rc == 2 and "held by server-1" in err, err
    assert store.ok("store-claim", name, "server-1", "30")["token"] == t1   # again: renewed
    assert store.ok("store-renew", name, "server-1", str(t1), "30")["token"] == t1
    # other names are independent
    assert store.ok("store-claim", "other.example", "server-2", "30")["token"] > t1
    # releasing someone else's claim changes nothing
    store.ok("store-release", name, "server-2", str(t1 + 1000), "30")
    assert store("store-claim", name, "server-2", "30")[0] == 2
    store.ok("store-release", name, "server-1", str(t1), "30")
    t2 = store.ok("store-claim", name, "server-2", "2")["token"]
    assert t2 > t1
    # server-2 stops renewing: etcd drops the claim with its lease
    def taken_over():
        rc, out, _ = store("store-claim", name, "server-1", "30")
        return out["token"] if rc == 0 else None
    t3 = util.wait_for(taken_over, 10, "the expired claim to be taken over", interval=0.5)
    assert t3 > t2
    rc, _, _ = store("store-renew", name, "server-2", str(t2), "2")
    assert rc == 3                                          # lost: fenced
    store.ok("store-release", name, "server-1", str(t3), "30")
    # ... and stays lost once the one that took over is done and the name is
    # free: renewing must not take it again under a new token (the paused
    # holder's stale work would then pass the fence)
    rc, _, _ = store("store-renew", name, "server-2", str(t2), "2")
    assert rc == 3
    rc, _, err = store("store-claim", name, "server-3", "30")
    assert rc == 0, err                                     # still free for anyone


def test_a_stale_claim_holders_writes_are_refused(store):
    name = "f.example"
    t1 = store.ok("store-claim", name, "server-1", "2")["token"]
    fence1 = ["--fence", "%s,server-1,%d" % (name, t1)]
    store.ok("store-save", "staging", name, "cert.pem", "by-1", extra=fence1)
    # server-1 pauses past its lease; server-2 takes over with a greater token
    def taken_over():
        rc, out, _ = store("store-claim", name, "server-2", "30")
        return out["token"] if rc == 0 else None
    t2 = util.wait_for(taken_over, 10, "server-2 to take the expired claim", interval=0.5)
    assert t2 > t1
    fence2 = ["--fence", "%s,server-2,%d" % (name, t2)]
    store.ok("store-save", "staging", name, "cert.pem", "by-2", extra=fence2)
    store.ok("store-save", "staging", name, "privkey.pem", PEM, "secret", extra=fence2)
    # server-1 wakes up: its writes, removals and moves are refused, and the log says why
    rc, _, err = store("store-save", "staging", name, "cert.pem", "stale", extra=fence1)
    assert rc == 3, err
    assert "is refused" in err and "'server-2' holds token %d" % t2 in err, err
    assert store.key("staging", name, "cert.pem") in err
    rc, _, err = store("store-remove", "staging", name, extra=fence1)
    assert rc == 3, err
    rc, _, err = store("store-move", "staging", "domains", name, "2", extra=fence1)
    assert rc == 3, err
    assert store("store-list", "domains", name)[0] == 2
    assert store.ok("store-load", "staging", name, "cert.pem")["data"] == "by-2"
    assert store.ok("store-load", "staging", name, "privkey.pem")["data"] == PEM
    # even after server-2 let go, the old token stays refused
    store.ok("store-release", name, "server-2", str(t2), "30")
    rc, _, err = store("store-save", "staging", name, "cert.pem", "stale", extra=fence1)
    assert rc == 3 and "nobody holds it now" in err, err
    # the current holder moves under its fence
    t3 = store.ok("store-claim", name, "server-1", "30")["token"]
    fence3 = ["--fence", "%s,server-1,%d" % (name, t3)]
    store.ok("store-move", "staging", "domains", name, "2", extra=fence3)
    assert store.ok("store-load", "domains", name, "cert.pem")["data"] == "by-2"
    store.ok("store-remove", "domains", name, "cert.pem", extra=fence3)
    assert store.ok("store-list", "domains", name)["names"] == ["privkey.pem"]
    store.ok("store-release", name, "server-1", str(t3), "30")


def test_concurrent_claims_have_one_winner(store):
    name = "race.example"
    cmd = lambda owner: [store.tool, "--endpoints", ",".join(store.cluster.endpoints),  # noqa: E731
                         "--prefix", store.prefix, "--seal-key", store.key_file,
                         "store-claim", name, owner, "30"]
    procs = [subprocess.Popen(cmd("server-%d" % i), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(8)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append((proc.returncode, out, err))
    winners = [r for r in results if r[0] == 0]
    assert len(winners) == 1, results
    assert all(r[0] == 2 and "held by server-" in r[2] for r in results if r[0] != 0), results


def test_the_store_works_with_one_member_down(store):
    try:
        store.cluster.kill(0)
        store.ok("store-save", "domains", "d.example", "privkey.pem", PEM, "secret")
        assert store.ok("store-load", "domains", "d.example", "privkey.pem")["data"] == PEM
        token = store.ok("store-claim", "d.example", "server-1", "30")["token"]
        fence = ["--fence", "d.example,server-1,%d" % token]
        store.ok("store-save", "staging", "d.example", "cert.pem", "C", extra=fence)
        store.ok("store-save", "staging", "d.example", "privkey.pem", PEM, "secret",
                 extra=fence)
        store.ok("store-move", "staging", "domains", "d.example", "1", extra=fence)
        assert store.ok("store-list", "domains", "d.example")["names"] == ["cert.pem",
                                                                         "privkey.pem"]
        assert store.ok("store-load", "domains", "d.example", "privkey.pem")["data"] == PEM
        assert len([n for n in store.ok("store-list", "archive")["names"]
                    if n.startswith("d.example.")]) == 1
    finally:
        store.cluster.heal()


def test_verify_refuses_another_key_and_a_moved_schema_item(store, test_dir):
    store.ok("store-verify")                 # the first server writes the sealed schema item
    raw = store.raw(store.prefix + "store")
    assert raw.startswith("acme-item 2 ") and " s\nv1:" in raw
    store.ok("store-verify")                 # the next one with the same key agrees
    other = make_key_file(os.path.join(test_dir, "other.key"))
    rc, _, err = store("store-verify", key_file=other)
    assert rc == 1 and "another ManagedStoreEncryptionKey" in err, err
    # a sealed value copied there from another item does not pass for it
    # (a newer schema is a unit test: it needs a value sealed for that name)
    fresh = store.prefix + "fresh/"
    newer = Store(store.tool, store.cluster, fresh, store.key_file)
    newer.ok("store-save", "domains", "x", "y", '{"schema": 1}', "secret")
    newer.put_raw(fresh + "store", newer.raw(newer.key("domains", "x", "y")))
    rc, _, err = newer("store-verify")
    assert rc == 1 and "another ManagedStoreEncryptionKey" in err, err


def test_sweeps_at_once_remove_each_stale_answer_once_and_keep_the_rest(store):
    """Issue 24: answers that no run will withdraw (its server gone, its
    domain taken out) stayed in etcd for good. A sweep removes the answers of
    challenges/ written more than a day ago, by the time in their header,
    each by a delete that holds only while the value is the one it read:
    three sweeps at once remove each once. Younger answers, one published
    now, and stale items elsewhere (another group, a key that is no item)
    stay."""
    import concurrent.futures
    from harness.etcd import item_mac_value
    with open(store.key_file, "rb") as f:
        store_key = f.read()
    now = int(time.time() * 1e6)
    day = 86400 * 10 ** 6

    def plant(rest, mtime):
        key = store.prefix + rest
        store.put_raw(key, item_mac_value(store_key, key, mtime, b"answer").decode())
        return key

    stale = [plant("challenges/http-01/S%02d" % i, now - day - 60 * 10 ** 6) for i in range(30)]
    stale.append(plant("challenges/tls-alpn-01/old.example.crt", now - 3 * day))
    stale.append(store.prefix + "challenges/http-01/V1")
    store.put_raw(stale[-1], "acme-item 1 %d p\nleft by a server of the earlier format"
                  % (now - 2 * day))
    kept = [plant("challenges/http-01/Y%d" % i, now - day + 3600 * 10 ** 6) for i in range(3)]
    kept.append(plant("domains/old.example/cert.p256.pem", now - 30 * day))
    kept.append(plant("challenges/stray", now - 2 * day))
    store.ok("store-save", "challenges", "http-01", "Fresh", "Fresh.thumb")
    kept.append(store.key("challenges", "http-01", "Fresh"))

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        swept = list(pool.map(lambda _: store.ok("store-sweep")["removed"], range(3)))
    assert sum(swept) == len(stale), swept
    keys = store.cluster.etcdctl("get", "--prefix", "--keys-only", store.prefix).stdout.split()
    assert not set(stale) & set(keys), sorted(set(stale) & set(keys))
    assert set(kept) <= set(keys), sorted(set(kept) - set(keys))
    assert store.ok("store-load", "challenges", "http-01", "Fresh")["data"] == "Fresh.thumb"
    assert store.ok("store-sweep")["removed"] == 0
