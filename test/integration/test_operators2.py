# Issue 26, items 4 and 5: ManagedMembers (the names of the site join its
# certificate), ManagedRenewMode (certificates for names no vhost serves,
# or none at all) and ManagedInstallCmd (root hands a new certificate to
# another daemon). Real apache2 and real pebble on loopback.
import hashlib
import http.client
import json
import os
import re
import stat
import subprocess
import time

from cryptography import x509
from harness import util
from harness.httpd import served_by_ca
from harness.pki import cert_sans

ISSUE_TIMEOUT = 90.0
STATUS_LOCATION = "<Location /.acme-status>\nSetHandler acme-status\n</Location>"


def wait_issued(httpd, name):
    return httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT,
                          "the CA-issued certificate served for %s" % name)


def status_of(httpd, name, host):
    """The acme-status JSON of domain `name`, asked through the http vhost `host`."""
    conn = http.client.HTTPConnection("127.0.0.1", httpd.http_port, timeout=10)
    try:
        conn.request("GET", "/.acme-status/%s" % name, headers={"Host": host})
        r = conn.getresponse()
        assert r.status == 200, r.status
        return json.loads(r.read())
    finally:
        conn.close()


def install_result(httpd, name):
    """The status's record of a finished ManagedInstallCmd run, or None."""
    rec = status_of(httpd, name, name).get("install")
    return rec if rec and "ok" in rec else None


def active_cert(httpd, name):
    return os.path.join(httpd.store_dir, "domains", name, "cert.p256.pem")


# ------------------------------------------------------------------ ManagedMembers
def test_members_auto_puts_every_alias_in_one_certificate(httpd, pebble):
    main = "members.auto.test"
    aliases = ["www.members.auto.test", "shop.members.auto.test", "other-site.test"]
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 2s\nManagedChallenges http-01\n"
    text += "<ManagedDomain %s>\nManagedMembers auto\n</ManagedDomain>\n" % main
    text += httpd.vhost(main, tls=True, aliases=aliases)
    text += httpd.vhost(main, tls=False, aliases=aliases)
    httpd.write_config(text)
    mark = pebble.log_mark()
    httpd.start()
    cert = httpd.wait_for(
        lambda: (served_by_ca(httpd, main) or None) and
        (set([main] + aliases) <= set(cert_sans(httpd.get_cert(main))) or None),
        ISSUE_TIMEOUT, "one certificate with the ServerName and every ServerAlias")
    assert cert
    leaf = httpd.get_cert(main)
    for a in aliases:
        assert httpd.get_cert(a).serial_number == leaf.serial_number
    assert pebble.count_orders(mark) == 1
    assert "ACME0006" not in httpd.error_log()


def test_members_manual_is_the_default_and_warns_about_the_alias(httpd, pebble):
    main = "members.manual.test"
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 2s\nManagedChallenges http-01\n"
    text += "ManagedDomain %s\n" % main
    text += httpd.vhost(main, tls=True, aliases=["www.members.manual.test"])
    text += httpd.vhost(main, tls=False, aliases=["www.members.manual.test"])
    httpd.write_config(text)
    httpd.start()
    wait_issued(httpd, main)
    assert cert_sans(httpd.get_cert(main)) == [main]
    assert "does not include the name 'www.members.manual.test'" in httpd.error_log()


def test_members_auto_wildcard_alias_without_dns01_is_said_by_config_test(httpd, pebble):
    main = "members.wild.test"
    text = httpd.acme_config(pebble) + "ManagedMembers auto\nManagedChallenges http-01\n"
    text += "ManagedDomain %s\n" % main
    text += httpd.vhost(main, tls=True, aliases=["www.members.wild.test",
                                                 "*.members.wild.test"])
    text += httpd.vhost(main, tls=False, aliases=["www.members.wild.test"])
    httpd.write_config(text)
    rc, out = httpd.check_config()
    assert rc == 0, out
    assert ("ACME2000: members.wild.test: ManagedMembers auto leaves out the wildcard alias "
            "*.members.wild.test") in out, out
    assert "only dns-01 can validate it" in out
    # the other names still get their certificate
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, main) or None, ISSUE_TIMEOUT, "the certificate")
    assert sorted(cert_sans(httpd.get_cert(main))) == sorted([main, "www.members.wild.test"])


