# Defects found by trying the module as a hostile operator or CA would: a
# tls-alpn-01 connection that carries HTTP, stale temporary files, config
# that passed `apache2 -t` but should not, and errno prefixes on CA problems.
import os
import socket
import time

import pytest

from harness import util


def conf(httpd, ca, name, extra=""):
    return (httpd.acme_config(ca) + extra + "ManagedDomain %s\n" % name
            + httpd.vhost(name, tls=True))


def test_acme_tls_connection_carries_no_http(httpd, pebble):
    name = "alpn-close.test"
    httpd.write_config(conf(httpd, pebble, name, "ManagedChallenges tls-alpn-01\n"))
    httpd.start()
    with httpd._tls_socket(name, None, alpn=["acme-tls/1"]) as s:
        assert s.selected_alpn_protocol() == "acme-tls/1"
        s.settimeout(5)
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % name.encode())
            data = s.recv(4096)
        except (ConnectionError, OSError):
            data = b""
    assert data == b"", "the server answered on an acme-tls/1 connection: %r" % data[:80]
    # ordinary connections still get HTTP
    assert httpd.https_get("/", name).status == 503


def test_stale_temporary_files_are_removed_at_start(httpd, pebble):
    name = "tmp-sweep.test"
    httpd.write_config(conf(httpd, pebble, name))
    httpd.start()
    httpd.stop()
    jobs = os.path.join(httpd.store_dir, "jobs")
    stale = os.path.join(jobs, ".tmp.deadbeef01234567")
    fresh_dir = os.path.join(httpd.store_dir, "accounts")
    with open(stale, "w") as f:
        f.write("left by a crash")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    young = os.path.join(fresh_dir, ".tmp.cafe000000000000")
    open(young, "w").close()   # a write under way right now: kept
    httpd.start()
    assert not os.path.exists(stale)
    assert os.path.exists(young)
    os.unlink(young)


@pytest.mark.parametrize("extra,expect", [
    ("<ManagedDomain bad.test>\n    ServerName other.test\n</ManagedDomain>\n",
     "ServerName"),
    ("ManagedCheckInterval 1\n", "unit"),
    ('ManagedStoreDir "/proc/mod_acme-store"\n', "ManagedStoreDir"),
])
def test_config_that_cannot_work_fails_the_syntax_check(httpd, pebble, extra, expect):
    httpd.write_config(httpd.acme_config(pebble).replace(
        'ManagedStoreDir "%s"' % httpd.store_dir, "") + extra
        + "ManagedDomain ok.test\n" + httpd.vhost("ok.test", tls=True))
    rc, out = httpd.check_config()
    assert rc != 0, out
    assert expect in out, out


def test_ca_problem_lines_carry_the_problem_not_an_errno(httpd, acme_proxy):
    name = "problem-line.test"
    acme_proxy.inject(endpoint="newOrder", status=400, count=None,
                      problem={"type": "urn:ietf:params:acme:error:rejectedIdentifier",
                               "detail": "no such name"})
    httpd.write_config(conf(httpd, acme_proxy, name))
    httpd.expect_errors(r"ACME0322: problem-line\.test")
    httpd.start()
    httpd.wait_for(lambda: "ACME0322" in httpd.error_log(), 30, "the error line")
    line = [l for l in httpd.error_log().splitlines() if "ACME0322" in l][0]
    assert "rejectedIdentifier" in line
    assert "(20014)" not in line and "Internal error" not in line, line


def test_empty_temporary_certificate_is_made_again(httpd, pebble):
    # temporary certificates are written without fsync: after a power loss
    # one may be empty, and mod_ssl would refuse to start with it
    name = "empty-fallback.test"
    httpd.write_config(conf(httpd, pebble, name, "ManagedCA https://127.0.0.1:9/dir\n"))
    shared = os.path.join(httpd.store_dir, "domains", "_fallback")
    os.makedirs(shared)
    cert = os.path.join(shared, name + ".cert.pem")
    open(cert, "w").close()
    open(os.path.join(shared, "fallback.key.pem"), "w").close()
    httpd.expect_errors(r"ACME0322: empty-fallback\.test")
    httpd.start()
    assert httpd.https_get("/", name).status == 503
    assert os.path.getsize(cert) > 0
    assert os.path.getsize(os.path.join(shared, "fallback.key.pem")) > 0
    assert os.stat(os.path.join(shared, "fallback.key.pem")).st_mode & 0o777 == 0o600
