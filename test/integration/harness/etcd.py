# A real etcd cluster for the integration tests: Debian's etcd-server 3.4
# members on free loopback ports, optional TLS (client certificates) and auth.
import datetime
import ipaddress
import os
import signal
import subprocess
import uuid

from . import util

ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")
ETCDCTL_BIN = os.environ.get("ETCDCTL_BIN", "/usr/bin/etcdctl")

START_TIMEOUT = 30.0


def item_mac_value(store_key, key_name, mtime, data):
    """An etcd value with a MAC as docs/etcd.md describes it, under store_key
    (32 bytes), written at mtime (µs): HKDF-SHA256 (no salt) derives the MAC
    key, the HMAC covers the item's context, the etcd key, the time and the
    data."""
    import base64
    import hashlib
    import hmac
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    mac_key = HKDF(hashes.SHA256(), 32, None, b"mod_acme etcd item mac v2").derive(store_key)
    msg = b"acme-item 2 m\0%s\0%d\0%s" % (key_name.encode(), mtime, data)
    mac = base64.urlsafe_b64encode(hmac.new(mac_key, msg, hashlib.sha256).digest()).rstrip(b"=")
    return b"acme-item 2 %d m %s\n%s" % (mtime, mac, data)


class EtcdPKI:
    """A throw-away CA, one server certificate for every member (127.0.0.1,
    localhost) and one client certificate, as PEM files in `directory`."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_file = os.path.join(directory, "etcd-ca.pem")
        self.server_cert = os.path.join(directory, "etcd-server.pem")
        self.server_key = os.path.join(directory, "etcd-server.key")
        self.client_cert = os.path.join(directory, "etcd-client.pem")
        self.client_key = os.path.join(directory, "etcd-client.key")
        self.other_ca_file = os.path.join(directory, "other-ca.pem")

    def generate(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        os.makedirs(self.dir, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)

        def name(cn):
            if cn is None:
                return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mod_acme test")])
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

        def write(path, data, mode=0o644):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)

        def make_ca(cn):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
                    .public_key(key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - datetime.timedelta(hours=1))
                    .not_valid_after(now + datetime.timedelta(days=7))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .sign(key, hashes.SHA256()))
            return key, cert

        def leaf(ca_key, ca_cert, cn, usages, sans):
            key = ec.generate_private_key(ec.SECP256R1())
            b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
                 .public_key(key.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(now - datetime.timedelta(hours=1))
                 .not_valid_after(now + datetime.timedelta(days=7))
                 .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                 .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
            if sans:
                b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            return key, b.sign(ca_key, hashes.SHA256())

        def pem_key(key):
            return key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())

        ca_key, ca_cert = make_ca("mod_acme test etcd CA")
        write(self.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
        key, cert = leaf(ca_key, ca_cert, "etcd",
                         [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                         [x509.DNSName("localhost"),
                          x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        write(self.server_cert, cert.public_bytes(serialization.Encoding.PEM))
        write(self.server_key, pem_key(key), 0o600)
        # No CN: with auth enabled, etcd 3.4's gateway refuses a client
        # certificate that has one (it would otherwise stand in for a user).
        key, cert = leaf(ca_key, ca_cert, None, [ExtendedKeyUsageOID.CLIENT_AUTH], None)
        write(self.client_cert, cert.public_bytes(serialization.Encoding.PEM))
        write(self.client_key, pem_key(key), 0o600)
        _, other = make_ca("an unrelated CA")
        write(self.other_ca_file, other.public_bytes(serialization.Encoding.PEM))
        return self


class Member:
    def __init__(self, cluster, index):
        self.name = "m%d" % index
        self.client_port = util.free_port()
        self.peer_port = util.free_port()
        self.data_dir = os.path.join(cluster.workdir, self.name + ".data")
        self.log_file = os.path.join(cluster.workdir, self.name + ".log")
        scheme = "https" if cluster.pki else "http"
        self.client_url = "%s://127.0.0.1:%d" % (scheme, self.client_port)
        self.peer_url = "http://127.0.0.1:%d" % self.peer_port
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """`size` members of one new cluster under workdir. pki (an EtcdPKI):
    clients speak HTTPS and must show a client certificate."""

    def __init__(self, workdir, size=3, pki=None):
        self.workdir = workdir
        self.pki = pki
        os.makedirs(workdir, exist_ok=True)
        self.token = "mod_acme-test-%s" % uuid.uuid4().hex
        self.members = [Member(self, i) for i in range(size)]
        self.initial_cluster = ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)
        self.root_password = None   # set by enable_auth
        self.http = util.http_session()

    # ---------------------------------------------------------------- processes
    @property
    def endpoints(self):
        return [m.client_url for m in self.members]

    def start(self):
        for i in range(len(self.members)):
            self._spawn(i)
        self.wait_healthy()
        return self

    def _spawn(self, i):
        m = self.members[i]
        if m.running():
            return
        args = [
            ETCD_BIN,
            "--name", m.name,
            "--data-dir", m.data_dir,
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", self.initial_cluster,
            # ignored by a member restarted on its existing data dir
            "--initial-cluster-state", "new",
            "--initial-cluster-token", self.token,
        ]
        if self.pki:
            args += ["--cert-file", self.pki.server_cert, "--key-file", self.pki.server_key,
                     "--trusted-ca-file", self.pki.ca_file, "--client-cert-auth"]
        with open(m.log_file, "ab") as log:
            m.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=self.workdir)

    def healthy(self, i):
        """True when member i answers /health with a leader."""
        m = self.members[i]
        if not m.running():
            return False
        kw = {"timeout": 2}
        if self.pki:
            kw["verify"] = self.pki.ca_file
            kw["cert"] = (self.pki.client_cert, self.pki.client_key)
        try:
            r = self.http.get(m.client_url + "/health", **kw)
            return r.status_code == 200 and r.json().get("health") == "true"
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def wait_healthy(self, members=None, timeout=START_TIMEOUT):
        idx = list(range(len(self.members))) if members is None else list(members)

        def ready():
            for i in idx:
                if not self.members[i].running():
                    raise AssertionError("etcd member %s exited; log tail:\n%s" % (
                        self.members[i].name, util.tail(util.read_text(self.members[i].log_file))))
            return all(self.healthy(i) for i in idx)

        util.wait_for(ready, timeout, "etcd members %s healthy" % idx, interval=0.2,
                      fatal=(AssertionError,))

    def kill(self, i, sig=signal.SIGKILL):
        """Signals member i (by the pid we started); KILL/TERM also reap it."""
        m = self.members[i]
        if not m.running():
            return
        m.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                m.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(timeout=15)

    def stop_member(self, i):
        self.kill(i, signal.SIGTERM)

    def start_member(self, i, wait=True):
        self._spawn(i)
        if wait:
            self.wait_healthy([i])

    def kill_all(self, sig=signal.SIGKILL):
        for i in range(len(self.members)):
            self.kill(i, sig)

    def start_all(self):
        for i in range(len(self.members)):
            self._spawn(i)
        self.wait_healthy()

    def heal(self):
        """Every member running and healthy again (after a test killed some)."""
        for i, m in enumerate(self.members):
            if m.running():
                m.proc.send_signal(signal.SIGCONT)
        self.start_all()

    def stop(self):
        for m in self.members:
            util.stop_popen(m.proc)

    # ---------------------------------------------------------------- clients
    def client_args(self, user=None):
        """etcdctl / etcdtool connection flags."""
        args = ["--endpoints", ",".join(self.endpoints)]
        if self.pki:
            args += ["--cacert", self.pki.ca_file, "--cert", self.pki.client_cert,
                     "--key", self.pki.client_key]
        if user:
            args += ["--user", user]
        return args

    def etcdctl(self, *args, user=None, check=True, timeout=30):
        if user is None and self.root_password:
            user = "root:" + self.root_password
        env = dict(os.environ, ETCDCTL_API="3")
        res = subprocess.run([ETCDCTL_BIN] + self.client_args(user) + list(args), env=env,
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError("etcdctl %s failed (%d): %s" % (" ".join(args), res.returncode,
                                                                 res.stderr.strip()))
        return res

    def enable_auth(self, user, password, prefix):
        """A root user, and `user` with read-write on keys under prefix; then auth on."""
        self.root_password = None
        root_pw = uuid.uuid4().hex
        self.etcdctl("user", "add", "root:" + root_pw)
        self.etcdctl("user", "add", "%s:%s" % (user, password))
        self.etcdctl("role", "add", "mod_acme-rw")
        self.etcdctl("role", "grant-permission", "mod_acme-rw", "--prefix=true", "readwrite",
                     prefix)
        self.etcdctl("user", "grant-role", user, "mod_acme-rw")
        self.etcdctl("auth", "enable")
        self.root_password = root_pw

    # ---------------------------------------------------------------- reporting
    def failure_logs(self):
        return [("etcd %s log (tail) %s" % (m.name, m.log_file),
                 util.tail(util.read_text(m.log_file), 30)) for m in self.members]

