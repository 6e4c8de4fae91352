# Tests of the test-only ACME proxy (harness/acmeproxy.py) itself: real
# issuance through it, renewalInfo, profiles, injected faults and a dead CA.
import datetime
import http.server
import json
import os
import socketserver
import subprocess
import threading

import pytest
import requests

from harness import util
from harness.acme_client import AcmeClient
from harness.acmeproxy import ari_cert_id, b64u, decode_jws, parse_ari_cert_id, rfc3339
from harness.pki import cert_sans, load_pem_certs

RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"


# ------------------------------------------------------------------ helpers
class _FileHandler(http.server.BaseHTTPRequestHandler):
    prefix = "/.well-known/acme-challenge/"

    def do_GET(self):  # noqa: N802 - http.server API
        token = self.path[len(self.prefix):] if self.path.startswith(self.prefix) else ""
        body = self.server.answers.get(token)
        if body is None and token and "/" not in token and self.server.directory:
            path = os.path.join(self.server.directory, token)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    body = f.read()
        if body is None:
            self.send_error(404)
            return
        if isinstance(body, str):
            body = body.encode("ascii")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class _Http01Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def http01(acme_ports):
    """http-01 answers on pebble's validation port: from .answers (token ->
    key authorization) or files in .directory."""
    srv = _Http01Server(("127.0.0.1", acme_ports["http"]), _FileHandler)
    srv.answers, srv.directory = {}, None
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def acmeclient(build_dir):
    path = os.path.join(build_dir, "test", "tools", "acmeclient")
    if not os.access(path, os.X_OK):
        pytest.fail("%s not built (run make in the build directory)" % path)
    return path


def run_acmeclient(binary, proxy, workdir, *args):
    cmd = [binary, "--dir", proxy.dir_url, "--ca-file", proxy.ca_file,
           "--account-key", os.path.join(workdir, "account.key")] + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return proc, values


def session(proxy):
    s = util.http_session()
    s.verify = proxy.ca_file
    return s


def client_through(proxy):
    c = AcmeClient(proxy.dir_url, proxy.ca_file)
    c.register()
    return c


def new_order_raw(client, payload):
    """POST newOrder without the client's error handling: the raw response."""
    url = client.dir["newOrder"]
    r = client.session.post(url, data=json.dumps(client._jws(url, payload)),
                            headers={"Content-Type": "application/jose+json"}, timeout=10)
    client.nonce = r.headers.get("Replay-Nonce")
    return r


def order_payload(*names, **extra):
    payload = {"identifiers": [{"type": "dns", "value": n} for n in names]}
    payload.update(extra)
    return payload


