# Renewal engine against a real pebble and apache2: short-lived certificates
# renewed and activated by the automatic restart, orders resumed after a
# stop, several key types, EAB, CA failover and notifications.
import json
import os
import stat
import subprocess
import time

from harness.httpd import served_by_ca
from harness import util

ISSUE_TIMEOUT = 90.0




def base_conf(httpd, ca, names, extra=""):
    text = httpd.acme_config(ca)
    text += "ManagedRetryDelay 1s\n" + extra
    text += "ManagedDomain %s\n" % " ".join(names)
    text += httpd.vhost(names[0], tls=True, aliases=names[1:])
    return text


def notify_script(tmpdir):
    """A ManagedNotifyCmd that appends its arguments and environment."""
    os.makedirs(tmpdir, exist_ok=True)
    path = os.path.join(tmpdir, "notify.sh")
    log = os.path.join(tmpdir, "notify.log")
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho \"$1 $2 env=$(env | grep -c .) pem=$(env | grep -c PRIVATE)\""
                " >> %s\necho notified\n" % log)
    os.chmod(path, 0o755)
    open(log, "w").close()
    os.chmod(log, 0o666)
    os.chmod(tmpdir, 0o755)
    return path, log


def test_short_lived_certificate_is_renewed_and_activated(httpd, pebble_factory, test_dir):
    # 40-second certificates: renewed at half their lifetime at the latest
    ca = pebble_factory(config={"certificateValidityPeriod": 40})
    name = "renew.short.test"
    script, log = notify_script(os.path.join(test_dir, "notify"))
    httpd.write_config(base_conf(httpd, ca, [name], "ManagedNotifyCmd %s\n" % script))
    httpd.start()
    first = httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "first certificate")
    lifetime = (first.not_valid_after - first.not_valid_before).total_seconds()
    assert lifetime <= 41
    second = httpd.wait_for(
        lambda: (lambda c: c if c is not None and c.serial_number != first.serial_number
                 else None)(served_by_ca(httpd, name)),
        ISSUE_TIMEOUT, "the renewed certificate")
    assert second.not_valid_after > first.not_valid_after
    assert httpd.error_log().count("restarting gracefully to activate") >= 2
    # notifications: renewing, renewed, installed, with a clean environment
    util.wait_for(lambda: "installed %s" % name in open(log).read(), 20, "installed notice")
    lines = open(log).read().splitlines()
    events = [l.split()[0] for l in lines]
    assert "renewing" in events and "renewed" in events and "installed" in events
    assert all(l.split()[1] == name for l in lines)
    assert all("pem=0" in l for l in lines)
    assert all(int(l.split("env=")[1].split()[0]) <= 4 for l in lines)
    assert "ManagedNotifyCmd 'renewed' exited 0, output: notified" in httpd.error_log()


def test_order_in_flight_is_resumed_after_stop(httpd, pebble_factory):
    # slow validations so that the order is still open when httpd stops
    ca = pebble_factory(env={"PEBBLE_VA_NOSLEEP": "", "PEBBLE_VA_SLEEPTIME": "15"})
    name = "resume.test"
    httpd.write_config(base_conf(httpd, ca, [name]))
    mark = ca.log_mark()
    httpd.start()
    httpd.wait_for(lambda: "order https://" in httpd.error_log(), 30, "an order created")
    httpd.expect_errors(r"ACME0322: resume\.test: order .* is invalid")
    httpd.stop()
    job = json.load(open(os.path.join(httpd.store_dir, "jobs", name, "job.json")))
    order_url = job["orders"]["p256"]
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
    log = httpd.error_log()
    assert "resuming order %s" % order_url in log
    # The CA may have tried to validate while httpd was down and declared
    # the order invalid; only then is a second order right.
    if "%s is invalid" % order_url in log:
        assert ca.count_orders(mark) == 2
    else:
        assert ca.count_orders(mark) == 1


def _openssl_cert_type(port, name, sigalgs):
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", name,
         "-sigalgs", sigalgs, "-tls1_3"],
        input=b"", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    out = proc.stdout.decode("utf-8", "replace")
    for line in out.splitlines():
        if "Server public key is" in line:
            return line.strip()
    return out[-400:]


