# What operators coming from certbot or mod_md expect (issue 26): the module's
# own log level, an outbound proxy to the CA, EAB from a root-only file, and
# the redirect to https with HSTS. Real apache2 and real pebble on loopback.
import json
import os
import re
import select
import socket
import ssl
import threading
import types

from harness import util
from harness.httpd import served_by_ca
from harness.pki import ListenerPKI

ISSUE_TIMEOUT = 90.0


def managed_site(httpd, ca, names, extra_global="", section=""):
    """Global settings for `ca`, one ManagedDomain (a section when `section`
    is given) and an http and an https vhost for its names."""
    text = httpd.acme_config(ca) + "ManagedRetryDelay 2s\n" + extra_global
    if section:
        text += "<ManagedDomain %s>\n%s</ManagedDomain>\n" % (" ".join(names), section)
    else:
        text += "ManagedDomain %s\n" % " ".join(names)
    text += httpd.vhost(names[0], tls=True, aliases=names[1:])
    text += httpd.vhost(names[0], tls=False, aliases=names[1:])
    return text


def wait_issued(httpd, name):
    return httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT,
                          "the CA-issued certificate served for %s" % name)


# ------------------------------------------------------------------ LogLevel acme:
def test_core_info_lines_follow_the_modules_own_level(httpd, pebble):
    # Debian's default is "LogLevel warn": acme:info must still show the
    # core's info lines (ACME0404 "order ... created" comes from the core).
    name = "loglevel-on.operators.test"
    httpd.write_config(managed_site(httpd, pebble, [name]) + "LogLevel warn acme:info\n")
    httpd.start()
    wait_issued(httpd, name)
    log = httpd.error_log()
    assert re.search(r"\[acme:info\] .*ACME0404: %s: order \S+ created" % re.escape(name),
                     log), log
    assert "[core:info]" not in log  # the global level is warn


def test_core_info_lines_hidden_by_acme_warn(httpd, pebble):
    name = "loglevel-off.operators.test"
    httpd.write_config(managed_site(httpd, pebble, [name]) + "LogLevel info acme:warn\n")
    httpd.start()
    wait_issued(httpd, name)
    log = httpd.error_log()
    assert "ACME0404" not in log, log
    assert "[acme:info]" not in log and "[acme:debug]" not in log
    assert "[core:info]" in log or "[mpm_event:info]" in log or "[ssl:info]" in log, log


# ------------------------------------------------------------------ docs
SRC_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def section_directives_in_code():
    """Directives whose setter accepts a <ManagedDomain> section
    (check_context(cmd, 1)), from mod_acme_config.c's table."""
    with open(os.path.join(SRC_ROOT, "mod_acme", "mod_acme_config.c")) as f:
        src = f.read()
    table = dict((fn, name) for name, fn in
                 re.findall(r'AP_INIT_\w+\("(Managed\w+)", (cmd_\w+)', src))
    allowed = set()
    for fn, name in table.items():
        body = re.search(r"\nstatic const char \*%s\(.*?\n}\n" % fn, src, re.S)
        assert body, fn
        if "check_context(cmd, 1)" in body.group(0):
            allowed.add(name)
    return allowed


def test_directives_md_lists_every_directive_a_section_takes():
    with open(os.path.join(SRC_ROOT, "docs", "directives.md")) as f:
        doc = f.read()
    para = re.search(r"with settings for this domain only inside:(.*?)Server-wide directives",
                     doc, re.S).group(1)
    listed = set(re.findall(r"`(Managed\w+)`", para))
    code = section_directives_in_code()
    assert len(code) > 10
    assert listed == code, ("missing from the docs: %s; not allowed in a section: %s"
                            % (sorted(code - listed), sorted(listed - code)))


