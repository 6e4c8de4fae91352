# The renewal child's account (www-data) is every web application's account:
# these tests play it against a running server. The attacker's commands run
# with `runuser -u www-data`; root's files outside the store (a decoy tree)
# must come out unchanged, the server must keep answering, and what the
# attacker stages must cost no restart. docs/SECURITY.md names each promise.
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from harness import util
from harness.httpd import served_by_ca

ISSUE_TIMEOUT = 90.0
USER = os.environ.get("MOD_ACME_TEST_USER", "www-data")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: plays www-data against root")


def as_user(script, check=True):
    """Runs a shell script as the child's account."""
    return subprocess.run(["runuser", "-u", USER, "--", "sh", "-c", script], check=check,
                          capture_output=True, text=True, timeout=60)


def conf(httpd, ca, names):
    text = httpd.acme_config(ca)
    for n in names:
        text += "ManagedDomain %s\n" % n + httpd.vhost(n, tls=True)
    return text


@pytest.fixture
def decoy():
    """A root-owned tree outside the store, with a secret only root reads."""
    top = tempfile.mkdtemp(prefix="mod_acme-decoy-")
    os.chmod(top, 0o755)
    os.makedirs(os.path.join(top, "etc", "sub"))
    with open(os.path.join(top, "etc", "shadow"), "w") as f:
        f.write("root:$6$decoy:19000:0:99999:7:::\n")
    os.chmod(os.path.join(top, "etc", "shadow"), 0o600)
    with open(os.path.join(top, "etc", "sub", "meta.json"), "w") as f:
        f.write('{"staged": "decoy"}\n')
    yield top
    shutil.rmtree(top, ignore_errors=True)


def tree_state(top):
    """What `ls -lR` shows, with each file's content digest: owner, mode,
    type and content of everything below top."""
    out = []
    for d, dirs, files in os.walk(top):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            digest = ""
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out.append((os.path.relpath(p, top), st.st_mode, st.st_uid, st.st_gid,
                        st.st_size, digest))
    return sorted(out)


def issued(httpd, pebble, names):
    httpd.write_config(conf(httpd, pebble, names))
    httpd.start()
    for n in names:
        httpd.wait_for(lambda: served_by_ca(httpd, n), ISSUE_TIMEOUT,
                       "the CA-issued certificate served for %s" % n)


def serves_everything(httpd, names):
    assert httpd.http_get("/", names[0]).status in (200, 403, 404)
    for n in names:
        assert served_by_ca(httpd, n) is not None, "no CA certificate served for %s" % n


def graceful_within(httpd, seconds):
    """A graceful restart that must finish: a parent blocked in the
    configuration pass (a FIFO) fails here instead of hanging the suite."""
    box = {}

    def run():
        try:
            httpd.graceful(timeout=seconds)
        except Exception as exc:  # noqa: BLE001 - reported below
            box["error"] = exc
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds + 5)
    assert not t.is_alive(), "the graceful restart did not finish: the parent is stuck"
    assert "error" not in box, box.get("error")


def test_fifo_in_staging_does_not_stop_the_server(httpd, pebble):
    name = "fifo.hostile.test"
    issued(httpd, pebble, [name])
    staging = os.path.join(httpd.store_dir, "staging", name)
    as_user("mkdir -p %s && mkfifo %s/meta.json %s/cert.p256.pem %s/privkey.p256.pem"
            % ((staging,) * 4))
    # refused by the restart thread or by the configuration pass, whichever looks first
    httpd.expect_errors(r"ACME0301: fifo\.hostile\.test")
    graceful_within(httpd, 20)
    serves_everything(httpd, [name])


def test_sparse_giant_in_staging_does_not_crash_the_parent(httpd, pebble):
    name = "sparse.hostile.test"
    issued(httpd, pebble, [name])
    staging = os.path.join(httpd.store_dir, "staging", name)
    as_user("mkdir -p {s} && echo '{{\"staged\": \"x\"}}' > {s}/meta.json && "
            "truncate -s 64G {s}/cert.p256.pem && truncate -s 64G {s}/privkey.p256.pem"
            .format(s=staging))
    httpd.expect_errors(r"ACME0301: sparse\.hostile\.test")
    graceful_within(httpd, 20)
    assert httpd.is_running()
    serves_everything(httpd, [name])


