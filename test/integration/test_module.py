# mod_acme end to end: a real apache2 with the module gets certificates from
# a real pebble, answers its challenges itself and restarts by itself.
import os
import stat


from harness.httpd import served_by_ca
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from harness.pki import cert_issuer_cn, cert_sans

ISSUE_TIMEOUT = 90.0


def leaf_of(httpd, host):
    return httpd.get_cert(host)




def verify_chain(httpd, host, pebble):
    """The served chain verifies against pebble's issuing root."""
    import ssl
    import tempfile
    roots = pebble.roots_pem()
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(roots)
        path = f.name
    try:
        ctx = ssl.create_default_context(cafile=path)
        ctx.check_hostname = True
        import socket
        with socket.create_connection(("127.0.0.1", httpd.tls_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                return tls.getpeercert() is not None
    finally:
        os.unlink(path)


def config_for(httpd, pebble, domains, challenges=None, extra_global="", port_map=True):
    text = httpd.acme_config(pebble, port_map=port_map)
    if challenges:
        text += "ManagedChallenges %s\n" % challenges
    text += "ManagedRetryDelay 2s\n" + extra_global
    for names in domains:
        text += "ManagedDomain %s\n" % " ".join(names)
        text += httpd.vhost(names[0], tls=True, aliases=names[1:])
        text += httpd.vhost(names[0], tls=False, aliases=names[1:])
    return text


def test_http01_issuance_without_manual_restart(httpd, pebble):
    name = "one.http01.test"
    httpd.write_config(config_for(httpd, pebble, [[name]], challenges="http-01"))
    httpd.start()
    # before the CA answered: the fallback, and a 503 with an explanation
    cert = httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT,
                          "the CA-issued certificate served for %s" % name)
    assert name in cert_sans(cert)
    assert verify_chain(httpd, name, pebble)
    assert "restarting gracefully to activate" in httpd.error_log()
    r = httpd.https_get("/", name)
    assert r.status != 503


def test_a_batch_of_new_domains_is_activated_by_one_restart(httpd, pebble):
    # more domains than slots: jobs follow one another, the child tells the
    # parent when the batch is complete, and one graceful restart serves all
    names = ["batch%02d.test" % i for i in range(12)]
    httpd.write_config(config_for(httpd, pebble, [[n] for n in names], challenges="http-01",
                                  extra_global="ManagedParallelRenewals 4\n"))
    httpd.start()
    for n in names:
        httpd.wait_for(lambda: served_by_ca(httpd, n), ISSUE_TIMEOUT,
                       "the CA-issued certificate served for %s" % n)
    log = httpd.error_log()
    assert log.count("ACME0312") == 1, log
    assert "12 new certificate(s) ready" in log
    assert httpd.resuming_count() == 2


def test_tls_alpn01_only_when_port80_unreachable(httpd, pebble):
    name = "one.alpn.test"
    text = httpd.acme_config(pebble, port_map=False)
    text += "ManagedPortMap 80:- 443:%d\nManagedRetryDelay 2s\n" % httpd.tls_port
    text += "ManagedDomain %s\n" % name + httpd.vhost(name, tls=True)
    httpd.write_config(text)
    httpd.start()
    cert = httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT,
                          "the CA-issued certificate served for %s" % name)
    assert name in cert_sans(cert)
    assert "tls-alpn-01: answering the challenge" in httpd.error_log()
    assert "http-01: answering" not in httpd.error_log()


def test_several_names_and_two_domains(httpd, pebble):
    a = ["a.multi.test", "www.a.multi.test", "shop.a.multi.test"]
    b = ["b.multi.test"]
    httpd.write_config(config_for(httpd, pebble, [a, b]))
    httpd.start()
    ca = httpd.wait_for(lambda: served_by_ca(httpd, a[0]), ISSUE_TIMEOUT, "cert for a")
    cb = httpd.wait_for(lambda: served_by_ca(httpd, b[0]), ISSUE_TIMEOUT, "cert for b")
    assert set(a) <= set(cert_sans(ca))
    assert cert_sans(cb) == b
    # the alias gets the same certificate
    assert cert_sans(httpd.get_cert(a[1])) == cert_sans(ca)