def test_members_config_errors(httpd, pebble):
    httpd.write_config(httpd.acme_config(pebble) + "ManagedMembers sometimes\n")
    rc, out = httpd.check_config()
    assert rc != 0 and "ManagedMembers: 'sometimes' is not auto or manual" in out, out
    httpd.write_config(httpd.acme_config(pebble) + "ManagedRenewMode never\n")
    rc, out = httpd.check_config()
    assert rc != 0 and "ManagedRenewMode: 'never' is not auto, always or manual" in out, out
    httpd.write_config(httpd.acme_config(pebble) + "ManagedInstallCmd /nonexistent/prog\n")
    rc, out = httpd.check_config()
    assert rc != 0 and "ManagedInstallCmd: '/nonexistent/prog' is not an executable" in out, out


# ------------------------------------------------------------------ ManagedRenewMode
def test_renew_mode_always_and_manual(httpd, pebble):
    """always: a name no vhost serves (a mail server's) gets its certificate;
    manual: a served domain gets none ordered, and the status says why."""
    mail = "mail.always.test"
    web = "web.always.test"
    manual = "manual.always.test"
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 2s\nManagedChallenges http-01\n"
    text += "<ManagedDomain %s>\nManagedRenewMode always\n</ManagedDomain>\n" % mail
    text += "ManagedDomain %s\n" % web
    text += "<ManagedDomain %s>\nManagedRenewMode manual\n</ManagedDomain>\n" % manual
    text += httpd.vhost(web, tls=True) + httpd.vhost(web, extra=STATUS_LOCATION)
    text += httpd.vhost(manual, tls=True) + httpd.vhost(manual)
    httpd.write_config(text)
    mark = pebble.log_mark()
    httpd.start()
    httpd.wait_for(lambda: os.path.exists(active_cert(httpd, mail)), ISSUE_TIMEOUT,
                   "the certificate of %s activated" % mail)
    wait_issued(httpd, web)
    with open(active_cert(httpd, mail), "rb") as f:
        leaf = x509.load_pem_x509_certificate(f.read())
    assert cert_sans(leaf) == [mail]
    st = status_of(httpd, mail, web)
    assert st["has-certificate"] is True and st["driven"] is False, st
    st = status_of(httpd, manual, web)
    assert st["has-certificate"] is False
    assert "ManagedRenewMode manual" in st["state-reason"], st
    assert not os.path.exists(os.path.join(httpd.store_dir, "jobs", manual, "job.json"))
    assert pebble.count_orders(mark) == 2
    log = httpd.error_log()
    assert "ManagedDomain %s (line" % mail not in log  # no "not used" warning for always
    assert "ManagedDomain %s (line" % manual not in log


# ------------------------------------------------------------------ ManagedInstallCmd
def install_script(httpd, name, body):
    """An executable shell script in the server root (the teardown stops what
    still runs with that path as an argument)."""
    path = os.path.join(httpd.root, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, stat.S_IRWXU)
    return path


def test_install_cmd_runs_as_root_with_the_paths_and_environment(httpd, pebble):
    name = "install.env.test"
    out = os.path.join(httpd.root, "install-out.txt")
    script = install_script(httpd, "install-env.sh",
                            'exec >> "%s"\necho "uid=$(id -u)"\necho "args=$*"\n'
                            'env | grep -E "^(MOD_ACME_|PATH=)" | sort\necho "--end"\n' % out)
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 2s\nManagedChallenges http-01\n"
    text += ("<ManagedDomain %s www.install.env.test>\nManagedInstallCmd %s postfix dovecot\n"
             "</ManagedDomain>\n" % (name, script))
    text += httpd.vhost(name, tls=True, aliases=["www.install.env.test"])
    text += httpd.vhost(name, aliases=["www.install.env.test"], extra=STATUS_LOCATION)
    httpd.write_config(text)
    httpd.start()
    wait_issued(httpd, name)
    got = httpd.wait_for(lambda: os.path.exists(out) and "--end" in open(out).read()
                         and open(out).read(), 30, "the install program's record")
    lines = got.splitlines()
    env = dict(line.split("=", 1) for line in lines if line.startswith("MOD_ACME_"))
    d = os.path.join(httpd.store_dir, "domains", name)
    assert "uid=0" in lines, got
    assert "args=postfix dovecot" in lines, got
    assert env["MOD_ACME_DOMAIN"] == name
    assert env["MOD_ACME_NAMES"] == "%s www.install.env.test" % name
    assert env["MOD_ACME_KEY_TYPES"] == "p256"
    assert env["MOD_ACME_CERT_FILE"] == os.path.join(d, "cert.p256.pem")
    assert env["MOD_ACME_KEY_FILE"] == os.path.join(d, "privkey.p256.pem")
    assert env["MOD_ACME_CERT_FILE_P256"] == env["MOD_ACME_CERT_FILE"]
    assert env["MOD_ACME_KEY_FILE_P256"] == env["MOD_ACME_KEY_FILE"]
    assert os.path.isfile(env["MOD_ACME_CERT_FILE"]) and os.path.isfile(env["MOD_ACME_KEY_FILE"])
    # nothing of the server's environment (LANG is set for httpd by the harness)
    assert not any(line.startswith("LANG=") for line in lines)
    st = httpd.wait_for(lambda: install_result(httpd, name), 10,
                        "the install record in the status")
    assert st["ok"] is True, st
    assert "ACME2002: %s: ManagedInstallCmd done" % name in httpd.error_log()
    # once per certificate: a restart does not run it again
    httpd.graceful()
    wait_issued(httpd, name)
    assert open(out).read().count("--end") == 1