def test_symlinks_in_the_store_never_lead_root_outside(httpd, pebble, decoy):
    names = ["link-a.hostile.test", "link-b.hostile.test"]
    issued(httpd, pebble, names)
    before = tree_state(decoy)
    store = httpd.store_dir
    etc = os.path.join(decoy, "etc")
    # root would make its lock guard through this one, and read a staged
    # result through the others
    # (the child makes lock files in it meanwhile: tried until the swap holds)
    as_user("for i in $(seq 50); do rm -rf {j}/.locks; ln -sT {etc} {j}/.locks && break; "
            "sleep 0.1; done; [ -L {j}/.locks ]".format(j=os.path.join(store, "jobs"), etc=etc))
    as_user("ln -s {sub} {st}/{a} && mkdir -p {st}/{b} && ln -s {etc}/shadow {st}/{b}/cert.p256.pem"
            " && ln -s {sub}/meta.json {st}/{b}/meta.json && ln -s {etc} {st}/{b}/privkey.p256.pem"
            .format(sub=os.path.join(etc, "sub"), st=os.path.join(store, "staging"), etc=etc,
                    a=names[0], b=names[1]))
    # what the sweep and the ownership hand-off see: old temporary entries
    # that are links into the decoy
    as_user("ln -s {etc} {st}/.del.0123456789abcdef && ln -s {etc}/shadow {st}/.tmp.0123456789abcdef"
            " && touch -h -d '2 hours ago' {st}/.del.0123456789abcdef {st}/.tmp.0123456789abcdef"
            .format(etc=etc, st=os.path.join(store, "staging")))
    # the child's own claims fail until the parent has replaced the planted
    # jobs/.locks (its writes refuse the symlink: ACME0901, then ACME0329)
    httpd.expect_errors(r"ACME030[12]", r"ACME092[0-4]", r"ACME0904", r"ACME0901: store: writing "
                        r"\S*/jobs/\.locks/", r"ACME0329")
    for _ in range(3):
        graceful_within(httpd, 20)
    assert tree_state(decoy) == before
    assert not os.path.islink(os.path.join(store, "domains", names[0]))
    assert os.path.isdir(os.path.join(store, "jobs", ".locks"))
    assert not os.path.islink(os.path.join(store, "jobs", ".locks"))
    serves_everything(httpd, names)
    # and the domains still renew: the child's claims work again
    r = subprocess.run([os.path.join(os.environ["MOD_ACME_BUILD_DIR"], "tools", "acmectl"), "--store",
                        store, "renew", names[1]], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    old = served_by_ca(httpd, names[1])
    httpd.wait_for(lambda: (served_by_ca(httpd, names[1]) or old).serial_number
                   != old.serial_number, ISSUE_TIMEOUT, "the renewed certificate")


RACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
os.chdir(sys.argv[1])
pairs = []
for i in range(16):
    d, l = "r%d" % i, "r%d.link" % i
    os.makedirs(os.path.join(d, "a", "b"), exist_ok=True)
    open(os.path.join(d, "a", "b", "f"), "w").close()
    if not os.path.lexists(l):
        os.symlink(sys.argv[2], l)
    pairs.append((d.encode(), l.encode()))
while True:
    for d, l in pairs:
        # the directory and the symlink trade places, atomically
        libc.renameat2(AT_FDCWD, d, AT_FDCWD, l, RENAME_EXCHANGE)
"""


def test_directory_swaps_during_restarts_change_nothing_outside(httpd, pebble, decoy):
    """Sixteen directories of the child's trade places with symlinks to the
    decoy, atomically and in a tight loop, while the parent restarts again
    and again: whatever root walks, chowns or removes, it must not reach
    through a swap (it did, with paths rebuilt from the top)."""
    name = "race.hostile.test"
    issued(httpd, pebble, [name])
    before = tree_state(decoy)
    # one level down, in directories of its own: the child keeps racing
    # there even while root owns staging/ and jobs/ (below)
    dirs = [os.path.join(httpd.store_dir, sub, "x") for sub in ("staging", "jobs")]
    as_user("mkdir -p %s %s" % tuple(dirs))
    racers = [subprocess.Popen(["runuser", "-u", USER, "--", "/usr/bin/python3", "-c", RACER,
                                d, os.path.join(decoy, "etc")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
              for d in dirs]
    httpd.expect_errors(r"ACME030[12]", r"ACME092[0-4]", r"ACME090[1-4]")
    try:
        for _ in range(8):
            graceful_within(httpd, 30)
            # root's again, as in a new store or after a change of User: the
            # next pass hands them to the child, walking what is below
            subprocess.run(["chown", "root:root", os.path.join(httpd.store_dir, "staging"),
                            os.path.join(httpd.store_dir, "jobs")], check=True)
    finally:
        for r in racers:
            os.killpg(r.pid, signal.SIGKILL)   # runuser and the racer below it
            r.wait()
    assert tree_state(decoy) == before
    assert httpd.is_running()
    assert served_by_ca(httpd, name) is not None


def test_bogus_staged_results_cost_no_restart(httpd, pebble):
    """Results that fail their checks, and the active certificate staged
    again, written in a loop: refused without a restart."""
    name = "bogus.hostile.test"
    issued(httpd, pebble, [name])
    before = httpd.resuming_count()
    staging = os.path.join(httpd.store_dir, "staging", name)
    marker = os.path.join(httpd.store_dir, "staging", "_batch")
    active = os.path.join(httpd.store_dir, "domains", name)
    httpd.expect_errors(r"ACME0301: bogus\.hostile\.test")
    deadline = time.time() + 8
    i = 0
    while time.time() < deadline:
        if i % 2 == 0:
            as_user("mkdir -p {s} && echo 'not a cert {i}' > {s}/cert.p256.pem && "
                    "echo 'not a key' > {s}/privkey.p256.pem && "
                    "echo '{{\"staged\": \"{i}\"}}' > {s}/meta.json".format(s=staging, i=i),
                    check=False)  # the parent may remove the directory meanwhile
        else:
            # the active pair again: nothing new
            pem = open(os.path.join(active, "cert.p256.pem")).read()
            as_user("mkdir -p {s} && cat > {s}/cert.p256.pem <<'EOF'\n{pem}EOF\n"
                    "echo '{{\"staged\": \"{i}\"}}' > {s}/meta.json".format(s=staging, pem=pem, i=i),
                    check=False)
        # the child's "something is staged" marker: the parent looks now
        as_user("mkdir -p {m} && echo {i} > {m}/staged".format(m=marker, i=i))
        i += 1
        time.sleep(0.5)
    # the parent looks within a second of a change: give it that second,
    # then the count must not have moved
    httpd.wait_for(lambda: "ACME0301: bogus.hostile.test" in httpd.error_log(), 10,
                   "the refusal of the bogus result")
    time.sleep(1.5)
    assert httpd.resuming_count() == before, "the parent restarted for what the child staged"
    assert "ACME0312" not in httpd.error_log().split("ACME0301", 1)[1]
    serves_everything(httpd, [name])


def test_rollover_does_not_follow_a_planted_symlink(httpd, pebble, decoy):
    """acmectl runs as root: an account key that the child replaced by a
    symlink to a root-only key must not be read, nor copied into the store
    (as account.key.pem.old or as a restored key) where the child reads it."""
    from test_acmectl import new_key_pem
    name = "rollover.hostile.test"
    issued(httpd, pebble, [name])
    secret = os.path.join(decoy, "etc", "root-only.key.pem")
    pem = new_key_pem()
    with open(secret, "wb") as f:
        f.write(pem)
    os.chmod(secret, 0o600)
    before = tree_state(decoy)
    accounts = os.path.join(httpd.store_dir, "accounts")
    (acct,) = [os.path.join(accounts, x) for x in os.listdir(accounts)]
    as_user("mv {a}/account.key.pem {a}/saved.pem && ln -s {s} {a}/account.key.pem"
            .format(a=acct, s=secret))
    r = subprocess.run([os.path.join(os.environ["MOD_ACME_BUILD_DIR"], "tools", "acmectl"),
                        "--store", httpd.store_dir, "--ca-file", pebble.ca_file,
                        "account", "rollover"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stdout + r.stderr
    assert tree_state(decoy) == before
    for d, _, files in os.walk(httpd.store_dir):
        for n in files:
            p = os.path.join(d, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                assert pem.strip() not in f.read(), "the root-only key was copied to %s" % p
