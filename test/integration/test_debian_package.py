# The Debian package on the real system apache2: build it with build/deb.sh,
# dpkg -i, a2enmod, a certificate from pebble, a2dismod, purge; restores /etc/apache2.
#
# It changes the machine's system apache2 for about a minute and puts
# everything back (see Machine below). It skips itself when it cannot do that
# safely: not root, the system apache2 running, the package already installed,
# or a store already in /var/lib/apache2/acme.
import gzip
import json
import os
import pwd
import re
import shutil
import subprocess
import time

import pytest

from harness import util
from harness.httpd import Httpd, served_by_ca
from harness.pki import cert_issuer_cn

SRC_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PKG = "libapache2-mod-acme"
ETC = "/etc/apache2"
STORE = "/var/lib/apache2/acme"
SITE = "zz-mod-acme-package-test"
SITE_FILE = os.path.join(ETC, "sites-available", SITE + ".conf")
PORTS_CONF = os.path.join(ETC, "ports.conf")
# Debian's apache2.service has PrivateTmp: under systemd the server cannot see
# pebble's CA file in /tmp, so the site points at a copy here.
CA_COPY = os.path.join(ETC, SITE + "-ca.pem")
ERROR_LOG = "/var/log/apache2/error.log"
NAME = "deb-package.mod-acme.test"
# a2enmod/a2ensite state: the symlinks and the maintainer-script markers.
STATE_DIRS = [os.path.join(ETC, d) for d in ("mods-enabled", "sites-enabled", "conf-enabled")] + \
    ["/var/lib/apache2/" + d for d in ("module", "site", "conf")]
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "DEBIAN_FRONTEND": "noninteractive"}


def run(*cmd, timeout=300, env=None):
    """(returncode, combined output) of a command, never raising on failure."""
    proc = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, env=dict(ENV, **(env or {})),
                          timeout=timeout)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def package_installed():
    rc, out = run("dpkg-query", "-W", "-f=${Status}", PKG)
    return rc == 0 and "installed" in out and "not-installed" not in out


def system_pid_file():
    rc, out = run("sh", "-c", ". %s/envvars && echo \"$APACHE_PID_FILE\"" % ETC)
    return out.strip() or "/var/run/apache2/apache2.pid"


def system_apache_pid():
    try:
        with open(system_pid_file()) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if util.pid_alive(pid) else None


