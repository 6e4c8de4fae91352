# Tests of the integration harness itself (pebble, mock DNS, apache2 control,
# error-log policing) and the first checks of mod_acme's config handling.
import os
import re
import socket
import ssl
import time

import pytest
import requests
from cryptography import x509

from harness import util
from harness.acme_client import AcmeClient
from harness.dnsquery import TYPE_A, TYPE_TXT, query
from harness.pki import cert_issuer_cn, cert_sans, cert_serial_hex, load_pem_certs


# ------------------------------------------------------------------ harness basics
def test_time_limit_interrupts_a_hang():
    t0 = time.monotonic()
    with pytest.raises(util.TimeLimitExceeded):
        with util.time_limit(1, "sleeper"):
            time.sleep(5)
    assert time.monotonic() - t0 < 3


def test_wait_for_names_what_timed_out():
    with pytest.raises(util.WaitTimeout, match="the impossible"):
        util.wait_for(lambda: False, 0.2, "the impossible")
    assert util.wait_for(lambda: 42, 1, "a value") == 42


def test_free_ports_are_distinct_and_bindable():
    ports = {util.free_port() for _ in range(20)}
    assert len(ports) == 20
    for port in list(ports)[:3]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


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
    assert query(pebble_dns.dns_addr, name, TYPE_A) == ["127.0.0.9"]
    pebble_dns.clear_a(name)
    assert query(pebble_dns.dns_addr, name, TYPE_A) == ["127.0.0.1"]

    txt = "_acme-challenge." + name
    assert query(pebble_dns.dns_addr, txt, TYPE_TXT) == []
    pebble_dns.set_txt(txt, "digest-value")
    assert query(pebble_dns.dns_addr, txt, TYPE_TXT) == ["digest-value"]
    pebble_dns.clear_txt(txt)
    assert query(pebble_dns.dns_addr, txt, TYPE_TXT) == []


def test_mock_dns_reset_clears_what_a_test_set(dns):
    a, txt = "reset-check.example.org", "_acme-challenge.reset-check.example.org"
    dns.add_a(a, "127.0.0.7")
    dns.set_txt(txt, "v1")
    assert query(dns.dns_addr, a, TYPE_A) == ["127.0.0.7"]
    dns.reset()
    assert query(dns.dns_addr, a, TYPE_A) == ["127.0.0.1"]
    assert query(dns.dns_addr, txt, TYPE_TXT) == []


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
    www = pwd.getpwnam("www-data").pw_uid
    # a child drops root in its child_init, a moment after the fork
    httpd.wait_for(lambda: util.child_pids(parent) and
                   all(_proc_uid(c) == www for c in util.child_pids(parent)),
                   10, "httpd children running as www-data")

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
        httpd.vhost("localhost", tls=True, extra="SSLCertificateFile %s\n"
                    "SSLCertificateKeyFile %s" % (listener_pki.cert_file,
                                                  listener_pki.key_file)),
        with_module=False)
    httpd.start()
    cert, alpn = httpd.tls_handshake("localhost", alpn=["http/1.1"])
    assert cert_sans(cert) == ["localhost"]
    assert cert_issuer_cn(cert) == "mod_acme test listener root"
    assert alpn in (None, "http/1.1")
    r = httpd.https_get("/index.html", "localhost")
    assert r.status == 200 and "mod_acme test server" in r.text
    # the vhost is SNI-selected: the plain http port does not speak TLS
    with pytest.raises(ssl.SSLError):
        httpd.get_cert("localhost", port=httpd.http_port)


# ------------------------------------------------------------------ full chain
def test_pebble_validates_http01_against_test_httpd(pebble, httpd):
    """pebble -> mock DNS -> 127.0.0.1:<http_port> -> test httpd, end to end,
    with the harness's own ACME client and a plain file as the answer."""
    name = "harness-http01.example.org"
    httpd.write_config(httpd.vhost(name), with_module=False)
    httpd.start()
    chall_dir = os.path.join(httpd.docroot, ".well-known", "acme-challenge")
    os.makedirs(chall_dir, mode=0o755)
    os.chmod(os.path.dirname(chall_dir), 0o755)
    tokens = []

    def publish(token, key_auth):
        path = os.path.join(chall_dir, token)
        with open(path, "w") as f:
            f.write(key_auth)
        os.chmod(path, 0o644)
        tokens.append(token)

    mark = pebble.log_mark()
    client = AcmeClient(pebble.dir_url, pebble.ca_file)
    pem, _, order = client.issue_http01([name], publish)

    chain = load_pem_certs(pem)
    assert len(chain) >= 2
    leaf, inter = chain[0], chain[1]
    root = load_pem_certs(pebble.roots_pem())[0]
    assert cert_sans(leaf) == [name]
    assert leaf.issuer == inter.subject and inter.issuer == root.subject
    assert pebble.cert_status(cert_serial_hex(leaf))["Status"] == "Valid"
    assert pebble.count_orders(since=mark) == 1
    assert cert_serial_hex(leaf) in [s.lower().lstrip("0")
                                     for s in pebble.issued_serials(since=mark)]
    # the validation request really reached this httpd, for that Host
    if tokens:  # pebble may reuse an earlier valid authorization
        # httpd logs a request after answering it: pebble may have validated first
        pattern = (r'"GET /\.well-known/acme-challenge/%s HTTP/1\.1" 200 .*"%s:%d"'
                   % (re.escape(tokens[0]), re.escape(name), httpd.http_port))
        util.wait_for(lambda: re.search(pattern, util.read_text(httpd.access_log_file)), 5,
                      "the validation request in the access log")


