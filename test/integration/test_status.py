# mod_acme's status outputs against a real apache2 + pebble: the server-status
# section (HTML and ?auto), the acme-status JSON and the acme-metrics text.
import datetime
import http.client
import json
import os
import re
import subprocess
import tempfile
import time

from harness.httpd import served_by_ca
from harness.acmeproxy import PROBLEM_NS
from harness.pki import cert_issuer_cn

ISSUE_TIMEOUT = 90.0

OK_NAME = "a.status.test"
OK_ALIAS = "www.a.status.test"
BAD_NAME = "b.status.test"
IDLE_NAME = "c.status.test"
HOSTILE = "<script>alert(1)</script> \"double\" 'single' & <b>bold</b>"
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
STATES = ("ok", "renewing", "error", "missing-config", "pending", "expiring", "due")


def status_config(httpd, pebble, proxy):
    text = httpd.acme_config(pebble)
    text += "ManagedRetryDelay 2s\n"
    text += "ManagedDomain %s %s\n" % (OK_NAME, OK_ALIAS)
    text += httpd.vhost(OK_NAME, tls=True, aliases=[OK_ALIAS])
    text += httpd.vhost(OK_NAME, tls=False, aliases=[OK_ALIAS])
    # b gets its certificate through the proxy, which answers every newOrder
    # with a rate limit whose detail is hostile HTML
    text += "<ManagedDomain %s>\n    ManagedCA %s\n</ManagedDomain>\n" % (BAD_NAME, proxy.dir_url)
    text += httpd.vhost(BAD_NAME, tls=True)
    # c has no SSL virtual host
    text += "ManagedDomain %s\n" % IDLE_NAME
    text += ("<Location /server-status>\n    SetHandler server-status\n</Location>\n"
             "<Location /.acme-status>\n    SetHandler acme-status\n</Location>\n"
             "<Location /metrics>\n    SetHandler acme-metrics\n</Location>\n")
    return text


def request(httpd, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", httpd.http_port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Host": OK_NAME})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def get_json(httpd, path):
    status, headers, body = request(httpd, "GET", path)
    assert headers["content-type"].startswith("application/json"), headers
    return status, json.loads(body)


def domain_of(doc, name):
    return next(d for d in doc["domains"] if d["name"] == name)


# ------------------------------------------------------------------ JSON shape
# A validator for the shape documented in docs/status.md: required members,
# types, enums and time formats.
def _time(v):
    return isinstance(v, str) and RFC3339_RE.match(v) is not None


