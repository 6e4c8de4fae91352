# Integration tests of the ACME engine (mod_acme/core/acme_acme.c, acme_order.c,
# acme_http_curl.c) through test/tools/acmeclient against a real pebble.
import http.server
import ipaddress
import json
import os
import shlex
import socketserver
import ssl
import subprocess
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from harness import util
from harness.pki import cert_issuer_cn, cert_serial_hex, load_pem_certs

EAB_KID = "kid-1"
EAB_HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="session")
def acmeclient(build_dir):
    path = os.path.join(build_dir, "test", "tools", "acmeclient")
    if not os.access(path, os.X_OK):
        pytest.fail("%s not built (run make in the build directory)" % path)
    return path


class Run:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.values = {}
        for line in proc.stdout.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                self.values[k] = v

    def __repr__(self):
        return "rc=%d\nstdout:\n%s\nstderr:\n%s" % (self.rc, self.stdout, self.stderr[-4000:])


class Client:
    """Runs acmeclient against one pebble with files under one directory."""

    def __init__(self, binary, pebble, workdir):
        self.binary = binary
        self.pebble = pebble
        self.dir = workdir
        self.challenge_dir = os.path.join(workdir, "challenges")
        os.makedirs(self.challenge_dir, exist_ok=True)
        self.account_key = os.path.join(workdir, "account.key")

    def run(self, *args, account_key=None, ca_file=True, dir_url=None, timeout=120):
        # e.g. ACMECLIENT_WRAPPER="valgrind --error-exitcode=9 -q"
        cmd = shlex.split(os.environ.get("ACMECLIENT_WRAPPER", ""))
        cmd += [self.binary, "--dir", dir_url or self.pebble.dir_url,
               "--account-key", account_key or self.account_key]
        if ca_file:
            cmd += ["--ca-file", self.pebble.ca_file]
        cmd += list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return Run(proc)

    def issue(self, names, challenge="http-01", extra=(), **kw):
        tag = names.replace(",", "_").replace("*", "star")
        cert, key = os.path.join(self.dir, tag + ".crt"), os.path.join(self.dir, tag + ".key")
        r = self.run("--names", names, "--challenge", challenge,
                     "--challenge-dir", self.challenge_dir,
                     "--cert-out", cert, "--key-out", key, *extra, **kw)
        r.cert_file, r.key_file = cert, key
        return r


def split_chain(path):
    with open(path) as f:
        return load_pem_certs(f.read())


def verify_chain(cert_file, roots_pem, workdir):
    """openssl verify of the leaf with the rest of the file as untrusted."""
    certs = split_chain(cert_file)
    assert len(certs) >= 2, "chain holds only %d certificate(s)" % len(certs)
    leaf = os.path.join(workdir, "leaf.pem")
    inter = os.path.join(workdir, "untrusted.pem")
    roots = os.path.join(workdir, "roots.pem")
    with open(leaf, "wb") as f:
        f.write(certs[0].public_bytes(Encoding.PEM))
    with open(inter, "wb") as f:
        for c in certs[1:]:
            f.write(c.public_bytes(Encoding.PEM))
    with open(roots, "w") as f:
        f.write(roots_pem)
    proc = subprocess.run(["openssl", "verify", "-CAfile", roots, "-untrusted", inter, leaf],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return certs


def sans(cert):
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (sorted(ext.get_values_for_type(x509.DNSName)),
            sorted(str(ip) for ip in ext.get_values_for_type(x509.IPAddress)))


# ------------------------------------------------------------------ challenge servers
class _ChallengeHandler(http.server.BaseHTTPRequestHandler):
    prefix = "/.well-known/acme-challenge/"

    def do_GET(self):  # noqa: N802 - http.server API
        token = self.path[len(self.prefix):] if self.path.startswith(self.prefix) else ""
        path = os.path.join(self.server.challenge_dir, token)
        if not token or "/" in token or not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        self.server.requests.append(self.path)


class _HTTPChallengeServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _sni_to_name(sni):
    """RFC 8738: tls-alpn-01 for an IP uses the reverse-DNS name as SNI."""
    if sni and sni.endswith((".in-addr.arpa", ".ip6.arpa")):
        try:
            return str(ipaddress.ip_address(".".join(reversed(sni.split(".")[:-2]))))
        except ValueError:
            return sni
    return sni


class _ALPNHandler(socketserver.BaseRequestHandler):
    def handle(self):
        srv = self.server
        try:
            with srv.base_ctx.wrap_socket(self.request, server_side=True) as tls:
                srv.handshakes.append(tls.selected_alpn_protocol())
        except (ssl.SSLError, OSError) as exc:
            srv.errors.append(repr(exc))


class _ALPNServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, challenge_dir):
        super().__init__(addr, _ALPNHandler)
        self.challenge_dir = challenge_dir
        self.handshakes, self.errors = [], []
        self.base_ctx = self._context(None)
        self.base_ctx.sni_callback = self._on_sni

    def _context(self, name):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.set_alpn_protocols(["acme-tls/1"])
        if name:
            ctx.load_cert_chain(os.path.join(self.challenge_dir, name + ".crt"),
                                os.path.join(self.challenge_dir, name + ".key"))
        return ctx

    def _on_sni(self, sslobj, sni, ctx):
        name = _sni_to_name(sni)
        if not name or not os.path.isfile(os.path.join(self.challenge_dir, name + ".crt")):
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sslobj.context = self._context(name)
        return None


