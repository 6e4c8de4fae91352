# pytest fixtures for mod_acme's integration tests: real pebble (CA), the
# pebble-challtestsrv mock DNS, and Debian's apache2 with the built module.
#
# Fixtures (session-scoped unless noted):
#   build_dir, module_path   MOD_ACME_BUILD_DIR (default: source root), .libs/mod_acme.so
#   work_root                /tmp/mod_acme-it-XXXX (0755), removed after an all-green run
#   test_dir      (function) a 0755 directory for one test under work_root
#   acme_ports               {"http": p, "tls": p}: pebble validates there, httpd listens there
#   listener_pki             root CA + localhost cert for pebble's own HTTPS listener
#   pebble_dns               challtestsrv: .dns_addr .mgmt_url add_a set_txt clear_txt ...
#   dns           (function) pebble_dns, reset() after the test (clears what it set)
#   pebble                   .dir_url .ca_file .mgmt_url .http_port .tls_port roots_pem()
#                            intermediates_pem() cert_status() log_text() log_mark()
#                            count_orders(since) issued_serials(since) count_accounts()
#   pebble_factory (function) pebble_factory(env={...}, config={...}) -> another Pebble
#   pebble_with_delays (function) a Pebble with its own validation delays on (a random
#                            0..PEBBLE_VA_SLEEPTIME s before each validation, like a
#                            real CA's), where the others run with PEBBLE_VA_NOSLEEP=1
#   httpd         (function) harness.httpd.Httpd, not started; teardown stops it and
#                            fails on unexpected [error]+ lines (httpd.expect_errors)
#   dns_servers, knot, named (function) Knot/BIND on loopback for dns-01; dnstool
#   acme_proxy    (function) harness.acmeproxy.AcmeProxy started in front of pebble:
#                            ARI, profiles, injected faults; acme_proxy_factory(p)
#   etcd_cluster             harness.etcd.EtcdCluster: 3 etcd members on loopback,
#                            .endpoints .kill(i) .start_member(i) .heal() .etcdctl()
# Environment: MOD_ACME_TEST_TMP (parent of work_root), MOD_ACME_KEEP_TMP=1,
# MOD_ACME_TEST_TIME_LIMIT (seconds per test phase), APACHE_BIN, PEBBLE_BIN.
import os
import re
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import util  # noqa: E402
from harness.httpd import Httpd  # noqa: E402
from harness.pebble import Pebble, PebbleDNS  # noqa: E402
from harness.pki import ListenerPKI  # noqa: E402

SRC_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# ------------------------------------------------------------------ time limits
# Every phase (setup, call, teardown) of a test gets a SIGALRM deadline, so a
# hang fails that test with a traceback instead of stalling the whole run
# (Debian 12 has no pytest-timeout installed here). Override per test with
# @pytest.mark.time_limit(seconds) or for all with MOD_ACME_TEST_TIME_LIMIT.
DEFAULT_TIME_LIMIT = int(os.environ.get("MOD_ACME_TEST_TIME_LIMIT", "300"))


def _time_limit(item):
    marker = item.get_closest_marker("time_limit")
    if marker and marker.args:
        return int(marker.args[0])
    return DEFAULT_TIME_LIMIT


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with util.time_limit(_time_limit(item), "setup of %s" % item.nodeid):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with util.time_limit(_time_limit(item), item.nodeid):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    with util.time_limit(_time_limit(item), "teardown of %s" % item.nodeid):
        yield


# ------------------------------------------------------------------ reporting
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    # Attach the logs of every harness object the test used, so a failure in
    # CI shows what httpd and pebble said without digging in /tmp.
    seen = set()
    funcargs = getattr(item, "funcargs", {}) or {}
    for value in funcargs.values():
        if id(value) in seen or not hasattr(value, "failure_logs"):
            continue
        seen.add(id(value))
        try:
            for title, text in value.failure_logs():
                rep.sections.append((title, text))
        except Exception as exc:  # noqa: BLE001 - never hide the real failure
            rep.sections.append(("harness log collection failed", repr(exc)))


# ------------------------------------------------------------------ basics
@pytest.fixture(scope="session")
def build_dir():
    """Where the module was built (MOD_ACME_BUILD_DIR, default: source root)."""
    return os.path.abspath(os.environ.get("MOD_ACME_BUILD_DIR", SRC_ROOT))


@pytest.fixture(scope="session")
def module_path(build_dir):
    return os.path.join(build_dir, ".libs", "mod_acme.so")