# ------------------------------------------------------------------ issuance
def test_engine_issues_through_proxy_with_profile_and_replaces(acme_proxy, pebble, acmeclient,
                                                               http01, test_dir):
    """The crux: mod_acme's engine signs for the proxy's URLs and pebble
    accepts them; profile and replaces reach the proxy and pebble ignores them."""
    acme_proxy.set_profiles({"classic": "the default", "shortlived": "6 days"})
    http01.directory = os.path.join(test_dir, "challenges")
    os.makedirs(http01.directory)
    cert_file = os.path.join(test_dir, "c.pem")
    fake_id = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    proc, values = run_acmeclient(
        acmeclient, acme_proxy, test_dir, "--names", "through.proxy.test",
        "--challenge", "http-01", "--challenge-dir", http01.directory,
        "--cert-out", cert_file, "--key-out", os.path.join(test_dir, "c.key"),
        "--profile", "shortlived", "--replaces", fake_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    # every URL the client used is the proxy's
    assert values["account"].startswith(acme_proxy.base_url + "/")
    assert values["order"].startswith(acme_proxy.base_url + "/")
    with open(cert_file) as f:
        chain = load_pem_certs(f.read())
    assert cert_sans(chain[0]) == ["through.proxy.test"]
    assert values["serial"].lower().lstrip("0") == "%x" % chain[0].serial_number
    # the order went through the proxy and was recorded with both fields
    orders = acme_proxy.orders
    assert len(orders) == 1
    assert orders[0]["profile"] == "shortlived"
    assert orders[0]["replaces"] == fake_id
    assert orders[0]["identifiers"] == [{"type": "dns", "value": "through.proxy.test"}]
    paths = [r.path for r in acme_proxy.requests]
    assert acme_proxy.path_of("newOrder") in paths
    assert any(p.startswith("/finalize-order/") for p in paths)
    assert all(r.status is not None and r.status < 500 for r in acme_proxy.requests)

    # with nothing configured, ARI answers from the certificate pebble issued:
    # a window inside its validity
    certid = ari_cert_id(chain[0])
    r = session(acme_proxy).get(acme_proxy.ari_url + "/" + certid, timeout=10)
    assert r.status_code == 200, r.text
    window = r.json()["suggestedWindow"]
    start = datetime.datetime.strptime(window["start"], "%Y-%m-%dT%H:%M:%SZ")
    end = datetime.datetime.strptime(window["end"], "%Y-%m-%dT%H:%M:%SZ")
    assert chain[0].not_valid_before < start < end < chain[0].not_valid_after
    assert int(r.headers["Retry-After"]) > 0
    assert acme_proxy.ari_requests == [certid]


def test_python_client_issues_through_proxy(acme_proxy, http01):
    """A second, independent client (no profile support) gets a certificate too,
    and every response body names the proxy, never pebble's own port."""
    client = client_through(acme_proxy)
    assert client.kid.startswith(acme_proxy.base_url + "/")

    def publish(token, key_authz):
        http01.answers[token] = key_authz

    pem, _, order = client.issue_http01(["py.proxy.test"], publish)
    assert cert_sans(load_pem_certs(pem)[0]) == ["py.proxy.test"]
    assert order["finalize"].startswith(acme_proxy.base_url + "/")
    assert order["certificate"].startswith(acme_proxy.base_url + "/")
    assert "profile" not in order and "replaces" not in order
    assert acme_proxy.orders == [order_payload("py.proxy.test")]


# ------------------------------------------------------------------ directory, ARI
def test_directory_adds_renewal_info_and_profiles(acme_proxy, acme_proxy_factory, pebble):
    s = session(acme_proxy)
    d = s.get(acme_proxy.dir_url, timeout=10).json()
    assert d["renewalInfo"] == acme_proxy.ari_url
    assert "profiles" not in d.get("meta", {})
    for key in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"):
        assert d[key].startswith(acme_proxy.base_url + "/"), (key, d[key])
    # pebble's own directory has no renewalInfo: the proxy added it
    assert "renewalInfo" not in pebble.directory()

    acme_proxy.set_profiles({"classic": "90 days", "shortlived": "6 days"})
    d = s.get(acme_proxy.dir_url, timeout=10).json()
    assert d["meta"]["profiles"] == {"classic": "90 days", "shortlived": "6 days"}

    plain = acme_proxy_factory(pebble, ari=False)
    assert "renewalInfo" not in session(plain).get(plain.dir_url, timeout=10).json()


def test_renewal_info_answers_configured_windows(acme_proxy):
    s = session(acme_proxy)
    past = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    acme_proxy.set_ari(start=-7200, end=-3600, retry_after=60)
    acme_proxy.set_ari("AAEC.AQ", start=past, end="2020-01-03T00:00:00Z",
                       explanation_url="https://ca.example/why", retry_after=7200)

    r = s.get(acme_proxy.ari_url + "/AAEC.AQ", timeout=10)
    assert r.status_code == 200
    assert r.headers["Retry-After"] == "7200"
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"suggestedWindow": {"start": "2020-01-02T03:04:05Z",
                                            "end": "2020-01-03T00:00:00Z"},
                        "explanationURL": "https://ca.example/why"}

    # any other identifier gets the default, relative to now (here: in the past)
    r = s.get(acme_proxy.ari_url + "/ZZZZ.Ag", timeout=10)
    assert r.status_code == 200 and r.headers["Retry-After"] == "60"
    w = r.json()["suggestedWindow"]
    now = datetime.datetime.now(datetime.timezone.utc)
    assert rfc3339(now - datetime.timedelta(hours=2, seconds=5)) <= w["start"] \
        < w["end"] <= rfc3339(now - datetime.timedelta(minutes=59))
    assert "explanationURL" not in r.json()

    # error answers and malformed bodies, for the client's error handling
    acme_proxy.set_ari("AAEC.Aw", status=503, retry_after=120)
    r = s.get(acme_proxy.ari_url + "/AAEC.Aw", timeout=10)
    assert r.status_code == 503 and r.headers["Retry-After"] == "120"
    assert r.headers["Content-Type"] == "application/problem+json"
    acme_proxy.set_ari("AAEC.BA", body='{"suggestedWindow": {"start": 5}')
    assert s.get(acme_proxy.ari_url + "/AAEC.BA", timeout=10).text == \
        '{"suggestedWindow": {"start": 5}'

    assert acme_proxy.ari_requests == ["AAEC.AQ", "ZZZZ.Ag", "AAEC.Aw", "AAEC.BA"]
    assert acme_proxy.requests[0].path == "/renewal-info/AAEC.AQ"


