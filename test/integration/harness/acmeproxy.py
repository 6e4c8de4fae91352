# A test-only HTTPS proxy in front of pebble that adds what Debian's pebble 2.4
# lacks: ARI (RFC 9773 renewalInfo), profiles, and injected faults (429, 503, down).
#
# How it stays transparent: the client signs every JWS for the proxy's URL and
# pebble compares the JWS "url" with https://<Host header><path> of the request
# it receives (and builds every URL it hands out from the Host header too). So
# requests go upstream with the path and the client's Host header unchanged; the
# upstream base URL is still rewritten in answers in case one slips through.
# The JWS payload is signed, so the proxy never changes a request body: pebble
# (Go's encoding/json) ignores the unknown "profile" and "replaces" fields.
import base64
import datetime
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509

from . import util

UPSTREAM_TIMEOUT = 30.0
HANG_LIMIT = 120.0  # a "hang" connection is closed after this at the latest

# Response headers that describe one hop, or that BaseHTTPRequestHandler writes itself.
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length",
                "date", "server", "proxy-connection", "te", "trailer", "upgrade"}

PROBLEM_NS = "urn:ietf:params:acme:error:"


# ------------------------------------------------------------------ helpers
def b64u_decode(text):
    if isinstance(text, str):
        text = text.encode("ascii")
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rfc3339(when):
    """RFC 3339 UTC text for a datetime, a unix time, or text (returned as is)."""
    if isinstance(when, str):
        return when
    if isinstance(when, (int, float)):
        when = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ari_cert_id(cert):
    """RFC 9773 certificate identifier: base64url(AKI keyIdentifier) "."
    base64url(DER serial number content octets). cert: x509 object or PEM."""
    if isinstance(cert, (str, bytes)):
        if isinstance(cert, str):
            cert = cert.encode("ascii")
        cert = x509.load_pem_x509_certificate(cert)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    serial = cert.serial_number
    # DER INTEGER content: big-endian, with a leading zero octet if the top bit is set
    octets = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    return "%s.%s" % (b64u(aki.key_identifier), b64u(octets))


def parse_ari_cert_id(certid):
    """(key identifier bytes, serial int) of a certificate identifier; ValueError
    when it is malformed."""
    parts = certid.split(".")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError("certificate identifier must be <aki>.<serial>")
    for p in parts:
        if "=" in p or not all(c.isalnum() or c in "-_" for c in p):
            raise ValueError("certificate identifier is not base64url")
    try:
        aki = b64u_decode(parts[0])
        serial = b64u_decode(parts[1])
    except (ValueError, base64.binascii.Error) as exc:
        raise ValueError("certificate identifier is not base64url: %s" % exc)
    if serial[0] & 0x80:
        raise ValueError("serial number is negative")
    return aki, int.from_bytes(serial, "big")


def decode_jws(body):
    """(protected header dict, payload) of a flattened JWS body; payload is a
    dict, None for POST-as-GET, or the raw text if it is not JSON. Raises
    ValueError when the body is not a JWS."""
    jws = json.loads(body.decode("utf-8"))
    if not isinstance(jws, dict) or "protected" not in jws:
        raise ValueError("not a flattened JWS")
    protected = json.loads(b64u_decode(jws["protected"]).decode("utf-8"))
    raw = jws.get("payload", "")
    if raw == "":
        return protected, None
    text = b64u_decode(raw).decode("utf-8")
    try:
        return protected, json.loads(text)
    except ValueError:
        return protected, text


class Record:
    """One request the proxy answered (or dropped)."""

    __slots__ = ("method", "path", "status", "time", "mono", "injected", "kid")

    def __init__(self, method, path, status, when, mono, injected, kid):
        self.method, self.path, self.status = method, path, status
        self.time, self.mono, self.injected, self.kid = when, mono, injected, kid

    def __repr__(self):
        return "%s %s -> %s%s at %.3f" % (self.method, self.path, self.status,
                                          " (injected)" if self.injected else "", self.time)


