# A round-robin TCP forwarder on loopback: the load balancer in front of a test
# cluster. Each accepted connection goes to the next backend port in turn.
import json
import select
import socket
import threading


class Forwarder:
    """Listens on 127.0.0.1:listen_port and forwards each connection, whole, to
    the next of `backends` (ports on 127.0.0.1). A backend that refuses is
    skipped for that connection. .counts[i]: connections given to backend i.
    With http=True it also reads the HTTP/1.1 requests that pass (an etcd
    gateway's): .requests lists (path, JSON body or None) in order, and
    .bytes_in / .bytes_out count what went to / came from the backends."""

    def __init__(self, listen_port, backends, http=False):
        self.listen_port = listen_port
        self.backends = list(backends)
        self.http = http
        self.requests = []
        self.bytes_in = 0
        self.bytes_out = 0
        self.counts = [0] * len(self.backends)
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = None
        self._threads = []

    def set_backends(self, backends):
        """Forward later connections to these ports instead."""
        with self._lock:
            self.backends = list(backends)
            self.counts = [0] * len(self.backends)
            self._next = 0

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.listen_port))
        s.listen(64)
        s.settimeout(0.2)
        self._sock = s
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        if self._sock:
            self._sock.close()
            self._sock = None

    def _pick(self):
        with self._lock:
            order = [(self._next + i) % len(self.backends) for i in range(len(self.backends))]
            self._next = (self._next + 1) % len(self.backends)
        return order

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(client,), daemon=True)
            t.start()

    def _serve(self, client):
        upstream = None
        for i in self._pick():
            try:
                upstream = socket.create_connection(("127.0.0.1", self.backends[i]), timeout=5)
            except OSError:
                continue
            with self._lock:
                self.counts[i] += 1
            break
        if upstream is None:
            client.close()
            return
        socks = [client, upstream]
        pending = b""
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(socks, [], [], 0.5)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    if self.http:
                        with self._lock:
                            if s is client:
                                self.bytes_in += len(data)
                            else:
                                self.bytes_out += len(data)
                        if s is client:
                            pending = self._parse_requests(pending + data)
                    (upstream if s is client else client).sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def _parse_requests(self, buf):
        """Records the complete requests at the start of buf; returns the rest."""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return buf
            head = buf[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(buf) < end + 4 + length:
                return buf
            body = buf[end + 4:end + 4 + length]
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            parts = head[0].split(" ")
            with self._lock:
                self.requests.append((parts[1] if len(parts) > 1 else "", parsed))
            buf = buf[end + 4 + length:]
