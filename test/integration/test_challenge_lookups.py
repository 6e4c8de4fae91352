# Challenge lookups in etcd must never hold the server's worker threads: with
# etcd blackholed (a listener that accepts and never answers), a flood of
# made-up tokens leaves ordinary pages and TLS handshakes answering at once.
import os
import re
import socket
import subprocess
import threading
import time
import uuid

import pytest

from harness import util
from harness.httpd import Httpd

NAME = "hostage.lookup.test"
FLOOD_THREADS = 40       # more than the test server's 32 worker threads
PROBE_LIMIT = 1.0        # seconds an ordinary page or a handshake may take


class Blackhole:
    """A TCP listener that accepts every connection and never answers: an
    etcd that hangs. .accepted: connections taken so far."""

    def __init__(self):
        self.port = util.free_port()
        self.accepted = 0
        self._conns = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(512)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._conns.append(conn)
            self.accepted += 1

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        for c in self._conns:
            c.close()


@pytest.fixture
def blackhole():
    b = Blackhole()
    yield b
    b.stop()


def blackholed_server(test_dir, module_path, pebble, blackhole):
    """A server whose ManagedStore etcd hangs and whose CA cannot be reached:
    only the challenge hooks are under test."""
    s = Httpd(os.path.join(test_dir, "httpd"), util.free_port(), util.free_port(),
              module_path=module_path)
    key = os.path.join(test_dir, "store.key")
    subprocess.run(["openssl", "rand", "-out", key, "32"], check=True)
    os.chmod(key, 0o400)
    text = s.acme_config(pebble).replace(pebble.dir_url, "https://127.0.0.1:9/dir")
    text += ("ManagedStore etcd http://127.0.0.1:%d\n" % blackhole.port
             + 'ManagedStoreEncryptionKey "%s"\n' % key
             + "ManagedStorePrefix it-hostage-%s/\n" % uuid.uuid4().hex[:8]
             + "ManagedChallenges http-01\nManagedDomain %s\n" % NAME
             + s.vhost(NAME, tls=True) + s.vhost(NAME, tls=False))
    s.write_config(text)
    # etcd does not answer: the server says so and serves from its cache
    s.expect_errors(r"ACME0011", r"ACME0322", r"ACME1102", r"ACME0329", r"ACME0403")
    return s


@pytest.mark.time_limit(240)
def test_a_flood_of_made_up_tokens_with_etcd_blackholed_leaves_the_site_answering(
        test_dir, module_path, pebble, blackhole):
    s = blackholed_server(test_dir, module_path, pebble, blackhole)
    s.start()
    try:
        assert s.http_get("/index.html", NAME).status == 200
        stop = threading.Event()
        sent, answered = [0], {}
        lock = threading.Lock()

        def flood(k):
            # half ask for new made-up tokens (one lookup each), half for
            # one made-up token (they wait for each other's lookup)
            while not stop.is_set():
                token = "F" + (uuid.uuid4().hex if k % 2 else "same")
                try:
                    status = s.http_get("/.well-known/acme-challenge/" + token, NAME,
                                        timeout=30).status
                except OSError:
                    status = "error"
                with lock:
                    sent[0] += 1
                    answered[status] = answered.get(status, 0) + 1

        threads = [threading.Thread(target=flood, args=(k,), daemon=True)
                   for k in range(FLOOD_THREADS)]
        for t in threads:
            t.start()
        slow, took = [], []
        try:
            # the flood reaches etcd (the blackhole) before the probes start
            util.wait_for(lambda: blackhole.accepted >= 2 and sent[0] >= FLOOD_THREADS, 30,
                          "the flood's lookups to reach the blackholed etcd")
            # probe while the server tries etcd again and again (each try
            # waits the full 1.5 s lookup timeout): a pinned thread pool
            # shows at once
            first, deadline = blackhole.accepted, time.monotonic() + 90
            while len(took) < 12 or blackhole.accepted < first + 4:
                assert time.monotonic() < deadline, "the server stopped trying etcd"
                t0 = time.monotonic()
                try:
                    page = s.http_get("/index.html", NAME, timeout=10).status
                except OSError as exc:
                    page = repr(exc)
                t1 = time.monotonic()
                try:
                    s.tls_handshake(NAME)
                    shake = "ok"
                except OSError as exc:
                    shake = repr(exc)
                t2 = time.monotonic()
                took.append(max(t1 - t0, t2 - t1))
                if page != 200 or t1 - t0 > PROBE_LIMIT or shake != "ok" \
                        or t2 - t1 > PROBE_LIMIT:
                    slow.append((len(took), page, round(t1 - t0, 2), shake, round(t2 - t1, 2)))
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        assert slow == [], "probes that failed or took over %.1f s during the flood: %s " \
                           "(flood: %s)" % (PROBE_LIMIT, slow[:10], answered)
        print("flood: %d requests %s; connections to the blackhole: %d; slowest probes %s"
              % (sent[0], answered, blackhole.accepted, [round(t, 2) for t in sorted(took)[-3:]]))
        # the flood was one, and made-up tokens are 404
        assert sent[0] > 10 * FLOOD_THREADS, answered
        assert set(answered) == {404}, answered
    finally:
        s.stop()
        bad = s.unexpected_errors()
        assert bad == [], bad
    # each child said once that lookups fail, not once per request
    opened = re.findall(r"\[pid (\d+):tid \d+\] ACME1600", s.error_log())
    assert opened and len(opened) == len(set(opened)), opened
