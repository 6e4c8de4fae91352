# Certificates the module does not manage are watched (issue 26, item 8):
# every SSL vhost's SSLCertificateFile, with its expiry, in server-status
# (HTML and ?auto), the acme-status JSON and acme-metrics (managed="false").
import datetime
import json
import os
import re

from harness.httpd import served_by_ca
from test_status import check_status, parse_metrics, metric, promtool_check
from test_takeover import OWN_CA, make_site_cert

MANAGED = "m.watched.test"
BOUGHT = "shop.watched.test"
BOUGHT_TOO = "blog.watched.test"
HANDLERS = ("<Location /server-status>\n    SetHandler server-status\n</Location>\n"
            "<Location /.acme-status>\n    SetHandler acme-status\n</Location>\n"
            "<Location /metrics>\n    SetHandler acme-metrics\n</Location>\n")


def get(httpd, path):
    r = httpd.http_get(path, MANAGED)
    assert r.status == 200, (path, r)
    return r.text


def rfc3339(dt):
    return dt.replace(tzinfo=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix(dt):
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp())


def no_key_material(text, *paths):
    assert "PRIVATE KEY" not in text
    for p in paths:
        assert p not in text, p


def test_vhost_certificates_are_watched(httpd, pebble, test_dir):
    # two vhosts share one bought certificate; a third vhost is managed
    cert_file, key_file, leaf = make_site_cert(test_dir, [BOUGHT, BOUGHT_TOO], days=40)
    own = 'SSLCertificateFile "%s"\nSSLCertificateKeyFile "%s"' % (cert_file, key_file)
    text = httpd.acme_config(pebble) + "ManagedDomain %s\n" % MANAGED
    text += httpd.vhost(MANAGED, tls=True) + httpd.vhost(MANAGED)
    text += httpd.vhost(BOUGHT, tls=True, extra=own) + httpd.vhost(BOUGHT_TOO, tls=True, extra=own)
    httpd.write_config(text + HANDLERS)
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, MANAGED), 90, "the certificate for %s" % MANAGED)
    vhosts = ["%s:%d" % (n, httpd.tls_port) for n in (BOUGHT, BOUGHT_TOO)]

    # JSON: one entry for the file, both vhosts, the certificate's facts
    body = get(httpd, "/.acme-status")
    no_key_material(body, key_file)
    doc = json.loads(body)
    check_status(doc)
    assert len(doc["watched-certificates"]) == 1, doc["watched-certificates"]
    w = doc["watched-certificates"][0]
    # in the order mod_ssl configures them; the first names the file in metrics
    assert w["file"] == cert_file and sorted(w["vhosts"]) == sorted(vhosts)
    first = w["vhosts"][0].rsplit(":", 1)[0]
    assert w["managed"] is False and w["served"] is True and "managed-by" not in w
    assert w["valid-until"] == rfc3339(leaf.not_valid_after)
    assert w["valid-from"] == rfc3339(leaf.not_valid_before)
    assert w["days-left"] == 39          # made 40 days from now, a moment ago
    assert w["issuer"] == OWN_CA and w["subject"] == BOUGHT
    assert w["names"] == [BOUGHT, BOUGHT_TOO]
    m = next(d for d in doc["domains"] if d["name"] == MANAGED)
    assert m["served"] == "managed"

    # metrics: the file's expiry with managed="false", the module's with "true"
    text = get(httpd, "/metrics")
    no_key_material(text, key_file)
    rc, out = promtool_check(text)
    assert rc == 0 and out.strip() == "", out
    samples = parse_metrics(text)
    labels = dict(domain=first, file=cert_file, managed="false")
    assert metric(samples, "acme_certificate_not_after_seconds", **labels) \
        == unix(leaf.not_valid_after)
    assert metric(samples, "acme_certificate_not_before_seconds", **labels) \
        == unix(leaf.not_valid_before)
    assert metric(samples, "acme_certificate_not_after_seconds", domain=MANAGED,
                  key_type="P-256", managed="true") > unix(leaf.not_valid_after)

    # server-status: a table of the files, and ?auto lines
    html = get(httpd, "/server-status")
    no_key_material(html, key_file)
    section = html.split("Certificates from SSLCertificateFile", 1)[1]
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", section)
    assert len(rows) == 1, rows
    for part in (cert_file, "<br>".join(w["vhosts"]), "<td>-</td><td>yes</td>",
                 rfc3339(leaf.not_valid_after), "<td>39</td>", OWN_CA):
        assert part in rows[0], (part, rows[0])
    auto = get(httpd, "/server-status?auto")
    assert "WatchedCertificates: 1\n" in auto
    assert "WatchedCertificate0: %s 39 served %s\n" % (first, cert_file) in auto


def test_watched_without_any_managed_domain(httpd, test_dir):
    """With no ManagedDomain at all, the module still shows the vhosts'
    certificates; a file that holds the key too gives only the certificate's
    facts."""
    cert_file, key_file, leaf = make_site_cert(test_dir, [BOUGHT], days=10)
    both = os.path.join(test_dir, "cert-and-key.pem")
    with open(key_file, "rb") as k, open(cert_file, "rb") as c:
        data = c.read() + k.read()
    fd = os.open(both, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    assert os.stat(both).st_mode & 0o077 == 0     # root's alone, like a real key
    text = httpd.vhost(BOUGHT, tls=True, extra='SSLCertificateFile "%s"' % both)
    text += httpd.vhost(MANAGED)   # where the handlers are asked
    httpd.write_config(text + HANDLERS)
    httpd.start()

    body = get(httpd, "/.acme-status")
    no_key_material(body)
    doc = json.loads(body)
    check_status(doc)
    assert doc["domains"] == []
    [w] = doc["watched-certificates"]
    assert w["file"] == both and w["served"] and not w["managed"]
    assert w["days-left"] == 9 and w["valid-until"] == rfc3339(leaf.not_valid_after)

    text = get(httpd, "/metrics")
    no_key_material(text)
    samples = parse_metrics(text)
    assert metric(samples, "acme_certificate_not_after_seconds", domain=BOUGHT, file=both,
                  managed="false") == unix(leaf.not_valid_after)
    html = get(httpd, "/server-status")
    assert both in html.split("Certificates from SSLCertificateFile", 1)[1]
    auto = get(httpd, "/server-status?auto")
    assert "WatchedCertificate0: %s 9 served %s\n" % (BOUGHT, both) in auto
    assert httpd.get_cert(BOUGHT).serial_number == leaf.serial_number   # mod_ssl serves it