@pytest.fixture(scope="session")
def work_root(request):
    """A world-traversable session directory (pytest's tmp_path is 0700, and
    httpd's children run as www-data)."""
    base = os.environ.get("MOD_ACME_TEST_TMP") or None
    if base:
        os.makedirs(base, exist_ok=True)
    root = tempfile.mkdtemp(prefix="mod_acme-it-", dir=base or "/tmp")
    os.chmod(root, 0o755)
    yield root
    if request.session.testsfailed == 0 and not os.environ.get("MOD_ACME_KEEP_TMP"):
        shutil.rmtree(root, ignore_errors=True)
    else:
        _KEPT.append(root)


_KEPT = []


def pytest_terminal_summary(terminalreporter):
    for root in _KEPT:
        terminalreporter.write_line("mod_acme integration test files kept in %s" % root)


_used_names = set()


@pytest.fixture
def test_dir(request, work_root):
    """A world-traversable directory for this test, under work_root."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
    unique, n = name, 1
    while unique in _used_names:
        n += 1
        unique = "%s.%d" % (name, n)
    _used_names.add(unique)
    path = os.path.join(work_root, unique)
    os.makedirs(path)
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope="session")
def acme_ports():
    """The http-01 and tls-alpn-01 ports: every pebble validates against
    them and every test httpd listens on them."""
    return {"http": util.free_port(), "tls": util.free_port()}


@pytest.fixture(scope="session")
def listener_pki(work_root):
    d = os.path.join(work_root, "pki")
    os.makedirs(d)
    os.chmod(d, 0o755)
    return ListenerPKI(d).generate()


# ------------------------------------------------------------------ ACME side
class _DNSFixture(PebbleDNS):
    def failure_logs(self):
        return [("pebble-challtestsrv log (tail)", util.tail(self.log_text(), 30))]


class _PebbleFixture(Pebble):
    def failure_logs(self):
        return [("pebble %s log (tail) %s" % (self.name, self.log_file),
                 util.tail(self.log_text(), 60))]


@pytest.fixture(scope="session")
def pebble_dns(work_root):
    d = os.path.join(work_root, "challtestsrv")
    os.makedirs(d)
    dns = _DNSFixture(d)
    try:
        dns.start()
        yield dns
    finally:
        dns.stop()


@pytest.fixture
def dns(pebble_dns):
    """(function) pebble_dns, with every record the test set cleared afterwards."""
    yield pebble_dns
    pebble_dns.reset()


@pytest.fixture(scope="session")
def pebble(work_root, listener_pki, pebble_dns, acme_ports):
    p = _PebbleFixture(work_root, "pebble", listener_pki, pebble_dns,
                       acme_ports["http"], acme_ports["tls"])
    try:
        p.start()
        yield p
    finally:
        p.stop()


class PebbleFactory:
    """Extra pebble instances for one test (own listener/management ports,
    the session's validation ports)."""

    def __init__(self, test_dir, pki, dns, ports):
        self.test_dir = test_dir
        self.pki = pki
        self.dns = dns
        self.ports = ports
        self.instances = []

    def __call__(self, env=None, config=None, name=None):
        name = name or "pebble-%d" % (len(self.instances) + 1)
        p = _PebbleFixture(self.test_dir, name, self.pki, self.dns,
                           self.ports["http"], self.ports["tls"], env=env, config=config)
        self.instances.append(p)
        return p.start()

    def failure_logs(self):
        out = []
        for p in self.instances:
            out += p.failure_logs()
        return out

    def stop_all(self):
        for p in self.instances:
            p.stop()


@pytest.fixture
def pebble_factory(test_dir, listener_pki, pebble_dns, acme_ports):
    factory = PebbleFactory(test_dir, listener_pki, pebble_dns, acme_ports)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def pebble_with_delays(pebble_factory):
    # pebble sleeps unless PEBBLE_VA_NOSLEEP is "1" or "true"; 5 s is its default
    return pebble_factory(env={"PEBBLE_VA_NOSLEEP": "", "PEBBLE_VA_SLEEPTIME": "5"},
                          name="pebble-delays")


# ------------------------------------------------------------------ httpd
@pytest.fixture
def httpd(test_dir, acme_ports, module_path):
    """An apache2 for this test (not started). Fails the test at teardown if
    the error log has an [error]-or-worse line not declared by expect_errors()."""
    server = Httpd(os.path.join(test_dir, "httpd"), acme_ports["http"],
                   acme_ports["tls"], module_path=module_path)
    yield server
    try:
        server.stop()
    finally:
        bad = server.unexpected_errors()
        if bad:
            pytest.fail("httpd error log has %d unexpected line(s) at [error] or worse "
                        "(declare them with httpd.expect_errors(regex)):\n%s\n-- tail:\n%s"
                        % (len(bad), "\n".join(bad[:20]), util.tail(server.error_log(), 40)),
                        pytrace=False)


# ------------------------------------------------------------------ ACME proxy
# harness/acmeproxy.py: ARI (renewalInfo), profiles and injected faults (429,
# hostile problem details, a dead CA) in front of a pebble that has none of them.
class _AcmeProxyFixture:
    def __init__(self, listener_pki):
        self.pki = listener_pki
        self.instances = []

    def __call__(self, upstream, ari=True):
        """A started proxy in front of `upstream` (a Pebble)."""
        from harness.acmeproxy import AcmeProxy

        proxy = AcmeProxy(upstream.dir_url, upstream.ca_file, self.pki.cert_file,
                          self.pki.key_file, mgmt_url=upstream.mgmt_url, ari=ari)
        self.instances.append(proxy)
        return proxy.start()

    def failure_logs(self):
        out = []
        for proxy in self.instances:
            if not getattr(proxy, "reported_by_fixture", False):  # no duplicate sections
                out += proxy.failure_logs()
        return out

    def stop_all(self):
        for proxy in self.instances:
            proxy.stop()


@pytest.fixture
def acme_proxy_factory(listener_pki):
    """(function) acme_proxy_factory(pebble_x, ari=True) -> another started AcmeProxy."""
    factory = _AcmeProxyFixture(listener_pki)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def acme_proxy(acme_proxy_factory, pebble):
    """(function) an AcmeProxy in front of the session pebble: .dir_url .ca_file
    .set_ari() .set_profiles() .inject() .set_down() .requests .orders .ari_requests"""
    proxy = acme_proxy_factory(pebble)
    proxy.reported_by_fixture = True
    return proxy


# ------------------------------------------------------------------ etcd
@pytest.fixture(scope="session")
def etcd_cluster(work_root):
    """(session) a 3-member etcd cluster; a test that kills or pauses members
    calls heal() before it ends."""
    from harness.etcd import EtcdCluster

    cluster = EtcdCluster(os.path.join(work_root, "etcd"), size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
# ------------------------------------------------------------------ dns-01 servers
# harness/knot.py and harness/bind.py: authoritative servers on loopback that
# take RFC 2136 updates signed with TSIG (an ACL/update-policy for TXT only).
class _DNSServers:
    """Starts Knot/BIND instances for one test and stops them afterwards."""

    def __init__(self, test_dir):
        self.test_dir = test_dir
        self.instances = []

    def knot(self, name="knot", **kw):
        from harness.knot import Knot

        server = Knot(os.path.join(self.test_dir, name), **kw)
        self.instances.append(server)
        return server.start()

    def bind(self, name="named", **kw):
        from harness.bind import Bind

        server = Bind(os.path.join(self.test_dir, name), **kw)
        self.instances.append(server)
        return server.start()

    def failure_logs(self):
        out = []
        for server in self.instances:
            out += server.failure_logs()
        return out

    def stop_all(self):
        for server in self.instances:
            server.stop()


@pytest.fixture
def dns_servers(test_dir):
    """(function) .knot(name, zones=, listen=, ...) / .bind(name, ...) -> a started server."""
    servers = _DNSServers(test_dir)
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture
def knot(dns_servers):
    """(function) knotd with example.test. (NS on 127.0.0.1 and 127.0.0.2, where it
    listens) and delegated.test.: .addr .port .keys .key_file(path) .txt(name)"""
    return dns_servers.knot(listen=("127.0.0.1", "127.0.0.2"))


@pytest.fixture
def named(dns_servers):
    """(function) BIND's named with the same zones on 127.0.0.1."""
    return dns_servers.bind()


@pytest.fixture(scope="session")
def dnstool(build_dir):
    """Path of test/tools/dnstool, the command-line driver of the dns-01 engine."""
    path = os.path.join(build_dir, "test", "tools", "dnstool")
    if not os.access(path, os.X_OK):
        pytest.fail("%s not built (run make)" % path, pytrace=False)
    return path
