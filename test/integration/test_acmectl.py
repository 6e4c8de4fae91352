# acmectl against a real store: status/show after a real issuance, renew and
# revoke acted on by the running apache2, account show/rollover, usage errors.
import json
import os
import pwd
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes

from harness.httpd import served_by_ca
from harness.pki import cert_serial_hex

ISSUE_TIMEOUT = 90.0
RUN_USER = os.environ.get("MOD_ACME_TEST_USER", "www-data")


@pytest.fixture(scope="module")
def acmectl_bin(build_dir):
    path = os.path.join(build_dir, "tools", "acmectl")
    if not os.access(path, os.X_OK):
        pytest.fail("acmectl not built at %s (MOD_ACME_BUILD_DIR)" % path)
    return path


class Ctl:
    def __init__(self, path):
        self.path = path

    def __call__(self, *args, rc=None):
        proc = subprocess.run([self.path] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              timeout=120, env={"PATH": "/usr/bin:/bin", "LANG": "C"})
        proc.stdout_bytes = proc.stdout
        out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        both = out + err
        # never any key material, whatever the command
        assert "PRIVATE KEY" not in both and "-----BEGIN" not in both, both
        if rc is not None:
            assert proc.returncode == rc, "acmectl %s: exit %d, expected %d\n%s" % (
                " ".join(args), proc.returncode, rc, both)
        proc.out, proc.err = out, err
        return proc


@pytest.fixture
def ctl(acmectl_bin):
    return Ctl(acmectl_bin)




def served_other_than(httpd, host, serial):
    cert = served_by_ca(httpd, host)
    return cert if cert is not None and cert.serial_number != serial else None


def start_issued(httpd, pebble, names):
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 1s\n"
    text += "ManagedDomain %s\n" % " ".join(names)
    text += httpd.vhost(names[0], tls=True, aliases=names[1:])
    httpd.write_config(text)
    httpd.start()
    return httpd.wait_for(lambda: served_by_ca(httpd, names[0]), ISSUE_TIMEOUT,
                          "the first certificate for %s" % names[0])


def new_key_pem():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def make_store(root):
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "store.json"), "w") as f:
        f.write('{"schema": 1}\n')
    return root


# ---------------------------------------------------------------- no server

def test_usage_errors_exit_2_and_help_exits_0(ctl, test_dir):
    store = make_store(os.path.join(test_dir, "store"))
    assert "usage: acmectl" in ctl(rc=2).err
    assert "which store" in ctl("status", rc=2).err
    ctl("--store", store, "frobnicate", rc=2)
    ctl("--store", store, "status", "--bogus", rc=2)
    ctl("--store", store, "status", "extra-arg", rc=2)
    assert "does not apply" in ctl("--store", store, "status", "--reason", "superseded", rc=2).err
    assert "which DOMAIN" in ctl("--store", store, "show", rc=2).err
    ctl("--store", store, "renew", rc=2)
    ctl("--store", store, "renew", "a.test", "b.test", rc=2)
    assert "unknown reason" in ctl("--store", store, "revoke", "a.test", "--reason", "nope",
                                   rc=2).err
    ctl("--store", store, "account", "explode", rc=2)
    ctl("--store", rc=2)   # option without its value
    for cmd in ("status", "show", "renew", "revoke", "account"):
        r = ctl(cmd, "--help", rc=0)
        assert r.out.startswith("usage: acmectl %s" % cmd)
        assert ctl("help", cmd, rc=0).out == r.out
    assert "commands:" in ctl("--help", rc=0).out
    ctl("--version", rc=0)


def test_missing_store_and_unknown_domain_exit_1(ctl, test_dir):
    r = ctl("--store", os.path.join(test_dir, "nothing-here"), "status", rc=1)
    assert "not a mod_acme store" in r.err
    store = make_store(os.path.join(test_dir, "store"))
    os.makedirs(os.path.join(store, "domains", "known.test"))
    for cmd in ("show", "renew", "revoke"):
        r = ctl("--store", store, cmd, "unknown.test", rc=1)
        assert "no managed domain 'unknown.test'" in r.err and "known.test" in r.err
    # path tricks are names, not paths
    r = ctl("--store", store, "show", "../domains", rc=1)
    assert "not a domain name" in r.err
    r = ctl("--store", store, "account", "show", rc=1)
    assert "no ACME account" in r.err