# ------------------------------------------------------------------ ManagedHttpProxy
class ConnectProxy:
    """A CONNECT proxy on loopback (threaded; TLS on its listener when given a
    certificate): it records every target asked for, tunnels those in
    `routes` ("host:port" -> (address, port)) and refuses the rest with 403."""

    def __init__(self, routes, cert_file=None, key_file=None):
        self.routes = dict(routes)
        self.connects = []
        self.refused = []
        self.lock = threading.Lock()
        self.ctx = None
        if cert_file:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert_file, key_file)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.open = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        upstream = None
        try:
            conn.settimeout(10)
            if self.ctx:
                conn = self.ctx.wrap_socket(conn, server_side=True)
            with self.lock:
                self.open.add(conn)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target = (line.split() + ["", ""])[:2]
            route = self.routes.get(target) if method == "CONNECT" else None
            with self.lock:
                (self.connects if route else self.refused).append(line)
            if not route:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = socket.create_connection(route, timeout=10)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            conn.settimeout(None)
            upstream.settimeout(None)
            self._pump(conn, upstream)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self.lock:
                self.open.discard(conn)
            for s in (conn, upstream):
                if s:
                    s.close()

    def _pump(self, client, upstream):
        """Both directions in one thread: an SSL socket is not for two threads."""
        while not self.stopped:
            ready = [client] if isinstance(client, ssl.SSLSocket) and client.pending() else []
            if not ready:
                ready, _, _ = select.select([client, upstream], [], [], 1.0)
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (upstream if s is client else client).sendall(data)

    def stop(self):
        self.stopped = True
        self.sock.close()
        with self.lock:
            for conn in list(self.open):
                conn.close()


def unreachable_ca(pebble):
    """pebble under a URL that nothing answers on loopback (a free port):
    only a proxy that maps it to pebble reaches the CA. pebble builds its
    URLs from the Host header, so every later request names it too."""
    dead = util.free_port()
    target = "localhost:%d" % dead
    ca = types.SimpleNamespace(dir_url="https://%s/dir" % target, ca_file=pebble.ca_file)
    return ca, {target: ("127.0.0.1", pebble.port)}


def _validation_refused(httpd, name):
    try:
        with open(os.path.join(httpd.store_dir, "jobs", name, "job.json")) as f:
            problem = json.load(f).get("last-error", {}).get("problem", "")
    except (OSError, ValueError):
        return False
    return problem.rsplit(":", 1)[-1] in ("unauthorized", "incorrectResponse", "dns",
                                          "connection", "tls")


def test_ca_reached_only_through_an_https_proxy_with_its_own_ca(httpd, pebble, dns, test_dir,
                                                               build_dir):
    name = "proxy.operators.test"
    ca, routes = unreachable_ca(pebble)
    # the proxy's certificate comes from a root of its own: pebble's CA file
    # (ManagedCACertificateFile) does not vouch for it, the proxy's CA file does
    os.makedirs(os.path.join(test_dir, "proxy-pki"))
    pki = ListenerPKI(os.path.join(test_dir, "proxy-pki")).generate()
    assert pki.ca_file != pebble.ca_file
    proxy = ConnectProxy(routes, pki.cert_file, pki.key_file)
    try:
        # without the proxy the CA cannot be reached
        httpd.write_config(managed_site(httpd, ca, [name]))
        httpd.expect_errors(r"ACME\d+: .*%s" % re.escape(name))
        httpd.start()
        httpd.wait_for(lambda: re.search(r"%s.*(onnect|refused)" % re.escape(ca.dir_url.split("/dir")[0]),
                                         httpd.error_log()), ISSUE_TIMEOUT,
                       "the failed connection to the CA in the log")
        assert not served_by_ca(httpd, name)
        assert proxy.connects == [] and proxy.refused == []
        # the same config with ManagedHttpProxy: every request goes through it
        # and the pre-flight, on, looks at this server directly: through the
        # proxy it would be refused (and recorded). It runs after a refused
        # validation: first the CA finds nothing where the name's DNS points.
        dns.add_a(name, "127.0.0.3")
        httpd.write_config(managed_site(
            httpd, ca, [name], extra_global="ManagedHttpProxy https://localhost:%d %s\n"
            "ManagedPreflight 127.0.0.1 80:%d 443:%d\n"
            % (proxy.port, pki.ca_file, httpd.http_port, httpd.tls_port)))
        httpd.graceful()
        httpd.wait_for(lambda: _validation_refused(httpd, name), ISSUE_TIMEOUT,
                       "the CA's refused validation")
        dns.clear_a(name)  # pebble's default: 127.0.0.1, this server
        wait_issued(httpd, name)
        assert proxy.connects and proxy.refused == [], (proxy.connects, proxy.refused)
        assert set(proxy.connects) == {"CONNECT %s HTTP/1.1" % t for t in routes}
        assert re.search(r"ACME0431: %s: pre-flight passed" % re.escape(name), httpd.error_log())
        # acmectl -f takes the same way to the CA: revoke works only through it
        before = len(proxy.connects)
        rc, out = acmectl(build_dir, "-f", httpd.conf_file, "revoke", name)
        assert rc == 0, out
        assert len(proxy.connects) > before and proxy.refused == []
    finally:
        proxy.stop()


