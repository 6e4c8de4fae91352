# Real ACME test servers for the integration tests: Debian's pebble (the CA)
# and pebble-challtestsrv (mock DNS that pebble's validation resolves with).
import copy
import json
import os
import re
import subprocess

from . import util

PEBBLE_BIN = os.environ.get("PEBBLE_BIN", "/usr/bin/pebble")
CHALLTESTSRV_BIN = os.environ.get("PEBBLE_CHALLTESTSRV_BIN", "/usr/bin/pebble-challtestsrv")

START_TIMEOUT = 30.0


def _fqdn(host):
    # challtestsrv keys TXT records by the fully qualified name (trailing dot)
    return host if host.endswith(".") else host + "."


class PebbleDNS:
    """pebble-challtestsrv with only its DNS and management listeners."""

    def __init__(self, workdir, default_ipv4="127.0.0.1"):
        self.workdir = workdir
        self.default_ipv4 = default_ipv4
        self.dns_port = util.free_port()
        self.mgmt_port = util.free_port()
        self.dns_addr = "127.0.0.1:%d" % self.dns_port
        self.mgmt_url = "http://127.0.0.1:%d" % self.mgmt_port
        self.log_file = os.path.join(workdir, "challtestsrv.log")
        self.proc = None
        self.http = util.http_session()
        self._touched = set()  # (kind, fqdn) set by tests, for reset()

    def start(self):
        args = [
            CHALLTESTSRV_BIN,
            "-dns01", self.dns_addr,
            "-management", "127.0.0.1:%d" % self.mgmt_port,
            "-defaultIPv4", self.default_ipv4,
            "-defaultIPv6", "",
            "-http01", "",
            "-https01", "",
            "-tlsalpn01", "",
        ]
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir)

        def ready():
            self._check_running()
            # An unknown path answers 404 once the management server is up.
            self.http.get(self.mgmt_url + "/", timeout=1)
            return util.port_accepts(self.dns_port)

        util.wait_for(ready, START_TIMEOUT, "pebble-challtestsrv at %s" % self.mgmt_url)
        return self

    def _check_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("pebble-challtestsrv exited with %s:\n%s"
                               % (self.proc.returncode, util.tail(self.log_text())))

    def stop(self):
        util.stop_popen(self.proc)

    def log_text(self):
        return util.read_text(self.log_file)

    def _post(self, path, payload):
        self._check_running()
        r = self.http.post(self.mgmt_url + path, data=json.dumps(payload), timeout=5)
        if r.status_code != 200:
            raise RuntimeError("challtestsrv %s %r -> %d %s"
                               % (path, payload, r.status_code, r.text))

    def add_a(self, host, ip):
        ips = [ip] if isinstance(ip, str) else list(ip)
        self._post("/add-a", {"host": _fqdn(host), "addresses": ips})
        self._touched.add(("a", _fqdn(host)))

    def clear_a(self, host):
        self._post("/clear-a", {"host": _fqdn(host)})

    def set_txt(self, host, value):
        self._post("/set-txt", {"host": _fqdn(host), "value": value})
        self._touched.add(("txt", _fqdn(host)))

    def clear_txt(self, host):
        self._post("/clear-txt", {"host": _fqdn(host)})

    def set_servfail(self, host):
        self._post("/set-servfail", {"host": _fqdn(host)})
        self._touched.add(("servfail", _fqdn(host)))

    def clear_servfail(self, host):
        self._post("/clear-servfail", {"host": _fqdn(host)})

    def reset(self):
        """Undo every record set through this object (the server is shared
        by the whole session)."""
        for kind, host in sorted(self._touched):
            self._post("/clear-%s" % kind, {"host": host})
        self._touched.clear()


