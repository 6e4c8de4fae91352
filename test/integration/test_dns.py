# The dns-01 engine (mod_acme/core/acme_dns.c) against real Knot and BIND on
# loopback, driven by test/tools/dnstool; records are checked with kdig.
import os
import subprocess
import time

import pytest

from harness import util
from harness.dnsrecorder import OP_QUERY, OP_UPDATE, TYPE_CNAME, TYPE_TXT, DnsRecorder
from harness.knot import (Knot, OTHER_KEY, UPDATE_KEY, default_zones, new_secret,
                          tsig_key_text)

REC = "_acme-challenge.www.example.test."


def run_tool(dnstool, server, key, *args, check=(), timeout="10", ns_port=None, expect=0):
    cmd = [dnstool, "--server", server, "--key", key, "--timeout", str(timeout),
           "--interval", "1"]
    for c in check:
        cmd += ["--check", c]
    if ns_port:
        cmd += ["--ns-port", str(ns_port)]
    out = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)
    assert out.returncode == expect, "dnstool %s -> %d, expected %d:\n%s%s" % (
        " ".join(args), out.returncode, expect, out.stdout, out.stderr)
    return out.stderr


def test_base_and_wildcard_values_at_one_name_at_every_ns(dnstool, knot, test_dir):
    """Two values at _acme-challenge.www (base name and wildcard) live side by
    side; the check asks both NS (127.0.0.1, 127.0.0.2); withdraw removes
    only the value it names."""
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    log = run_tool(dnstool, knot.addr, key, "publish", "www.example.test", "value-base",
                   ns_port=knot.port)
    assert "visible at all 2 server(s)" in log  # update server = ns1, plus ns2
    run_tool(dnstool, knot.addr, key, "publish", "*.www.example.test", "value-wild",
             ns_port=knot.port)
    for addr in ("127.0.0.1:%d" % knot.port, "127.0.0.2:%d" % knot.port):
        assert sorted(knot.txt(REC, addr)) == ["value-base", "value-wild"]

    run_tool(dnstool, knot.addr, key, "withdraw", "www.example.test", "value-base")
    assert knot.txt(REC) == ["value-wild"]
    run_tool(dnstool, knot.addr, key, "withdraw", "*.www.example.test", "value-wild")
    assert knot.txt(REC) == []


def test_knot_keymgr_key_file_format(dnstool, knot, test_dir):
    key = knot.key_file(os.path.join(test_dir, "acme.key"), fmt="knot")
    run_tool(dnstool, knot.addr, key, "publish", "www.example.test", "from-keymgr-file",
             check=[knot.addr])
    assert knot.txt(REC) == ["from-keymgr-file"]


def test_cname_delegation_into_second_zone(dnstool, knot, test_dir):
    """_acme-challenge.cname.example.test is a CNAME into delegated.test: the
    record goes to the target, in its zone, and the log says so."""
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    log = run_tool(dnstool, knot.addr, key, "publish", "cname.example.test", "delegated-value",
                   ns_port=knot.port)
    assert ("_acme-challenge.cname.example.test. is a CNAME to cname.acme.delegated.test."
            in log), log
    assert "CNAME delegation" in log
    assert "zone delegated.test." in log
    assert knot.txt("cname.acme.delegated.test.") == ["delegated-value"]
    run_tool(dnstool, knot.addr, key, "withdraw", "cname.example.test", "delegated-value")
    assert knot.txt("cname.acme.delegated.test.") == []


def test_wrong_tsig_secret_is_badsig_naming_the_key(dnstool, knot, test_dir):
    key = knot.key_file(os.path.join(test_dir, "wrong.key"), secret=new_secret())
    log = run_tool(dnstool, knot.addr, key, "publish", "www.example.test", "v", expect=1)
    assert "NOTAUTH/BADSIG" in log, log
    assert "TSIG key '%s'" % UPDATE_KEY in log
    # a BADSIG answer is unsigned (RFC 8945 5.3.2): anyone could have sent
    # it, so it is retried with the normal backoff (class 1), never paused
    assert "class 1" in log and "unsigned answer" in log
    assert knot.txt(REC) == []


def test_key_the_acl_does_not_allow_is_refused_naming_the_key(dnstool, knot, test_dir):
    """other-key may only update A records (Knot answers NOTAUTH/BADKEY)."""
    key = knot.key_file(os.path.join(test_dir, "other.key"), name=OTHER_KEY)
    log = run_tool(dnstool, knot.addr, key, "publish", "www.example.test", "v", expect=1)
    assert "NOTAUTH" in log or "REFUSED" in log, log
    assert "TSIG key '%s'" % OTHER_KEY in log
    assert "class 1" in log  # BADKEY is unsigned as well
    assert knot.txt(REC) == []