class ChallengeServers:
    """http-01 and tls-alpn-01 responders on pebble's validation ports."""

    def __init__(self, challenge_dir, http_port, tls_port):
        self.http = _HTTPChallengeServer(("127.0.0.1", http_port), _ChallengeHandler)
        self.http.challenge_dir = challenge_dir
        self.http.requests = []
        self.alpn = _ALPNServer(("127.0.0.1", tls_port), challenge_dir)
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True)
                        for s in (self.http, self.alpn)]
        for t in self.threads:
            t.start()

    def close(self):
        for s in (self.http, self.alpn):
            s.shutdown()
            s.server_close()


@pytest.fixture
def client(acmeclient, pebble, test_dir):
    c = Client(acmeclient, pebble, test_dir)
    servers = ChallengeServers(c.challenge_dir, pebble.http_port, pebble.tls_port)
    c.servers = servers
    try:
        yield c
    finally:
        servers.close()


def client_for(acmeclient, other_pebble, base_client, sub):
    d = os.path.join(base_client.dir, sub)
    os.makedirs(d, exist_ok=True)
    c = Client(acmeclient, other_pebble, d)
    c.challenge_dir = base_client.challenge_dir  # served by base_client's servers
    return c


# ------------------------------------------------------------------ issuance
def test_http01_issuance_chain_verifies_against_pebble_root(client, pebble, test_dir):
    r = client.issue("web.engine.test")
    assert r.rc == 0, r
    assert r.values["account"].startswith("https://localhost:%d/" % pebble.port)
    assert r.values["order"].startswith("https://localhost:%d/" % pebble.port)
    certs = verify_chain(r.cert_file, pebble.roots_pem(), test_dir)
    assert sans(certs[0]) == (["web.engine.test"], [])
    assert r.values["serial"].lower().lstrip("0") == cert_serial_hex(certs[0])
    assert any("/.well-known/acme-challenge/" in p for p in client.servers.http.requests)
    # the challenge file was withdrawn after validation
    assert os.listdir(client.challenge_dir) == []
    # the key written next to it belongs to the certificate
    with open(r.key_file, "rb") as f:
        key = load_pem_private_key(f.read(), None)
    assert key.public_key().public_numbers() == certs[0].public_key().public_numbers()
    assert oct(os.stat(r.key_file).st_mode & 0o777) == oct(0o600)


