# Renewal behaviour that Debian's pebble cannot show by itself, through the
# test-only ACME proxy (harness/acmeproxy.py): ACME Renewal Information,
# Retry-After on 429, profiles, and a hanging CA next to a working one.
import json
import os
import time

from harness.httpd import served_by_ca
from harness.acmeproxy import ari_cert_id

ISSUE_TIMEOUT = 90.0




def conf(httpd, ca, names, extra=""):
    text = httpd.acme_config(ca) + "ManagedRetryDelay 1s\n" + extra
    text += "ManagedDomain %s\n" % " ".join(names) + httpd.vhost(names[0], tls=True)
    return text


def job_of(httpd, name):
    with open(os.path.join(httpd.store_dir, "jobs", name, "job.json")) as f:
        return json.load(f)


def test_rate_limited_order_waits_for_retry_after(httpd, acme_proxy):
    name = "ratelimit.test"
    inj = acme_proxy.inject(endpoint="newOrder", method="POST", status=429, retry_after=6,
                            count=1)
    httpd.write_config(conf(httpd, acme_proxy, [name]))
    httpd.expect_errors(r"ACME0322: ratelimit\.test: .*rateLimited")
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
    assert inj.hits == 1
    posts = [r for r in acme_proxy.requests_to("newOrder", method="POST")]
    refused = [r for r in posts if r.status == 429]
    later = [r for r in posts if r.mono > refused[0].mono]
    assert later, "no order after the 429"
    # ManagedRetryDelay is 1s, but the CA said 6s: nothing may come before
    assert later[0].mono - refused[0].mono >= 5.9
    assert "asked to wait until" in httpd.error_log()


def test_ari_window_in_the_past_renews_now_with_replaces(httpd, acme_proxy):
    name = "ari.past.test"
    acme_proxy.set_ari(start=-7200, end=-3600, retry_after=21600)
    httpd.write_config(conf(httpd, acme_proxy, [name]))
    httpd.start()
    first = httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "first cert")
    first_id = ari_cert_id(first)
    httpd.wait_for(lambda: len(acme_proxy.orders) >= 2, ISSUE_TIMEOUT,
                   "a second order after the CA said 'renew now'")
    # from now on the CA is content: no third order
    acme_proxy.set_ari(start=86400, end=2 * 86400, retry_after=21600)
    assert first_id in acme_proxy.ari_requests
    assert acme_proxy.orders[1].get("replaces") == first_id
    second = httpd.wait_for(
        lambda: (lambda c: c if c is not None and c.serial_number != first.serial_number
                 else None)(served_by_ca(httpd, name)), ISSUE_TIMEOUT, "the renewed cert")
    assert second.not_valid_after >= first.not_valid_after


def test_ari_window_choice_is_kept_across_restarts(httpd, acme_proxy):
    name = "ari.future.test"
    acme_proxy.set_ari(start=10 * 86400, end=12 * 86400, retry_after=21600)
    httpd.write_config(conf(httpd, acme_proxy, [name]))
    httpd.start()
    cert = httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
    certid = ari_cert_id(cert)
    httpd.wait_for(lambda: job_of(httpd, name).get("ari", {}).get("p256", {}).get("cert-id")
                   == certid, 30, "the ARI answer recorded")
    ari = job_of(httpd, name)["ari"]["p256"]
    now = time.time()
    assert ari["start"] <= ari["chosen"] < ari["end"]
    assert 9 * 86400 < ari["chosen"] - now < 13 * 86400
    asked = len(acme_proxy.ari_requests)
    httpd.stop()
    httpd.start()
    time.sleep(3)
    assert job_of(httpd, name)["ari"]["p256"]["chosen"] == ari["chosen"]
    # no new question before the CA's Retry-After, and no new order
    assert len(acme_proxy.ari_requests) == asked
    assert len(acme_proxy.orders) == 1


def test_profile_sent_when_offered(httpd, acme_proxy):
    name = "profile.test"
    acme_proxy.set_profiles({"classic": "90 days", "shortlived": "6 days"})
    httpd.write_config(conf(httpd, acme_proxy, [name], "ManagedProfile shortlived\n"))
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
    assert acme_proxy.orders[0].get("profile") == "shortlived"


