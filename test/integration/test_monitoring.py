# docs/monitoring against promtool and the real metrics handler: the rules check
# and pass their unit tests, and every metric they or the dashboard use exists.
import json
import os
import re
import subprocess
import tempfile

from harness.httpd import served_by_ca

SRC_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MON = os.path.join(SRC_ROOT, "docs", "monitoring")
RULES = os.path.join(MON, "mod_acme.rules.yml")
TESTS = os.path.join(MON, "tests.yml")
DASHBOARD = os.path.join(MON, "grafana-dashboard.json")

# The only metrics the rules and the dashboard may use although the module does
# not export them yet. Remove a name here when the module exports it.
PLANNED_METRICS = set()
NAME = "m.monitoring.test"
METRIC_RE = re.compile(r"\bacme_[a-z0-9_]+\b")


def promtool(*args):
    proc = subprocess.run(["promtool"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, cwd=MON, timeout=120)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def rule_exprs():
    """The expr of every rule (the YAML has one `expr:` per rule, inline or |)."""
    exprs, cur = [], None
    with open(RULES) as f:
        for line in f:
            m = re.match(r"^(\s*)expr:\s*(\|)?\s*(.*)$", line)
            if m:
                cur = None
                if m.group(2):
                    cur = []
                    exprs.append(cur)
                else:
                    exprs.append([m.group(3)])
                continue
            if cur is not None:
                if re.match(r"^\s+(for|labels|annotations):", line) or re.match(r"^\s+- ", line):
                    cur = None
                else:
                    cur.append(line.strip())
    return [" ".join(e).strip() for e in exprs]


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        if isinstance(q, dict) and var.get("type") == "query":
            exprs.append(q["query"])
    return exprs


def used_metrics(exprs):
    return {m for e in exprs for m in METRIC_RE.findall(e)}


def test_rules_check_and_unit_tests():
    rc, out = promtool("check", "rules", RULES)
    assert rc == 0, out
    rc, out = promtool("test", "rules", TESTS)
    assert rc == 0 and "SUCCESS" in out, out
    # Each alert has a runbook line, and tests.yml tests each alert.
    with open(RULES) as f:
        rules_text = f.read()
    with open(TESTS) as f:
        tests_text = f.read()
    alerts = re.findall(r"^\s+- alert: (\w+)$", rules_text, re.M)
    assert len(alerts) == len(rule_exprs()) >= 5, alerts
    assert rules_text.count("runbook:") == len(alerts)
    for a in alerts:
        assert re.search(r"alertname: %s\n\s+exp_alerts: \[\]" % a, tests_text), \
            "%s: no test where it does not fire" % a
        assert re.search(r"alertname: %s\n\s+exp_alerts:\n\s+- exp_labels" % a, tests_text), \
            "%s: no test where it fires" % a
    # The unit tests feed only series the rules read.
    fed = set(re.findall(r"series: '(acme_[a-z0-9_]+)", tests_text))
    assert fed <= used_metrics(rule_exprs()), fed - used_metrics(rule_exprs())


def test_dashboard_queries_parse():
    """Grafana's variables replaced, each query must be valid PromQL: promtool
    checks them as recording rules."""
    exprs = dashboard_exprs()
    assert len(exprs) >= 6
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$__range", "1d")
        e = e.replace("$instance", ".*")
        if e.startswith("label_values("):
            e = e[len("label_values("):].split(",")[0]
        lines += ["      - record: dashboard:query%d" % i, "        expr: %s" % json.dumps(e)]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    try:
        rc, out = promtool("check", "rules", path)
    finally:
        os.unlink(path)
    assert rc == 0, out


def test_used_metrics_exist_in_metrics_output(httpd, pebble):
    text = httpd.acme_config(pebble)
    text += "ManagedDomain %s\n" % NAME + httpd.vhost(NAME, tls=True)
    text += httpd.vhost(NAME) + "<Location /metrics>\n    SetHandler acme-metrics\n</Location>\n"
    httpd.write_config(text)
    httpd.start()
    httpd.wait_for(lambda: served_by_ca(httpd, NAME), 90, "the certificate for %s" % NAME)
    r = httpd.http_get("/metrics", NAME)
    assert r.status == 200, r
    out = r.text
    exported = set(re.findall(r"^# TYPE (\w+) ", out, re.M))
    sampled = {line.split("{")[0].split(" ")[0] for line in out.splitlines()
               if line and not line.startswith("#")}
    assert "acme_certificate_not_after_seconds" in sampled, out

    used = used_metrics(rule_exprs()) | used_metrics(dashboard_exprs())
    missing = used - exported - PLANNED_METRICS
    assert not missing, "used by docs/monitoring but not in /acme-metrics: %s" % sorted(missing)
    arrived = PLANNED_METRICS & exported
    assert not arrived, "exported now, remove from PLANNED_METRICS: %s" % sorted(arrived)
    unused = PLANNED_METRICS - used
    assert not unused, "PLANNED_METRICS that nothing uses: %s" % sorted(unused)