def test_stop_start_keeps_certificate_and_orders_nothing(httpd, pebble):
    name = "persist.test"
    httpd.write_config(config_for(httpd, pebble, [[name]]))
    httpd.start()
    first = httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "first cert")
    store = httpd.store_dir
    orders_before = open(httpd.error_log_file).read().count("order https://")
    httpd.stop()
    httpd.start()
    again = httpd.get_cert(name)
    assert again.serial_number == first.serial_number
    # a full check cycle passes without a new order
    import time
    time.sleep(3)
    assert open(httpd.error_log_file).read().count("order https://") == orders_before
    # keys are private
    key = os.path.join(store, "domains", name, "privkey.p256.pem")
    st = os.stat(key)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0


def test_fallback_503_before_issuance(httpd, pebble):
    name, other = "pending.test", "pending2.test"
    # port map points nowhere useful: no challenge can succeed, so the
    # fallback stays and the log says why
    text = httpd.acme_config(pebble, port_map=False)
    text += "ManagedPortMap 80:- 443:-\n"
    for n in (name, other):
        text += "ManagedDomain %s\n" % n + httpd.vhost(n, tls=True)
    httpd.write_config(text)
    httpd.expect_errors(r"no challenge type can work")
    httpd.start()
    cert = httpd.get_cert(name)
    assert "mod_acme fallback" in cert_issuer_cn(cert)
    r = httpd.https_get("/", name)
    assert r.status == 503
    assert "Certificate pending" in r.text
    # one key signs every temporary certificate (no key generation per new
    # domain at start-up); each certificate names its own domain
    cert2 = httpd.get_cert(other)
    spki = [c.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
            for c in (cert, cert2)]
    assert spki[0] == spki[1]
    assert cert.serial_number != cert2.serial_number
    for c, n in ((cert, name), (cert2, other)):
        sans = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == [n]
    key = os.path.join(httpd.store_dir, "domains", "_fallback", "fallback.key.pem")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    # one directory for them all, none per pending domain
    assert os.path.isfile(os.path.join(httpd.store_dir, "domains", "_fallback", name + ".cert.pem"))
    assert not os.path.exists(os.path.join(httpd.store_dir, "domains", name))
    # a restart makes nothing new: the same certificates are served
    httpd.graceful()
    assert httpd.get_cert(name).serial_number == cert.serial_number


def test_challenge_endpoint_rejects_bad_requests(httpd, pebble):
    name = "chall.test"
    text = config_for(httpd, pebble, [[name]])
    text += httpd.vhost("other.unmanaged.test", tls=False)
    httpd.write_config(text)
    httpd.start()
    base = "/.well-known/acme-challenge/"
    assert httpd.http_get(base + "unknownTokenAbc123", name).status == 404
    assert httpd.http_get(base + "..%2f..%2fetc%2fpasswd", name).status == 404
    assert httpd.http_get(base + "%2e%2e", name).status == 404
    assert httpd.http_get(base + "a.b", name).status == 404
    assert httpd.http_get(base, name).status == 404
    r = httpd.http_get(base + "abc", name, headers=None) if False else None
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", httpd.http_port, timeout=10)
    conn.request("POST", base + "abc", body=b"x", headers={"Host": name})
    assert conn.getresponse().status in (404, 405)
    conn.close()
    # a vhost that is not managed: the module does not answer, httpd's own
    # handling does (a plain 404 from the file system here)
    os.makedirs(os.path.join(httpd.docroot, ".well-known", "acme-challenge"), exist_ok=True)
    with open(os.path.join(httpd.docroot, ".well-known", "acme-challenge", "static"), "w") as f:
        f.write("from the docroot")
    os.chmod(os.path.join(httpd.docroot, ".well-known", "acme-challenge", "static"), 0o644)
    r = httpd.http_get(base + "static", "other.unmanaged.test")
    assert r.status == 200 and r.text == "from the docroot"


