# A DNS server of the test's own on loopback (UDP and TCP on one port) for
# what knot and named will not do: it records the id and question of every
# message it gets, and answers updates with an unsigned REFUSED, as an
# off-path forger (or PowerDNS with a wrong secret) would.
import socket
import struct
import threading

from harness.dnsquery import _encode_name

OP_QUERY = 0
OP_UPDATE = 5
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_TXT = 16
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5


def _read_name(msg, off):
    """An uncompressed name (a question's first name is never compressed)."""
    labels = []
    while msg[off]:
        n = msg[off]
        if n & 0xC0:
            raise ValueError("compressed name in the question")
        labels.append(msg[off + 1:off + 1 + n].decode("ascii").lower())
        off += 1 + n
    return ".".join(labels) + ".", off + 1


def _rr(owner, rtype, data):
    """An answer RR: data is the CNAME target or the TXT string."""
    rdata = _encode_name(data) if rtype == TYPE_CNAME else bytes([len(data)]) + data.encode()
    return _encode_name(owner) + struct.pack(">HHIH", rtype, 1, 60, len(rdata)) + rdata


class DnsRecorder:
    """Answers as the authoritative server of zone: every query with NXDOMAIN
    and the zone's SOA (so the engine finds the zone), every update with an
    unsigned REFUSED (update_rcode: another rcode, still unsigned).
    records: {(qname, qtype): [(owner, type, data), ...]} answered with
    NOERROR instead (may be changed while it runs). other_question: the
    answer to the SOA query carries that name instead of the one asked.
    truncate_queries: the UDP answer to a query is truncated (TC), so it is
    asked again over TCP."""

    def __init__(self, zone="example.test.", other_question=None, truncate_queries=False,
                 records=None, update_rcode=RCODE_REFUSED):
        self.zone = zone
        self.other_question = other_question
        self.truncate_queries = truncate_queries
        self.records = records if records is not None else {}
        self.update_rcode = update_rcode
        self.messages = []   # dicts: id, opcode, qname, qtype, transport
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._udp = self._tcp = None
        self.port = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        # one port for both transports: the kernel picks it for UDP
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            break
        else:
            raise RuntimeError("no free port for UDP and TCP")
        tcp.listen(8)
        udp.settimeout(0.2)
        tcp.settimeout(0.2)
        self._udp, self._tcp, self.port = udp, tcp, udp.getsockname()[1]
        for fn in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._udp.close()
        self._tcp.close()

    def updates(self):
        with self._lock:
            return [m for m in self.messages if m["opcode"] == OP_UPDATE]

    def ids(self):
        with self._lock:
            return [m["id"] for m in self.messages]

    def _serve_udp(self):
        while not self._stop.is_set():
            try:
                msg, peer = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            out = self._answer(msg, "udp")
            if out:
                self._udp.sendto(out, peer)

    def _serve_tcp(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    while True:
                        head = conn.recv(2, socket.MSG_WAITALL)
                        if len(head) < 2:
                            break
                        msg = conn.recv(struct.unpack(">H", head)[0], socket.MSG_WAITALL)
                        out = self._answer(msg, "tcp")
                        conn.sendall(struct.pack(">H", len(out)) + out)
                except OSError:
                    pass

    def _answer(self, msg, transport):
        if len(msg) < 12:
            return None
        mid, flags, qdcount = struct.unpack(">HHH", msg[:6])
        opcode = (flags >> 11) & 0xF
        if qdcount < 1:
            return None
        qname, off = _read_name(msg, 12)
        qtype, qclass = struct.unpack(">HH", msg[off:off + 4])
        with self._lock:
            self.messages.append({"id": mid, "opcode": opcode, "qname": qname, "qtype": qtype,
                                  "transport": transport})
        if opcode == OP_QUERY and qtype == TYPE_SOA and self.other_question:
            qname = self.other_question
        question = _encode_name(qname) + struct.pack(">HH", qtype, qclass)
        if opcode == OP_UPDATE:
            # no TSIG record: an unsigned answer
            return struct.pack(">HHHHHH", mid, 0x8000 | (opcode << 11) | self.update_rcode, 1,
                               0, 0, 0) + question
        if self.truncate_queries and transport == "udp":
            return struct.pack(">HHHHHH", mid, 0x8000 | 0x0400 | 0x0200, 1, 0, 0, 0) + question
        answer = self.records.get((qname, qtype))
        if answer is not None:
            return (struct.pack(">HHHHHH", mid, 0x8000 | 0x0400, 1, len(answer), 0, 0)
                    + question + b"".join(_rr(*a) for a in answer))
        soa_rdata = (_encode_name("ns1." + self.zone) + _encode_name("hostmaster." + self.zone)
                     + struct.pack(">IIIII", 1, 3600, 600, 86400, 60))
        soa = (_encode_name(self.zone) + struct.pack(">HHIH", TYPE_SOA, 1, 60, len(soa_rdata))
               + soa_rdata)
        return struct.pack(">HHHHHH", mid, 0x8000 | 0x0400 | RCODE_NXDOMAIN, 1, 0, 1,
                           0) + question + soa