def test_tls_alpn01_issuance(client, pebble, test_dir):
    r = client.issue("alpn.engine.test", challenge="tls-alpn-01")
    assert r.rc == 0, r
    certs = verify_chain(r.cert_file, pebble.roots_pem(), test_dir)
    assert sans(certs[0]) == (["alpn.engine.test"], [])
    # the handshake is noted once it is complete, which pebble need not wait for
    util.wait_for(lambda: "acme-tls/1" in client.servers.alpn.handshakes, 5,
                  "the acme-tls/1 handshake")
    assert client.servers.http.requests == []


def test_several_names_in_one_certificate(client, pebble, test_dir):
    names = ["one.engine.test", "two.engine.test", "three.engine.test"]
    # with an RSA certificate key, so RSA CSRs meet a real CA too
    r = client.issue(",".join(names), extra=("--key-type", "RSA-2048"))
    assert r.rc == 0, r
    certs = verify_chain(r.cert_file, pebble.roots_pem(), test_dir)
    assert sans(certs[0]) == (sorted(names), [])
    assert certs[0].public_key().key_size == 2048


def test_ip_identifier_rfc8738(client, pebble, test_dir):
    r = client.issue("127.0.0.1")
    assert r.rc == 0, r
    certs = verify_chain(r.cert_file, pebble.roots_pem(), test_dir)
    assert sans(certs[0]) == ([], ["127.0.0.1"])


def test_wildcard_needs_dns01_and_works_with_it(client, pebble, pebble_dns, test_dir):
    # http-01 only: refused locally with a clear reason, before any validation
    r = client.issue("*.wild.engine.test", challenge="http-01")
    assert r.rc == 1
    assert "wildcards need dns-01" in r.stderr, r
    r = client.issue("*.wild.engine.test", challenge="dns-01",
                     extra=("--challtestsrv", pebble_dns.mgmt_url))
    assert r.rc == 0, r
    certs = verify_chain(r.cert_file, pebble.roots_pem(), test_dir)
    assert sans(certs[0]) == (["*.wild.engine.test"], [])


def test_publish_failure_stops_the_order(client):
    # the publisher cannot write into a directory that does not exist
    r = client.run("--names", "fail.engine.test", "--challenge", "tls-alpn-01",
                   "--challenge-dir", os.path.join(client.dir, "missing"))
    assert r.rc == 1
    assert "publishing the tls-alpn-01 challenge for fail.engine.test failed" in r.stderr, r


def test_validation_failure_names_problem_type(client, pebble):
    # the token goes to a directory the challenge server does not serve:
    # pebble gets a 404 and the authorization fails
    elsewhere = os.path.join(client.dir, "elsewhere")
    os.makedirs(elsewhere)
    r = client.run("--names", "nope.engine.test", "--challenge", "http-01",
                   "--challenge-dir", elsewhere)
    assert r.rc == 1
    assert "http-01 validation of nope.engine.test failed" in r.stderr, r
    assert "unauthorized" in r.stderr or "connection" in r.stderr, r


def test_resume_pending_order_then_valid_order(client, pebble, test_dir):
    # the first run creates the order but cannot publish: the order stays pending
    r = client.run("--names", "resume.engine.test", "--challenge-dir",
                   os.path.join(client.dir, "missing"))
    assert r.rc == 1
    order = r.values["order"]
    mark = pebble.log_mark()
    # the second run continues that order instead of creating another one
    r = client.issue("resume.engine.test", extra=("--order-url", order))
    assert r.rc == 0, r
    assert r.values["order"] == order
    assert pebble.count_orders(since=mark) == 0
    serial = r.values["serial"]
    verify_chain(r.cert_file, pebble.roots_pem(), test_dir)
    # a valid order only needs the download: no validation, same certificate
    validations = len(client.servers.http.requests)
    assert validations >= 1
    r = client.issue("resume.engine.test", extra=("--order-url", order))
    assert r.rc == 0, r
    assert r.values["serial"] == serial
    assert len(client.servers.http.requests) == validations