def test_http_proxy_per_section_and_none(httpd, pebble):
    # server-wide: a plain http:// proxy; one section opts out with "none"
    # and talks to pebble directly: the proxy would refuse (and record) it
    via, direct = "via-proxy.operators.test", "direct.operators.test"
    ca, routes = unreachable_ca(pebble)
    proxy = ConnectProxy(routes)
    try:
        text = managed_site(httpd, ca, [via],
                            extra_global="ManagedHttpProxy http://127.0.0.1:%d\n" % proxy.port)
        text += ("<ManagedDomain %s>\n    ManagedCA %s\n    ManagedHttpProxy none\n"
                 "</ManagedDomain>\n" % (direct, pebble.dir_url))
        text += httpd.vhost(direct, tls=True) + httpd.vhost(direct, tls=False)
        httpd.write_config(text)
        httpd.start()
        wait_issued(httpd, via)
        wait_issued(httpd, direct)
        assert proxy.connects and proxy.refused == [], (proxy.connects, proxy.refused)
    finally:
        proxy.stop()


def test_http_proxy_config_errors(httpd, pebble, test_dir):
    ca_file = os.path.join(test_dir, "proxy-ca.pem")
    with open(ca_file, "w") as f:
        f.write(open(pebble.ca_file).read())
    cases = [
        ("ManagedHttpProxy proxy.example:3128",
         "'proxy.example:3128' is not a proxy URL: write http://HOST:PORT or https://HOST:PORT"),
        ("ManagedHttpProxy http://user:s3cret@proxy.example:3128/x", "user@proxy.example"),
        ("ManagedHttpProxy http://proxy.example:3128 %s" % ca_file,
         "a CA file only applies to an https:// proxy"),
        ("ManagedHttpProxy https://proxy.example:3128 /nonexistent/ca.pem",
         "ManagedHttpProxy: '/nonexistent/ca.pem' is not a readable file"),
    ]
    for line, message in cases:
        httpd.write_config(managed_site(httpd, pebble, ["cfg.operators.test"],
                                        extra_global=line + "\n"))
        rc, out = httpd.check_config()
        assert rc != 0 and message in out, (line, out)
        assert "s3cret" not in out
    httpd.write_config(managed_site(httpd, pebble, ["cfg.operators.test"],
                                    extra_global="ManagedHttpProxy https://proxy.example:3128 %s\n"
                                    % ca_file))
    assert httpd.check_config()[0] == 0


# ------------------------------------------------------------------ ManagedEAB file:
EAB_KID = "kid-file"
EAB_HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"


