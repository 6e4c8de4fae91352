# dns-01 through the module with RFC 2136 updates: Debian's knot is the
# authoritative server and pebble's DNS (-dnsserver), apache2 runs mod_acme
# with ManagedDNSUpdate. A base name and its wildcard in one certificate, no
# TXT left afterwards, and a refused update that touches no other domain.
import json
import os
import re
import time
from types import SimpleNamespace

import pytest

from harness.dnsrecorder import DnsRecorder
from harness.httpd import served_by_ca
from harness.pebble import Pebble

ISSUE_TIMEOUT = 120.0
REC = "_acme-challenge.www.example.test."


@pytest.fixture
def knot_pebble(knot, listener_pki, acme_ports, test_dir):
    ca = Pebble(test_dir, "pebble-knot", listener_pki, SimpleNamespace(dns_addr=knot.addr),
                acme_ports["http"], acme_ports["tls"])
    ca.start()
    yield ca
    ca.stop()


def test_wildcard_and_base_name_by_rfc2136(httpd, knot, knot_pebble, test_dir):
    good = knot.key_file(os.path.join(test_dir, "acme.key"))
    refused = knot.key_file(os.path.join(test_dir, "other.key"), name="other-key")
    text = httpd.acme_config(knot_pebble) + "ManagedRetryDelay 1h\n"
    text += "ManagedDNSCheck %s timeout=20s\n" % knot.addr
    text += ("<ManagedDomain www.example.test *.www.example.test>\n"
             "    ManagedChallenges dns-01\n"
             "    ManagedDNSUpdate %s %s\n</ManagedDomain>\n" % (knot.addr, good))
    # a key the server's ACL does not allow for TXT: its own error only
    text += ("<ManagedDomain example.test>\n    ManagedChallenges dns-01\n"
             "    ManagedDNSUpdate %s %s\n</ManagedDomain>\n" % (knot.addr, refused))
    text += httpd.vhost("www.example.test", tls=True, aliases=["*.www.example.test"])
    text += httpd.vhost("example.test", tls=True)
    httpd.write_config(text)
    httpd.expect_errors(r"ACME0322: example\.test: .*other-key")
    httpd.start()
    cert = httpd.wait_for(lambda: served_by_ca(httpd, "any.www.example.test"), ISSUE_TIMEOUT,
                          "the wildcard certificate")
    from cryptography import x509
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == [
        "*.www.example.test", "www.example.test"]
    # both values were deleted after validation, by value
    httpd.wait_for(lambda: knot.txt(REC) == [], 20, "no TXT record left")
    # that domain's job runs beside the wildcard's: its failure may be logged later
    line = httpd.wait_for(lambda: next((l for l in httpd.error_log().splitlines()
                                        if "ACME0322: example.test" in l), None), 30,
                          "example.test's failure")
    assert "other-key" in line and ("REFUSED" in line or "NOTAUTH" in line), line
    # the module's own restart for the wildcard brings no new configuration:
    # the refused domain is not ordered again before its backoff (1h)
    assert httpd.resuming_count() == 2
    time.sleep(2)
    attempts = re.findall(r"ACME0324: example\.test: ", httpd.error_log())
    assert len(attempts) == 1, httpd.error_log()


def test_malformed_dns_key_file_fails_the_syntax_check(httpd, knot, knot_pebble, test_dir):
    bad = os.path.join(test_dir, "broken.key")
    with open(bad, "w") as f:
        f.write('key "k" { algorithm hmac-md5; secret "AAAA"; };\n')
    os.chmod(bad, 0o600)
    httpd.write_config(httpd.acme_config(knot_pebble)
                       + "<ManagedDomain www.example.test>\n    ManagedChallenges dns-01\n"
                       "    ManagedDNSUpdate %s %s\n</ManagedDomain>\n" % (knot.addr, bad)
                       + httpd.vhost("www.example.test", tls=True))
    rc, out = httpd.check_config()
    assert rc != 0
    assert "ManagedDNSUpdate" in out and "broken.key" in out, out
    assert "hmac-md5" in out, out


