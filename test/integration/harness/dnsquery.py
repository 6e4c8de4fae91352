# A minimal DNS client (A and TXT over UDP) so the harness can check what the
# mock DNS server really answers, without depending on dig or dnspython.
import random
import socket
import struct

TYPE_A = 1
TYPE_TXT = 16


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not raw or len(raw) > 63:
            raise ValueError("bad DNS label in %r" % name)
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def _skip_name(msg, off):
    while True:
        if off >= len(msg):
            raise ValueError("truncated name")
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def query(server, name, qtype, timeout=2.0):
    """Answer records of one type as a list: dotted IPv4 strings for A,
    the joined character strings (str) for TXT."""
    host, port = server.rsplit(":", 1)
    qid = random.randint(0, 0xFFFF)
    msg = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    msg += _encode_name(name) + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(msg, (host, int(port)))
        resp, _ = s.recvfrom(4096)
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", resp[:12])
    if rid != qid:
        raise ValueError("DNS answer id mismatch")
    rcode = flags & 0xF
    if rcode not in (0, 3):
        raise ValueError("DNS rcode %d" % rcode)
    off = 12
    for _ in range(qd):
        off = _skip_name(resp, off) + 4
    out = []
    for _ in range(an):
        off = _skip_name(resp, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", resp[off:off + 10])
        off += 10
        rdata = resp[off:off + rdlen]
        off += rdlen
        if rtype != qtype:
            continue
        if rtype == TYPE_A and rdlen == 4:
            out.append(socket.inet_ntoa(rdata))
        elif rtype == TYPE_TXT:
            parts, i = [], 0
            while i < len(rdata):
                n = rdata[i]
                parts.append(rdata[i + 1:i + 1 + n].decode("utf-8", "replace"))
                i += 1 + n
            out.append("".join(parts))
    return out