def test_failing_or_hanging_install_cmd_blocks_nothing(httpd, pebble):
    fail, hang = "install.fail.test", "install.hang.test"
    started = os.path.join(httpd.root, "hang-started")
    fail_sh = install_script(httpd, "install-fail.sh", 'echo "postfix said no" >&2\nexit 3\n')
    # loops in the shell, given the server root as its argument: the teardown
    # finds it by that (an exec'd sleep would outlive the test)
    hang_sh = install_script(httpd, "install-hang.sh",
                             'echo run >> "%s"\nwhile :; do sleep 1; done\n' % started)
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 2s\nManagedChallenges http-01\n"
    text += "<ManagedDomain %s>\nManagedInstallCmd %s\n</ManagedDomain>\n" % (fail, fail_sh)
    text += "<ManagedDomain %s>\nManagedInstallCmd %s %s\n</ManagedDomain>\n" % (
        hang, hang_sh, httpd.root)
    for n in (fail, hang):
        text += httpd.vhost(n, tls=True) + httpd.vhost(n, extra=STATUS_LOCATION)
    httpd.write_config(text)
    httpd.expect_errors(r"ACME2003: install\.fail\.test: ManagedInstallCmd failed: .* exited "
                        r"with 3, output: postfix said no")
    httpd.start()
    wait_issued(httpd, fail)
    wait_issued(httpd, hang)
    httpd.wait_for(lambda: os.path.exists(started), 30, "the hanging install program started")
    st = httpd.wait_for(lambda: install_result(httpd, fail), 30,
                        "the failed install in the status")
    assert st["ok"] is False and "exited with 3" in st["detail"], st
    # while the hanging program runs: a restart completes, and both sites serve
    t0 = time.monotonic()
    httpd.graceful()
    assert time.monotonic() - t0 < 20
    for n in (fail, hang):
        assert served_by_ca(httpd, n)
        assert httpd.https_get("/", n).status != 503
    assert "ACME2003: install.fail.test" in httpd.error_log()
    # the restart did not start the running program again, nor the failed one
    assert status_of(httpd, hang, hang)["install"].get("running") is True
    with open(started) as f:
        assert f.read() == "run\n"
    assert httpd.error_log().count("ACME2003") == 1


# ------------------------------------------------------------------ acmectl import certbot
def acmectl(build_dir, *args):
    proc = subprocess.run([os.path.join(build_dir, "tools", "acmectl")] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C"})
    out = proc.stdout.decode(errors="replace")
    assert "PRIVATE KEY" not in out and "-----BEGIN" not in out, out
    return proc.returncode, out


def tree_digest(top):
    """Every file under top with its content's hash and mode, and every link."""
    out = {}
    for d, dirs, files in os.walk(top):
        for n in sorted(dirs + files):
            path = os.path.join(d, n)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[path] = "-> " + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    out[path] = (hashlib.sha256(f.read()).hexdigest(), st.st_mode)
    return out


def run_certbot(httpd, pebble, test_dir, names):
    """Debian's certbot, standalone on the port where pebble's VA connects,
    makes a real certbot tree in test_dir/letsencrypt."""
    top = os.path.join(test_dir, "letsencrypt")
    cmd = ["certbot", "certonly", "--standalone", "--non-interactive", "--agree-tos",
           "-m", "ops@certbot.test", "--server", pebble.dir_url,
           "--http-01-port", str(httpd.http_port), "--http-01-address", "127.0.0.1",
           "--config-dir", top, "--work-dir", os.path.join(test_dir, "certbot-work"),
           "--logs-dir", os.path.join(test_dir, "certbot-logs")]
    for n in names:
        cmd += ["-d", n]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "REQUESTS_CA_BUNDLE": pebble.ca_file}
    log = os.path.join(test_dir, "certbot-logs", "letsencrypt.log")
    for _ in range(3):
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=300, env=env)
        # pebble refuses 5 % of nonces; certbot 2.1 retries one badNonce, and
        # a second in a row ends it (a crash in its error path): run it again
        if proc.returncode == 0 or "badNonce" not in util.read_text(log):
            break
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")
    return top