def acmectl(build_dir, *args):
    import subprocess
    proc = subprocess.run([os.path.join(build_dir, "tools", "acmectl")] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C"})
    return proc.returncode, proc.stdout.decode(errors="replace")


def test_eab_from_a_root_only_file(httpd, pebble_factory, test_dir, build_dir):
    eab = pebble_factory(config={"externalAccountBindingRequired": True,
                                 "externalAccountMACKeys": {EAB_KID: EAB_HMAC}})
    path = os.path.join(test_dir, "eab.json")
    with open(path, "w") as f:
        f.write('{"kid": "%s", "hmac": "%s"}\n' % (EAB_KID, EAB_HMAC))
    os.chmod(path, 0o600)
    name = "eab-file.operators.test"
    httpd.write_config(managed_site(httpd, eab, [name],
                                    extra_global="ManagedEAB file:%s\n" % path))
    httpd.start()
    wait_issued(httpd, name)
    assert eab.count_accounts() == 1
    accounts = os.listdir(os.path.join(httpd.store_dir, "accounts"))
    assert len(accounts) == 1 and accounts[0].endswith("-eab-" + EAB_KID), accounts
    # acmectl reads the same file and finds the account bound to it
    rc, out = acmectl(build_dir, "-f", httpd.conf_file, "account", "show")
    assert rc == 0 and "EAB key id:      %s" % EAB_KID in out, out
    assert EAB_HMAC not in httpd.error_log() and EAB_HMAC not in out
    httpd.stop()

    # readable by others: apachectl -t and acmectl refuse it and say what to fix
    os.chmod(path, 0o644)
    rc, out = httpd.check_config()
    assert rc != 0, out
    assert ("ACME1701: ManagedEAB file:%s: the EAB file %s can be read or written by group or "
            "others: chmod 0400 %s" % (path, path, path)) in out, out
    rc, out = acmectl(build_dir, "-f", httpd.conf_file, "account", "show")
    assert rc == 1 and "can be read or written by group or others" in out, out
    # not root's
    os.chmod(path, 0o600)
    os.chown(path, 65534, 65534)
    rc, out = httpd.check_config()
    assert rc != 0 and "is not owned by root: chown root %s" % path in out, out
    os.chown(path, 0, 0)
    # not the JSON object it must be; the secret is never echoed
    with open(path, "w") as f:
        f.write("%s %s\n" % (EAB_KID, EAB_HMAC))
    rc, out = httpd.check_config()
    assert rc != 0 and "is not a JSON object" in out and EAB_HMAC[:8] not in out, out


# ------------------------------------------------------------------ ManagedRequireHttps
def request(httpd, method, path, host, tls=False, body=None):
    """(status, headers) of one request, redirects not followed."""
    import http.client
    port = httpd.tls_port if tls else httpd.http_port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        if tls:
            conn.sock = httpd._tls_socket(host, port)
        conn.request(method, path, body=body, headers={"Host": host})
        r = conn.getresponse()
        r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders())
    finally:
        conn.close()


def https_site(httpd, names_and_settings):
    text = ""
    for name, settings in names_and_settings:
        text += "<ManagedDomain %s>\n%s</ManagedDomain>\n" % (name, settings)
        text += httpd.vhost(name, tls=True) + httpd.vhost(name, tls=False)
    return text


def test_require_https_modes_exemption_and_hsts(httpd, pebble):
    temp, perm, perm600, off, pending = ("temp.https.test", "perm.https.test",
                                         "perm600.https.test", "off.https.test",
                                         "pending.https.test")
    # the CA's 443 is not mapped here: clients reach the SSL vhost on its own
    # port, which the redirect names
    text = httpd.acme_config(pebble, port_map=False)
    text += "ManagedPortMap 80:%d 443:-\nManagedRetryDelay 2s\n" % httpd.http_port
    text += "ManagedRequireHttps permanent\n"
    text += https_site(httpd, [
        (temp, "ManagedRequireHttps temporary\n"),
        (perm, ""),
        (perm600, "ManagedRequireHttps permanent max-age=600\n"),
        (off, "ManagedRequireHttps off\n"),
        # no challenge can work: it keeps its temporary certificate
        (pending, "ManagedChallenges dns-01\n"),
    ])
    httpd.write_config(text)
    httpd.expect_errors(r"%s.*(no challenge|dns-01)" % re.escape(pending))
    httpd.start()
    for name in (temp, perm, perm600, off):
        wait_issued(httpd, name)
    base = "https://%%s:%d" % httpd.tls_port

    # temporary: 302 for GET and HEAD, 307 for the others; path and query kept
    for method, code in (("GET", 302), ("HEAD", 302), ("POST", 307), ("PUT", 307)):
        status, hdrs = request(httpd, method, "/a/b?c=1&d", temp, body=b"x" if method in
                               ("POST", "PUT") else None)
        assert (status, hdrs.get("location")) == (code, base % temp + "/a/b?c=1&d"), method
    # permanent: 301 and 308
    for method, code in (("GET", 301), ("HEAD", 301), ("POST", 308), ("DELETE", 308)):
        status, hdrs = request(httpd, method, "/", perm)
        assert (status, hdrs.get("location")) == (code, base % perm + "/"), method
    # the CA's challenge requests are never redirected
    for name in (temp, perm):
        status, hdrs = request(httpd, "GET", "/.well-known/acme-challenge/unknownToken1", name)
        assert status == 404 and "location" not in hdrs
    # off, and no redirect while the temporary certificate is served
    for name in (off, pending):
        status, hdrs = request(httpd, "GET", "/index.html", name)
        assert status == 200 and "location" not in hdrs, (name, status, hdrs)
    assert not served_by_ca(httpd, pending)

    # HSTS only with permanent, on https answers, with its max-age
    hsts = {}
    for name in (temp, perm, perm600, off, pending):
        status, hdrs = request(httpd, "GET", "/index.html", name, tls=True)
        assert status == (503 if name == pending else 200), (name, status)
        hsts[name] = hdrs.get("strict-transport-security")
    assert hsts == {temp: None, perm: "max-age=15768000", perm600: "max-age=600", off: None,
                    pending: None}, hsts
    # never on plain http
    assert "strict-transport-security" not in request(httpd, "GET", "/", off)[1]


