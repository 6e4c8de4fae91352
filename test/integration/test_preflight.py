# The pre-flight check (ManagedPreflight, issue 14 part 2, issue 24) with real apache2 and
# pebble: it runs only after the CA refused a validation; then no CA request until some type
# passes, and a type that fails here is steered around. A first order never waits for it.
import http.client
import http.server
import json
import os
import re
import subprocess
import threading
import time

from harness import util
from harness.httpd import served_by_ca

ISSUE_TIMEOUT = 90.0
OTHER_ADDR = "127.0.0.3"   # "someone else's server", where the name's DNS points


class OtherServer:
    """An HTTP server at OTHER_ADDR:port. mode "404": it knows nothing of the
    challenge; mode "forward": it passes requests on to target (the address
    is fixed, e.g. the port forwarding now points at our httpd)."""

    def __init__(self, port, target):
        self.mode = "404"
        self.target = target
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                if outer.mode == "forward":
                    conn = http.client.HTTPConnection(*outer.target, timeout=10)
                    try:
                        conn.request("GET", self.path, headers={"Host": self.headers["Host"]})
                        r = conn.getresponse()
                        status, body = r.status, r.read()
                    finally:
                        conn.close()
                else:
                    status, body = 404, b"not here\n"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((OTHER_ADDR, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def job_of(httpd, name):
    try:
        with open(os.path.join(httpd.store_dir, "jobs", name, "job.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def status_of(httpd, name):
    conn = http.client.HTTPConnection("127.0.0.1", httpd.http_port, timeout=10)
    try:
        conn.request("GET", "/.acme-status/%s" % name, headers={"Host": name})
        r = conn.getresponse()
        assert r.status == 200, r.status
        return json.loads(r.read())
    finally:
        conn.close()


def holding_metric(httpd, name):
    text = httpd.http_get("/metrics", name).text
    m = re.search(r'^acme_preflight_holding\{domain="%s"\} (\d+)$' % re.escape(name), text, re.M)
    assert m, text
    return int(m.group(1))


def config(httpd, ca, name, preflight):
    text = httpd.acme_config(ca, preflight=preflight)
    text += "ManagedRetryDelay 1s\nManagedChallenges http-01\n"
    text += "ManagedDomain %s\n" % name
    text += httpd.vhost(name, tls=True)
    text += httpd.vhost(name, extra="<Location /.acme-status>\nSetHandler acme-status\n"
                                    "</Location>\n<Location /server-status>\n"
                                    "SetHandler server-status\n</Location>\n"
                                    "<Location /metrics>\nSetHandler acme-metrics\n"
                                    "</Location>")
    return text


def test_failed_validation_holds_back_the_ca_until_the_preflight_passes(
        httpd, acme_proxy, dns, build_dir):
    name = "preflight.held.test"
    other = OtherServer(httpd.http_port, ("127.0.0.1", httpd.http_port))
    try:
        # the CA and the pre-flight both reach OTHER_ADDR, which answers 404
        dns.add_a(name, OTHER_ADDR)
        httpd.write_config(config(httpd, acme_proxy, name,
                                  "%s 80:%d" % (OTHER_ADDR, httpd.http_port)))
        httpd.expect_errors(r"ACME0322: preflight\.held\.test: ")
        httpd.start()
        httpd.wait_for(lambda: job_of(httpd, name).get("errors", 0) >= 1, 60,
                       "the CA's failed validation")
        first = job_of(httpd, name)
        assert "preflight" not in first, first  # the first order went straight to the CA
        mark = len(acme_proxy.requests)
        # orders the CA made (a badNonce retry of pebble's is not one)
        orders = len(acme_proxy.orders)
        assert orders == 1
        # now the pre-flight runs first, fails, and holds the CA back, twice
        httpd.wait_for(lambda: job_of(httpd, name).get("preflight", {}).get("blocks", 0) >= 2,
                       30, "two attempts held back by the pre-flight")
        assert len(acme_proxy.requests) == mark, acme_proxy.requests[mark:]
        job = job_of(httpd, name)
        want = "http-01 for %s: fetching it from here gave 404 from %s" % (name, OTHER_ADDR)
        assert want in job["preflight"]["diagnosis"], job["preflight"]
        assert job["errors"] == 1  # held-back runs are not the CA's failures

        # the diagnosis is shown next to the CA's error
        st = status_of(httpd, name)
        assert want in st["preflight"]["diagnosis"], st
        assert st["preflight"]["holding"] is True
        assert st["state"] == "error" and "last-error" in st, st
        assert holding_metric(httpd, name) == 1
        page = httpd.http_get("/server-status", name).text
        assert "pre-flight (holds back the CA): http-01 for %s: fetching it from here gave 404 " \
               "from %s" % (name, OTHER_ADDR) in page, page
        show = subprocess.run([os.path.join(build_dir, "tools", "acmectl"), "--store",
                               httpd.store_dir, "show", name], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=60)
        out = show.stdout.decode("utf-8", "replace")
        assert "Pre-flight:" in out and want in out, out
        assert "not asked again until it passes" in out, out
        assert "Last error:" in out, out
        assert "ACME0322: %s: after the CA's failed validation" % name in httpd.error_log()

        # the address is fixed: the next pre-flight passes, the CA is asked
        # again and issues, with no restart by hand
        other.mode = "forward"
        httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
        assert len(acme_proxy.orders) == orders + 1
        assert "ACME0431: %s: pre-flight passed (http-01)" % name in httpd.error_log()
        assert "preflight" not in job_of(httpd, name)
        assert holding_metric(httpd, name) == 0
    finally:
        other.stop()


def test_hairpin_preflight_failure_does_not_stop_issuance(httpd, pebble, dns):
    name = "preflight.hairpin.test"
    # The CA reaches httpd (pebble's DNS: 127.0.0.1); from here the name leads
    # to another server, as behind NAT without hairpinning. The first order
    # goes straight to the CA: the pre-flight, which would fail, does not look.
    other = OtherServer(httpd.http_port, None)
    try:
        httpd.write_config(config(httpd, pebble, name,
                                  "%s 80:%d" % (OTHER_ADDR, httpd.http_port)))
        httpd.start()
        httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
        log = httpd.error_log()
        assert not re.search(r"ACME043[12]: %s: pre-flight" % re.escape(name), log), \
            util.tail(log, 30)
        assert other.hits == 0
        assert "preflight" not in job_of(httpd, name)
    finally:
        other.stop()


def test_tls_alpn01_preflight_checks_the_handshake(httpd, pebble, dns):
    good, bad = "preflight.alpn.test", "preflight.alpn-bad.test"
    # First the CA finds nothing where the names' DNS points, and refuses.
    for n in (good, bad):
        dns.add_a(n, OTHER_ADDR)
    text = httpd.acme_config(pebble, preflight="127.0.0.1 80:%d 443:%d"
                             % (httpd.http_port, httpd.tls_port))
    text += "ManagedRetryDelay 1s\nManagedChallenges tls-alpn-01 http-01\n"
    text += "ManagedDomain %s\n" % good + httpd.vhost(good, tls=True)
    # from here, the CA's port 443 of this name leads to a plain HTTP server
    text += ("<ManagedDomain %s>\n    ManagedPreflight 127.0.0.1 80:%d 443:%d\n"
             "</ManagedDomain>\n" % (bad, httpd.http_port, httpd.http_port))
    text += httpd.vhost(bad, tls=True)
    httpd.write_config(text)
    httpd.expect_errors(r"ACME\d+: preflight\.alpn(-bad)?\.test: ")
    httpd.start()
    httpd.wait_for(lambda: all(job_of(httpd, n).get("errors", 0) >= 1 for n in (good, bad)),
                   60, "the CA's failed validations")
    # the first orders did not wait for a pre-flight
    assert not re.search(r"ACME043[12]: ", httpd.error_log())
    for n in (good, bad):
        dns.clear_a(n)  # pebble's default: 127.0.0.1, this server
    httpd.wait_for(lambda: served_by_ca(httpd, good) and served_by_ca(httpd, bad),
                   ISSUE_TIMEOUT, "both certificates")
    log = httpd.error_log()
    assert "ACME0431: %s: pre-flight passed (tls-alpn-01 http-01)" % good in log
    assert ("ACME0432: %s: pre-flight: tls-alpn-01 for %s: the TLS handshake from here failed"
            " from 127.0.0.1" % (bad, bad)) in log, util.tail(log, 30)
    assert "The CA is asked again with http-01." in log