# ------------------------------------------------------------------ mod_acme
def test_httpd_starts_with_module_and_managed_domain(httpd, pebble):
    httpd.write_config(
        httpd.acme_config(pebble)
        + "ManagedDomain test1.example.org\n"
        + httpd.vhost("test1.example.org"))
    rc, out = httpd.check_config()
    assert rc == 0, out
    httpd.start()
    r = httpd.http_get("/index.html", "test1.example.org")
    assert r.status == 200 and "mod_acme test server" in r.text
    httpd.stop()


def test_config_rejects_managed_domain_with_space(httpd, pebble):
    httpd.write_config(httpd.acme_config(pebble) + 'ManagedDomain "exa mple.org"\n')
    line = httpd.config_line_of('ManagedDomain "exa mple.org"')
    rc, out = httpd.check_config()
    assert rc != 0, out
    assert "ManagedDomain" in out
    assert "exa mple.org" in out
    assert re.search(r"line %d of %s" % (line, re.escape(httpd.conf_file)), out), out
    assert "Syntax OK" not in out


def test_httpd_start_failure_is_reported_quickly(httpd):
    from harness.httpd import StartFailed
    # mod_ssl refuses this in post_config, after the daemon has detached
    httpd.write_config(httpd.vhost("localhost", tls=True), with_module=False)
    t0 = time.monotonic()
    with pytest.raises(StartFailed):
        httpd.start()
    assert time.monotonic() - t0 < 15
    httpd.expect_errors(r"AH02572|AH00016|AH02312|:emerg\]")
    assert not httpd.is_running()


def test_error_log_classifier(test_dir, acme_ports):
    from harness.httpd import Httpd
    h = Httpd(os.path.join(test_dir, "httpd"), acme_ports["http"], acme_ports["tls"])
    lines = [
        "[Mon Nov 23 00:19:06.357340 2026] [core:warn] [pid 1:tid 1] AH00111: warn only",
        "[Mon Nov 23 00:19:06.357340 2026] [acme:error] [pid 1:tid 2] ACME0001: bad thing",
        "[Mon Nov 23 00:19:06.357340 2026] [ssl:emerg] [pid 1:tid 1] AH02312: fatal",
        "[Mon Nov 23 00:19:06.357340 2026] [core:notice] [pid 1:tid 1] AH00052: child pid 7 "
        "exit signal Segmentation fault (11)",
        "[Mon Nov 23 00:19:06.357340 2026] [core:notice] [pid 1:tid 1] AH00052: child pid 8 "
        "exit signal Terminated (15)",
        "[Mon Nov 23 00:19:06.357340 2026] [mpm_event:notice] [pid 1:tid 1] AH00489: "
        "configured -- resuming normal operations",
        "continuation line mentioning [error] in text",
    ]
    with open(h.error_log_file, "w") as f:
        f.write("\n".join(lines) + "\n")
    bad = h.error_lines()
    assert bad == [lines[1], lines[2], lines[3]]
    h.expect_errors(r"ACME0001")
    assert h.unexpected_errors() == [lines[2], lines[3]]
    assert h.resuming_count() == 1


def test_error_log_classifier_sees_sanitizer_reports(test_dir, acme_ports):
    # An ASan build of mod_acme.so (build/test.sh) reports on the children's
    # stderr, which is the error log: such a report must fail the test.
    from harness.httpd import Httpd
    h = Httpd(os.path.join(test_dir, "httpd"), acme_ports["http"], acme_ports["tls"])
    lines = [
        "=================================================================",
        "==4242==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x6020 at pc 0x7f",
        "    #0 0x7f in acme_link_parse mod_acme/core/acme_acme.c:676",
        "SUMMARY: AddressSanitizer: heap-buffer-overflow mod_acme/core/acme_acme.c:676",
        "mod_acme/core/acme_renew.c:80:12: runtime error: signed integer overflow",
        "a line that says ERROR: in passing",
    ]
    with open(h.error_log_file, "w") as f:
        f.write("\n".join(lines) + "\n")
    assert h.error_lines() == [lines[1], lines[3], lines[4]]