def test_import_certbot_serves_at_once_and_renews_with_certbots_account(
        httpd, pebble, test_dir, build_dir):
    name, www = "import.certbot.test", "www.import.certbot.test"
    other = "notmanaged.certbot.test"
    top = run_certbot(httpd, pebble, test_dir, [name, www])
    run_certbot(httpd, pebble, test_dir, [other])
    with open(os.path.join(top, "live", name, "cert.pem"), "rb") as f:
        certbot_leaf = x509.load_pem_x509_certificate(f.read())
    accounts = pebble.count_accounts()
    before = tree_digest(top)

    # the migration: the domains first with ManagedRenewMode manual (the
    # store is made, nothing is ordered), the import, then renewals on
    def config(mode):
        text = httpd.acme_config(pebble) + "ManagedRetryDelay 2s\nManagedChallenges http-01\n"
        text += "ManagedRenewMode %s\n" % mode
        text += "ManagedDomain %s %s\n" % (name, www)
        text += httpd.vhost(name, tls=True, aliases=[www])
        text += httpd.vhost(name, aliases=[www])
        return text
    httpd.write_config(config("manual"))
    httpd.start()
    mark = pebble.log_mark()
    rc, out = acmectl(build_dir, "-f", httpd.conf_file, "import", "certbot", top)
    assert rc == 0, out
    assert re.search(r"imported +%s: P-256 certificate of %s \(%s %s\)" % (
        re.escape(name), re.escape(name), re.escape(name), re.escape(www)), out), out
    assert re.search(r"skipped +%s: no ManagedDomain whose names its certificate covers"
                     % re.escape(other), out), out
    assert re.search(r"imported +account \S+: https://localhost:\d+/my-account/\S+ at %s"
                     % re.escape(pebble.dir_url), out), out
    httpd.write_config(config("auto"))
    httpd.graceful()
    served = httpd.wait_for(lambda: served_by_ca(httpd, name), 30, "certbot's certificate")
    assert served.serial_number == certbot_leaf.serial_number
    assert httpd.get_cert(www).serial_number == certbot_leaf.serial_number
    assert pebble.count_orders(mark) == 0

    # idempotent, and certbot's tree is untouched
    rc, out = acmectl(build_dir, "-f", httpd.conf_file, "import", "certbot", top)
    assert rc == 0, out
    assert re.search(r"skipped +%s: the store's P-256 certificate of %s is this one, "
                     r"imported already" % (re.escape(name), re.escape(name)), out), out
    assert "imported already (https://localhost" in out, out
    assert tree_digest(top) == before

    # a forced renewal uses certbot's account: an order, no new account
    rc, out = acmectl(build_dir, "-f", httpd.conf_file, "renew", name)
    assert rc == 0, out
    renewed = httpd.wait_for(
        lambda: (served_by_ca(httpd, name) or None) and
        (httpd.get_cert(name).serial_number != certbot_leaf.serial_number or None),
        ISSUE_TIMEOUT, "the renewed certificate")
    assert renewed
    assert pebble.count_orders(mark) == 1
    assert pebble.count_accounts() == accounts
    assert "ACME0405" not in httpd.error_log()  # "created ACME account"

    # never over a newer certificate
    rc, out = acmectl(build_dir, "-f", httpd.conf_file, "import", "certbot", top)
    assert rc == 0, out
    assert re.search(r"skipped +%s: the store's P-256 certificate of %s is newer"
                     % (re.escape(name), re.escape(name)), out), out
    assert httpd.get_cert(name).serial_number != certbot_leaf.serial_number
    assert tree_digest(top) == before