def test_startup_warnings_for_unused_domain_and_uncovered_alias(httpd, pebble):
    text = httpd.acme_config(pebble, port_map=False) + "ManagedPortMap 80:- 443:-\n"
    text += "ManagedDomain unused.warn.test\n"
    text += "ManagedDomain used.warn.test\n"
    text += httpd.vhost("used.warn.test", tls=True, aliases=["extra.warn.test"])
    httpd.write_config(text)
    httpd.expect_errors(r"used\.warn\.test: no challenge type can work")
    httpd.start()
    log = httpd.error_log()
    assert "ManagedDomain unused.warn.test (line %d" % httpd.config_line_of(
        "ManagedDomain unused.warn.test") in log
    assert "is not used by any SSL virtual host" in log
    assert "does not include the name 'extra.warn.test'" in log


def test_adding_a_key_type_orders_only_the_missing_one(httpd, pebble):
    name = "addkey.test"
    base = httpd.acme_config(pebble) + "ManagedRetryDelay 1s\n"
    vhost = "ManagedDomain %s\n" % name + httpd.vhost(name, tls=True)
    httpd.write_config(base + vhost)
    httpd.start()
    first = httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the P-256 cert")
    mark = pebble.log_mark()
    httpd.write_config(base + "ManagedKeys P-256 RSA-2048\n" + vhost)
    httpd.graceful()
    # while the RSA certificate is on its way, the P-256 one is still served
    assert httpd.get_cert(name).serial_number == first.serial_number
    assert httpd.https_get("/index.html", name).status == 200
    rsa = os.path.join(httpd.store_dir, "domains", name, "cert.rsa2048.pem")
    httpd.wait_for(lambda: os.path.exists(rsa), ISSUE_TIMEOUT, "the RSA certificate activated")
    assert pebble.count_orders(mark) == 1
    # the P-256 certificate is the same one as before
    assert httpd.get_cert(name).serial_number == first.serial_number


def test_ip_address_certificate_via_http01(httpd, pebble):
    ip = "127.0.0.1"
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 1s\nManagedChallenges http-01\n"
    text += "ManagedDomain %s\n" % ip + httpd.vhost(ip, tls=True)
    httpd.write_config(text)
    httpd.start()
    # no SNI for an IP address: the address's (only) TLS vhost answers
    cert = httpd.wait_for(lambda: served_by_ca(httpd, ip), ISSUE_TIMEOUT, "the IP certificate")
    from cryptography import x509
    import ipaddress
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address(ip) in sans.get_values_for_type(x509.IPAddress)


def test_ip_address_certificate_via_tls_alpn01(httpd, pebble):
    # the CA sends the reverse-DNS name as SNI (RFC 8738): 1.0.0.127.in-addr.arpa
    ip = "127.0.0.1"
    text = httpd.acme_config(pebble, port_map=False)
    text += "ManagedPortMap 80:- 443:%d\nManagedRetryDelay 1s\n" % httpd.tls_port
    text += "ManagedDomain %s\n" % ip + httpd.vhost(ip, tls=True)
    httpd.write_config(text)
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, ip), ISSUE_TIMEOUT, "the IP certificate")
    assert "tls-alpn-01: answering the challenge for 127.0.0.1" in httpd.error_log()


def test_wildcard_without_dns01_is_reported_at_start(httpd, pebble):
    text = httpd.acme_config(pebble) + "ManagedDomain wild.nodns.test *.wild.nodns.test\n"
    text += httpd.vhost("wild.nodns.test", tls=True, aliases=["*.wild.nodns.test"])
    httpd.write_config(text)
    httpd.expect_errors(r"can only be validated with dns-01", r"no challenge type can work")
    httpd.start()
    assert "the wildcard name *.wild.nodns.test can only be validated with dns-01" \
        in httpd.error_log()


