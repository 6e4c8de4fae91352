# Taking over a live HTTPS site (issue 26, item 1): a vhost that serves a
# certificate from its own SSLCertificateFile keeps serving it when a
# ManagedDomain covers it, until mod_acme has activated its own; never the
# temporary certificate, never a 503.
import datetime
import http.client
import json
import os
import re
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness import util
from harness.pki import cert_issuer_cn, load_pem_certs
from test_status import check_status

ISSUE_TIMEOUT = 120.0
NAME = "site.takeover.test"
ALIAS = "www.site.takeover.test"
OWN_CA = "Bought CA of the takeover test"
STATUS_LOCATION = ("<Location /.acme-status>\n    SetHandler acme-status\n</Location>\n"
                   "<Location /server-status>\n    SetHandler server-status\n</Location>\n")


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_site_cert(directory, names, days=200, ca_cn=OWN_CA):
    """A certificate for names, from a CA of its own (what a site bought or
    got elsewhere), as cert.pem (leaf and CA) and key.pem (0600).
    Returns (cert path, key path, leaf)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(ca_cn)).issuer_name(_name(ca_cn))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=days + 10))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file = os.path.join(directory, "site-cert.pem")
    key_file = os.path.join(directory, "site-key.pem")
    with open(cert_file, "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM)
                + ca.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_file, key_file, leaf


def site_config(httpd, acme, cert_file, key_file, managed=None):
    """The site: the global Managed* lines `acme`, an https vhost with its
    own certificate files, an http vhost (for http-01) and the status;
    `managed` is the ManagedDomain text, or None."""
    text = acme
    own = 'SSLCertificateFile "%s"\nSSLCertificateKeyFile "%s"' % (cert_file, key_file)
    text += managed or ""
    text += httpd.vhost(NAME, tls=True, aliases=[ALIAS], extra=own)
    text += httpd.vhost(NAME, aliases=[ALIAS])
    return text + STATUS_LOCATION


class Poller(threading.Thread):
    """A client of the site: every 50 ms a new connection, a TLS handshake
    and a GET /index.html. Keeps (issuer CN of the leaf, HTTP status, error) per try."""

    def __init__(self, port, host):
        super().__init__(daemon=True)
        self.port = port
        self.host = host
        self.samples = []
        self.done = threading.Event()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def once(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            tls = self.ctx.wrap_socket(raw, server_hostname=self.host)
        except Exception:
            raw.close()
            raise
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.sock = tls
        try:
            issuer = cert_issuer_cn(x509.load_der_x509_certificate(
                tls.getpeercert(binary_form=True)))
            conn.request("GET", "/index.html", headers={"Host": self.host})
            r = conn.getresponse()
            r.read()
            return issuer, r.status, None
        finally:
            conn.close()

    def run(self):
        while not self.done.is_set():
            started = time.monotonic()
            try:
                self.samples.append(self.once())
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                self.samples.append((None, None, repr(exc)))
            self.done.wait(max(0.0, 0.05 - (time.monotonic() - started)))

    def count(self):
        return len(self.samples)

    def last_issuer(self):
        return self.samples[-1][0] if self.samples else None

    def stop(self):
        self.done.set()
        self.join(30)


def status_doc(httpd):
    r = httpd.http_get("/.acme-status", NAME)
    assert r.status == 200, r
    doc = json.loads(r.body)
    check_status(doc)
    return doc


# tls-alpn-01 is answered on the vhost being taken over, which serves its
# own certificate to every other client meanwhile.
@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
def test_takeover_of_a_live_https_site_has_no_outage(httpd, pebble, test_dir, challenge):
    cert_file, key_file, _ = make_site_cert(test_dir, [NAME, ALIAS])
    acme = httpd.acme_config(pebble) + "ManagedChallenges %s\n" % challenge
    httpd.write_config(site_config(httpd, acme, cert_file, key_file))
    httpd.start()
    assert cert_issuer_cn(httpd.get_cert(NAME)) == OWN_CA

    poller = Poller(httpd.tls_port, NAME)
    poller.start()
    try:
        httpd.wait_for(lambda: poller.count() >= 5, 30, "the client's first answers")
        httpd.write_config(site_config(httpd, acme, cert_file, key_file,
                                       managed="ManagedDomain %s %s\n" % (NAME, ALIAS)))
        httpd.graceful()
        assert "ACME1800: %s: the virtual host %s" % (NAME, NAME) in httpd.error_log()

        # the module orders, activates with a restart of its own, and serves it
        def pebble_served():
            issuer = poller.last_issuer()
            return issuer and issuer != OWN_CA and "mod_acme fallback" not in issuer
        httpd.wait_for(pebble_served, ISSUE_TIMEOUT, "the client to get pebble's certificate")
        after = poller.count()
        httpd.wait_for(lambda: poller.count() >= after + 10, 30, "ten more answers")
    finally:
        poller.stop()

    samples = poller.samples
    failed = [s for s in samples if s[2] is not None]
    assert not failed, "failed handshakes or requests: %s" % failed[:5]
    assert all(status == 200 for _, status, _ in samples), \
        sorted({status for _, status, _ in samples})
    issuers = [issuer for issuer, _, _ in samples]
    assert not any("mod_acme fallback" in i for i in issuers), "the temporary certificate"
    # the site's own certificate, then the module's, and no way back
    switch = next(i for i, issuer in enumerate(issuers) if issuer != OWN_CA)
    assert switch > 0 and all(i != OWN_CA for i in issuers[switch:]), issuers
    intermediate = load_pem_certs(pebble.intermediates_pem())[0]
    assert issuers[-1] == intermediate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value

    log = httpd.error_log()
    # the CA validated through the vhost that kept its own certificate
    assert re.search(r"ACME020[24]: %s: answering the challenge for %s"
                     % (challenge, re.escape(NAME)), log), challenge
    assert "ACME1801: %s: the virtual host %s" % (NAME, NAME) in log
    assert "can be removed" in log and "ACME0103" not in log
    doc = status_doc(httpd)
    d = next(x for x in doc["domains"] if x["name"] == NAME)
    assert d["served"] == "managed" and "served-file" not in d and d["has-certificate"]
    # the old file is still watched, and said to be replaced
    w = next(x for x in doc["watched-certificates"] if x["file"] == cert_file)
    assert w["managed-by"] == NAME and not w["served"]


def test_takeover_keeps_the_site_while_the_ca_fails(httpd, pebble, test_dir):
    """Until the module has a certificate, the vhost serves its own, with no
    503, however long issuance fails; the status says what is served."""
    cert_file, key_file, _ = make_site_cert(test_dir, [NAME, ALIAS])
    dead_ca = "https://127.0.0.1:%d/dir" % util.free_port()
    acme = httpd.acme_config(pebble) + "ManagedRetryDelay 1s\n"
    managed = "<ManagedDomain %s %s>\n    ManagedCA %s\n</ManagedDomain>\n" % (NAME, ALIAS,
                                                                             dead_ca)
    httpd.write_config(site_config(httpd, acme, cert_file, key_file, managed=managed))
    httpd.expect_errors(r"ACME\d+: %s: " % NAME.replace(".", r"\."))
    httpd.start()

    def failed_once():
        d = next(x for x in status_doc(httpd)["domains"] if x["name"] == NAME)
        return d if d["errors"] >= 1 else None
    d = httpd.wait_for(failed_once, 60, "a failed attempt at the dead CA")
    assert d["driven"] and not d["has-certificate"]
    assert d["served"] == "vhost-file" and d["served-file"] == cert_file

    for host in (NAME, ALIAS):
        assert cert_issuer_cn(httpd.get_cert(host)) == OWN_CA
        r = httpd.https_get("/index.html", host)
        assert r.status == 200 and b"mod_acme test server" in r.body, r
    assert "ACME0005" not in httpd.error_log()   # no temporary certificate here
    html = httpd.http_get("/server-status", NAME).text
    row = next(r for r in re.findall(r"<tr><td>(.*?)</td></tr>", html) if r.startswith(NAME + "<"))
    assert row.endswith("<td>vhost-file %s" % cert_file), row
