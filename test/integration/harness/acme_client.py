# A small, independent ACME (RFC 8555) client used only by the harness: it
# proves the test plumbing (pebble -> mock DNS -> test httpd) on its own.
import base64
import hashlib
import json
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from . import util


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class AcmeError(Exception):
    def __init__(self, status, problem):
        self.status = status
        self.problem = problem if isinstance(problem, dict) else {"detail": str(problem)}
        super().__init__("ACME %d %s: %s" % (status, self.problem.get("type"),
                                             self.problem.get("detail")))


class AcmeClient:
    """ES256 account, one identifier type (dns), http-01 only."""

    def __init__(self, dir_url, ca_file, timeout=10.0):
        self.session = util.http_session()
        self.session.verify = ca_file
        self.timeout = timeout
        self.dir = self.session.get(dir_url, timeout=timeout).json()
        self.key = ec.generate_private_key(ec.SECP256R1())
        nums = self.key.public_key().public_numbers()
        self.jwk = {"crv": "P-256", "kty": "EC",
                    "x": b64u(nums.x.to_bytes(32, "big")),
                    "y": b64u(nums.y.to_bytes(32, "big"))}
        canon = json.dumps(self.jwk, sort_keys=True, separators=(",", ":"))
        self.thumbprint = b64u(hashlib.sha256(canon.encode("ascii")).digest())
        self.kid = None
        self.nonce = None

    # ------------------------------------------------------------ transport
    def _new_nonce(self):
        r = self.session.head(self.dir["newNonce"], timeout=self.timeout)
        return r.headers["Replay-Nonce"]

    def _jws(self, url, payload):
        protected = {"alg": "ES256", "nonce": self.nonce or self._new_nonce(), "url": url}
        self.nonce = None
        if self.kid:
            protected["kid"] = self.kid
        else:
            protected["jwk"] = self.jwk
        p64 = b64u(json.dumps(protected).encode("utf-8"))
        # POST-as-GET sends an empty payload, not "{}"
        pl64 = "" if payload is None else b64u(json.dumps(payload).encode("utf-8"))
        der = self.key.sign(("%s.%s" % (p64, pl64)).encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return {"protected": p64, "payload": pl64, "signature": b64u(sig)}

    def post(self, url, payload, accept=None, tries=10):
        for _ in range(tries):
            headers = {"Content-Type": "application/jose+json"}
            if accept:
                headers["Accept"] = accept
            r = self.session.post(url, data=json.dumps(self._jws(url, payload)),
                                  headers=headers, timeout=self.timeout)
            self.nonce = r.headers.get("Replay-Nonce")
            if r.status_code < 400:
                return r
            try:
                problem = r.json()
            except ValueError:
                problem = {"detail": r.text}
            # pebble rejects a share of good nonces on purpose
            if problem.get("type") != "urn:ietf:params:acme:error:badNonce":
                raise AcmeError(r.status_code, problem)
        raise AcmeError(r.status_code, problem)

    def get(self, url):
        return self.post(url, None).json()

    # ------------------------------------------------------------ flow
    def register(self):
        r = self.post(self.dir["newAccount"], {"termsOfServiceAgreed": True})
        self.kid = r.headers["Location"]
        return self.kid

    def new_order(self, names):
        r = self.post(self.dir["newOrder"],
                      {"identifiers": [{"type": "dns", "value": n} for n in names]})
        order = r.json()
        order["url"] = r.headers["Location"]
        return order

    def key_authorization(self, token):
        return "%s.%s" % (token, self.thumbprint)

    def poll(self, url, done, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get(url)
            if obj.get("status") in done:
                return obj
            if time.monotonic() > deadline:
                raise TimeoutError("%s still %s" % (url, obj.get("status")))
            time.sleep(0.2)

    def issue_http01(self, names, publish, timeout=60.0):
        """Get a certificate for names; publish(token, key_authorization) must
        make http://<name>/.well-known/acme-challenge/<token> answer it.
        Returns (PEM chain text, private key, order)."""
        if not self.kid:
            self.register()
        order = self.new_order(names)
        for authz_url in order["authorizations"]:
            authz = self.get(authz_url)
            if authz["status"] == "valid":  # pebble reuses valid authzs
                continue
            chall = [c for c in authz["challenges"] if c["type"] == "http-01"][0]
            publish(chall["token"], self.key_authorization(chall["token"]))
            self.post(chall["url"], {})
            authz = self.poll(authz_url, ("valid", "invalid"), timeout)
            if authz["status"] != "valid":
                raise AcmeError(403, {"type": "authz invalid", "detail": json.dumps(authz)})
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                              critical=False)
               .sign(key, hashes.SHA256()))
        self.poll(order["url"], ("ready", "valid", "invalid"), timeout)
        self.post(order["finalize"],
                  {"csr": b64u(csr.public_bytes(serialization.Encoding.DER))})
        order = self.poll(order["url"], ("valid", "invalid"), timeout)
        if order["status"] != "valid":
            raise AcmeError(403, {"type": "order invalid", "detail": json.dumps(order)})
        pem = self.post(order["certificate"], None,
                        accept="application/pem-certificate-chain").text
        return pem, key, order