def test_record_missing_at_a_check_server_never_asks_the_ca(httpd, knot, knot_pebble,
                                                             test_dir):
    from harness import util
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    dead = "127.0.0.1:%d" % util.free_port()   # a secondary that never answers
    text = httpd.acme_config(knot_pebble) + "ManagedRetryDelay 1h\n"
    text += ("<ManagedDomain www.example.test>\n    ManagedChallenges dns-01\n"
             "    ManagedDNSUpdate %s %s\n    ManagedDNSCheck %s %s timeout=4s\n"
             "</ManagedDomain>\n" % (knot.addr, key, knot.addr, dead))
    text += httpd.vhost("www.example.test", tls=True)
    httpd.write_config(text)
    httpd.expect_errors(r"ACME0322: www\.example\.test")
    mark = knot_pebble.log_mark()
    httpd.start()
    httpd.wait_for(lambda: "ACME0322" in httpd.error_log(), 60, "the failed check")
    line = [l for l in httpd.error_log().splitlines() if "ACME0322" in l][0]
    assert dead in line and "_acme-challenge.www.example.test" in line, line
    # the challenge was never answered, so the CA never tried to validate
    assert "POST /chalZ" not in knot_pebble.log_text()[mark:]
    httpd.wait_for(lambda: knot.txt(REC) == [], 20, "the record withdrawn after the failure")


def _job(httpd, name):
    try:
        with open(os.path.join(httpd.store_dir, "jobs", name, "job.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


@pytest.mark.time_limit(180)
def test_unsigned_refusal_is_retried_not_paused_for_a_day(httpd, knot, knot_pebble, test_dir):
    """The update server (the test's own) answers every update with a plain
    REFUSED and no TSIG, as one forged packet would: the domain is retried
    with the normal backoff, not paused for 24 hours, and every message the
    module sent had a random id."""
    fake = DnsRecorder().start()
    try:
        key = knot.key_file(os.path.join(test_dir, "acme.key"))
        text = httpd.acme_config(knot_pebble) + "ManagedRetryDelay 2s\n"
        text += ("<ManagedDomain www.example.test>\n    ManagedChallenges dns-01\n"
                 "    ManagedDNSUpdate %s %s\n</ManagedDomain>\n" % (fake.addr, key))
        text += httpd.vhost("www.example.test", tls=True)
        httpd.write_config(text)
        httpd.expect_errors(r"ACME0322: www\.example\.test: .*REFUSED")
        start = time.time()
        httpd.start()
        job = httpd.wait_for(lambda: (lambda j: j if j.get("errors", 0) >= 1 else None)(
            _job(httpd, "www.example.test")), 60, "the first failure in job.json")
        assert job["state"] == "error", job   # not "config-error"
        assert job["next-attempt"] < start + 600, job
        assert job["last-error"]["problem"] == "acme:dns", job
        # and it is retried: another attempt sends its update (each attempt
        # sends the add and the delete)
        httpd.wait_for(lambda: len(fake.updates()) >= 3, 60, "a second attempt's update")
        line = next(l for l in httpd.error_log().splitlines() if "ACME0322" in l)
        assert "unsigned answer" in line, line
        assert "needs a configuration change" not in line
        ids = fake.ids()
        assert len(set(ids)) > len(ids) // 2, ids   # random, not 0 for all
    finally:
        fake.stop()


def test_tsig_key_file_owner_and_mode_fail_the_syntax_check(httpd, knot, knot_pebble,
                                                           test_dir):
    """The TSIG key signs changes to the zone: it gets the encryption key's
    check, and apachectl -t says what to fix."""
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    httpd.write_config(httpd.acme_config(knot_pebble)
                       + "<ManagedDomain www.example.test>\n    ManagedChallenges dns-01\n"
                       "    ManagedDNSUpdate %s %s\n</ManagedDomain>\n" % (knot.addr, key)
                       + httpd.vhost("www.example.test", tls=True))
    rc, out = httpd.check_config()
    assert rc == 0, out
    for mode, owner, expect in (
            (0o640, 0, "can be read or written by group or others: chmod 0400"),
            (0o604, 0, "can be read or written by group or others: chmod 0400"),
            (0o600, 65534, "is not owned by root: chown root")):
        os.chmod(key, mode)
        os.chown(key, owner, owner)
        rc, out = httpd.check_config()
        assert rc != 0, out
        assert "ManagedDNSUpdate: the TSIG key file %s %s" % (key, expect) in out, out
        assert knot.keys["acme-key"] not in out   # the secret is never shown
        os.chown(key, 0, 0)
