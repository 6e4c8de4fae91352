# Debian's BIND 9 (named -g) as an authoritative server on loopback for the
# dns-01 tests: the zones of harness.knot with an update-policy for TXT only.
import os
import subprocess

from . import util
from .knot import KDIG_BIN, OTHER_KEY, UPDATE_KEY, ServerExited, default_zones, kdig_txt, \
    new_secret, tsig_key_text

NAMED_BIN = os.environ.get("NAMED_BIN", "/usr/sbin/named")

START_TIMEOUT = 30.0


class Bind:
    """One named with its own named.conf and directory under workdir."""

    def __init__(self, workdir, zones=None, listen="127.0.0.1", port=None):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.zones = default_zones() if zones is None else zones
        self.listen = listen
        self.port = port or util.free_port()
        self.addr = "%s:%d" % (listen, self.port)
        self.keys = {UPDATE_KEY: new_secret(), OTHER_KEY: new_secret()}
        self.config_file = os.path.join(workdir, "named.conf")
        self.log_file = os.path.join(workdir, "named.log")
        self.proc = None

    def _config(self):
        d = self.workdir
        out = [
            "options {",
            '    directory "%s";' % d,
            '    pid-file "%s";' % os.path.join(d, "named.pid"),
            '    session-keyfile "%s";' % os.path.join(d, "session.key"),
            '    managed-keys-directory "%s";' % d,
            "    listen-on port %d { %s; };" % (self.port, self.listen),
            "    listen-on-v6 { none; };",
            "    recursion no;",
            "    dnssec-validation no;",
            "    allow-transfer { none; };",
            "    notify no;",
            "};",
            "controls { };",
        ]
        for name, secret in self.keys.items():
            out.append(tsig_key_text(name, secret).strip())
        for zone, text in self.zones.items():
            path = os.path.join(d, zone + ".zone")
            with open(path, "w") as f:
                f.write(text)
            out += [
                'zone "%s" {' % zone,
                "    type primary;",
                '    file "%s";' % path,
                # TXT only, and only at _acme-challenge names (other-key: A only)
                "    update-policy {",
                "        grant %s name _acme-challenge.%s. TXT;" % (UPDATE_KEY, zone),
                "        grant %s name _acme-challenge.www.%s. TXT;" % (UPDATE_KEY, zone),
                "        grant %s subdomain acme.%s. TXT;" % (UPDATE_KEY, zone),
                "        grant %s subdomain %s. A;" % (OTHER_KEY, zone),
                "    };",
                "};",
            ]
        with open(self.config_file, "w") as f:
            f.write("\n".join(out) + "\n")

    def start(self):
        self._config()
        # -g: foreground, log to stderr; -n 1: one worker (2-core CI machines)
        args = [NAMED_BIN, "-g", "-4", "-n", "1", "-c", self.config_file]
        if os.getuid() == 0:
            args += ["-u", "root"]
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir)

        def ready():
            self._check_running()
            for zone in self.zones:
                out = subprocess.run([KDIG_BIN, "@" + self.listen, "-p", str(self.port),
                                      "+norecurse", "+short", "+time=1", "+retry=0",
                                      zone, "SOA"], capture_output=True, text=True, timeout=5)
                if out.returncode != 0 or not out.stdout.strip():
                    return False
            return True

        util.wait_for(ready, START_TIMEOUT, "named at %s" % self.addr, interval=0.2,
                      fatal=(ServerExited,))
        return self

    def _check_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerExited("named exited with %s:\n%s"
                               % (self.proc.returncode, util.tail(self.log_text())))

    def stop(self):
        util.stop_popen(self.proc)

    def log_text(self):
        return util.read_text(self.log_file)

    def failure_logs(self):
        return [("named log (tail) %s" % self.log_file, util.tail(self.log_text(), 40))]

    def key_file(self, path, name=UPDATE_KEY, secret=None, fmt="bind", algorithm="hmac-sha256"):
        with open(path, "w") as f:
            f.write(tsig_key_text(name, secret or self.keys[name], algorithm, fmt))
        os.chmod(path, 0o600)
        return path

    def txt(self, name, addr=None):
        return kdig_txt(addr or self.addr, name)