def test_config_scan_follows_includes_and_server_root(ctl, test_dir):
    root = os.path.join(test_dir, "root")
    os.makedirs(os.path.join(root, "conf.d", "sub"))
    make_store(os.path.join(root, "stores", "mine"))
    main = os.path.join(test_dir, "httpd.conf")
    with open(main, "w") as f:
        f.write('ServerRoot "%s"\n'
                "Define STORE_NAME mine\n"
                "# ManagedStoreDir /wrong/commented\n"
                "IncludeOptional conf.d/*.conf\n"
                "IncludeOptional conf.d/missing-*.conf\n"
                "IncludeOptional /nonexistent/file.conf\n" % root)
    with open(os.path.join(root, "conf.d", "a.conf"), "w") as f:
        f.write("<IfModule acme_module>\n  Include conf.d/sub\n</IfModule>\n")
    with open(os.path.join(root, "conf.d", "sub", "acme"), "w") as f:
        f.write("ManagedStoreDir \\\n   stores/${STORE_NAME}\n")
    r = ctl("-f", main, "status", "--json", rc=0)
    assert json.loads(r.out)["store"] == os.path.join(root, "stores", "mine")
    # the default store is ServerRoot/acme
    with open(main, "w") as f:
        f.write('ServerRoot "%s"\n' % root)
    r = ctl("-f", main, "status", rc=1)
    assert os.path.join(root, "acme") in r.err
    # a config that includes itself ends in an error, not a crash
    with open(main, "w") as f:
        f.write("Include %s\n" % main)
    r = ctl("-f", main, "status", rc=1)
    assert "too deep" in r.err
    ctl("-f", os.path.join(test_dir, "no-such.conf"), "status", rc=1)
    # a plain Include of a missing file is an error
    with open(main, "w") as f:
        f.write("Include /nonexistent/file.conf\n")
    ctl("-f", main, "status", rc=1)


