# Debian's Knot DNS (knotd) as an authoritative server on loopback for the
# dns-01 tests: test zones, TSIG keys and an ACL that allows TXT updates only.
import base64
import os
import shutil
import subprocess
import tempfile

from . import util

KNOTD_BIN = os.environ.get("KNOTD_BIN", "/usr/sbin/knotd")
KDIG_BIN = os.environ.get("KDIG_BIN", "/usr/bin/kdig")

START_TIMEOUT = 20.0

# The key the ACL lets update TXT records, and one the server knows but
# that no ACL allows (the "refused" case).
UPDATE_KEY = "acme-key"
OTHER_KEY = "other-key"


class ServerExited(RuntimeError):
    """The DNS server process ended while the harness waited for it."""


def new_secret(nbytes=32):
    return base64.b64encode(os.urandom(nbytes)).decode("ascii")


def default_zones(ns2_ip="127.0.0.2"):
    """example.test. (two NS on 127.0.0.1/ns2_ip) and delegated.test., the
    target zone of CNAME delegations, with _acme-challenge.cname.example.test.
    pointing into it."""
    return {
        "example.test": """\
$ORIGIN example.test.
$TTL 300
@    SOA ns1.example.test. hostmaster.example.test. 1 3600 900 604800 60
@    NS  ns1.example.test.
@    NS  ns2.example.test.
ns1  A   127.0.0.1
ns2  A   %s
www  A   127.0.0.1
_acme-challenge.cname  CNAME  cname.acme.delegated.test.
""" % ns2_ip,
        "delegated.test": """\
$ORIGIN delegated.test.
$TTL 300
@    SOA ns1.example.test. hostmaster.example.test. 1 3600 900 604800 60
@    NS  ns1.example.test.
""",
    }


def tsig_key_text(name, secret, algorithm="hmac-sha256", fmt="bind"):
    """A key file as tsig-keygen (bind) or keymgr -t (knot) prints it."""
    if fmt == "knot":
        return ("# %s:%s:%s\nkey:\n  - id: %s\n    algorithm: %s\n    secret: %s\n"
                % (algorithm, name, secret, name, algorithm, secret))
    return 'key "%s" {\n\talgorithm %s;\n\tsecret "%s";\n};\n' % (name, algorithm, secret)


def kdig_txt(server, name, timeout=2):
    """The TXT values at name (each RR's strings joined), asked with kdig
    without recursion. server is "ip:port"."""
    host, port = server.rsplit(":", 1)
    out = subprocess.run([KDIG_BIN, "@" + host.strip("[]"), "-p", port, "+norecurse", "+short",
                          "+time=%d" % timeout, "+retry=0", name, "TXT"],
                         capture_output=True, text=True, timeout=timeout + 5)
    if out.returncode != 0:
        raise RuntimeError("kdig %s TXT at %s failed: %s" % (name, server, out.stderr.strip()))
    values = []
    for line in out.stdout.splitlines():
        line = line.strip()
        if not line.startswith('"'):
            continue  # a CNAME on the way, or a comment
        values.append("".join(part for i, part in enumerate(line.split('"')) if i % 2))
    return values


