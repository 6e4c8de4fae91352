#!/usr/bin/python3
# capture_pebble.py: writes real pebble answers (directory, account, order,
# authz, challenge, problem documents, certificate chain, headers) as seeds
# into test/fuzz/corpus/. Run by hand when the seeds should be refreshed.
import http.server
import json
import os
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import util  # noqa: E402
from harness.acme_client import AcmeClient, AcmeError  # noqa: E402
from harness.pebble import Pebble, PebbleDNS  # noqa: E402
from harness.pki import ListenerPKI  # noqa: E402

CORPUS = os.path.join(HERE, "corpus")


def seed(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, (dict, list)):
        data = json.dumps(data, indent=2)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, "pebble-" + name), "wb") as f:
        f.write(data)


def response_seed(name, r):
    head = "%d\n" % r.status_code + "".join(
        "%s: %s\n" % (k, v) for k, v in r.headers.items())
    seed("response", name, head.encode() + b"\n" + r.content)


def main():
    work = tempfile.mkdtemp(prefix="fuzz-capture-")
    pki = ListenerPKI(os.path.join(work, "pki"))
    os.makedirs(pki.dir)
    pki.generate()
    os.makedirs(os.path.join(work, "dns"))
    dns = PebbleDNS(os.path.join(work, "dns"))
    dns.start()
    http_port, tls_port = util.free_port(), util.free_port()
    tokens = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            token = self.path.rsplit("/", 1)[-1]
            body = tokens.get(token, "").encode()
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    peb = Pebble(work, "pebble", pki, dns, http_port, tls_port).start()
    try:
        seed("directory", "dir.json", peb.directory())
        c = AcmeClient(peb.dir_url, pki.ca_file)
        r = c.post(c.dir["newAccount"], {"termsOfServiceAgreed": True,
                                         "contact": ["mailto:admin@example.org"]})
        c.kid = r.headers["Location"]
        seed("account", "new-account.json", r.json())
        seed("account_files", "account.json",
             json.dumps({"url": c.kid, "ca": peb.dir_url, "contact": ["mailto:admin@example.org"],
                         "created": "2026-01-01T00:00:00Z"}, indent=2))
        response_seed("new-account", r)
        seed("account", "account-get.json", c.get(c.kid))
        names = ["example.org", "www.example.org"]
        r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": n}
                                                       for n in names]})
        response_seed("new-order", r)
        order = r.json()
        seed("order", "new-order.json", order)
        for i, url in enumerate(order["authorizations"]):
            authz = c.get(url)
            seed("authz", "pending-%d.json" % i, authz)
            for ch in authz["challenges"]:
                seed("challenge", "pending-%s.json" % ch["type"], ch)
            ch = [x for x in authz["challenges"] if x["type"] == "http-01"][0]
            tokens[ch["token"]] = c.key_authorization(ch["token"])
            r = c.post(ch["url"], {})
            seed("challenge", "processing-%d.json" % i, r.json())
            authz = c.poll(url, ("valid", "invalid"))
            seed("authz", "valid-%d.json" % i, authz)
            for ch in authz["challenges"]:
                if ch.get("status") == "valid":
                    seed("challenge", "valid-%d.json" % i, ch)
        pem, key, order = c.issue_http01(names, lambda t, ka: tokens.__setitem__(t, ka))
        seed("order", "valid-order.json", order)
        seed("chain_pem", "chain.pem", pem)
        r = c.post(order["certificate"], None, accept="application/pem-certificate-chain")
        head = "%d\n" % r.status_code + "".join("%s: %s\n" % kv for kv in r.headers.items())
        seed("link", "cert-links.txt", "\n".join(r.headers.get("Link", "").split(", ")))
        seed("link", "cert-link-header.txt", r.headers.get("Link", ""))
        seed("response", "cert", head.encode() + b"\n" + r.content)
        # problem documents: a name the CA refuses, and a failed validation
        for target, ident in (("rejected", "bad_name..example"), ("ip", "999.1.1.1")):
            try:
                c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": ident}]})
            except AcmeError as e:
                seed("problem", target + ".json", e.problem)
        r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns",
                                                        "value": "fail.example.org"}]})
        order = r.json()
        authz = c.get(order["authorizations"][0])
        ch = [x for x in authz["challenges"] if x["type"] == "http-01"][0]
        c.post(ch["url"], {})  # no token published: validation fails
        authz = c.poll(order["authorizations"][0], ("valid", "invalid"))
        seed("authz", "invalid.json", authz)
        for x in authz["challenges"]:
            if x.get("error"):
                seed("challenge", "invalid.json", x)
                seed("problem", "validation.json", x["error"])
        seed("order", "invalid-order.json", c.get(r.headers["Location"]))
        # a raw error response (bad JWS)
        s = util.http_session()
        r = s.post(c.dir["newOrder"], data="{}", verify=pki.ca_file,
                   headers={"Content-Type": "application/jose+json"})
        response_seed("malformed", r)
        seed("problem", "malformed.json", r.json())
    finally:
        peb.stop()
        dns.stop()
        srv.shutdown()


if __name__ == "__main__":
    main()