class Pebble:
    """One pebble process with its own config, listener and management port."""

    def __init__(self, workdir, name, pki, dns, http_port, tls_port,
                 env=None, config=None):
        self.workdir = os.path.join(workdir, name)
        os.makedirs(self.workdir, exist_ok=True)
        self.name = name
        self.pki = pki
        self.dns = dns
        self.http_port = http_port
        self.tls_port = tls_port
        self.port = util.free_port()
        self.mgmt_port = util.free_port()
        self.dir_url = "https://localhost:%d/dir" % self.port
        self.mgmt_url = "https://localhost:%d" % self.mgmt_port
        self.ca_file = pki.ca_file
        self.config_file = os.path.join(self.workdir, "pebble-config.json")
        self.log_file = os.path.join(self.workdir, "pebble.log")
        self.env = {"PEBBLE_VA_NOSLEEP": "1"}
        self.env.update(env or {})
        self.config = {
            "listenAddress": "127.0.0.1:%d" % self.port,
            "managementListenAddress": "127.0.0.1:%d" % self.mgmt_port,
            "certificate": pki.cert_file,
            "privateKey": pki.key_file,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        self.config.update(copy.deepcopy(config or {}))
        self.proc = None
        self.http = util.http_session()

    def start(self):
        with open(self.config_file, "w") as f:
            json.dump({"pebble": self.config}, f, indent=2)
        env = dict(os.environ)
        env.update(self.env)
        args = [PEBBLE_BIN, "-config", self.config_file,
                "-dnsserver", self.dns.dns_addr,
                # a Go bool flag: "-strict false" would end flag parsing
                "-strict=false"]
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir,
                                         env=env)

        def ready():
            self._check_running()
            r = self.get(self.dir_url, timeout=2)
            return r.status_code == 200 and "newOrder" in r.json()

        util.wait_for(ready, START_TIMEOUT, "pebble directory at %s" % self.dir_url)
        util.wait_for(lambda: self.get(self.mgmt_url + "/roots/0", timeout=2).ok,
                      START_TIMEOUT, "pebble management at %s" % self.mgmt_url)
        return self

    def _check_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("pebble %s exited with %s:\n%s"
                               % (self.name, self.proc.returncode, util.tail(self.log_text())))

    def stop(self):
        util.stop_popen(self.proc)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- HTTP helpers (always verified against the generated listener root) --
    def get(self, url, **kw):
        kw.setdefault("timeout", 5)
        kw.setdefault("verify", self.ca_file)
        return self.http.get(url, **kw)

    def _mgmt_text(self, path):
        self._check_running()
        r = self.get(self.mgmt_url + path)
        r.raise_for_status()
        return r.text

    def directory(self):
        r = self.get(self.dir_url)
        r.raise_for_status()
        return r.json()

    def roots_pem(self):
        """PEM of the issuing root (new on every pebble start)."""
        return self._mgmt_text("/roots/0")

    def intermediates_pem(self):
        return self._mgmt_text("/intermediates/0")

    def cert_status(self, serial_hex):
        """JSON with "Status" ("Valid"/"Revoked"), "Serial", "Certificate"."""
        self._check_running()
        r = self.get(self.mgmt_url + "/cert-status-by-serial/%s" % serial_hex.lower())
        r.raise_for_status()
        return r.json()

    # -- log inspection --
    def log_text(self):
        return util.read_text(self.log_file)

    def log_mark(self):
        """A position in pebble's log; pass it as `since` to count only later lines."""
        return len(self.log_text())

    def count_orders(self, since=0):
        """Orders created ("Added order ... to the db") since start or `since`."""
        return len(re.findall(r"^Pebble .*Added order ", self.log_text()[since:], re.M))

    def count_accounts(self):
        """Accounts in pebble's memory per its last "There are now N accounts" line."""
        found = re.findall(r"There are now (\d+) accounts in memory", self.log_text())
        return int(found[-1]) if found else 0

    def issued_serials(self, since=0):
        """Hex serials of issued certificates, in issue order."""
        return re.findall(r"Issued certificate serial ([0-9a-fA-F]+) for order",
                          self.log_text()[since:])