def test_a_vhost_takes_the_domain_of_its_own_name_before_a_wildcard(httpd, pebble):
    """Vhosts find their domain by name (a hash, not every domain compared
    with every vhost): the domain with the vhost's own name wins over a
    wildcard that covers it, wherever either is in the file."""
    text = httpd.acme_config(pebble)
    text += "ManagedDomain *.pick.test\nManagedDomain www.pick.test\n"
    text += httpd.vhost("www.pick.test", tls=True) + httpd.vhost("other.pick.test", tls=True)
    httpd.write_config(text)
    httpd.expect_errors(r"can only be validated with dns-01", r"no challenge type can work")
    httpd.start()
    cert = httpd.wait_for(lambda: served_by_ca(httpd, "www.pick.test"), ISSUE_TIMEOUT,
                          "the certificate of www.pick.test")
    assert cert_sans(cert) == ["www.pick.test"]
    log = httpd.error_log()
    assert "ManagedDomain www.pick.test" not in log  # ACME0003: "is not used by any SSL vhost"
    assert "ManagedDomain *.pick.test" not in log    # other.pick.test uses it


def test_wildcard_certificate_via_dns01_hook(httpd, pebble, pebble_dns, test_dir):
    hook_dir = os.path.join(test_dir, "dnshook")
    os.makedirs(hook_dir)
    os.chmod(hook_dir, 0o777)
    hook, log = os.path.join(hook_dir, "hook.sh"), os.path.join(hook_dir, "hook.log")
    with open(hook, "w") as f:
        f.write("""#!/bin/sh
# ManagedDNSHook for the test: challtestsrv's management API holds the TXT records
op=$1; name=$2; value=$3
case "$op" in
  set) curl -sf -X POST -d "{\\"host\\":\\"_acme-challenge.$name.\\",\\"value\\":\\"$value\\"}" %(m)s/set-txt ;;
  unset) curl -sf -X POST -d "{\\"host\\":\\"_acme-challenge.$name.\\"}" %(m)s/clear-txt ;;
  *) exit 2 ;;
esac
rc=$?
echo "$op $name $value rc=$rc record=$MOD_ACME_RECORD txt=$MOD_ACME_TXT" >> %(log)s
exit $rc
""" % {"m": pebble_dns.mgmt_url, "log": log})
    os.chmod(hook, 0o755)
    open(log, "w").close()
    os.chmod(log, 0o666)
    names = ["wild.test", "*.wild.test"]
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 1s\n"
    text += "ManagedChallenges dns-01 http-01\nManagedDNSHook %s\n" % hook
    text += "ManagedDomain %s\n" % " ".join(names)
    text += httpd.vhost("wild.test", tls=True, aliases=["*.wild.test"])
    httpd.write_config(text)
    httpd.start()
    cert = httpd.wait_for(lambda: served_by_ca(httpd, "any.wild.test"), ISSUE_TIMEOUT,
                          "the wildcard certificate")
    assert set(cert_sans(cert)) == set(names)
    httpd.wait_for(lambda: len(open(log).read().splitlines()) >= 4, 10, "the cleanup")
    lines = [l.split() for l in open(log).read().splitlines()]
    sets = sorted(l[2] for l in lines if l[0] == "set")
    unsets = sorted(l[2] for l in lines if l[0] == "unset")
    # the base name and the wildcard: two values, each removed once, by value
    assert len(sets) == 2 and sets[0] != sets[1], lines
    assert unsets == sets, lines
    for l in lines:
        assert l[1] == "wild.test" and l[3] == "rc=0", l
        # the documented environment: the record name and the TXT value
        assert l[4] == "record=_acme-challenge.wild.test" and l[5] == "txt=" + l[2], l
    # the value set is the base64url SHA-256 of a key authorization: 43 chars
    assert len(sets[0]) == 43 and "=" not in sets[0]


def test_adding_a_name_keeps_serving_until_the_new_certificate(httpd, pebble):
    names = ["grow.test"]
    base = httpd.acme_config(pebble) + "ManagedRetryDelay 1s\n"
    httpd.write_config(base + "ManagedDomain grow.test\n"
                       + httpd.vhost("grow.test", tls=True, aliases=["www.grow.test"]))
    httpd.start()
    first = httpd.wait_for(lambda: served_by_ca(httpd, "grow.test"), ISSUE_TIMEOUT, "first")
    assert cert_sans(first) == names
    httpd.write_config(base + "ManagedDomain grow.test www.grow.test\n"
                       + httpd.vhost("grow.test", tls=True, aliases=["www.grow.test"]))
    httpd.graceful()
    # the old certificate stays in service, no fallback and no 503
    assert httpd.get_cert("grow.test").serial_number == first.serial_number
    assert httpd.https_get("/index.html", "grow.test").status == 200
    second = httpd.wait_for(
        lambda: (lambda c: c if c is not None and "www.grow.test" in cert_sans(c) else None)(
            served_by_ca(httpd, "grow.test")), ISSUE_TIMEOUT, "the certificate with both names")
    assert set(cert_sans(second)) == {"grow.test", "www.grow.test"}