def test_require_https_redirects_to_443_when_that_is_mapped_here(httpd, pebble):
    # ManagedPortMap 443:PORT: the world's 443 arrives at this vhost's port,
    # so the redirect names no port
    name = "mapped.https.test"
    httpd.write_config(managed_site(httpd, pebble, [name],
                                    extra_global="ManagedRequireHttps temporary\n"))
    httpd.start()
    wait_issued(httpd, name)
    status, hdrs = request(httpd, "GET", "/x", name)
    assert (status, hdrs.get("location")) == (302, "https://%s/x" % name)
    # an alias of the domain is redirected under its own name
    status, hdrs = request(httpd, "GET", "/", "MAPPED.https.test")
    assert (status, hdrs.get("location")) == (302, "https://%s/" % name)


def test_require_https_config_errors(httpd, pebble):
    cases = [
        ("ManagedRequireHttps always", "'always' is not off, temporary or permanent"),
        ("ManagedRequireHttps temporary max-age=60", "'max-age=60' only goes with permanent"),
        ("ManagedRequireHttps permanent max-age=-1", "is not max-age=SECONDS (0 to 315360000)"),
        ("ManagedRequireHttps permanent maxage=60", "is not max-age=SECONDS"),
        ("ManagedRequireHttps permanent max-age=315360001", "is not max-age=SECONDS"),
    ]
    for line, message in cases:
        httpd.write_config(managed_site(httpd, pebble, ["cfg.https.test"],
                                        extra_global=line + "\n"))
        rc, out = httpd.check_config()
        assert rc != 0 and message in out, (line, out)
    httpd.write_config(managed_site(httpd, pebble, ["cfg.https.test"],
                                    section="ManagedRequireHttps permanent max-age=0\n"))
    assert httpd.check_config()[0] == 0


def test_require_https_for_a_name_under_a_wildcard(httpd, pebble, pebble_dns, test_dir):
    # a name the certificate covers only through *.wild-https.test is
    # redirected too (dns-01 through a hook that sets challtestsrv's TXT)
    hook = os.path.join(test_dir, "hook.sh")
    with open(hook, "w") as f:
        f.write("""#!/bin/sh
case "$1" in
  set) curl -sf -X POST -d "{\\"host\\":\\"_acme-challenge.$2.\\",\\"value\\":\\"$3\\"}" %(m)s/set-txt ;;
  unset) curl -sf -X POST -d "{\\"host\\":\\"_acme-challenge.$2.\\"}" %(m)s/clear-txt ;;
  *) exit 2 ;;
esac
""" % {"m": pebble_dns.mgmt_url})
    os.chmod(hook, 0o755)
    names = ["wild-https.test", "*.wild-https.test"]
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 1s\nManagedRequireHttps permanent\n"
    text += "ManagedChallenges dns-01 http-01\nManagedDNSHook %s\n" % hook
    text += "ManagedDomain %s\n" % " ".join(names)
    text += httpd.vhost(names[0], tls=True, aliases=names[1:])
    text += httpd.vhost(names[0], tls=False, aliases=names[1:])
    httpd.write_config(text)
    httpd.start()
    wait_issued(httpd, "www.wild-https.test")
    status, hdrs = request(httpd, "GET", "/", "www.wild-https.test")
    assert (status, hdrs.get("location")) == (301, "https://www.wild-https.test/")
    # one label only: a.b.wild-https.test is not under the wildcard
    assert "location" not in request(httpd, "GET", "/index.html", "a.b.wild-https.test")[1]
    hsts = request(httpd, "GET", "/index.html", "www.wild-https.test", tls=True)[1]
    assert hsts.get("strict-transport-security") == "max-age=15768000"
