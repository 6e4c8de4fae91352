# dns-01 through the module with RFC 2136 updates: Debian's knot is the
# authoritative server and pebble's DNS (-dnsserver), apache2 runs mod_acme
# with ManagedDNSUpdate. A base name and its wildcard in one certificate, no
# TXT left afterwards, and a refused update that touches no other domain.
import os
import re
import time
from types import SimpleNamespace

import pytest

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
    # the domain with the configuration problem is not ordered again
    assert httpd.resuming_count() == 2
    time.sleep(2)
    attempts = re.findall(r"ACME0324: example\.test: ", httpd.error_log())
    assert len(attempts) == 1, httpd.error_log()


def test_malformed_dns_key_file_fails_the_syntax_check(httpd, knot, knot_pebble, test_dir):
    bad = os.path.join(test_dir, "broken.key")
    with open(bad, "w") as f:
        f.write('key "k" { algorithm hmac-md5; secret "AAAA"; };\n')
    httpd.write_config(httpd.acme_config(knot_pebble)
                       + "<ManagedDomain www.example.test>\n    ManagedChallenges dns-01\n"
                       "    ManagedDNSUpdate %s %s\n</ManagedDomain>\n" % (knot.addr, bad)
                       + httpd.vhost("www.example.test", tls=True))
    rc, out = httpd.check_config()
    assert rc != 0
    assert "ManagedDNSUpdate" in out and "broken.key" in out, out


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