def _strs(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _bool(v):
    return isinstance(v, bool)


def _str(v):
    return isinstance(v, str)


def check_object(obj, required, optional, where):
    assert isinstance(obj, dict), "%s: not an object: %r" % (where, obj)
    for key, check in required.items():
        assert key in obj, "%s: '%s' missing" % (where, key)
        assert check(obj[key]), "%s: '%s' has a bad value %r" % (where, key, obj[key])
    for key, check in optional.items():
        if key in obj:
            assert check(obj[key]), "%s: '%s' has a bad value %r" % (where, key, obj[key])
    unknown = set(obj) - set(required) - set(optional)
    assert not unknown, "%s: undocumented member(s) %s" % (where, sorted(unknown))


def check_certificate(c, where):
    check_object(c, {"key-type": _str, "covers-names": _bool, "valid-from": _time,
                     "valid-until": _time, "days-left": _int},
                 {"issuer": _str, "serial": lambda v: _str(v) and re.match(r"^[0-9A-F]+$", v),
                  "sha256-fingerprint": lambda v: _str(v) and re.match(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$", v),
                  "names": _strs}, where)


def check_error(e, where):
    check_object(e, {}, {"problem": _str, "detail": _str, "activity": _str,
                         "http-status": _int, "retry-after": _time,
                         "subproblems": lambda v: isinstance(v, list)}, where)
    for i, sp in enumerate(e.get("subproblems", [])):
        check_object(sp, {}, {"problem": _str, "detail": _str, "identifier": _str},
                     "%s.subproblems[%d]" % (where, i))


def check_event(e, where):
    check_object(e, {"time": _time, "type": _str}, {"detail": _str}, where)


def check_domain(d, where, with_events=False, top=False):
    required = {
        "name": _str, "names": lambda v: _strs(v) and len(v) >= 1,
        "state": lambda v: v in STATES, "state-reason": _str, "key-types": _strs,
        "ca": _str, "driven": _bool, "has-certificate": _bool,
        "settings": lambda v: isinstance(v, dict),
        "certificates": lambda v: isinstance(v, list), "expiring": _bool,
        "next": lambda v: v in ("retry", "renew", "due", "activation", "none"),
        "errors": lambda v: _int(v) and v >= 0, "retry-after-active": _bool,
        "staged": _bool, "renew-requested": _bool,
        "orders-in-flight": lambda v: _int(v) and v >= 0,
        "renewals": lambda v: isinstance(v, dict),
        "served": lambda v: v in ("managed", "vhost-file", "temporary", "none"),
    }
    optional = {
        "valid-from": _time, "valid-until": _time, "days-left": _int, "issuer": _str,
        "renew-at": _time, "next-attempt": _time, "last-error": lambda v: isinstance(v, dict),
        "last-renewal": _time, "last-run": _time, "job-state": _str, "job-ca": _str,
        "preflight": lambda v: isinstance(v, dict), "served-file": _str,
    }
    if with_events:
        required["events"] = lambda v: isinstance(v, list)
    if top:
        required.update({"schema": lambda v: v == 1, "now": _time})
    check_object(d, required, optional, where)
    check_object(d["settings"], {"agree-tos": _bool, "challenges": _strs,
                                 "challenges-possible": _strs, "renew-window": _str,
                                 "retry-delay": _str, "ari": _bool, "eab": _bool},
                 {"ca-urls": _strs, "contact": _str, "profile": _str}, where + ".settings")
    check_object(d["renewals"], {"success": lambda v: _int(v) and v >= 0,
                                 "error": lambda v: _int(v) and v >= 0}, {},
                 where + ".renewals")
    for i, c in enumerate(d["certificates"]):
        check_certificate(c, "%s.certificates[%d]" % (where, i))
    if "last-error" in d:
        check_error(d["last-error"], where + ".last-error")
    assert ("last-error" in d) == (d["errors"] > 0), where
    if "preflight" in d:
        check_object(d["preflight"], {"diagnosis": _str, "holding": _bool}, {"time": _time},
                     where + ".preflight")
    for i, e in enumerate(d.get("events", [])):
        check_event(e, "%s.events[%d]" % (where, i))
    # the members about the first-expiring certificate come together
    together = {"valid-from", "valid-until", "days-left"}
    assert len(together & set(d)) in (0, 3), where
    assert ("served-file" in d) == (d["served"] == "vhost-file"), where


def check_watched(w, where):
    check_object(w, {"file": _str, "vhosts": lambda v: _strs(v) and len(v) >= 1,
                     "managed": _bool, "served": _bool},
                 {"managed-by": _str, "error": _str, "valid-from": _time, "valid-until": _time,
                  "days-left": _int, "subject": _str, "issuer": _str,
                  "sha256-fingerprint": lambda v: _str(v) and re.match(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$", v),
                  "names": _strs}, where)
    assert ("managed-by" in w) == w["managed"], where
    # either the certificate's facts or why they are unknown
    together = {"valid-from", "valid-until", "days-left"}
    assert len(together & set(w)) == (0 if "error" in w else 3), where


def _store(v):
    check_object(v, {"kind": lambda k: k in ("file", "etcd"), "up": _bool,
                     "errors": lambda n: _int(n) and n >= 0}, {}, "status.store")
    return True


def check_status(doc):
    check_object(doc, {"schema": lambda v: v == 1, "version": _str, "now": _time,
                       "domains": lambda v: isinstance(v, list),
                       "watched-certificates": lambda v: isinstance(v, list)},
                 {"store": _store}, "status")
    for i, d in enumerate(doc["domains"]):
        check_domain(d, "domains[%d]" % i)
    for i, w in enumerate(doc["watched-certificates"]):
        check_watched(w, "watched-certificates[%d]" % i)


# ------------------------------------------------------------------ metrics
_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels)): float}; asserts the line syntax on the way."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert not line or re.match(r"^# (HELP|TYPE) \w+ .+$", line), line
            continue
        m = _SAMPLE_RE.match(line)
        assert m, "bad sample line %r" % line
        labels = frozenset(_LABEL_RE.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def promtool_check(text):
    with tempfile.NamedTemporaryFile("w", suffix=".prom", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        with open(path) as inp:
            proc = subprocess.run(["promtool", "check", "metrics"], stdin=inp,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        return proc.returncode, proc.stdout.decode("utf-8", "replace")
    finally:
        os.unlink(path)


# ------------------------------------------------------------------ the test


def test_status_outputs(httpd, pebble, acme_proxy):
    acme_proxy.inject(endpoint="newOrder", status=429, retry_after=3600, count=None,
                      problem={"type": PROBLEM_NS + "rateLimited", "detail": HOSTILE})
    httpd.write_config(status_config(httpd, pebble, acme_proxy))
    httpd.expect_errors(re.escape(BAD_NAME))
    httpd.start()

    cert = httpd.wait_for(lambda: served_by_ca(httpd, OK_NAME), ISSUE_TIMEOUT,
                          "the CA-issued certificate served for %s" % OK_NAME)

    def settled():
        status, doc = get_json(httpd, "/.acme-status")
        assert status == 200
        a, b = domain_of(doc, OK_NAME), domain_of(doc, BAD_NAME)
        return doc if a["state"] == "ok" and b["state"] == "error" else None

    doc = httpd.wait_for(settled, ISSUE_TIMEOUT, "a ok and b errored in the status")

    # ---- JSON: the documented shape, and the facts behind it
    check_status(doc)
    assert [d["name"] for d in doc["domains"]] == [OK_NAME, BAD_NAME, IDLE_NAME]
    a, b, c = doc["domains"]
    assert a["names"] == [OK_NAME, OK_ALIAS] and a["key-types"] == ["P-256"]
    assert a["has-certificate"] and a["driven"] and a["errors"] == 0
    assert a["ca"] == pebble.dir_url and a["next"] == "renew"
    assert a["issuer"] == cert_issuer_cn(cert)
    assert len(a["certificates"]) == 1
    assert int(a["certificates"][0]["serial"], 16) == cert.serial_number
    assert set(a["certificates"][0]["names"]) == {OK_NAME, OK_ALIAS}
    not_after = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc).timestamp()
    assert a["days-left"] == int((not_after - time.time()) // 86400)
    assert a["last-renewal"] and a["renewals"]["error"] == 0
    assert b["state"] == "error" and b["errors"] >= 1 and not b["has-certificate"]
    assert b["ca"] == acme_proxy.dir_url
    # verbatim, after what mod_acme says it was doing ("newOrder: ")
    assert b["last-error"]["detail"].endswith(HOSTILE)
    assert b["last-error"]["problem"] == PROBLEM_NS + "rateLimited"
    assert b["retry-after-active"] and b["next"] == "retry"
    assert b["certificates"] == [] and "days-left" not in b
    assert c["state"] == "missing-config" and not c["driven"] and c["next"] == "none"
    assert (a["served"], b["served"], c["served"]) == ("managed", "temporary", "none")
    assert doc["watched-certificates"] == []    # no vhost has a certificate file of its own

    # one domain, by any of its names, with its events
    for name in (OK_NAME, OK_ALIAS.upper(), OK_NAME + "/"):
        status, one = get_json(httpd, "/.acme-status/" + name)
        assert status == 200, name
        check_domain(one, name, with_events=True, top=True)
        assert one["name"] == OK_NAME
        types = [e["type"] for e in one["events"]]
        runs = [t for t in types if t in ("renewing", "order-created", "staged", "errored")]
        assert runs[0] == "renewing" and runs[-1] == "staged", types
    status, one = get_json(httpd, "/.acme-status/" + BAD_NAME)
    assert status == 200 and "errored" in [e["type"] for e in one["events"]]
    status, nf = get_json(httpd, "/.acme-status/unknown.status.test")
    assert status == 404 and nf["error"] == "not-found"
    status, nf = get_json(httpd, "/.acme-status/%s/extra" % OK_NAME)
    assert status == 404
    status, again = get_json(httpd, "/.acme-status/")
    assert status == 200 and len(again["domains"]) == 3

    # HEAD: the same headers, no body
    for path in ("/.acme-status", "/.acme-status/" + OK_NAME, "/metrics"):
        gs, gh, gb = request(httpd, "GET", path)
        hs, hh, hb = request(httpd, "HEAD", path)
        assert hs == gs == 200 and hb == b"" and gb
        assert hh["content-type"] == gh["content-type"]
        assert hh["cache-control"] == gh["cache-control"] == "no-store"
        assert hh["x-content-type-options"] == "nosniff"

    # ---- server-status HTML
    status, _, body = request(httpd, "GET", "/server-status")
    html = body.decode("utf-8")
    assert status == 200 and "<h2>Managed domains</h2>" in html
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", html.split("Managed domains", 1)[1])
    assert len(rows) == 3, rows
    row_a = next(r for r in rows if r.startswith(OK_NAME + "<"))
    for text in (OK_ALIAS, ">ok<", "P-256", a["valid-until"], ">%d<" % a["days-left"],
                 a["issuer"], "renew at"):
        assert text in row_a, (text, row_a)
    row_b = next(r for r in rows if r.startswith(BAD_NAME + "<"))
    assert ">error<" in row_b and "rateLimited" in row_b and "retry at" in row_b
    assert ("&lt;script&gt;alert(1)&lt;/script&gt; &quot;double&quot; 'single' &amp; "
            "&lt;b&gt;bold&lt;/b&gt;") in row_b, row_b
    assert "<script>" not in html and "<b>bold" not in html
    assert "missing-config" in next(r for r in rows if r.startswith(IDLE_NAME + "<"))

    # ---- server-status?auto
    status, _, body = request(httpd, "GET", "/server-status?auto")
    lines = body.decode("utf-8").splitlines()
    assert status == 200
    # mod_ssl's part of ?auto is not "Key: value" ("TLSSessionCacheStatus"):
    # check our block, which is contiguous
    ours = [i for i, line in enumerate(lines) if line.startswith("Managed")]
    assert ours and ours == list(range(ours[0], ours[0] + len(ours))), lines
    values = {}
    for line in (lines[i] for i in ours):
        m = re.match(r"^(Managed\w+): (\S.*)$", line)
        assert m, "not 'Key: value': %r" % line
        values[m.group(1)] = m.group(2)
    assert len(values) == 5 + 3
    assert values["ManagedDomains"] == "3"
    assert values["ManagedOK"] == "1"
    assert values["ManagedRenewing"] == "0"
    assert values["ManagedErrored"] == "1"
    assert values["ManagedExpiring"] == "0"
    assert values["ManagedDomain0"] == "%s ok %d" % (OK_NAME, a["days-left"])
    assert values["ManagedDomain1"] == "%s error -" % BAD_NAME
    assert values["ManagedDomain2"] == "%s missing-config -" % IDLE_NAME

    # ---- metrics
    status, headers, body = request(httpd, "GET", "/metrics")
    text = body.decode("utf-8")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    rc, out = promtool_check(text)
    assert rc == 0 and out.strip() == "", out
    samples = parse_metrics(text)
    assert metric(samples, "acme_certificate_not_after_seconds", domain=OK_NAME,
                  key_type="P-256", managed="true") == int(not_after)
    assert not any(n == "acme_certificate_not_after_seconds" and ("domain", BAD_NAME) in l
                   for n, l in samples)
    left_a = metric(samples, "acme_renewal_next_attempt_seconds", domain=OK_NAME)
    assert left_a > 86400
    assert 0 < metric(samples, "acme_renewal_next_attempt_seconds", domain=BAD_NAME) <= 3601
    assert metric(samples, "acme_ca_retry_after_active", domain=BAD_NAME) == 1
    assert metric(samples, "acme_ca_retry_after_active", domain=OK_NAME) == 0
    assert metric(samples, "acme_domain_errors_consecutive", domain=BAD_NAME) == b["errors"]
    assert metric(samples, "acme_domain_errors_consecutive", domain=OK_NAME) == 0
    assert metric(samples, "acme_orders_in_flight", domain=OK_NAME) == 0
    with open(os.path.join(httpd.store_dir, "jobs", OK_NAME, "job.json")) as f:
        job_a = json.load(f)
    assert metric(samples, "acme_renewals_total", domain=OK_NAME, result="success") == \
        job_a.get("renewals-ok", 0) == a["renewals"]["success"]
    assert metric(samples, "acme_renewals_total", domain=BAD_NAME, result="error") == \
        b["renewals"]["error"]
    expected_states = {"ok": 1, "error": 1, "missing-config": 1, "renewing": 0, "pending": 0}
    for state, n in expected_states.items():
        assert metric(samples, "acme_domains", state=state) == n, state

    # ---- only GET and HEAD
    for path in ("/.acme-status", "/.acme-status/" + OK_NAME, "/metrics"):
        for method in ("POST", "PUT", "DELETE"):
            st, hdrs, _ = request(httpd, method, path, body=b"x=1")
            assert st == 405, (method, path, st)
            assert hdrs["allow"] == "GET, HEAD", (method, path, hdrs)

    # ---- no key material, no key paths, in any output
    outputs = [request(httpd, "GET", p)[2].decode("utf-8") for p in (
        "/.acme-status", "/.acme-status/" + OK_NAME, "/.acme-status/" + BAD_NAME,
        "/metrics", "/server-status", "/server-status?auto")]
    with open(os.path.join(httpd.store_dir, "domains", OK_NAME, "privkey.p256.pem")) as f:
        key_lines = [ln for ln in f.read().splitlines() if ln and not ln.startswith("-----")]
    for out in outputs:
        assert "PRIVATE KEY" not in out
        assert "privkey" not in out and "account.key" not in out
        assert httpd.store_dir not in out
        for ln in key_lines:
            assert ln not in out


def test_status_renewing_and_pending(httpd, pebble, acme_proxy):
    """A run that hangs at a dead CA is 'renewing'; with one renewal at a
    time, the other domain waits without a certificate: 'pending'."""
    names = ["r.status.test", "p.status.test"]
    text = httpd.acme_config(acme_proxy)
    text += "ManagedParallelRenewals 1\nManagedRetryDelay 2s\n"
    for name in names:
        text += "ManagedDomain %s\n" % name + httpd.vhost(name, tls=True)
    text += "<Location /.acme-status>\n    SetHandler acme-status\n</Location>\n"
    text += "<Location /metrics>\n    SetHandler acme-metrics\n</Location>\n"
    text += "<Location /server-status>\n    SetHandler server-status\n</Location>\n"
    httpd.write_config(text)
    # when the proxy is released at the end, the hung run fails
    httpd.expect_errors(r"[rp]\.status\.test")
    acme_proxy.set_down("hang")
    httpd.start()

    def both():
        status, doc = get_json(httpd, "/.acme-status")
        states = sorted(d["state"] for d in doc["domains"])
        return doc if states == ["pending", "renewing"] else None

    doc = httpd.wait_for(both, 30, "one domain renewing, the other pending")
    check_status(doc)
    for d in doc["domains"]:
        assert d["next"] == "due" and not d["has-certificate"] and d["errors"] == 0
        assert d["certificates"] == [] and "valid-until" not in d
    pending = next(d["name"] for d in doc["domains"] if d["state"] == "pending")

    _, _, body = request(httpd, "GET", "/server-status?auto")
    auto = body.decode("utf-8")
    assert "ManagedRenewing: 1\n" in auto and "ManagedOK: 0\n" in auto
    assert "ManagedErrored: 0\n" in auto and "ManagedDomains: 2\n" in auto

    _, _, body = request(httpd, "GET", "/metrics")
    text = body.decode("utf-8")
    rc, out = promtool_check(text)
    assert rc == 0 and out.strip() == "", out
    samples = parse_metrics(text)
    assert metric(samples, "acme_domains", state="renewing") == 1
    assert metric(samples, "acme_domains", state="pending") == 1
    assert metric(samples, "acme_domains", state="ok") == 0
    assert metric(samples, "acme_renewal_next_attempt_seconds", domain=pending) == 0
    assert not any(n == "acme_certificate_not_after_seconds" for n, _ in samples)
    acme_proxy.set_down(None)


def test_status_survives_damaged_job_state(httpd, pebble):
    """job.json is read on every status request: a damaged one (not JSON,
    wrong types) still gives valid JSON, metrics and HTML."""
    broken, wrong = "m1.status.test", "m2.status.test"
    jobs = os.path.join(httpd.store_dir, "jobs")
    for name, content in (
            (broken, "{not json"),
            (wrong, json.dumps({
                "errors": 2, "next-attempt": "soon", "last-error": {"problem": "<i>p</i>", "detail": "<i>boom</i>",
                                                "retry-after": "x", "subproblems": 3},
                "orders": ["x"], "events": [1, "x", {"type": 5}, {"time": 7, "type": "renewing"},
                                            {"time": "2025-01-01T00:00:00Z", "type": "errored",
                                             "detail": "<script>x</script>"}],
                "renewals-ok": "many", "renewals-failed": -3, "state": 9, "ca": {"a": 1},
                "last-success": "yesterday"}))):
        os.makedirs(os.path.join(jobs, name))
        with open(os.path.join(jobs, name, "job.json"), "w") as f:
            f.write(content)
    # no challenge can work, so no job runs and rewrites the files
    text = httpd.acme_config(pebble, port_map=False) + "ManagedPortMap 80:- 443:-\n"
    for name in (broken, wrong):
        text += "ManagedDomain %s\n" % name + httpd.vhost(name, tls=True)
    text += "<Location /.acme-status>\n    SetHandler acme-status\n</Location>\n"
    text += "<Location /metrics>\n    SetHandler acme-metrics\n</Location>\n"
    text += "<Location /server-status>\n    SetHandler server-status\n</Location>\n"
    # merged last, so the handler finds the domain through the path info
    text += "<Location />\n    Require all granted\n</Location>\n"
    httpd.write_config(text)
    httpd.expect_errors(r"no challenge type can work", r"job\.json is not valid JSON")
    httpd.start()

    status, doc = get_json(httpd, "/.acme-status")
    assert status == 200
    check_status(doc)
    b, w = doc["domains"]
    assert b["state"] == w["state"] == "missing-config"
    assert b["errors"] == 0 and "last-error" not in b
    assert w["errors"] == 2 and w["last-error"] == {"problem": "<i>p</i>", "detail": "<i>boom</i>"}
    assert w["orders-in-flight"] == 0 and w["renewals"] == {"success": 0, "error": 0}
    assert "last-renewal" not in w and "job-state" not in w and "job-ca" not in w
    status, one = get_json(httpd, "/.acme-status/" + wrong)
    assert status == 200
    check_domain(one, wrong, with_events=True, top=True)
    assert one["name"] == wrong
    assert get_json(httpd, "/.acme-status/nothere.status.test")[0] == 404
    assert one["events"] == [{"time": "2025-01-01T00:00:00Z", "type": "errored",
                              "detail": "<script>x</script>"}]

    _, _, body = request(httpd, "GET", "/metrics")
    rc, out = promtool_check(body.decode("utf-8"))
    assert rc == 0 and out.strip() == "", out
    samples = parse_metrics(body.decode("utf-8"))
    assert metric(samples, "acme_renewals_total", domain=wrong, result="error") == 0
    assert metric(samples, "acme_domain_errors_consecutive", domain=wrong) == 2
    assert metric(samples, "acme_domains", state="missing-config") == 2

    status, _, body = request(httpd, "GET", "/server-status")
    html = body.decode("utf-8")
    assert status == 200 and "<i>" not in html
    assert "&lt;i&gt;p&lt;/i&gt;</span>: &lt;i&gt;boom&lt;/i&gt;" in html