# ------------------------------------------------------------------ robustness
@pytest.mark.time_limit(400)
def test_nonce_reject_50_percent_still_issues(acmeclient, client, pebble_factory, test_dir):
    flaky = pebble_factory(env={"PEBBLE_WFE_NONCEREJECT": "50"})
    c = client_for(acmeclient, flaky, client, "flaky")
    # each issuance sends about 7 POSTs: one in 128 sees no rejection at
    # all, so issue again until the retries really happened (at most 5)
    for i in range(5):
        r = c.issue("nonce%d.engine.test" % i, extra=("--nonce-retries", "30", "-v"))
        assert r.rc == 0, r
        verify_chain(r.cert_file, flaky.roots_pem(), test_dir)
        if "badNonce" in r.stderr:
            break
    assert "badNonce" in r.stderr, r


def test_nonce_retries_are_bounded(acmeclient, client, pebble_factory):
    hostile = pebble_factory(env={"PEBBLE_WFE_NONCEREJECT": "100"})
    c = client_for(acmeclient, hostile, client, "hostile")
    r = c.run("--nonce-retries", "3")
    assert r.rc == 1
    assert "badNonce" in r.stderr, r


def test_tls_verification_is_always_on(client):
    # without the CA file the system trust store does not know pebble's listener
    r = client.run(ca_file=False)
    assert r.rc == 1
    assert "acme:network" in r.stderr and "account" not in r.values, r
    assert "certificate" in r.stderr.lower(), r


# ------------------------------------------------------------------ EAB
def test_eab_required_refused_without_and_accepted_with(acmeclient, client, pebble_factory):
    eab = pebble_factory(config={"externalAccountBindingRequired": True,
                                 "externalAccountMACKeys": {EAB_KID: EAB_HMAC}})
    c = client_for(acmeclient, eab, client, "eab")
    r = c.run()
    assert r.rc == 1
    assert "externalAccountRequired" in r.stderr, r
    # a wrong HMAC is refused by the CA
    r = c.run("--eab-kid", EAB_KID, "--eab-hmac", EAB_HMAC[::-1])
    assert r.rc == 1, r
    r = c.run("--eab-kid", EAB_KID, "--eab-hmac", EAB_HMAC, "--contact", "mailto:eab@example.org")
    assert r.rc == 0, r
    assert r.values["account"].startswith(eab.dir_url.rsplit("/", 1)[0])


# ------------------------------------------------------------------ accounts
def test_key_rollover(client, test_dir):
    r = client.run("--contact", "mailto:roll@example.org")
    assert r.rc == 0, r
    account = r.values["account"]
    new_key = os.path.join(test_dir, "new-account.key")
    r = client.run("--existing-only", "--rollover", new_key)
    assert r.rc == 0, r
    assert r.values["account"] == account and r.values["rollover"] == "ok"
    # the new key finds the same account and can order with it
    r = client.run("--existing-only", account_key=new_key)
    assert r.rc == 0, r
    assert r.values["account"] == account
    r = client.issue("rolled.engine.test", account_key=new_key, extra=("--existing-only",))
    assert r.rc == 0, r
    # the old key no longer belongs to any account
    r = client.run("--existing-only")
    assert r.rc == 1
    assert "accountDoesNotExist" in r.stderr, r


def test_contact_update(client):
    r = client.run("--contact", "mailto:old@example.org")
    assert r.rc == 0, r
    r = client.run("--existing-only", "--update-contact", "mailto:new@example.org",
                   "--update-contact", "mailto:second@example.org")
    assert r.rc == 0, r
    assert r.values["contact"] == "mailto:new@example.org,mailto:second@example.org"


def test_account_deactivation(client):
    r = client.run("--deactivate")
    assert r.rc == 0, r
    assert r.values["deactivated"] == r.values["account"]
    r = client.issue("deact.engine.test")
    assert r.rc == 1
    assert "unauthorized" in r.stderr or "deactivated" in r.stderr, r