class Knot:
    """One knotd with its own config and storage under workdir (its rundir,
    which holds the control socket, is a short /tmp directory),
    listening on the given loopback addresses at one free port."""

    def __init__(self, workdir, zones=None, listen=("127.0.0.1",), port=None,
                 update_types=("TXT",)):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.zones = default_zones() if zones is None else zones
        self.listen = list(listen)
        self.port = port or util.free_port()
        self.addr = "%s:%d" % (self.listen[0], self.port)
        self.update_types = list(update_types)
        self.keys = {UPDATE_KEY: new_secret(), OTHER_KEY: new_secret()}
        self.config_file = os.path.join(workdir, "knot.conf")
        self.log_file = os.path.join(workdir, "knotd.log")
        self.proc = None
        # the control socket lives in rundir: keep it short (sun_path is 108 bytes)
        self.rundir = None

    def _config(self):
        zdir = os.path.join(self.workdir, "zones")
        os.makedirs(zdir, exist_ok=True)
        for zone, text in self.zones.items():
            with open(os.path.join(zdir, zone + ".zone"), "w") as f:
                f.write(text)
        lines = [
            "server:",
            "    rundir: %s" % self.rundir,
            "    listen: [%s]" % ", ".join("%s@%d" % (a, self.port) for a in self.listen),
            "    udp-workers: 1",
            "    tcp-workers: 1",
            "    background-workers: 1",
            "log:",
            "  - target: stderr",
            "    any: info",
            "database:",
            "    storage: %s" % os.path.join(self.workdir, "db"),
            "key:",
        ]
        for name, secret in self.keys.items():
            lines += ["  - id: %s" % name, "    algorithm: hmac-sha256",
                      "    secret: %s" % secret]
        lines += [
            "acl:",
            "  - id: acme-update",
            "    key: %s" % UPDATE_KEY,
            "    action: update",
            "    update-type: [%s]" % ", ".join(self.update_types),
            # only these owners (relative names get the zone appended), as docs/dns-01.md shows
            "    update-owner: name",
            "    update-owner-match: equal",
            "    update-owner-name: [_acme-challenge, _acme-challenge.www, _acme-challenge.cname,"
            " cname.acme]",
            # other-key may only update A records: a TXT update is refused
            "  - id: other-update",
            "    key: %s" % OTHER_KEY,
            "    action: update",
            "    update-type: [A]",
            "template:",
            "  - id: default",
            "    storage: %s" % zdir,
            "    file: \"%s.zone\"",
            "    zonefile-sync: -1",
            "    zonefile-load: whole",
            "    journal-content: changes",
            "    semantic-checks: off",
            "zone:",
        ]
        for zone in self.zones:
            lines += ["  - domain: %s" % zone, "    acl: [acme-update, other-update]"]
        os.makedirs(os.path.join(self.workdir, "db"), exist_ok=True)
        with open(self.config_file, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        self.rundir = tempfile.mkdtemp(prefix="knot-", dir="/tmp")
        self._config()
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen([KNOTD_BIN, "-c", self.config_file],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir)

        def ready():
            self._check_running()
            if not self.zones:
                return "loaded" in self.log_text() or "server started" in self.log_text()
            # every zone answers its SOA once loaded
            for zone in self.zones:
                out = subprocess.run([KDIG_BIN, "@" + self.listen[0], "-p", str(self.port),
                                      "+norecurse", "+short", "+time=1", "+retry=0",
                                      zone, "SOA"], capture_output=True, text=True, timeout=5)
                if out.returncode != 0 or not out.stdout.strip():
                    return False
            return True

        util.wait_for(ready, START_TIMEOUT, "knotd at %s" % self.addr, interval=0.2,
                      fatal=(ServerExited,))
        return self

    def _check_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerExited("knotd exited with %s:\n%s"
                               % (self.proc.returncode, util.tail(self.log_text())))

    def stop(self):
        util.stop_popen(self.proc)
        if self.rundir:
            shutil.rmtree(self.rundir, ignore_errors=True)
            self.rundir = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        return util.read_text(self.log_file)

    def failure_logs(self):
        return [("knotd log (tail) %s" % self.log_file, util.tail(self.log_text(), 40))]

    def key_file(self, path, name=UPDATE_KEY, secret=None, fmt="bind", algorithm="hmac-sha256"):
        """Writes the key file for name (secret: the server's unless given)."""
        with open(path, "w") as f:
            f.write(tsig_key_text(name, secret or self.keys[name], algorithm, fmt))
        os.chmod(path, 0o600)
        return path

    def txt(self, name, addr=None):
        return kdig_txt(addr or self.addr, name)