def test_renewal_info_rejects_malformed_and_unknown_ids(acme_proxy):
    s = session(acme_proxy)
    for bad in ("nodot", "a.b.c", ".AQ", "AQ.", "AQ==.AQ", "A+B.AQ", "AAEC.gA"):
        r = s.get(acme_proxy.ari_url + "/" + bad, timeout=10)
        assert r.status_code == 400, bad
        assert r.json()["type"] == "urn:ietf:params:acme:error:malformed"
    # well formed, but no certificate pebble issued has this serial
    r = s.get(acme_proxy.ari_url + "/AAEC.fwEC", timeout=10)
    assert r.status_code == 404
    assert s.post(acme_proxy.ari_url + "/AAEC.AQ", data="{}", timeout=10).status_code == 405


def test_cert_id_helpers_round_trip():
    # a serial with the top bit set gets the DER leading zero octet
    aki, serial = parse_ari_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    assert len(aki) == 20 and serial == 0x87654321
    with pytest.raises(ValueError):
        parse_ari_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ")


# ------------------------------------------------------------------ profiles
def test_profile_checked_against_list_and_echoed(acme_proxy):
    client = client_through(acme_proxy)
    acme_proxy.set_profiles({"classic": "90 days", "shortlived": "6 days"})

    r = new_order_raw(client, order_payload("prof.proxy.test", profile="tlsserver"))
    assert r.status_code == 400
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["type"] == "urn:ietf:params:acme:error:invalidProfile"
    assert "tlsserver" in r.json()["detail"]

    order = client.post(client.dir["newOrder"],
                        order_payload("prof.proxy.test", profile="shortlived")).json()
    assert order["profile"] == "shortlived"
    # later fetches of the same order carry it too
    fetched = client.get(client.post(client.dir["newOrder"],
                                     order_payload("prof.proxy.test", profile="shortlived"))
                         .headers["Location"])
    assert fetched["profile"] == "shortlived" and fetched["status"] == "pending"

    assert [o.get("profile") for o in acme_proxy.orders] == ["tlsserver", "shortlived",
                                                             "shortlived"]
    statuses = [r.status for r in acme_proxy.requests_to("newOrder")]
    # (pebble refuses a share of good nonces: 400 badNonce, retried by the client)
    assert statuses[0] == 400 and statuses.count(201) == 2 and set(statuses) == {400, 201}


