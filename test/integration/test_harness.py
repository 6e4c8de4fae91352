# Tests of the integration harness itself (pebble, mock DNS, apache2 control,
# error-log policing) and the first checks of mod_acme's config handling.
import os
import re
import socket
import ssl

import pytest
import requests
from cryptography import x509

from harness import util
from harness.dnsquery import TYPE_A, TYPE_TXT, query
from harness.pki import cert_issuer_cn, load_pem_certs


# ------------------------------------------------------------------ pebble
def test_pebble_directory_verifies_with_generated_root(pebble):
    r = requests.get(pebble.dir_url, verify=pebble.ca_file, timeout=5)
    assert r.status_code == 200
    directory = r.json()
    for key in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"):
        assert directory[key].startswith("https://localhost:%d/" % pebble.port)


def test_pebble_directory_rejected_by_default_trust_store(pebble):
    ctx = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", pebble.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="localhost")
    # requests with its default bundle must refuse it too
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(pebble.dir_url, timeout=5)


def test_pebble_management_serves_issuing_root_and_intermediate(pebble):
    roots = load_pem_certs(pebble.roots_pem())
    inters = load_pem_certs(pebble.intermediates_pem())
    assert len(roots) == 1 and len(inters) == 1
    root, inter = roots[0], inters[0]
    assert root.issuer == root.subject
    assert inter.issuer == root.subject
    assert cert_issuer_cn(inter).startswith("Pebble Root CA")
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # a serial pebble never issued is unknown to the status endpoint
    with pytest.raises(requests.HTTPError):
        pebble.cert_status("123456789abcdef")


def test_pebble_factory_applies_env_and_config(pebble, pebble_factory):
    eab = pebble_factory(
        env={"PEBBLE_WFE_NONCEREJECT": "0"},
        config={"externalAccountBindingRequired": True,
                "externalAccountMACKeys": {
                    "kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"}})
    assert eab.port != pebble.port and eab.mgmt_port != pebble.mgmt_port
    assert (eab.http_port, eab.tls_port) == (pebble.http_port, pebble.tls_port)
    assert eab.directory()["meta"]["externalAccountRequired"] is True
    assert pebble.directory()["meta"]["externalAccountRequired"] is False
    assert "Configured to reject 0% of good nonces" in eab.log_text()
    assert "Disabling random VA sleeps" in eab.log_text()
    # every pebble start makes a fresh issuing root
    assert eab.roots_pem() != pebble.roots_pem()
    assert eab.count_orders() == 0 and eab.issued_serials() == []


def test_pebble_factory_instance_is_stopped_after_use(pebble_factory):
    p = pebble_factory()
    assert p.running()
    pebble_factory.stop_all()
    assert not p.running()
    assert not util.port_accepts(p.port)


# ------------------------------------------------------------------ mock DNS
def test_mock_dns_defaults_and_overrides(pebble_dns):
    name = "dns-check.example.org"
    assert query(pebble_dns.dns_addr, name, TYPE_A) == ["127.0.0.1"]
    pebble_dns.add_a(name, "127.0.0.9")
    try:
        assert query(pebble_dns.dns_addr, name, TYPE_A) == ["127.0.0.9"]
    finally:
        pebble_dns.clear_a(name)
    assert query(pebble_dns.dns_addr, name, TYPE_A) == ["127.0.0.1"]

    txt = "_acme-challenge." + name
    assert query(pebble_dns.dns_addr, txt, TYPE_TXT) == []
    pebble_dns.set_txt(txt, "digest-value")
    assert query(pebble_dns.dns_addr, txt, TYPE_TXT) == ["digest-value"]
    pebble_dns.clear_txt(txt)
    assert query(pebble_dns.dns_addr, txt, TYPE_TXT) == []


# ------------------------------------------------------------------ httpd (no module)
def _proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise ValueError("no Uid for %d" % pid)


def test_httpd_plain_lifecycle_without_module(httpd):
    import pwd
    httpd.write_config("", with_module=False)
    rc, out = httpd.check_config()
    assert rc == 0, out
    httpd.start()
    parent = httpd.pid()
    assert _proc_uid(parent) == 0
    children = httpd.wait_for(lambda: util.child_pids(parent), 10, "httpd children")
    www = pwd.getpwnam("www-data").pw_uid
    assert all(_proc_uid(c) == www for c in children)

    r = httpd.http_get("/index.html", "localhost")
    assert r.status == 200 and "mod_acme test server" in r.text

    before = httpd.resuming_count()
    httpd.graceful()
    assert httpd.resuming_count() == before + 1
    assert httpd.pid() == parent
    assert httpd.http_get("/index.html", "localhost").status == 200

    httpd.stop()
    assert not util.pid_alive(parent)
    assert not util.port_accepts(httpd.http_port)


def test_httpd_error_log_check_sees_errors(httpd):
    httpd.write_config(
        "<Location /denied>\n    Require all denied\n</Location>\n", with_module=False)
    httpd.start()
    assert httpd.http_get("/denied", "localhost").status == 403
    # mod_authz_core logs the denial at [error]: the teardown check must see it
    httpd.wait_for(lambda: any("AH01630" in l for l in httpd.unexpected_errors()),
                   5, "AH01630 in the error log")
    httpd.expect_errors(r"AH01630: client denied by server configuration")
    assert httpd.unexpected_errors() == []


def test_httpd_serves_tls_with_sni(httpd, listener_pki):
    # Any certificate will do here: the harness's own listener cert.
    httpd.write_config(
        "<VirtualHost 127.0.0.1:%d>\n"
        "    ServerName localhost\n"
        "    SSLEngine on\n"
        "    SSLCertificateFile %s\n"
        "    SSLCertificateKeyFile %s\n"
        "</VirtualHost>\n" % (httpd.tls_port, listener_pki.cert_file, listener_pki.key_file),
        with_module=False)
    httpd.start()
    cert = httpd.get_cert("localhost")
    assert cert.subject.rfc4514_string().endswith("CN=localhost") or \
        "CN=localhost" in cert.subject.rfc4514_string()
    r = httpd.https_get("/index.html", "localhost")
    assert r.status == 200 and "mod_acme test server" in r.text


# ------------------------------------------------------------------ mod_acme
def _acme_base(pebble):
    return ("ManagedCA %s\n"
            "ManagedCACertificateFile %s\n" % (pebble.dir_url, pebble.ca_file))


def test_httpd_starts_with_module_and_managed_domain(httpd, pebble):
    httpd.write_config(
        _acme_base(pebble)
        + "ManagedDomain test1.example.org\n"
        + "<VirtualHost 127.0.0.1:%d>\n"
          "    ServerName test1.example.org\n"
          "</VirtualHost>\n" % httpd.http_port)
    rc, out = httpd.check_config()
    assert rc == 0, out
    httpd.start()
    r = httpd.http_get("/index.html", "test1.example.org")
    assert r.status == 200 and "mod_acme test server" in r.text
    httpd.stop()


def test_config_rejects_managed_domain_with_space(httpd, pebble):
    httpd.write_config(_acme_base(pebble) + 'ManagedDomain "exa mple.org"\n')
    line = httpd.config_line_of('ManagedDomain "exa mple.org"')
    rc, out = httpd.check_config()
    assert rc != 0, out
    assert "ManagedDomain" in out
    assert "exa mple.org" in out
    assert re.search(r"line %d of %s" % (line, re.escape(httpd.conf_file)), out), out
    assert "Syntax OK" not in out
