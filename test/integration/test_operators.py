# What operators coming from certbot or mod_md expect (issue 26): the module's
# own log level, an outbound proxy to the CA, EAB from a root-only file, and
# the redirect to https with HSTS. Real apache2 and real pebble on loopback.
import os
import re

from harness.httpd import served_by_ca

ISSUE_TIMEOUT = 90.0


def managed_site(httpd, ca, names, extra_global="", section=""):
    """Global settings for `ca`, one ManagedDomain (a section when `section`
    is given) and an http and an https vhost for its names."""
    text = httpd.acme_config(ca) + "ManagedRetryDelay 2s\n" + extra_global
    if section:
        text += "<ManagedDomain %s>\n%s</ManagedDomain>\n" % (" ".join(names), section)
    else:
        text += "ManagedDomain %s\n" % " ".join(names)
    text += httpd.vhost(names[0], tls=True, aliases=names[1:])
    text += httpd.vhost(names[0], tls=False, aliases=names[1:])
    return text


def wait_issued(httpd, name):
    return httpd.wait_for(lambda: served_by_ca(httpd, name), ISSUE_TIMEOUT,
                          "the CA-issued certificate served for %s" % name)


# ------------------------------------------------------------------ LogLevel acme:
def test_core_info_lines_follow_the_modules_own_level(httpd, pebble):
    # Debian's default is "LogLevel warn": acme:info must still show the
    # core's info lines (ACME0404 "order ... created" comes from the core).
    name = "loglevel-on.operators.test"
    httpd.write_config(managed_site(httpd, pebble, [name]) + "LogLevel warn acme:info\n")
    httpd.start()
    wait_issued(httpd, name)
    log = httpd.error_log()
    assert re.search(r"\[acme:info\] .*ACME0404: %s: order \S+ created" % re.escape(name),
                     log), log
    assert "[core:info]" not in log  # the global level is warn


def test_core_info_lines_hidden_by_acme_warn(httpd, pebble):
    name = "loglevel-off.operators.test"
    httpd.write_config(managed_site(httpd, pebble, [name]) + "LogLevel info acme:warn\n")
    httpd.start()
    wait_issued(httpd, name)
    log = httpd.error_log()
    assert "ACME0404" not in log, log
    assert "[acme:info]" not in log and "[acme:debug]" not in log
    assert "[core:info]" in log or "[mpm_event:info]" in log or "[ssl:info]" in log, log