# ------------------------------------------------------------------ faults
def test_injected_429_with_retry_after_then_passes_through(acme_proxy):
    client = client_through(acme_proxy)
    hostile = "<script>alert('x')</script> & \"quotes\""
    inj = acme_proxy.inject(method="POST", endpoint="newOrder", status=429,
                            problem={"type": RATE_LIMITED, "detail": hostile},
                            retry_after=30, count=1)

    r = new_order_raw(client, order_payload("rl.proxy.test"))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "30"
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json() == {"type": RATE_LIMITED, "detail": hostile, "status": 429}
    # the nonce is a real one from pebble, not the fallback
    assert r.headers["Replay-Nonce"] and not r.headers["Replay-Nonce"].startswith("YWNtZXBy")

    # the next order passes, with the nonce the 429 carried
    order = client.post(client.dir["newOrder"], order_payload("rl.proxy.test")).json()
    assert order["status"] == "pending"
    assert inj.hits == 1 and inj.remaining == 0

    log = [r for r in acme_proxy.requests_to("newOrder") if r.status != 400]  # badNonce
    assert [(r.status, r.injected) for r in log] == [(429, True), (201, False)]
    assert log[0].time <= log[1].time
    assert len(acme_proxy.orders) == 2


def test_injected_fault_matching_and_raw_bodies(acme_proxy):
    s = session(acme_proxy)
    # unlimited until removed; method and prefix must both match
    inj = acme_proxy.inject(method="GET", path_prefix="/dir", status=503, count=None,
                            retry_after="Wed, 21 Oct 2037 07:28:00 GMT")
    for _ in range(3):
        r = s.get(acme_proxy.dir_url, timeout=10)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "Wed, 21 Oct 2037 07:28:00 GMT"
        assert r.json()["type"] == "urn:ietf:params:acme:error:serverInternal"
    assert s.head(acme_proxy.path_url("newNonce"), timeout=10).status_code == 200
    acme_proxy.remove(inj)
    assert s.get(acme_proxy.dir_url, timeout=10).status_code == 200
    assert inj.hits == 3

    # a malformed answer body for parser tests
    acme_proxy.inject(path_prefix="/dir", status=200, body="{not json",
                      content_type="application/json")
    r = s.get(acme_proxy.dir_url, timeout=10)
    assert r.status_code == 200 and r.text == "{not json"


def test_down_mode_closes_connections_and_recovers(acme_proxy):
    s = session(acme_proxy)
    assert s.get(acme_proxy.dir_url, timeout=10).status_code == 200  # a kept-alive connection
    acme_proxy.set_down("close")
    for _ in range(2):
        with pytest.raises(requests.exceptions.ConnectionError):
            s.get(acme_proxy.dir_url, timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):
        session(acme_proxy).get(acme_proxy.dir_url, timeout=10)
    acme_proxy.set_down(None)
    assert s.get(acme_proxy.dir_url, timeout=10).status_code == 200

    # one dropped answer, then normal again
    acme_proxy.inject(path_prefix="/dir", mode="close")
    with pytest.raises(requests.exceptions.ConnectionError):
        s.get(acme_proxy.dir_url, timeout=10)
    assert s.get(acme_proxy.dir_url, timeout=10).status_code == 200

    # "hang": no answer at all until released
    acme_proxy.set_down("hang")
    with pytest.raises(requests.exceptions.Timeout):
        session(acme_proxy).get(acme_proxy.dir_url, timeout=1)
    acme_proxy.set_down(None)
    assert s.get(acme_proxy.dir_url, timeout=10).status_code == 200
    assert any(r.status is None for r in acme_proxy.requests)

    # stop() ends it for good: connections are refused
    acme_proxy.stop()
    assert not util.port_accepts(acme_proxy.port)
    acme_proxy.stop()  # idempotent


def test_decode_jws_of_post_as_get_and_garbage():
    protected = {"alg": "ES256", "url": "https://x/y"}
    body = json.dumps({"protected": b64u(json.dumps(protected).encode()), "payload": "",
                       "signature": "AA"}).encode()
    assert decode_jws(body) == (protected, None)
    for garbage in (b"[]", b"{}", b"not json", b'{"protected": "!!"}'):
        with pytest.raises((ValueError, UnicodeDecodeError)):
            decode_jws(garbage)
