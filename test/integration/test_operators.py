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


# ------------------------------------------------------------------ docs
SRC_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def section_directives_in_code():
    """Directives whose setter accepts a <ManagedDomain> section
    (check_context(cmd, 1)), from mod_acme_config.c's table."""
    with open(os.path.join(SRC_ROOT, "mod_acme", "mod_acme_config.c")) as f:
        src = f.read()
    table = dict((fn, name) for name, fn in
                 re.findall(r'AP_INIT_\w+\("(Managed\w+)", (cmd_\w+)', src))
    allowed = set()
    for fn, name in table.items():
        body = re.search(r"\nstatic const char \*%s\(.*?\n}\n" % fn, src, re.S)
        assert body, fn
        if "check_context(cmd, 1)" in body.group(0):
            allowed.add(name)
    return allowed


def test_directives_md_lists_every_directive_a_section_takes():
    with open(os.path.join(SRC_ROOT, "docs", "directives.md")) as f:
        doc = f.read()
    para = re.search(r"with settings for this domain only inside:(.*?)Server-wide directives",
                     doc, re.S).group(1)
    listed = set(re.findall(r"`(Managed\w+)`", para))
    code = section_directives_in_code()
    assert len(code) > 10
    assert listed == code, ("missing from the docs: %s; not allowed in a section: %s"
                            % (sorted(code - listed), sorted(listed - code)))