def snapshot_tree(top):
    """{relative path: ("dir"|"link"|"file", target or bytes)} under top.
    A running server may be writing: its temporary files (".tmp.*", renamed
    or removed at once) are no part of the store and are left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            if name.startswith(".tmp."):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = ("dir", None)
            else:
                with open(path, "rb") as f:
                    out[rel] = ("file", f.read())
    return out


def restore_tree(top, snap):
    """Make top hold exactly what snap recorded (only links, files, dirs)."""
    now = snapshot_tree(top)
    for rel in sorted(set(now) - set(snap), reverse=True):
        path = os.path.join(top, rel)
        if now[rel][0] == "dir":
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)
    for rel in sorted(snap):
        kind, value = snap[rel]
        path = os.path.join(top, rel)
        if now.get(rel) == snap[rel]:
            continue
        if os.path.lexists(path) and not os.path.isdir(path):
            os.unlink(path)
        if kind == "dir":
            os.makedirs(path, exist_ok=True)
        elif kind == "link":
            os.symlink(value, path)
        else:
            with open(path, "wb") as f:
                f.write(value)


class Machine:
    """What the test changes on the system, recorded first and put back at
    the end whatever happened in between."""

    def __init__(self):
        self.state = {d: snapshot_tree(d) for d in STATE_DIRS if os.path.isdir(d)}
        with open(PORTS_CONF, "rb") as f:
            self.ports_conf = f.read()
        self.ports_mode = os.stat(PORTS_CONF).st_mode & 0o7777
        self.store_existed = os.path.exists(STORE)
        self.log_offset = os.path.getsize(ERROR_LOG) if os.path.exists(ERROR_LOG) else 0
        self.started_pid = None

    def error_log(self):
        text = util.read_text(ERROR_LOG)
        return text[self.log_offset:] if len(text) >= self.log_offset else text

    def failure_logs(self):
        return [("system apache2 %s since the test started (tail)" % ERROR_LOG,
                 util.tail(self.error_log(), 80))]

    def stop_apache(self):
        pid = system_apache_pid()
        if pid is None:
            return
        run("apache2ctl", "stop", timeout=60)
        try:
            util.wait_for(lambda: not util.pid_alive(pid), 30, "system apache2 to stop")
        except util.WaitTimeout:
            if pid == self.started_pid:  # only ever kill the one we started
                for child in util.child_pids(pid):
                    util.kill_pid(child)
                util.kill_pid(pid)

    def restore(self):
        problems = []
        self.stop_apache()
        if os.path.exists(SITE_FILE):
            run("a2dissite", "-q", SITE)
            os.unlink(SITE_FILE)
        if os.path.exists(CA_COPY):
            os.unlink(CA_COPY)
        if package_installed() or os.path.exists(os.path.join(ETC, "mods-available", "acme.load")):
            rc, out = run("apt-get", "-o", "DPkg::Lock::Timeout=120", "purge", "-y", "-qq", PKG)
            if rc != 0:
                problems.append("apt-get purge: %s" % out)
        with open(PORTS_CONF, "wb") as f:
            f.write(self.ports_conf)
        os.chmod(PORTS_CONF, self.ports_mode)
        for d, snap in self.state.items():
            restore_tree(d, snap)
        if not self.store_existed:
            shutil.rmtree(STORE, ignore_errors=True)  # test keys only
        return problems


def dpkg_install(deb):
    """dpkg -i, waiting a little if another apt/dpkg holds the lock."""
    deadline = time.monotonic() + 120
    while True:
        rc, out = run("dpkg", "-i", deb)
        if rc == 0 or "lock" not in out or time.monotonic() > deadline:
            return rc, out
        time.sleep(2)


def test_acme_conf_lists_every_directive():
    """acme.conf shows each server-wide directive of mod_acme_config.c commented
    out, and marks "(coming)" exactly those the module does not have yet."""
    with open(os.path.join(SRC_ROOT, "mod_acme", "mod_acme_config.c")) as f:
        known = set(re.findall(r'AP_INIT_\w+\("(Managed\w+)"', f.read())) - {"ManagedDomain"}
    with open(os.path.join(SRC_ROOT, "build", "debian", "acme.conf")) as f:
        lines = [line.strip() for line in f]
    active = [line for line in lines if line and not line.startswith(("#", "<", "</"))]
    assert active == ["ManagedStoreDir /var/lib/apache2/acme"], active
    shown, coming = set(), set()
    for i, line in enumerate(lines):
        m = re.match(r"^#(Managed\w+)\b", line)
        if m:
            shown.add(m.group(1))
            if "(coming)" in lines[i - 1] or "(coming)" in lines[i - 2]:
                coming.add(m.group(1))
    assert known - {"ManagedStoreDir"} <= shown - coming, sorted(known - (shown - coming))
    assert not coming & known, "in the module now, drop '(coming)': %s" % sorted(coming & known)
    assert shown <= known | coming, sorted(shown - known - coming)


@pytest.fixture(scope="module")
def built_package(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: installs a package into the system apache2")
    if not shutil.which("dpkg") or not shutil.which("apt-get") or not os.path.isdir(ETC):
        pytest.skip("not a Debian system with apache2 in /etc/apache2")
    out = str(tmp_path_factory.mktemp("deb"))
    # The unit tests ran already (make check); the package build skips them.
    rc, log = run(os.path.join(SRC_ROOT, "build", "deb.sh"), out, timeout=600,
                  env={"DEB_BUILD_OPTIONS": "nocheck"})
    assert rc == 0, "build/deb.sh failed:\n%s" % util.tail(log, 60)
    assert log.strip().splitlines()[-1] == out, log
    debs = [f for f in os.listdir(out) if f.startswith(PKG + "_") and f.endswith(".deb")]
    assert len(debs) == 1, os.listdir(out)
    return os.path.join(out, debs[0])


def test_package_name_and_lintian(built_package):
    """libapache2-mod-acme_<configure.ac version>_<arch>.deb, no lintian error."""
    with open(os.path.join(SRC_ROOT, "configure.ac")) as f:
        ac = f.read()
    version = ac.split("AC_INIT([mod_acme], [", 1)[1].split("]", 1)[0]
    _, arch = run("dpkg", "--print-architecture")
    assert os.path.basename(built_package) == "%s_%s_%s.deb" % (PKG, version, arch.strip())
    rc, out = run("lintian", "--no-tag-display-limit", built_package, timeout=300)
    errors = [line for line in out.splitlines() if line.startswith("E:")]
    assert rc == 0 and not errors, "lintian (exit %d):\n%s" % (rc, out)
    _, contents = run("dpkg-deb", "-c", built_package)
    for path in ("./usr/lib/apache2/modules/mod_acme.so", "./usr/sbin/acmectl",
                 "./usr/share/man/man8/acmectl.8.gz", "./etc/apache2/mods-available/acme.load",
                 "./etc/apache2/mods-available/acme.conf", "./var/lib/apache2/acme/"):
        assert path in contents, "%s not in the package:\n%s" % (path, contents)
    _, depends = run("dpkg-deb", "-f", built_package, "Depends")
    for dep in ("libjansson4", "libcurl4", "libssl3", "apache2-api-"):
        assert dep in depends, depends


@pytest.fixture
def machine(built_package):
    if system_apache_pid() is not None:
        pytest.skip("the system apache2 is running (pid file %s): the test would "
                    "have to stop it" % system_pid_file())
    if package_installed():
        pytest.skip("%s is installed already: the test would purge it" % PKG)
    if os.path.exists(STORE) and os.listdir(STORE):
        pytest.skip("%s holds a store already: the test would mix test keys into it" % STORE)
    for path in (SITE_FILE, CA_COPY):
        if os.path.exists(path):
            pytest.skip("%s exists already" % path)
    m = Machine()
    try:
        yield m
    finally:
        problems = m.restore()
        assert not problems, problems


def site_config(pebble, ports):
    return """# written by test/integration/test_debian_package.py; removed after the test