def test_rsa_and_ecdsa_certificates_both_served(httpd, pebble):
    name = "dual.keys.test"
    httpd.write_config(base_conf(httpd, pebble, [name], "ManagedKeys P-256 RSA-2048\n"))
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "certificates")
    ec = _openssl_cert_type(httpd.tls_port, name, "ECDSA+SHA256")
    rsa = _openssl_cert_type(httpd.tls_port, name, "RSA-PSS+SHA256")
    assert "256 bit" in ec, ec
    assert "2048 bit" in rsa, rsa
    d = os.path.join(httpd.store_dir, "domains", name)
    for f in ("privkey.p256.pem", "privkey.rsa2048.pem"):
        assert stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode) == 0o600


EAB_KID = "kid-1"
EAB_HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"


def test_eab_required_ca(httpd, pebble_factory):
    ca = pebble_factory(config={"externalAccountBindingRequired": True,
                                "externalAccountMACKeys": {EAB_KID: EAB_HMAC}})
    name = "eab.test"
    # without EAB: a clear configuration error, no busy retries
    httpd.write_config(base_conf(httpd, ca, [name]))
    httpd.expect_errors(r"requires External Account Binding")
    httpd.start()
    httpd.wait_for(lambda: "requires External Account Binding" in httpd.error_log(), 30,
                   "the EAB error")
    time.sleep(3)
    assert httpd.error_log().count("requires External Account Binding") == 1
    httpd.stop()
    # with EAB: issued
    httpd.write_config(base_conf(httpd, ca, [name], "ManagedEAB %s %s\n" % (EAB_KID, EAB_HMAC)))
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
    assert EAB_HMAC not in httpd.error_log()
    assert any("-eab-kid-1" in d for d in os.listdir(os.path.join(httpd.store_dir, "accounts")))


def test_ca_failover(httpd, pebble):
    name = "failover.test"
    dead = "https://localhost:%d/dir" % util.free_port()
    text = httpd.acme_config(pebble).replace("ManagedCA %s" % pebble.dir_url,
                                             "ManagedCA %s %s" % (dead, pebble.dir_url))
    text += "ManagedRetryDelay 1s\nManagedDomain %s\n" % name + httpd.vhost(name, tls=True)
    script, log = notify_script(os.path.join(httpd.root, "notify"))
    text += "ManagedNotifyCmd %s\n" % script
    httpd.write_config(text)
    httpd.expect_errors(r"ACME0322: failover\.test: .*localhost")
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
    assert "switching to %s" % pebble.dir_url in httpd.error_log()
    events = [l.split()[0] for l in open(log).read().splitlines()]
    assert events.count("errored") >= 3 and "renewed" in events
    meta = json.load(open(os.path.join(httpd.store_dir, "domains", name, "meta.json")))
    assert meta["ca"] == pebble.dir_url


def test_auto_restart_off_waits_for_graceful(httpd, pebble):
    name = "manual.test"
    httpd.write_config(base_conf(httpd, pebble, [name], "ManagedAutoRestart off\n"))
    httpd.start()
    httpd.wait_for(lambda: "graceful restart (apachectl graceful) will activate"
                   in httpd.error_log(), ISSUE_TIMEOUT, "the staged notice")
    time.sleep(3)
    assert served_by_ca(httpd, name) is None
    httpd.graceful()
    httpd.wait_for(lambda: served_by_ca(httpd, name), 20, "the certificate after graceful")


def test_expiring_notice_when_renewal_keeps_failing(httpd, pebble_factory, acme_proxy_factory,
                                                     test_dir):
    # 40-second certificates; after the first one the CA goes away, so the
    # renewal at half-life fails and the certificate runs into its last tenth
    ca = pebble_factory(config={"certificateValidityPeriod": 40})
    proxy = acme_proxy_factory(ca, ari=False)
    name = "expiring.test"
    script, log = notify_script(os.path.join(test_dir, "notify-exp"))
    httpd.write_config(base_conf(httpd, proxy, [name], "ManagedNotifyCmd %s\n" % script))
    httpd.expect_errors(r"ACME0322: expiring\.test: ")
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "first certificate")
    proxy.set_down("close")
    util.wait_for(lambda: "expiring %s" % name in open(log).read(), 60, "the expiring notice")
    assert "ACME0328: %s: the certificate expires" % name in httpd.error_log()
    events = [l.split()[0] for l in open(log).read().splitlines()]
    assert events.count("expiring") == 1 and "errored" in events
    proxy.set_down(None)
