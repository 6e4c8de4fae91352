#!/usr/bin/python3
"""demo.py: mod_acme's main job on loopback. Starts a local ACME CA (Debian's
pebble, with pebble-challtestsrv as its DNS) and Debian's apache2 with the
built module and two managed domains, then shows the certificates being
issued, activated by the module's own graceful restart, and served."""
import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(top, "test", "integration"))

from harness import util  # noqa: E402
from harness.httpd import Httpd  # noqa: E402
from harness.pebble import Pebble, PebbleDNS  # noqa: E402
from harness.pki import ListenerPKI, cert_issuer_cn, cert_sans  # noqa: E402

DOMAINS = [["example.org", "www.example.org"], ["shop.example.org"]]
TIMEOUT = 120


def say(msg=""):
    print(msg, flush=True)


def served(httpd, host):
    try:
        cert = httpd.get_cert(host)
    except (OSError, ssl.SSLError):
        return None
    return None if "mod_acme fallback" in (cert_issuer_cn(cert) or "") else cert


def verifies(httpd, host, roots_pem):
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(roots_pem)
    try:
        ctx = ssl.create_default_context(cafile=f.name)
        with socket.create_connection(("127.0.0.1", httpd.tls_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host):
                return True
    except ssl.SSLError as e:
        say("    chain does NOT verify: %s" % e)
        return False
    finally:
        os.unlink(f.name)


def main():
    build = os.environ.get("MOD_ACME_BUILD_DIR", os.path.join(top, "_build"))
    module = os.path.join(build, ".libs", "mod_acme.so")
    work = os.path.join(top, "demo-run")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.chmod(work, 0o755)
    ok = True
    dns = pebble = httpd = None
    try:
        say("== starting the local ACME CA (pebble) and its mock DNS on 127.0.0.1")
        dns = PebbleDNS(os.path.join(work, "dns"))
        os.makedirs(dns.workdir, exist_ok=True)
        dns.start()
        pki_dir = os.path.join(work, "pki")
        os.makedirs(pki_dir)
        os.chmod(pki_dir, 0o755)
        pki = ListenerPKI(pki_dir).generate()
        http_port, tls_port = util.free_port(), util.free_port()
        pebble = Pebble(work, "pebble", pki, dns, http_port, tls_port)
        pebble.start()
        say("   CA directory: %s" % pebble.dir_url)

        say("== starting apache2 with mod_acme (http on %d, https on %d)" % (http_port, tls_port))
        httpd = Httpd(os.path.join(work, "httpd"), http_port, tls_port, module_path=module)
        conf = httpd.acme_config(pebble)
        conf += ("<Location /server-status>\n    SetHandler server-status\n</Location>\n"
                 "<Location /.acme-status>\n    SetHandler acme-status\n</Location>\n"
                 "<Location /metrics>\n    SetHandler acme-metrics\n</Location>\n")
        for names in DOMAINS:
            conf += "ManagedDomain %s\n" % " ".join(names)
            conf += httpd.vhost(names[0], tls=True, aliases=names[1:])
        httpd.write_config(conf)
        say("   the Managed* lines of its httpd.conf:")
        for line in conf.splitlines():
            if line.startswith("Managed"):
                say("     " + line)
        t0 = time.monotonic()
        httpd.start()
        for names in DOMAINS:
            cert = httpd.get_cert(names[0])
            say("   at start, %s serves: %s" % (names[0], cert_issuer_cn(cert)))
        r = httpd.https_get("/", DOMAINS[0][0])
        say("   and answers requests with: %d %s" % (r.status, r.text.split("<h1>")[-1].split("</h1>")[0] if r.status == 503 else ""))

        say("== waiting for the certificates (no cron, no manual restart)")
        roots = None
        for names in DOMAINS:
            try:
                cert = util.wait_for(lambda: served(httpd, names[0]), TIMEOUT,
                                     "a CA-issued certificate for %s" % names[0])
            except util.WaitTimeout as e:
                say("   FAILED: %s" % e)
                ok = False
                continue
            roots = roots or pebble.roots_pem()
            say("   %s after %.1fs:" % (names[0], time.monotonic() - t0))
            say("     names:   %s" % ", ".join(cert_sans(cert)))
            say("     issuer:  %s" % cert_issuer_cn(cert))
            say("     valid:   %s .. %s" % (cert.not_valid_before, cert.not_valid_after))
            say("     serial:  %x" % cert.serial_number)
            good = verifies(httpd, names[0], roots)
            say("     chain verifies against the CA's root: %s" % ("yes" if good else "NO"))
            ok = ok and good
        r = httpd.https_get("/index.html", DOMAINS[0][0])
        say("   https://%s/index.html now answers %d: %s" % (DOMAINS[0][0], r.status,
                                                          r.text.strip()))

        say("== what mod_acme logged")
        for line in httpd.error_log().splitlines():
            if "[acme:" in line and ":debug]" not in line:
                say("   " + line.split("] ", 3)[-1])
        say("== status")
        r = httpd.http_get("/.acme-status", "localhost")
        say("   GET /.acme-status -> %d %s" % (r.status, r.headers.get("Content-Type", "")))
        try:
            status = json.loads(r.text)
            for d in status.get("domains", []):
                certs = d.get("certificates") or []
                until = certs[0].get("valid-until") if certs else None
                say("     %-18s state=%-8s key types=%s valid until=%s ca=%s" % (
                    d.get("name"), d.get("state"), ",".join(d.get("key-types", [])),
                    until, d.get("ca")))
        except ValueError:
            ok = False
            say("   the status is not JSON: %r" % r.text[:200])
        r = httpd.http_get("/server-status?auto", "localhost")
        say("   GET /server-status?auto (the Managed lines):")
        for line in r.text.splitlines():
            if line.startswith("Managed"):
                say("     " + line)
        r = httpd.http_get("/metrics", "localhost")
        say("   GET /metrics (Prometheus), first samples:")
        for line in [l for l in r.text.splitlines() if l and not l.startswith("#")][:6]:
            say("     " + line)
        acmectl = os.path.join(build, "tools", "acmectl")
        if os.path.exists(acmectl):
            say("   acmectl status --store %s:" % httpd.store_dir)
            out = subprocess.run([acmectl, "status", "--store", httpd.store_dir],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            for line in out.stdout.decode("utf-8", "replace").splitlines():
                say("     " + line)
        store = httpd.store_dir
        say("   store %s:" % store)
        for dirpath, _dirs, files in sorted(os.walk(store)):
            for fn in sorted(files):
                p = os.path.join(dirpath, fn)
                st = os.stat(p)
                say("     %o %-9s %s" % (st.st_mode & 0o777, "root" if st.st_uid == 0 else
                                        "uid %d" % st.st_uid, os.path.relpath(p, store)))
        bad = httpd.unexpected_errors()
        if bad:
            ok = False
            say("== error lines in the log:")
            for line in bad:
                say("   " + line)
    finally:
        for proc in (httpd, pebble, dns):
            if proc is not None:
                try:
                    proc.stop()
                except Exception as e:  # keep stopping the others
                    say("   (stopping %s: %s)" % (type(proc).__name__, e))
    say("== demo %s (files kept in %s)" % ("succeeded" if ok else "FAILED", work))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