def test_damaged_store_files_do_not_break_status(ctl, test_dir):
    store = make_store(os.path.join(test_dir, "store"))
    d = os.path.join(store, "domains", "broken.test")
    j = os.path.join(store, "jobs", "broken.test")
    os.makedirs(d)
    os.makedirs(j)
    with open(os.path.join(d, "cert.p256.pem"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    with open(os.path.join(d, "meta.json"), "w") as f:
        f.write('{"names": "not an array", "ca": 5')
    with open(os.path.join(j, "job.json"), "w") as f:
        f.write('{"errors": "many", "last-error": [1, 2], "orders": 7, "ari": "x"}')
    os.makedirs(os.path.join(store, "jobs", "errored.test"))
    with open(os.path.join(store, "jobs", "errored.test", "job.json"), "w") as f:
        json.dump({"state": "error", "errors": 3, "next-attempt": 4102444800,
                   "last-error": {"status": 1, "problem": "urn:ietf:params:acme:error:"
                                  "rateLimited", "detail": "slow down <b>now</b>"}}, f)
    r = ctl("--store", store, "status", rc=0)
    assert "broken.test" in r.out and "errored.test" in r.out
    assert "slow down <b>now</b> (rateLimited)" in r.out
    doc = json.loads(ctl("--store", store, "status", "--json", rc=0).out)
    by = {x["domain"]: x for x in doc["domains"]}
    assert by["errored.test"]["state"] == "error"
    assert by["errored.test"]["errors"] == 3
    assert by["errored.test"]["next-attempt"] == "2100-01-01T00:00:00Z"
    assert by["errored.test"]["last-error"]["problem"].endswith("rateLimited")
    assert by["broken.test"]["state"] == "pending"
    assert "error" in by["broken.test"]["certificates"][0]
    r = ctl("--store", store, "show", "broken.test", rc=0)
    assert "cannot read it" in r.out


def test_renew_and_revoke_wait_for_a_running_job(ctl, test_dir):
    import socket
    import time
    store = make_store(os.path.join(test_dir, "store"))
    os.makedirs(os.path.join(store, "domains", "busy.test"))
    locks = os.path.join(store, "jobs", ".locks")
    os.makedirs(locks)
    # a live claim, as a renewal job in the server's child holds it (this pid is alive)
    with open(os.path.join(locks, "busy.test"), "w") as f:
        f.write("acme-lease 2\nexpires %d\ntoken 7\npid %d\nhost %s\nowner renewal job "
                "(child pid 123)\n" % (int((time.time() + 600) * 1e6), os.getpid(),
                                        socket.gethostname()))
    for cmd in ("renew", "revoke"):
        r = ctl("--store", store, cmd, "busy.test", rc=1)
        assert ("renewal job (child pid 123) is working on busy.test right now; try again in "
                "a minute") in r.err, r.err
    assert not os.path.exists(os.path.join(store, "jobs", "busy.test", "renew.json"))
    # once the job's lease is over, renew goes through
    with open(os.path.join(locks, "busy.test"), "w") as f:
        f.write("acme-lease 2\nexpires 1\ntoken 7\npid 1\nhost -\nowner renewal job\n")
    ctl("--store", store, "renew", "busy.test", rc=0)
    with open(os.path.join(store, "jobs", "busy.test", "renew.json")) as f:
        assert json.load(f)["by"] == "acmectl"


def test_text_from_the_ca_cannot_forge_output_lines(ctl, test_dir):
    store = make_store(os.path.join(test_dir, "store"))
    os.makedirs(os.path.join(store, "jobs", "evil.test"))
    detail = "bad\r\nevil.test  ok  forged\x1b[31m red\x9b1m \u00e9t\u00e9 \xff"
    with open(os.path.join(store, "jobs", "evil.test", "job.json"), "w") as f:
        json.dump({"errors": 1, "last-error": {"status": 1, "detail": detail,
                                               "activity": "order\x07"}}, f)
    for args in (("status",), ("show", "evil.test")):
        r = ctl("--store", store, *args, rc=0)
        raw = r.stdout_bytes
        assert not [b for b in raw if (b < 0x20 and b != 0x0A) or b == 0x7F], raw
        assert b"\xc2\x9b" not in raw  # C1 CSI, UTF-8 encoded
        assert "bad\\x0D\\x0Aevil.test  ok  forged\\x1B[31m red\\xC2\\x9B1m" in r.out, r.out
        assert "\u00e9t\u00e9" in r.out  # printable UTF-8 stays
        assert not any(line.startswith("evil.test  ok") for line in r.out.splitlines())
    doc = json.loads(ctl("--store", store, "status", "--json", rc=0).out)
    assert doc["domains"][0]["last-error"]["detail"] == detail


def test_show_ari_window_from_job_state(ctl, test_dir):
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    store = make_store(os.path.join(test_dir, "store"))
    d = os.path.join(store, "domains", "ari.test")
    os.makedirs(d)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ari.test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0x1234ABCD)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=89))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("ari.test")]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                           False)
            .sign(key, hashes.SHA256()))
    with open(os.path.join(d, "cert.p256.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    os.makedirs(os.path.join(store, "jobs", "ari.test"))
    with open(os.path.join(store, "jobs", "ari.test", "job.json"), "w") as f:
        json.dump({"errors": 0, "ari": {"p256": {
            "cert-id": "x.y", "start": 4102444800, "end": 4102531200, "chosen": 4102488000,
            "next-poll": 4102400000, "explanation": "https://ca.example/why"}}}, f)
    r = ctl("--store", store, "show", "ari.test", rc=0)
    assert "Serial:        1234ABCD" in r.out
    assert "ARI window:    2100-01-01T00:00:00Z - 2100-01-02T00:00:00Z" in r.out
    assert "chosen: 2100-01-01T12:00:00Z" in r.out
    assert "explanation: https://ca.example/why" in r.out
    # the ARI id: base64url(AKI) "." base64url(serial)
    assert "ARI id:        " in r.out and r.out.split("ARI id:        ")[1].split("\n")[0].endswith(
        ".EjSrzQ")
    # an answer about another certificate (cert-id "x.y") is ignored, as the server does
    doc = json.loads(ctl("--store", store, "status", "--json", rc=0).out)
    assert doc["domains"][0]["renew-at"] < "2100"
    ari_id = r.out.split("ARI id:        ")[1].split("\n")[0]
    start = int(now.timestamp()) + 30 * 86400
    with open(os.path.join(store, "jobs", "ari.test", "job.json"), "w") as f:
        json.dump({"errors": 0, "ari": {"p256": {
            "cert-id": ari_id, "start": start, "end": start + 86400, "chosen": start + 3600,
            "next-poll": 4102400000}}}, f)
    doc = json.loads(ctl("--store", store, "status", "--json", rc=0).out)
    chosen = datetime.datetime.fromtimestamp(start + 3600, datetime.timezone.utc)
    assert doc["domains"][0]["renew-at"] == chosen.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- with a server

def test_status_show_and_renew_with_running_server(ctl, httpd, pebble):
    names = ["ctl.status.test", "www.ctl.status.test"]
    first = start_issued(httpd, pebble, names)
    store = httpd.store_dir

    r = ctl("--store", store, "status", rc=0)
    assert names[0] in r.out and "www.ctl.status.test" in r.out
    row = [line for line in r.out.splitlines() if line.startswith(names[0])][0]
    assert " ok " in row and "P-256" in row

    doc = json.loads(ctl("-f", httpd.conf_file, "status", "--json", rc=0).out)
    assert doc["store"] == store
    (d,) = [x for x in doc["domains"] if x["domain"] == names[0]]
    assert d["state"] == "ok" and sorted(d["names"]) == sorted(names)
    assert d["key-types"] == ["P-256"] and d["errors"] == 0 and d["staged"] is False
    assert d["ca"] == pebble.dir_url and d["days-left"] > 0
    (c,) = d["certificates"]
    assert c["serial"].lower().lstrip("0") == cert_serial_hex(first)
    for key in ("valid-from", "valid-until", "last-renewal", "renew-at", "next-attempt"):
        assert d[key].endswith("Z"), key

    r = ctl("--store", store, "show", names[0], rc=0)
    assert "Serial:        %s" % c["serial"] in r.out
    fp = first.fingerprint(hashes.SHA256()).hex().upper()
    assert ":".join(fp[i:i + 2] for i in range(0, len(fp), 2)) in r.out
    assert "ARI id:" in r.out and "www.ctl.status.test" in r.out

    r = ctl("--store", store, "account", "show", rc=0)
    assert "/my-account/" in r.out and pebble.dir_url in r.out
    assert "Key thumbprint:" in r.out

    # renew: the running server renews and restarts by itself
    r = ctl("--store", store, "renew", names[0], rc=0)
    req = os.path.join(store, "jobs", names[0], "renew.json")
    try:
        st = os.stat(req)
        assert pwd.getpwuid(st.st_uid).pw_name == RUN_USER
        with open(req) as f:
            assert json.load(f)["by"] == "acmectl"
    except FileNotFoundError:
        pass  # already taken by the server
    second = httpd.wait_for(lambda: served_other_than(httpd, names[0], first.serial_number),
                            ISSUE_TIMEOUT, "a renewed certificate after 'acmectl renew'")
    assert second.serial_number != first.serial_number
    httpd.wait_for(lambda: not os.path.exists(req), 30, "renew.json removed by the server")


def test_revoke_then_rollover_then_renew(ctl, httpd, pebble):
    name = "ctl.revoke.test"
    first = start_issued(httpd, pebble, [name])
    store = httpd.store_dir
    accounts_before = pebble.count_accounts()

    # revoke, with the CA trust file read from the config (-f)
    r = ctl("-f", httpd.conf_file, "revoke", name, "--reason", "superseded", rc=0)
    serial = cert_serial_hex(first)
    assert serial in r.out.lower()
    assert pebble.cert_status(serial)["Status"] == "Revoked"
    second = httpd.wait_for(lambda: served_other_than(httpd, name, first.serial_number),
                            ISSUE_TIMEOUT, "a new certificate after 'acmectl revoke'")
    assert pebble.cert_status(cert_serial_hex(second))["Status"] == "Valid"

    (acct_dir,) = [os.path.join(store, "accounts", x)
                   for x in os.listdir(os.path.join(store, "accounts"))]
    key = os.path.join(acct_dir, "account.key.pem")
    uid, gid = os.stat(acct_dir).st_uid, os.stat(acct_dir).st_gid

    def put_key(path, pem):
        with open(path, "wb") as f:
            f.write(pem)
        os.chmod(path, 0o600)
        os.chown(path, uid, gid)

    # an interrupted rollover that never reached the CA is undone, then redone
    with open(key, "rb") as f:
        good = f.read()
    put_key(key + ".old", good)
    put_key(key, new_key_pem())
    r = ctl("--store", store, "--ca-file", pebble.ca_file, "account", "rollover", rc=0)
    assert "undone" in r.out and "now uses a new" in r.out
    assert not os.path.exists(key + ".old")
    # an interrupted rollover that did reach the CA is finished
    with open(key, "rb") as f:
        current = f.read()
    put_key(key + ".old", new_key_pem())
    r = ctl("--store", store, "--ca-file", pebble.ca_file, "account", "rollover", rc=0)
    assert "Finished the interrupted" in r.out
    assert not os.path.exists(key + ".old")
    with open(key, "rb") as f:
        assert f.read() == current

    # rollover: new key, same account, and the server keeps working with it
    before = ctl("--store", store, "account", "show", rc=0).out
    r = ctl("--store", store, "--ca-file", pebble.ca_file, "account", "rollover", rc=0)
    after = ctl("--store", store, "account", "show", rc=0).out
    thumb = [line for line in before.splitlines() if "thumbprint" in line]
    assert thumb and thumb[0] not in after
    url = [line for line in before.splitlines() if line.startswith("Account URL")]
    assert url and url[0] in after
    st = os.stat(key)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert pwd.getpwuid(st.st_uid).pw_name == RUN_USER
    assert not os.path.exists(key + ".old")

    ctl("--store", store, "renew", name, rc=0)
    third = httpd.wait_for(lambda: served_other_than(httpd, name, second.serial_number),
                           ISSUE_TIMEOUT, "a certificate after the key rollover")
    assert third.serial_number != second.serial_number
    assert pebble.count_accounts() == accounts_before
    # deactivation needs a confirmation
    r = ctl("--store", store, "account", "deactivate", rc=2)
    assert "--yes" in r.err