class Injection:
    """A fault for the next `remaining` matching requests (None: until removed)."""

    def __init__(self, method, path_prefix, status, problem, retry_after, count,
                 body, content_type, headers, mode):
        self.method = method.upper() if method else None
        self.path_prefix = path_prefix
        self.status = status
        self.problem = problem
        self.retry_after = retry_after
        self.remaining = count
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.mode = mode  # None (answer), "close" or "hang"
        self.hits = 0

    def matches(self, method, path):
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method and self.method != method:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


class _Drop(Exception):
    """Close the client connection without an answer."""


# ------------------------------------------------------------------ HTTP plumbing
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "acmeproxy"
    timeout = 60  # idle keep-alive connections

    def _any(self):
        self.server.proxy._serve(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _any

    def log_message(self, fmt, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, proxy, ctx):
        self.proxy = proxy
        self.ctx = ctx
        self.conns = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def process_request_thread(self, request, client_address):
        # TLS is set up here, in the connection's own thread, so a client that
        # stalls in the handshake never blocks the accept loop.
        with self.conns_lock:
            self.conns.add(request)
        try:
            if self.proxy._down_mode(request):
                return
            try:
                request.settimeout(30)
                tls = self.ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
            with self.conns_lock:
                self.conns.add(tls)
            try:
                self.finish_request(tls, client_address)
            except Exception:  # noqa: BLE001 - a broken client must not end the server
                pass
            finally:
                with self.conns_lock:
                    self.conns.discard(tls)
                self.shutdown_request(tls)
        finally:
            with self.conns_lock:
                self.conns.discard(request)
            self.shutdown_request(request)

    def handle_error(self, request, client_address):
        pass

    def close_all(self):
        with self.conns_lock:
            conns = list(self.conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ------------------------------------------------------------------ the proxy
class AcmeProxy:
    """HTTPS proxy on 127.0.0.1 in front of one pebble.

    upstream_dir_url: pebble's directory URL; ca_file verifies pebble;
    cert_file/key_file: this listener's certificate (the session's listener
    PKI covers localhost and 127.0.0.1, so the same ca_file verifies both).
    mgmt_url: pebble's management API, used to answer ARI for certificates
    that have no configured answer. ari=False leaves renewalInfo out."""

    def __init__(self, upstream_dir_url, ca_file, cert_file, key_file, mgmt_url=None,
                 host="localhost", ari=True):
        up = urllib.parse.urlsplit(upstream_dir_url)
        if up.scheme != "https":
            raise ValueError("upstream must be https: %s" % upstream_dir_url)
        self.upstream_dir_url = upstream_dir_url
        self.upstream_base = "%s://%s" % (up.scheme, up.netloc)
        self.upstream_host = up.hostname
        self.upstream_port = up.port or 443
        self.dir_path = up.path or "/"
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.mgmt_url = mgmt_url
        self.host = host
        self.ari_enabled = ari
        self.port = util.free_port()
        self.base_url = "https://%s:%d" % (host, self.port)
        self.dir_url = self.base_url + self.dir_path
        self.ari_url = self.base_url + "/renewal-info"

        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self._up_ctx = ssl.create_default_context(cafile=ca_file)
        self._paths = {}  # directory key -> upstream path
        self._profiles = None
        self._ari_default = None
        self._ari = {}  # certid -> answer
        self._injections = []
        self._down = None
        self._down_release = threading.Event()
        self._order_extras = {}  # finalize path -> {"profile": .., "replaces": ..}
        self._requests = []
        self._orders = []
        self._ari_requests = []

    # -------------------------------------------------------------- lifecycle
    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        self._load_upstream_directory()
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), self, ctx)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="acmeproxy-%d" % self.port, daemon=True)
        self._thread.start()
        util.wait_for(lambda: util.port_accepts(self.port), 10, "acmeproxy on %d" % self.port)
        return self

    def stop(self):
        """Stop serving and close every open connection (idempotent)."""
        self._stopping.set()
        self._down_release.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_all()
        self._thread.join(10)

    def _load_upstream_directory(self):
        status, _, body = self._upstream("GET", self.dir_path, {}, b"")
        if status != 200:
            raise RuntimeError("upstream directory %s answered %d"
                               % (self.upstream_dir_url, status))
        directory = json.loads(body)
        paths = {}
        for key, value in directory.items():
            if isinstance(value, str) and value.startswith("https://"):
                paths[key] = urllib.parse.urlsplit(value).path
        with self._lock:
            self._paths = paths

    def path_of(self, endpoint):
        """The path of a directory entry (newOrder, newNonce, ...)."""
        with self._lock:
            return self._paths[endpoint]

    def path_url(self, endpoint):
        """The proxy's URL of a directory entry."""
        return self.base_url + self.path_of(endpoint)

    # -------------------------------------------------------------- configuration
    def set_profiles(self, profiles):
        """{name: description}: listed in meta.profiles, and a newOrder naming
        another profile gets invalidProfile. None: no profile support."""
        with self._lock:
            self._profiles = dict(profiles) if profiles is not None else None

    def set_ari(self, certid=None, start=None, end=None, explanation_url=None,
                retry_after=21600, status=200, body=None, problem=None):
        """Configure the answer to GET /renewal-info/<certid> (certid None:
        the default for identifiers without their own answer).

        start/end: datetime, RFC 3339 text, or a number of seconds from now
        (the window is computed at answer time, so negative means past).
        retry_after: seconds (None: no header). status/problem: an error
        answer instead of a window. body: raw answer text (for malformed data)."""
        answer = {"start": start, "end": end, "explanation_url": explanation_url,
                  "retry_after": retry_after, "status": status, "body": body,
                  "problem": problem}
        with self._lock:
            if certid is None:
                self._ari_default = answer
            else:
                self._ari[certid] = answer

    def clear_ari(self):
        with self._lock:
            self._ari_default = None
            self._ari.clear()

    def inject(self, method=None, path_prefix=None, status=429, problem=None,
               retry_after=None, count=1, endpoint=None, body=None,
               content_type=None, headers=None, mode=None):
        """Answer the next `count` matching requests (None: all until
        remove()/clear_injections()) with `status` and `problem` (a dict, sent
        as application/problem+json with a fresh Replay-Nonce from pebble), or
        with the raw `body`/`content_type`. endpoint: a directory key instead of
        path_prefix ("newOrder"). mode "close" drops the connection without an
        answer, "hang" holds it until set_down(None)/stop(). Returns the
        Injection (its .hits counts matches as they arrive, before they are
        answered and appear in requests)."""
        if endpoint is not None:
            path_prefix = self.path_of(endpoint)
        if problem is None and body is None and mode is None:
            problem = {"type": PROBLEM_NS + ("rateLimited" if status == 429 else "serverInternal"),
                       "detail": "injected by the test proxy"}
        inj = Injection(method, path_prefix, status, problem, retry_after, count,
                        body, content_type, headers, mode)
        with self._lock:
            self._injections.append(inj)
        return inj

    def remove(self, injection):
        with self._lock:
            if injection in self._injections:
                self._injections.remove(injection)

    def clear_injections(self):
        with self._lock:
            self._injections.clear()

    def set_down(self, mode="close"):
        """Simulate a dead CA: "close" ends every connection before TLS (and
        every further request on kept-alive ones), "hang" accepts and never
        answers; None: back to normal."""
        if mode not in (None, "close", "hang"):
            raise ValueError("mode must be None, 'close' or 'hang'")
        with self._lock:
            self._down = mode
            if mode == "hang":
                self._down_release.clear()
        if mode != "hang":
            self._down_release.set()

    # -------------------------------------------------------------- records
    @property
    def requests(self):
        """[Record(method, path, status, time, mono, injected, kid)], oldest first;
        status is None for a dropped connection."""
        with self._lock:
            return list(self._requests)

    @property
    def orders(self):
        """Decoded newOrder payloads (dicts), oldest first: every newOrder the
        proxy answered, also with an injected or invalidProfile error, except
        those pebble refused with one of its random badNonce errors."""
        with self._lock:
            return [json.loads(json.dumps(o)) for o in self._orders]

    @property
    def ari_requests(self):
        """Certificate identifiers asked for at /renewal-info/, oldest first."""
        with self._lock:
            return list(self._ari_requests)

    def requests_to(self, endpoint=None, path_prefix=None, method=None):
        prefix = self.path_of(endpoint) if endpoint else path_prefix
        return [r for r in self.requests
                if (prefix is None or r.path.startswith(prefix))
                and (method is None or r.method == method.upper())]

    def clear_records(self):
        with self._lock:
            self._requests.clear()
            self._orders.clear()
            self._ari_requests.clear()

    def failure_logs(self):
        lines = ["%s %-6s %-40s %s%s" % (
            time.strftime("%H:%M:%S", time.localtime(r.time)) + ".%03d" % int(r.time % 1 * 1000),
            r.method, r.path, r.status, " injected" if r.injected else "")
            for r in self.requests[-60:]]
        return [("acme proxy %s requests (tail)" % self.base_url, "\n".join(lines))]

    # -------------------------------------------------------------- serving
    def _down_mode(self, sock):
        """Called for each new connection before TLS: True if it was dropped."""
        with self._lock:
            mode = self._down
        if mode is None:
            return False
        self._record("CONNECT", "-", None, False, None)
        if mode == "hang":
            self._down_release.wait(HANG_LIMIT)
        return True

    def _record(self, method, path, status, injected, kid, when=None, mono=None):
        rec = Record(method, path, status, when or time.time(), mono or time.monotonic(),
                     injected, kid)
        with self._lock:
            self._requests.append(rec)

    def _serve(self, h):
        when, mono = time.time(), time.monotonic()
        method = h.command
        path = h.path
        kid = None
        try:
            body = self._read_body(h)
            with self._lock:
                down = self._down
            if down is not None:
                if down == "hang":
                    self._down_release.wait(HANG_LIMIT)
                raise _Drop()
            protected, payload = None, None
            if method == "POST" and body:
                try:
                    protected, payload = decode_jws(body)
                    kid = protected.get("kid")
                except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
                    pass
            try:
                status, headers, out, injected = self._answer(h, method, path, body, protected,
                                                              payload)
            except (_Drop, OSError):
                raise
            except Exception as exc:  # noqa: BLE001 - a proxy bug shows as a 500, not a hang
                status, injected = 500, False
                headers = [("Content-Type", "text/plain")]
                out = ("acmeproxy: %r\n" % exc).encode("utf-8")
        except _Drop:
            self._record(method, path, None, True, kid, when, mono)
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._record(method, path, status, injected, kid, when, mono)
        with self._lock:
            if (method == "POST" and path == self._paths.get("newOrder")
                    and isinstance(payload, dict)
                    # pebble rejects a share of good nonces: noise, not what the client did
                    and (injected or status != 400 or b"badNonce" not in out)):
                self._orders.append(payload)
        self._write(h, method, status, headers, out)

    def _read_body(self, h):
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length > 0 else b""

    def _write(self, h, method, status, headers, body):
        h.send_response(status)
        has_length = False
        for name, value in headers:
            if name.lower() == "content-length":
                has_length = True
            h.send_header(name, value)
        if status >= 200 and status not in (204, 304):
            if method == "HEAD":
                if not has_length:
                    h.send_header("Content-Length", "0")
            else:
                h.send_header("Content-Length", str(len(body)))
        if h.close_connection:
            h.send_header("Connection", "close")
        h.end_headers()
        if method != "HEAD" and body and status not in (204, 304):
            h.wfile.write(body)
        h.wfile.flush()

    def _answer(self, h, method, path, body, protected, payload):
        """(status, [(header, value)], body, injected)."""
        inj = self._take_injection(method, path)
        if inj is not None:
            return self._injected(inj) + (True,)
        if path.startswith("/renewal-info") and self.ari_enabled:
            return self._renewal_info(method, path) + (False,)
        with self._lock:
            new_order = self._paths.get("newOrder")
            profiles = self._profiles
        if method == "POST" and path == new_order and isinstance(payload, dict):
            profile = payload.get("profile")
            if profile is not None and profiles is not None and profile not in profiles:
                return self._problem(400, {
                    "type": PROBLEM_NS + "invalidProfile",
                    "detail": "profile %r is not one of %s" % (profile, sorted(profiles)),
                }) + (False,)
        return self._forward(h, method, path, body, payload) + (False,)

    def _take_injection(self, method, path):
        with self._lock:
            for inj in self._injections:
                if inj.matches(method, path):
                    if inj.mode == "hang":  # before the hit shows: a release may follow it at once
                        self._down_release.clear()
                    inj.hits += 1
                    if inj.remaining is not None:
                        inj.remaining -= 1
                    return inj
        return None

    def _injected(self, inj):
        if inj.mode == "close":
            raise _Drop()
        if inj.mode == "hang":
            self._down_release.wait(HANG_LIMIT)
            raise _Drop()
        headers = [("Replay-Nonce", self._fresh_nonce())]
        if inj.retry_after is not None:
            headers.append(("Retry-After", str(inj.retry_after)))
        headers += list(inj.headers.items())
        if inj.body is not None:
            body = inj.body if isinstance(inj.body, bytes) else inj.body.encode("utf-8")
            headers.append(("Content-Type", inj.content_type or "application/problem+json"))
        else:
            problem = dict(inj.problem)
            problem.setdefault("status", inj.status)
            body = json.dumps(problem).encode("utf-8")
            headers.append(("Content-Type", inj.content_type or "application/problem+json"))
        return inj.status, headers, body

    def _problem(self, status, problem, retry_after=None):
        problem = dict(problem)
        problem.setdefault("status", status)
        headers = [("Content-Type", "application/problem+json"),
                   ("Replay-Nonce", self._fresh_nonce())]
        if retry_after is not None:
            headers.append(("Retry-After", str(retry_after)))
        return status, headers, json.dumps(problem).encode("utf-8")

    def _fresh_nonce(self):
        try:
            _, headers, _ = self._upstream("HEAD", self.path_of("newNonce"), {}, b"")
            for name, value in headers:
                if name.lower() == "replay-nonce":
                    return value
        except (OSError, http.client.HTTPException, KeyError):
            pass
        # a nonce pebble does not know: the client gets badNonce and retries
        return b64u(b"acmeproxy-%f" % time.time())

    # -------------------------------------------------------------- ARI
    def _renewal_info(self, method, path):
        if method not in ("GET", "HEAD"):
            return 405, [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")], b"GET only\n"
        certid = path[len("/renewal-info"):].lstrip("/").split("?")[0]
        with self._lock:
            self._ari_requests.append(certid)
            answer = self._ari.get(certid) or self._ari_default
        if answer is None:
            try:
                parse_ari_cert_id(certid)
            except ValueError as exc:
                return self._plain_problem(400, "malformed", str(exc))
            answer = self._window_from_pebble(certid)
            if answer is None:
                return self._plain_problem(404, "malformed",
                                           "no certificate known for %s" % certid)
        headers = []
        if answer["retry_after"] is not None:
            headers.append(("Retry-After", str(answer["retry_after"])))
        if answer["body"] is not None:
            body = answer["body"]
            headers.append(("Content-Type", "application/json"))
            return answer["status"], headers, body if isinstance(body, bytes) else body.encode()
        if answer["problem"] is not None or answer["status"] >= 400:
            problem = dict(answer["problem"] or {"type": PROBLEM_NS + "serverInternal",
                                                 "detail": "injected ARI failure"})
            problem.setdefault("status", answer["status"])
            headers.append(("Content-Type", "application/problem+json"))
            return answer["status"], headers, json.dumps(problem).encode("utf-8")
        now = time.time()
        start, end = answer["start"], answer["end"]
        if start is None:
            start = 0
        if end is None:
            end = 3600 if isinstance(start, (int, float)) else start
        doc = {"suggestedWindow": {
            "start": rfc3339(now + start if isinstance(start, (int, float)) else start),
            "end": rfc3339(now + end if isinstance(end, (int, float)) else end)}}
        if answer["explanation_url"]:
            doc["explanationURL"] = answer["explanation_url"]
        headers.append(("Content-Type", "application/json"))
        return answer["status"], headers, json.dumps(doc).encode("utf-8")

    def _plain_problem(self, status, kind, detail):
        body = json.dumps({"type": PROBLEM_NS + kind, "detail": detail, "status": status})
        return status, [("Content-Type", "application/problem+json")], body.encode("utf-8")

    def _window_from_pebble(self, certid):
        """A window over 2/3 of the lifetime of the certificate pebble issued
        with this serial (what Let's Encrypt suggests), or None."""
        if not self.mgmt_url:
            return None
        _, serial = parse_ari_cert_id(certid)
        mgmt = urllib.parse.urlsplit(self.mgmt_url)
        try:
            conn = http.client.HTTPSConnection(mgmt.hostname, mgmt.port, context=self._up_ctx,
                                               timeout=UPSTREAM_TIMEOUT)
            try:
                conn.request("GET", "/cert-status-by-serial/%x" % serial)
                r = conn.getresponse()
                data = r.read()
            finally:
                conn.close()
            if r.status != 200:
                return None
            cert = x509.load_pem_x509_certificate(json.loads(data)["Certificate"].encode())
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            return None
        if ari_cert_id(cert) != certid:
            return None
        nb = cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)
        na = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
        life = na - nb
        return {"start": nb + life * 2 / 3 - life / 20, "end": nb + life * 2 / 3 + life / 20,
                "explanation_url": None, "retry_after": 21600, "status": 200, "body": None,
                "problem": None}

    # -------------------------------------------------------------- forwarding
    def _upstream(self, method, path, headers, body):
        conn = http.client.HTTPSConnection(self.upstream_host, self.upstream_port,
                                           context=self._up_ctx, timeout=UPSTREAM_TIMEOUT)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            r = conn.getresponse()
            data = r.read()
            return r.status, r.getheaders(), data
        finally:
            conn.close()

    def _rewrite(self, text):
        up_port = self.upstream_port
        for base in (self.upstream_base, "https://127.0.0.1:%d" % up_port,
                     "https://localhost:%d" % up_port):
            text = text.replace(base, self.base_url)
        return text

    def _forward(self, h, method, path, body, payload):
        headers = {}
        for name, value in h.headers.items():
            low = name.lower()
            if low in _HOP_HEADERS or low == "accept-encoding":
                continue
            headers[name] = value
        # pebble checks the JWS url against https://<Host><path>: keep the client's Host
        headers.setdefault("Host", "%s:%d" % (self.host, self.port))
        try:
            status, up_headers, data = self._upstream(method, path, headers, body)
        except (OSError, http.client.HTTPException) as exc:
            return 502, [("Content-Type", "text/plain")], ("upstream: %r\n" % exc).encode()
        out_headers = [(n, self._rewrite(v)) for n, v in up_headers
                       if n.lower() not in _HOP_HEADERS]
        ctype = dict((n.lower(), v) for n, v in up_headers).get("content-type", "")
        if "json" in ctype or "text" in ctype or "pem" in ctype:
            data = self._rewrite(data.decode("utf-8")).encode("utf-8")
        if method == "GET" and path == self.dir_path and status == 200:
            data = self._directory(data)
        elif "json" in ctype and status < 300:
            data = self._order_extras_for(method, path, payload, data)
        return status, out_headers, data

    def _directory(self, data):
        directory = json.loads(data)
        with self._lock:
            profiles = self._profiles
        if self.ari_enabled:
            directory["renewalInfo"] = self.ari_url
        if profiles is not None:
            directory.setdefault("meta", {})["profiles"] = dict(profiles)
        return json.dumps(directory, indent=2).encode("utf-8")

    def _order_extras_for(self, method, path, payload, data):
        """Echo "profile" and "replaces" in order objects, as a CA with those
        features does (pebble 2.4 drops them)."""
        try:
            obj = json.loads(data)
        except ValueError:
            return data
        if not isinstance(obj, dict) or "finalize" not in obj:
            return data
        fin = urllib.parse.urlsplit(obj["finalize"]).path
        with self._lock:
            new_order = method == "POST" and path == self._paths.get("newOrder")
            if new_order and isinstance(payload, dict):
                extras = {}
                if payload.get("profile") is not None and self._profiles is not None:
                    extras["profile"] = payload["profile"]
                if payload.get("replaces") is not None and self.ari_enabled:
                    extras["replaces"] = payload["replaces"]
                self._order_extras[fin] = extras
            extras = self._order_extras.get(fin)
        if not extras:
            return data
        obj.update(extras)
        return json.dumps(obj, indent=2).encode("utf-8")