def test_acl_allows_only_listed_acme_challenge_names(dnstool, knot, test_dir):
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    log = run_tool(dnstool, knot.addr, key, "publish", "mail.example.test", "v", expect=1)
    assert "NOTAUTH" in log or "REFUSED" in log, log
    assert knot.txt("_acme-challenge.mail.example.test.") == []


def test_clock_skew_is_badtime(dnstool, knot, test_dir):
    """faketime puts this host's clock 2 hours behind: TSIG's 300 s fudge fails."""
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    out = subprocess.run(["faketime", "-f", "-2h", dnstool, "--server", knot.addr, "--key", key,
                          "publish", "www.example.test", "v"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "NOTAUTH/BADTIME" in out.stderr, out.stderr
    assert "TSIG key '%s'" % UPDATE_KEY in out.stderr
    assert knot.txt(REC) == []


def test_update_server_down_times_out_naming_it(dnstool, knot, test_dir):
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    dead = "127.0.0.1:%d" % util.free_port()
    start = time.monotonic()
    log = run_tool(dnstool, dead, key, "publish", "www.example.test", "v", expect=1)
    assert time.monotonic() - start < 15
    assert "DNS update server %s" % dead in log, log
    assert "no answer" in log


def test_zone_not_found(dnstool, knot, test_dir):
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    log = run_tool(dnstool, knot.addr, key, "publish", "www.elsewhere.test", "v", expect=1)
    assert "zone not found" in log, log
    assert "_acme-challenge.www.elsewhere.test." in log
    assert "class 1" in log  # an unsigned REFUSED to a query says it


@pytest.mark.time_limit(90)
def test_check_server_without_the_record_fails_naming_it(dnstool, knot, dns_servers,
                                                         test_dir):
    """A check server that never has the record (a knot without the zone)
    and one where nothing listens: the check fails and names both."""
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    empty = dns_servers.knot("knot-empty", zones={})
    dead = "127.0.0.1:%d" % util.free_port()
    start = time.monotonic()
    log = run_tool(dnstool, knot.addr, key, "publish", "www.example.test", "never-seen",
                   check=[empty.addr, dead], timeout=4, expect=1)
    assert time.monotonic() - start < 30
    assert "the TXT record %s (value never-seen) did not show within 4s" % REC in log, log
    assert "%s: it answered REFUSED" % empty.addr in log
    assert "%s: no answer" % dead in log
    assert "update server" not in log.split("did not show")[1]  # it did show there
    assert knot.txt(REC) == ["never-seen"]  # the caller withdraws, whatever the outcome
    run_tool(dnstool, knot.addr, key, "withdraw", "www.example.test", "never-seen")
    assert knot.txt(REC) == []


@pytest.mark.time_limit(90)
def test_ns_that_never_answers_fails_the_check(dnstool, dns_servers, test_dir):
    """Without a check list the zone's NS are asked: ns2 is 127.0.0.3, where
    nothing listens."""
    server = dns_servers.knot("knot-ns", zones=default_zones(ns2_ip="127.0.0.3"))
    key = server.key_file(os.path.join(test_dir, "acme.key"))
    log = run_tool(dnstool, server.addr, key, "publish", "www.example.test", "v-ns",
                   ns_port=server.port, timeout=3, expect=1)
    assert "ns2.example.test. (127.0.0.3:%d): no answer" % server.port in log, log
    assert "ns1.example.test." not in log.split("did not show")[1]


def test_key_file_errors_name_the_file(dnstool, knot, test_dir):
    path = os.path.join(test_dir, "broken.key")
    with open(path, "w") as f:
        f.write('key "acme-key" {\n  algorithm hmac-md5;\n  secret "YWJj";\n};\n')
    os.chmod(path, 0o600)
    out = subprocess.run([dnstool, "--server", knot.addr, "--key", path, "publish",
                          "www.example.test", "v"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "%s: line 2: algorithm 'hmac-md5' is not supported" % path in out.stderr


@pytest.mark.time_limit(120)
def test_bind_add_two_values_withdraw_one_and_errors(dnstool, named, test_dir):
    """The same flow against BIND: two values, withdraw one; a wrong secret
    (BADSIG) and an update-policy that refuses (REFUSED) name the key."""
    key = named.key_file(os.path.join(test_dir, "acme.key"))
    run_tool(dnstool, named.addr, key, "publish", "www.example.test", "bind-base",
             check=[named.addr])
    run_tool(dnstool, named.addr, key, "publish", "*.www.example.test", "bind-wild",
             check=[named.addr])
    assert sorted(named.txt(REC)) == ["bind-base", "bind-wild"]
    run_tool(dnstool, named.addr, key, "withdraw", "*.www.example.test", "bind-wild")
    assert named.txt(REC) == ["bind-base"]

    log = run_tool(dnstool, named.addr, key, "publish", "cname.example.test", "bind-cname",
                   check=[named.addr])
    assert "CNAME delegation" in log
    assert named.txt("cname.acme.delegated.test.") == ["bind-cname"]

    wrong = named.key_file(os.path.join(test_dir, "wrong.key"), secret=new_secret())
    log = run_tool(dnstool, named.addr, wrong, "publish", "www.example.test", "x", expect=1)
    assert "NOTAUTH/BADSIG" in log and "TSIG key '%s'" % UPDATE_KEY in log, log
    other = named.key_file(os.path.join(test_dir, "other.key"), name=OTHER_KEY)
    log = run_tool(dnstool, named.addr, other, "publish", "www.example.test", "x", expect=1)
    assert "with REFUSED" in log and "TSIG key '%s'" % OTHER_KEY in log, log
    # named signs the refusal of a request it could verify: that is a
    # configuration error (class 3), the only DNS answer that is
    assert "class 3" in log and "unsigned" not in log, log
    # the update-policy allows TXT only at the names it lists
    log = run_tool(dnstool, named.addr, key, "publish", "mail.example.test", "x", expect=1)
    assert "with REFUSED" in log, log
    assert named.txt(REC) == ["bind-base"]


@pytest.mark.time_limit(240)
def test_pebble_validates_dns01_published_through_knot(build_dir, knot, listener_pki,
                                                       acme_ports, test_dir):
    """End to end: pebble resolves with knot (-dnsserver), the core engine
    publishes the dns-01 values by RFC 2136 (base name and wildcard at one
    name), pebble issues, no TXT is left. (A CNAME-delegated name cannot be
    shown here: pebble's DNS client does not follow CNAMEs, and knot does
    not chase them into another zone.)"""
    from types import SimpleNamespace

    from cryptography import x509

    from harness.pebble import Pebble

    pebble = Pebble(test_dir, "pebble-knot", listener_pki, SimpleNamespace(dns_addr=knot.addr),
                    acme_ports["http"], acme_ports["tls"])
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    cert = os.path.join(test_dir, "cert.pem")
    try:
        pebble.start()
        out = subprocess.run(
            [os.path.join(build_dir, "test", "tools", "acmeclient"), "-v",
             "--dir", pebble.dir_url, "--ca-file", pebble.ca_file,
             "--account-key", os.path.join(test_dir, "account.key"),
             "--names", "www.example.test,*.www.example.test",
             "--challenge", "dns-01", "--dns-update", knot.addr, "--dns-key", key,
             "--dns-check", knot.addr,
             "--cert-out", cert, "--key-out", os.path.join(test_dir, "cert.key")],
            capture_output=True, text=True, timeout=200)
        assert out.returncode == 0, out.stdout + out.stderr[-4000:]
    finally:
        pebble.stop()
    with open(cert, "rb") as f:
        leaf = x509.load_pem_x509_certificate(f.read())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == [
        "*.www.example.test", "www.example.test"]
    assert out.stderr.count("dns-01: deleted TXT") == 2
    assert knot.txt(REC) == []


def _ipv6_loopback():
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_update_and_check_over_ipv6(dnstool, dns_servers, test_dir):
    server = dns_servers.knot("knot-v6", listen=("::1", "127.0.0.1"))
    key = server.key_file(os.path.join(test_dir, "acme.key"))
    v6 = "[::1]:%d" % server.port
    log = run_tool(dnstool, v6, key, "publish", "www.example.test", "over-v6",
                   check=["127.0.0.1:%d" % server.port])
    assert "server %s" % v6 in log
    assert server.txt(REC, v6) == ["over-v6"]
    run_tool(dnstool, v6, key, "withdraw", "www.example.test", "over-v6")
    assert server.txt(REC, v6) == []


@pytest.fixture
def recorder():
    server = DnsRecorder().start()
    yield server
    server.stop()


def _key_file(test_dir):
    path = os.path.join(test_dir, "acme.key")
    with open(path, "w") as f:
        f.write(tsig_key_text(UPDATE_KEY, new_secret()))
    os.chmod(path, 0o600)
    return path


def test_random_ids_and_unsigned_refusal_is_transient(dnstool, recorder, test_dir):
    """A server of the test's own answers the update with a plain REFUSED and
    no TSIG, as a forger would: the failure is transient (class 1), and no
    message went out with a fixed id (it was 0 for all)."""
    key = _key_file(test_dir)
    for value in ("v1", "v2"):
        log = run_tool(dnstool, recorder.addr, key, "publish", "www.example.test", value,
                       expect=1)
        assert "with REFUSED" in log, log
        assert "class 1" in log, log
        assert "unsigned answer" in log
        assert "secret" in log  # a wrong secret is named beside the ACL
    kinds = [(m["opcode"], m["qtype"]) for m in recorder.messages]
    # CNAME and SOA lookups, then the update, twice
    assert kinds == [(OP_QUERY, 5), (OP_QUERY, 6), (OP_UPDATE, 6)] * 2, kinds
    ids = recorder.ids()
    assert len(set(ids)) >= 4, ids   # six 16-bit random ids: equal ones are rare
    assert 0 not in ids or len(set(ids)) == len(ids), ids


def test_answer_to_another_question_is_no_answer(dnstool, test_dir):
    """The SOA answer carries the right id but another question: it is
    ignored, so no zone is taken from it and no update is sent."""
    server = DnsRecorder(other_question="evil.example.").start()
    try:
        log = run_tool(dnstool, server.addr, _key_file(test_dir), "publish",
                       "www.example.test", "v", expect=1)
        assert "an answer to another question" in log, log
        assert "class 1" in log
        assert server.updates() == []
    finally:
        server.stop()


def test_query_over_tcp_after_truncation_is_checked_too(dnstool, test_dir):
    """Truncated UDP answers: the lookups are asked again over TCP with the
    same random id, and those answers go through the same check."""
    server = DnsRecorder(truncate_queries=True).start()
    try:
        log = run_tool(dnstool, server.addr, _key_file(test_dir), "publish",
                       "www.example.test", "v", expect=1)
        assert "with REFUSED" in log and "class 1" in log, log
        by_question = {}
        for m in server.messages:
            by_question.setdefault((m["opcode"], m["qtype"]), []).append(m)
        assert sorted(by_question) == [(OP_QUERY, 5), (OP_QUERY, 6), (OP_UPDATE, 6)]
        for key in ((OP_QUERY, 5), (OP_QUERY, 6)):
            sent = by_question[key]
            assert sent[-1]["transport"] == "tcp", sent
            assert len({m["id"] for m in sent}) == 1, sent  # one message, resent
        assert len(set(server.ids())) >= 2, server.messages
    finally:
        server.stop()


def test_unsigned_noerror_to_an_update_is_no_success(dnstool, test_dir):
    """A forged NOERROR without the server's signature does not count as
    written: the update failed (transient)."""
    server = DnsRecorder(update_rcode=0).start()
    try:
        log = run_tool(dnstool, server.addr, _key_file(test_dir), "publish",
                       "www.example.test", "v", expect=1)
        assert "signature does not verify" in log and "class 1" in log, log
        assert "visible" not in log
    finally:
        server.stop()


def test_check_asks_what_the_ca_asks_through_the_cname(dnstool, knot, test_dir):
    """A check server shows the value at the CNAME's target but still gives
    the CA's question (_acme-challenge.NAME) its cached older answer: the
    check waits, naming that question, until that answer shows it too."""
    key = knot.key_file(os.path.join(test_dir, "acme.key"))
    owner, rec = "cname.acme.delegated.test.", "_acme-challenge.cname.example.test."
    run_tool(dnstool, knot.addr, key, "add", "cname.example.test", "fresh")
    stale = [(rec, TYPE_CNAME, owner), (owner, TYPE_TXT, "older")]
    check = DnsRecorder(records={(owner, TYPE_TXT): [(owner, TYPE_TXT, "fresh")],
                                 (rec, TYPE_TXT): stale}).start()
    try:
        log = run_tool(dnstool, knot.addr, key, "wait", "cname.example.test", "fresh",
                       check=[check.addr], timeout=3, expect=1)
        assert "%s: asked for %s TXT, as the CA will" % (check.addr, rec) in log, log
        assert (rec, TYPE_TXT) in {(m["qname"], m["qtype"]) for m in check.messages}
        check.records[(rec, TYPE_TXT)] = stale + [(owner, TYPE_TXT, "fresh")]
        log = run_tool(dnstool, knot.addr, key, "wait", "cname.example.test", "fresh",
                       check=[check.addr], timeout=10)
        assert "visible at all 2 server(s)" in log, log
    finally:
        check.stop()
        run_tool(dnstool, knot.addr, key, "withdraw", "cname.example.test", "fresh")