Listen 127.0.0.1:{http}
Listen 127.0.0.1:{tls} https
ManagedCA {dir_url}
ManagedCACertificateFile {ca_file}
ManagedAgreeTOS on
ManagedPortMap 80:{http} 443:{tls}
ManagedPreflight 127.0.0.1 80:{http} 443:{tls}
ManagedDomain {name}
<VirtualHost 127.0.0.1:{http}>
    ServerName {name}
    <Location /.acme-status>
        SetHandler acme-status
        Require ip 127.0.0.1
    </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{tls}>
    ServerName {name}
    SSLEngine on
</VirtualHost>
""".format(http=ports["http"], tls=ports["tls"], dir_url=pebble.dir_url,
           ca_file=CA_COPY, name=NAME)


def store_keys():
    """{path: content} of the store's private key files."""
    return {k: v for k, v in snapshot_tree(STORE).items()
            if v[0] == "file" and "key" in os.path.basename(k)}


def mod_enabled(name):
    return os.path.islink(os.path.join(ETC, "mods-enabled", name + ".load"))


@pytest.mark.time_limit(300)
def test_package_on_system_apache(built_package, machine, pebble, acme_ports, test_dir):
    rc, out = dpkg_install(built_package)
    assert rc == 0, "dpkg -i:\n%s" % out
    assert not mod_enabled("acme"), "the package must leave a2enmod to the admin"
    st = os.stat(STORE)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o755), st

    rc, out = run("a2enmod", "acme")
    assert rc == 0, "a2enmod acme:\n%s" % out
    assert mod_enabled("acme") and mod_enabled("ssl"), out  # "# Depends: ssl"

    # Debian's ports.conf listens on 80 (and 443 with mod_ssl) on every
    # address: the test needs neither, and uses its own loopback Listens.
    with open(PORTS_CONF, "w") as f:
        f.write("# emptied for the duration of test_debian_package.py\n")
    shutil.copyfile(pebble.ca_file, CA_COPY)
    os.chmod(CA_COPY, 0o644)
    with open(SITE_FILE, "w") as f:
        f.write(site_config(pebble, acme_ports))
    rc, out = run("a2ensite", SITE)
    assert rc == 0, "a2ensite:\n%s" % out
    rc, out = run("apache2ctl", "-t")
    assert rc == 0 and "Syntax OK" in out, "apache2ctl -t:\n%s" % out

    rc, out = run("apache2ctl", "start", timeout=60)
    assert rc == 0, "apache2ctl start:\n%s" % out
    machine.started_pid = util.wait_for(system_apache_pid, 30, "the system apache2 pid file")

    # An unstarted harness Httpd only lends its TLS/HTTP probes (its own
    # ServerRoot under test_dir is never used).
    probe = Httpd(os.path.join(test_dir, "probe"), acme_ports["http"], acme_ports["tls"])
    cert = util.wait_for(lambda: served_by_ca(probe, NAME), 120,
                         "the CA's certificate for %s on the system apache2" % NAME)
    assert "Pebble" in (cert_issuer_cn(cert) or ""), cert_issuer_cn(cert)
    status = probe.http_get("/.acme-status/" + NAME, NAME)
    assert status.status == 200, status.text
    assert json.loads(status.text)["state"] == "ok", status.text

    # The store: root's top, the renewal jobs' parts handed to www-data by the module.
    domain_dir = os.path.join(STORE, "domains", NAME)
    for sub, user in (("", "root"), ("domains", "root"), ("accounts", "www-data"),
                      ("jobs", "www-data"), ("staging", "www-data")):
        owner = pwd.getpwuid(os.stat(os.path.join(STORE, sub)).st_uid).pw_name
        assert owner == user, "%s/%s is owned by %s, not %s" % (STORE, sub, owner, user)
    assert any(f.endswith(".pem") for f in os.listdir(domain_dir)), os.listdir(domain_dir)
    keys_before = store_keys()
    assert any(k.startswith("accounts") for k in keys_before), sorted(keys_before)
    assert any(k.startswith("domains") for k in keys_before), sorted(keys_before)
    rc, out = run("/usr/sbin/acmectl", "-f", os.path.join(ETC, "apache2.conf"), "status")
    assert rc == 0 and NAME in out, "acmectl status:\n%s" % out
    with gzip.open("/usr/share/man/man8/acmectl.8.gz", "rt") as f:
        assert "\n.TH ACMECTL 8 " in f.read()

    bad = [line for line in machine.error_log().splitlines()
           if ":error]" in line or ":emerg]" in line or ":crit]" in line]
    assert not bad, "error lines in %s:\n%s" % (ERROR_LOG, "\n".join(bad))

    machine.stop_apache()
    assert system_apache_pid() is None, "apache2ctl stop did not stop it"
    rc, out = run("a2dismod", "acme")
    assert rc == 0 and not mod_enabled("acme"), "a2dismod acme:\n%s" % out

    rc, out = run("apt-get", "-o", "DPkg::Lock::Timeout=120", "purge", "-y", "-qq", PKG)
    assert rc == 0, "apt-get purge:\n%s" % out
    assert not package_installed()
    for gone in ("mods-available/acme.load", "mods-available/acme.conf"):
        assert not os.path.exists(os.path.join(ETC, gone)), "%s left after purge" % gone
    assert not os.path.exists("/usr/lib/apache2/modules/mod_acme.so")
    after = store_keys()
    # names only: pytest would print the differing contents, i.e. private keys
    changed = sorted(k for k in set(after) | set(keys_before) if after.get(k) != keys_before.get(k))
    assert not changed, "purge touched the store's keys: %s" % changed