# ------------------------------------------------------------------ revocation
def test_revocation_by_account_and_by_certificate_key(client, pebble):
    r = client.issue("revoke1.engine.test")
    assert r.rc == 0, r
    serial = cert_serial_hex(split_chain(r.cert_file)[0])
    assert pebble.cert_status(serial)["Status"] == "Valid"
    rv = client.run("--existing-only", "--revoke", r.cert_file, "--reason", "4")
    assert rv.rc == 0, rv
    assert pebble.cert_status(serial)["Status"] == "Revoked"
    # revoking again is an error the CA explains
    rv = client.run("--existing-only", "--revoke", r.cert_file)
    assert rv.rc == 1
    assert "alreadyRevoked" in rv.stderr, rv

    r = client.issue("revoke2.engine.test")
    assert r.rc == 0, r
    serial2 = cert_serial_hex(split_chain(r.cert_file)[0])
    # by the certificate's own key, with a fresh account key that never ordered it
    other = os.path.join(client.dir, "other-account.key")
    rv = client.run("--revoke", r.cert_file, "--by-cert-key", r.key_file, account_key=other)
    assert rv.rc == 0, rv
    assert pebble.cert_status(serial2)["Status"] == "Revoked"


# ------------------------------------------------------------------ chains
def test_preferred_alternate_chain(acmeclient, client, pebble_factory, test_dir):
    alt = pebble_factory(env={"PEBBLE_ALTERNATE_ROOTS": "1"})
    c = client_for(acmeclient, alt, client, "alt")
    roots = [load_pem_certs(alt._mgmt_text("/roots/%d" % i))[0] for i in (0, 1)]
    wanted = roots[1].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    r = c.issue("alt.engine.test", extra=("--preferred-issuer", wanted))
    assert r.rc == 0, r
    certs = split_chain(r.cert_file)
    assert cert_issuer_cn(certs[-1]) == wanted
    verify_chain(r.cert_file, alt._mgmt_text("/roots/1"), test_dir)
    # default: the first root's chain
    r = c.issue("alt2.engine.test")
    assert r.rc == 0, r
    assert cert_issuer_cn(split_chain(r.cert_file)[-1]) != wanted


# ------------------------------------------------------------------ bad servers
class _BadHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        mode = self.path.strip("/")
        if mode == "huge":
            body = b'{"newNonce": "' + b"x" * (2 * 1024 * 1024) + b'"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif mode == "huge-chunked":
            # no Content-Length: the cap must hold while streaming
            self.protocol_version = "HTTP/1.0"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b" " * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif mode == "html":
            body = b"<html><body>502 Bad Gateway</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif mode == "truncated":
            body = b'{"newNonce": "https://x/nonce", "newAcc'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif mode == "wrongtype":
            body = json.dumps({"newNonce": 42, "newAccount": "https://x/a",
                               "newOrder": "https://x/o"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif mode == "loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif mode == "ratelimited":
            body = json.dumps({"type": "urn:ietf:params:acme:error:rateLimited",
                               "detail": "slow down"}).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Retry-After", "120")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, fmt, *args):
        pass


class _QuietServer(_HTTPChallengeServer):
    def handle_error(self, request, client_address):
        pass  # the client aborting an oversized body is the point of the test


@pytest.fixture
def bad_server():
    srv = _QuietServer(("127.0.0.1", 0), _BadHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield "http://127.0.0.1:%d" % srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("mode,expect", [
    ("huge", "response body exceeds the limit of 1048576 bytes"),
    ("huge-chunked", "response body exceeds the limit of 1048576 bytes"),
    ("html", "directory: response is not JSON (text/html)"),
    ("truncated", "directory: response is not valid JSON"),
    ("wrongtype", "directory: member 'newNonce' is not a string"),
    ("loop", "more than 5 redirects"),
    ("ratelimited", "directory: slow down (rateLimited, HTTP 429)"),
    ("missing", "directory: HTTP 404"),
])
def test_bad_directory_responses_fail_clearly(client, bad_server, mode, expect):
    r = client.run(dir_url="%s/%s" % (bad_server, mode), ca_file=False, timeout=60)
    assert r.rc == 1
    assert expect in r.stderr, r