def test_damaged_memo_of_checked_pairs_is_not_trusted(httpd, pebble):
    name = "memo.store.test"
    httpd.write_config(httpd.acme_config(pebble) + "ManagedDomain %s\n" % name
                       + httpd.vhost(name, tls=True))
    httpd.start()
    first = httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "first cert")
    httpd.stop()
    memo = os.path.join(httpd.store_dir, "domains", "_checked", "pairs.sha256")
    assert stat.S_IMODE(os.stat(memo).st_mode) & 0o077 == 0  # digests of private keys
    with open(memo, "wb") as f:
        f.write(os.urandom(77))    # not whole digests, and none of ours
    httpd.start()
    assert served_by_ca(httpd, name).serial_number == first.serial_number
    with open(memo, "rb") as f:
        data = f.read()
    assert len(data) % 32 == 0 and len(data) >= 32, "made again from the pairs checked"


def test_mismatched_key_in_store_does_not_stop_the_server(httpd, pebble):
    import subprocess
    name = "broken.store.test"
    httpd.write_config(httpd.acme_config(pebble) + "ManagedRetryDelay 1s\n"
                       + "ManagedDomain %s\n" % name + httpd.vhost(name, tls=True))
    httpd.start()
    first = httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "first cert")
    httpd.stop()
    # the pairs found good are remembered across processes, by content: a
    # key replaced with its file's time and size kept is checked again
    assert os.path.getsize(os.path.join(httpd.store_dir, "domains", "_checked",
                                        "pairs.sha256")) % 32 == 0
    key = os.path.join(httpd.store_dir, "domains", name, "privkey.p256.pem")
    old = os.stat(key)
    while True:
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", key], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if os.path.getsize(key) == old.st_size:
            break
    os.utime(key, ns=(old.st_atime_ns, old.st_mtime_ns))
    httpd.expect_errors(r"ACME0106: broken\.store\.test: the P-256 certificate .* cannot be used")
    httpd.start()   # mod_ssl would refuse a mismatched pair: the module must not hand it over
    second = httpd.wait_for(
        lambda: (lambda c: c if c is not None and c.serial_number != first.serial_number
                 else None)(served_by_ca(httpd, name)), ISSUE_TIMEOUT, "a new certificate")
    assert second is not None


def test_the_server_exits_cleanly_at_stop(httpd, pebble):
    """What the module keeps across restarts lives in the process pool,
    whose cleanups run after the module is unloaded: none of them may be the
    module's (before: the fallback key's, a segfault of the parent at every
    stop, seen only as its exit status or a core). httpd runs in the
    foreground here so that its exit status is seen."""
    import signal
    import subprocess
    from harness import util
    from harness.httpd import APACHE_BIN
    name = "exit.test"
    text = httpd.acme_config(pebble, port_map=False) + "ManagedPortMap 80:- 443:-\n"
    text += "ManagedDomain %s\n" % name + httpd.vhost(name, tls=True)
    httpd.write_config(text)
    httpd.expect_errors(r"no challenge type can work")
    proc = subprocess.Popen([APACHE_BIN, "-d", httpd.root, "-f", httpd.conf_file, "-DFOREGROUND"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        util.wait_for(lambda: httpd.resuming_count() == 1 and util.port_accepts(httpd.tls_port),
                      30, "httpd in the foreground serving")
        assert "mod_acme fallback" in cert_issuer_cn(httpd.get_cert(name))
        proc.send_signal(signal.SIGUSR1)    # a graceful restart: a second generation
        util.wait_for(lambda: httpd.resuming_count() == 2, 30, "the second generation")
        assert "mod_acme fallback" in cert_issuer_cn(httpd.get_cert(name))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