def test_mandatory_profile_missing_is_a_config_error(httpd, acme_proxy):
    name = "profile.missing.test"
    acme_proxy.set_profiles({"classic": "90 days"})
    httpd.write_config(conf(httpd, acme_proxy, [name], "ManagedProfile tlsserver mandatory\n"))
    httpd.expect_errors(r"does not offer the profile 'tlsserver'")
    httpd.start()
    httpd.wait_for(lambda: "does not offer the profile 'tlsserver'" in httpd.error_log(), 30,
                   "the profile error")
    time.sleep(3)
    assert acme_proxy.orders == []
    assert httpd.error_log().count("does not offer the profile") == 1  # no busy retries
    assert job_of(httpd, name)["state"] == "config-error"


def test_optional_profile_missing_falls_back(httpd, acme_proxy):
    name = "profile.optional.test"
    httpd.write_config(conf(httpd, acme_proxy, [name], "ManagedProfile tlsserver\n"))
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
    assert "profile" not in acme_proxy.orders[0]


def test_hanging_ca_does_not_block_other_domains(httpd, pebble, acme_proxy):
    slow, fast = "slow.hang.test", "fast.hang.test"
    acme_proxy.set_down("hang")
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 1s\n"
    text += "<ManagedDomain %s>\n  ManagedCA %s\n</ManagedDomain>\n" % (slow, acme_proxy.dir_url)
    text += httpd.vhost(slow, tls=True)
    text += "ManagedDomain %s\n" % fast + httpd.vhost(fast, tls=True)
    httpd.write_config(text)
    # a connection the hung CA breaks (also at teardown, when the proxy stops)
    httpd.expect_errors(r"ACME0322: slow\.hang\.test: ")
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, fast), ISSUE_TIMEOUT, "the other domain's cert")
    assert served_by_ca(httpd, slow) is None
    acme_proxy.set_down(None)
    httpd.wait_for(lambda: served_by_ca(httpd, slow), 120, "the slow domain's cert")


def test_malformed_ari_answer_keeps_the_window_rule(httpd, acme_proxy):
    name = "ari.garbage.test"
    acme_proxy.set_ari(body="{\"suggestedWindow\": {\"start\": \"yesterday\"", retry_after=60)
    httpd.write_config(conf(httpd, acme_proxy, [name]))
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
    httpd.wait_for(lambda: "no valid suggestedWindow" in httpd.error_log(), 30,
                   "the ARI complaint")
    time.sleep(2)
    # the certificate is fine by the window rule: no renewal, asked again later
    assert len(acme_proxy.orders) == 1
    job = job_of(httpd, name)
    assert job["ari"]["p256"]["next-poll"] > time.time() + 600
    assert "start" not in job["ari"]["p256"]


def test_failed_validation_retries_with_the_next_challenge_type(httpd, pebble, dns):
    name = "fallback.type.test"
    # The CA reaches this name at 127.0.0.2, where httpd listens for TLS only:
    # http-01 cannot succeed, tls-alpn-01 can.
    dns.add_a(name, "127.0.0.2")
    text = httpd.acme_config(pebble) + "ManagedRetryDelay 1s\n"
    text += "ManagedChallenges http-01 tls-alpn-01\n"
    text += "Listen 127.0.0.2:%d https\n" % httpd.tls_port
    text += "ManagedDomain %s\n" % name
    text += ("<VirtualHost 127.0.0.1:%d 127.0.0.2:%d>\n    ServerName %s\n    SSLEngine on\n"
             "</VirtualHost>\n" % (httpd.tls_port, httpd.tls_port, name))
    httpd.write_config(text)
    httpd.expect_errors(r"ACME0322: fallback\.type\.test: .*(connection|Connection|refused)")
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT, "the certificate")
    log = httpd.error_log()
    assert "ACME0322: fallback.type.test" in log          # the http-01 attempt failed
    assert "tls-alpn-01: answering the challenge for %s" % name in log
