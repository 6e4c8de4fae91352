# Faults of the disk under a real apache2 and pebble: a store that is
# read-only at start or becomes read-only during issuance. The server must
# start, serve what it has, never flood the CA, and resume by itself.
import os
import subprocess
import time

import pytest

from harness.httpd import served_by_ca
from harness import util

ISSUE_TIMEOUT = 90.0


def base_conf(httpd, ca, names_list, extra=""):
    text = httpd.acme_config(ca) + "ManagedRetryDelay 1s\n" + extra
    for names in names_list:
        text += "ManagedDomain %s\n" % " ".join(names)
        text += httpd.vhost(names[0], tls=True, aliases=names[1:])
    return text


class Tmpfs:
    """A small tmpfs mounted at the store directory, so that a test can make
    the store read-only (remount) or full, as a real disk would be."""

    def __init__(self, path, size="4m"):
        self.path = path
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path],
                       check=True, capture_output=True)

    def remount(self, mode):
        # EBUSY while a writer has a file open: retry for a moment
        for _ in range(50):
            if subprocess.run(["mount", "-o", "remount,%s" % mode, self.path],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("cannot remount %s %s" % (self.path, mode))

    def umount(self):
        subprocess.run(["umount", "-l", self.path], capture_output=True)


@pytest.fixture
def tmpfs_store(httpd):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        fs = Tmpfs(httpd.store_dir)
    except subprocess.CalledProcessError as e:
        pytest.skip("cannot mount a tmpfs here: %s" % e.stderr.decode(errors="replace").strip())
    yield fs
    if httpd.is_running():
        httpd.stop()   # before the store goes away under it
    fs.umount()


def fill(path):
    """Fills the filesystem of path: every further write gets ENOSPC."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_unwritable_store_at_start_serves_and_resumes(httpd, acme_proxy, tmpfs_store, fault):
    have, new = "ro-have.test", "ro-new.test"
    httpd.write_config(base_conf(httpd, acme_proxy, [[have]]))
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, have), ISSUE_TIMEOUT, "the first certificate")
    httpd.stop()
    # a domain is added while the disk is read-only: httpd still starts
    httpd.write_config(base_conf(httpd, acme_proxy, [[have], [new]]))
    if fault == "read-only":
        tmpfs_store.remount("ro")
    else:
        filler = fill(tmpfs_store.path)
    httpd.expect_errors(r"ACME0007: the store .* cannot be written", r"ACME0901: store: writing",
                        r"ACME0329: the store .* cannot be written",
                        r"ACME0302: .*cannot activate", r"ACME0102: ")
    acme_proxy.clear_records()
    httpd.start()
    assert served_by_ca(httpd, have), "the stored certificate is served"
    assert httpd.https_get("/", new).status == 503, "the new domain has the temporary one"
    assert "ACME0007" in httpd.error_log()
    httpd.wait_for(lambda: "ACME0329" in httpd.error_log(), 20, "the unwritable-store notice")
    time.sleep(3)
    assert acme_proxy.requests_to(endpoint="newOrder") == [], "nothing asked of the CA"
    assert httpd.error_log().count("ACME0329") == 1, "said once, not at every retry"
    # the disk takes writes again: the new domain is issued, no restart by hand
    if fault == "read-only":
        tmpfs_store.remount("rw")
    else:
        os.unlink(filler)
    httpd.wait_for(lambda: served_by_ca(httpd, new), ISSUE_TIMEOUT, "the new certificate")
    assert "ACME0330: the store" in httpd.error_log()
    assert len(acme_proxy.orders) == 1


def test_store_read_only_during_issuance_does_not_flood_the_ca(httpd, acme_proxy, tmpfs_store):
    name = "ro-during.test"
    # the finalize request hangs until the disk has become read-only
    hang = acme_proxy.inject(method="POST", path_prefix="/finalize-order/", mode="hang", count=1)
    httpd.write_config(base_conf(httpd, acme_proxy, [[name]]))
    httpd.expect_errors(r"ACME0322: ro-during\.test", r"ACME0329: the store .* cannot be written",
                        r"ACME0403: ro-during\.test: cannot save", r"ACME0901: store: writing")
    httpd.start()
    util.wait_for(lambda: hang.hits >= 1, 30, "the finalize request")
    tmpfs_store.remount("ro")
    mark = len(acme_proxy.requests)
    acme_proxy.set_down(None)   # releases the hung finalize: the job fails
    httpd.wait_for(lambda: "ACME0329" in httpd.error_log(), 30, "the failed save")
    time.sleep(8)               # the window in which a flood would show
    after = acme_proxy.requests[mark:]
    # one failure, then no request while nothing can be saved: the backoff
    # holds in memory (before the fix: a new attempt every scheduler tick)
    assert len(acme_proxy.orders) == 1
    assert len([r for r in after if r.method == "POST"]) <= 6, after
    assert httpd.error_log().count("ACME0329") == 1
    tmpfs_store.remount("rw")
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
    assert len(acme_proxy.orders) <= 2


def test_hanging_ca_never_delays_stop_or_overlaps_runners(httpd, acme_proxy):
    # a CA that accepts connections and never answers
    name = "hang.test"
    httpd.write_config(base_conf(httpd, acme_proxy, [[name]]))
    acme_proxy.set_down("hang")
    httpd.expect_errors(r"ACME0322: hang\.test")
    httpd.start()
    util.wait_for(lambda: acme_proxy.requests, 20, "a connection to the CA")
    # the old child's job is stuck in a transfer: the graceful restart stops
    # it (child_stopping aborts the transfer) and it releases its claim; the
    # new child's runner follows it with the next token, never beside it
    lease = os.path.join(httpd.store_dir, "jobs", ".locks", name)

    def holder():
        with open(lease) as f:
            fields = dict(l.split(" ", 1) for l in f.read().splitlines()[1:])
        return int(fields["token"]), int(fields["pid"]), int(fields["expires"])

    util.wait_for(lambda: os.path.exists(lease) and holder()[2] > 0, 10, "the claim")
    token, old_pid, _ = holder()
    httpd.graceful()
    util.wait_for(lambda: holder()[1] != old_pid, 5, "the new child's claim")
    new_token, new_pid, _ = holder()
    assert new_token == token + 1
    assert "being worked on by mod_acme-pid-%d" % old_pid not in httpd.error_log() \
        or "looking again every 0.2 s" in httpd.error_log()
    started = time.monotonic()
    httpd.stop()
    took = time.monotonic() - started
    assert "AH00046" not in httpd.error_log(), "a child had to be killed"
    assert took < 2.0, "stop took %.1f s" % took


def _store_is_sound(store):
    """Every JSON item parses and every PEM item is complete: no half write."""
    import json
    for dirpath, _, files in os.walk(store):
        for f in files:
            path = os.path.join(dirpath, f)
            if f.startswith("."):
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            if f.endswith(".json"):
                json.loads(data.decode("utf-8"))
            elif f.endswith(".pem"):
                text = data.decode("ascii")
                assert text.count("-----BEGIN") == text.count("-----END") > 0, path


# CI runs a few; build/soak.sh runs many (MOD_ACME_KILL_ROUNDS=100).
KILLS = int(os.environ.get("MOD_ACME_KILL_ROUNDS", "6"))


def test_kill9_at_random_moments_loses_nothing(httpd, acme_proxy):
    import random
    rnd = random.Random(int(os.environ.get("MOD_ACME_KILL_SEED", "1")))
    account_key = None
    for i in range(KILLS):
        name = "k%d.kill.test" % i
        httpd.write_config(base_conf(httpd, acme_proxy, [[name]]))
        httpd.start()
        time.sleep(rnd.uniform(0.0, 1.2))   # somewhere in the issuance
        pid = httpd.pid()
        util.kill_tree(pid)
        util.wait_for(lambda: not util.pids_with_arg(httpd.root), 10, "httpd and its children to die")
        _store_is_sound(httpd.store_dir)
        httpd.start()
        httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
        httpd.stop()
        _store_is_sound(httpd.store_dir)
        keys = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(httpd.store_dir,
                                                                       "accounts"))
                for f in fs if f == "account.key.pem"]
        assert len(keys) == 1, keys
        with open(keys[0]) as f:
            key = f.read()
        assert account_key in (None, key), "the account key changed"
        account_key = key
        orders = [o for o in acme_proxy.orders
                  if any(x.get("value") == name for x in o.get("identifiers", []))]
        assert len(orders) <= 2, "%d orders for %s after one kill" % (len(orders), name)
