# Config errors: `apache2 -t` must fail and name the directive, the value
# and the line, so that the operator knows exactly what to fix.
import os
import re

import pytest


def check(httpd, text):
    httpd.write_config(text)
    rc, out = httpd.check_config()
    return rc, out


def assert_rejected(httpd, text, directive, value, needle):
    rc, out = check(httpd, text)
    assert rc != 0, out
    assert directive in out, out
    assert value in out, out
    line = httpd.config_line_of(needle)
    assert re.search(r"line %d of %s" % (line, re.escape(httpd.conf_file)), out), out


def test_valid_config_passes(httpd, pebble):
    text = httpd.acme_config(pebble)
    text += "ManagedDomain ok.example.org www.ok.example.org\n"
    text += "<ManagedDomain shop.example.org>\n  ManagedChallenges tls-alpn-01\n" \
            "  ManagedKeys P-384 RSA-2048\n</ManagedDomain>\n"
    text += httpd.vhost("ok.example.org", tls=True)
    rc, out = check(httpd, text)
    assert rc == 0, out
    assert "Syntax OK" in out


@pytest.mark.parametrize("line,directive,value", [
    ('ManagedDomain "exa mple.org"', "ManagedDomain", "exa mple.org"),
    ("ManagedDomain ok.example.org bad_name.example.org", "ManagedDomain", "bad_name.example.org"),
    ("ManagedDomain -x.example.org", "ManagedDomain", "-x.example.org"),
    ("ManagedKeys P-256 DSA-1024", "ManagedKeys", "DSA-1024"),
    ("ManagedChallenges http-01 carrier-pigeon-01", "ManagedChallenges", "carrier-pigeon-01"),
    ("ManagedRetryDelay soon", "ManagedRetryDelay", "soon"),
    ("ManagedRenewWindow 150%", "ManagedRenewWindow", "150%"),
    ("ManagedPortMap 80:99999", "ManagedPortMap", "99999"),
    ("ManagedPortMap 8080:80", "ManagedPortMap", "8080"),
    ("ManagedCA http://insecure.example/dir", "ManagedCA", "http://insecure.example/dir"),
    ("ManagedContact not-an-email", "ManagedContact", "not-an-email"),
    ("ManagedAgreeTOS maybe", "ManagedAgreeTOS", "ManagedAgreeTOS"),
    ("ManagedParallelRenewals 0", "ManagedParallelRenewals", "0"),
    ("ManagedPreflight sometimes/often", "ManagedPreflight", "sometimes/often"),
    ("ManagedPreflight 192.0.2.7 80:http", "ManagedPreflight", "80:http"),
    ("ManagedPreflight 192.0.2.7 22:2222", "ManagedPreflight", "22:2222"),
])
def test_bad_values_are_rejected_with_line(httpd, line, directive, value):
    text = line + "\n"
    assert_rejected(httpd, text, directive, value, line)


def test_duplicate_name_across_domains(httpd):
    text = "ManagedDomain a.example.org www.example.org\n" \
           "ManagedDomain b.example.org WWW.example.org\n"
    rc, out = check(httpd, text)
    assert rc != 0
    assert "www.example.org" in out.lower() and "a.example.org" in out
    assert "line %d" % httpd.config_line_of("ManagedDomain b.example.org") in out


def test_directive_in_virtualhost_is_rejected(httpd):
    text = httpd.vhost("v.example.org", tls=True, extra="ManagedDomain v.example.org")
    rc, out = check(httpd, text)
    assert rc != 0
    assert "ManagedDomain is not allowed inside <VirtualHost>" in out
    assert "line %d" % httpd.config_line_of("ManagedDomain v.example.org") in out


def test_server_wide_directive_inside_section_is_rejected(httpd):
    text = "<ManagedDomain s.example.org>\n  ManagedStoreDir /tmp/x\n</ManagedDomain>\n"
    rc, out = check(httpd, text)
    assert rc != 0
    assert "ManagedStoreDir is a server-wide setting" in out
    assert "line %d" % httpd.config_line_of("ManagedStoreDir /tmp/x") in out


def test_wildcard_is_accepted_by_the_syntax_check(httpd):
    # whether dns-01 can work is decided at start (see test_module.py)
    rc, out = check(httpd, "ManagedDomain example.org *.example.org\n")
    assert rc == 0, out


def test_unknown_challenge_type_names_the_known_ones(httpd):
    rc, out = check(httpd, "ManagedChallenges dns-02\n")
    assert rc != 0
    assert "http-01, tls-alpn-01, dns-01" in out


def test_dns_hook_must_be_executable(httpd):
    plain = os.path.join(httpd.root, "not-executable.sh")
    with open(plain, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(plain, 0o644)
    line = "ManagedDNSHook %s" % plain
    assert_rejected(httpd, line + "\n", "ManagedDNSHook", plain, line)


def test_missing_ca_file(httpd):
    line = "ManagedCACertificateFile /nonexistent/root.pem"
    assert_rejected(httpd, line + "\n", "ManagedCACertificateFile", "/nonexistent/root.pem", line)
