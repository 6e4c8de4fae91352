#!/usr/bin/python3
# capture_etcd.py: records real answers of Debian's etcd 3.4 (one member on
# loopback) to mod_acme's etcd client and store, as seeds of fuzz_etcd.c in
# test/fuzz/corpus/etcd/. Run by hand when the seeds should be refreshed:
#   MOD_ACME_BUILD_DIR=_build python3 test/fuzz/capture_etcd.py
# (the build dir must hold test/tools/etcdtool). etcdtool talks to etcd
# through a recording proxy; each run of it becomes one seed: fuzz_etcd's
# command line, then every answer in order.
import http.client
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import util  # noqa: E402
from harness.etcd import EtcdCluster  # noqa: E402

CORPUS = os.path.join(HERE, "corpus", "etcd")
# fuzz_etcd.c's fuzz_seal_key, FUZZ_PREFIX, FUZZ_NAME, FUZZ_OWNER, password
SEAL_KEY = b"mod_acme fuzz etcd seal key 0001"
PREFIX = "fz/"
NAME = "example.org"
OWNER = "host-a"
USER, PASSWORD = "fuzz", "fuzz-password"


class Recorder:
    """A loopback HTTP proxy in front of one etcd member that keeps every
    answer (status, body) since the last reset."""

    def __init__(self, target):
        self.target = urllib.parse.urlsplit(target)
        self.answers = []
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                conn = http.client.HTTPConnection(rec.target.hostname, rec.target.port,
                                                  timeout=10)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() in ("content-type", "authorization")}
                conn.request("POST", self.path, body, hdrs)
                resp = conn.getresponse()
                data = resp.read()
                rec.answers.append((resp.status, data))
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.getheader("Content-Type", "text/plain"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", util.free_port()), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


class Capture:
    def __init__(self, tool, rec, key_file, pw_file):
        self.tool = tool
        self.rec = rec
        self.key_file = key_file
        self.pw_file = pw_file
        self.count = 0

    def run(self, seed_cmd, argv, auth=False, fence=None, name=None):
        """Runs etcdtool with argv; its answers become the seed for seed_cmd
        (fuzz_etcd's command line). Returns etcdtool's JSON output."""
        self.rec.answers = []
        cmd = [self.tool, "--endpoints", self.rec.url, "--prefix", PREFIX,
               "--seal-key", self.key_file]
        if auth:
            cmd += ["--user", USER, "--password-file", self.pw_file]
            seed_cmd = "auth " + seed_cmd
        if fence:
            cmd += ["--fence", "%s,%s,%s" % (NAME, OWNER, fence)]
        res = subprocess.run(cmd + argv, capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
        self.count += 1
        fname = "etcd-%02d-%s" % (self.count, name or seed_cmd.replace(" ", "_"))
        data = seed_cmd.encode() + b"\n" + b"\0".join(
            b"%d\n" % status + body for status, body in self.rec.answers)
        with open(os.path.join(CORPUS, fname), "wb") as f:
            f.write(data)
        try:
            return json.loads(res.stdout) if res.stdout.strip() else {}
        except ValueError:
            return {}


def raw_seed(name, seed_cmd, answers):
    with open(os.path.join(CORPUS, "etcd-raw-" + name), "wb") as f:
        f.write(seed_cmd.encode() + b"\n" + b"\0".join(
            b"%d\n" % s + b for s, b in answers))


def post(url, path, obj, token=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    hdrs = {"Content-Type": "application/json"}
    if token:
        hdrs["Authorization"] = token
    conn.request("POST", path, json.dumps(obj), hdrs)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def watch_seed(name, seed_cmd, url, prefix, actions):
    """The stream a watch on prefix gets while actions() runs, as the seed's
    one answer."""
    import base64
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=3)
    conn.request("POST", "/v3/watch", json.dumps({"create_request": {
        "key": base64.b64encode(prefix.encode()).decode(),
        "range_end": base64.b64encode(end.encode()).decode()}}),
        {"Content-Type": "application/json"})
    resp = conn.getresponse()
    lines = [resp.readline()]       # created
    actions()
    try:
        while True:
            line = resp.readline()
            if not line:
                break
            lines.append(line)
    except OSError:
        pass                        # the timeout ends the capture
    conn.close()
    raw_seed(name, seed_cmd, [(resp.status, b"".join(lines))])


def b64(s):
    import base64
    return base64.b64encode(s.encode()).decode()


def main():
    build = os.environ.get("MOD_ACME_BUILD_DIR", os.path.join(HERE, "..", "..", "_build"))
    tool = os.path.join(build, "test", "tools", "etcdtool")
    if not os.access(tool, os.X_OK):
        sys.exit("capture_etcd: %s is missing (make in %s)" % (tool, build))
    os.makedirs(CORPUS, exist_ok=True)
    work = tempfile.mkdtemp(prefix="fuzz-capture-etcd-")
    key_file = os.path.join(work, "seal.key")
    with open(key_file, "wb") as f:
        f.write(SEAL_KEY)
    os.chmod(key_file, 0o600)
    pw_file = os.path.join(work, "pw")
    with open(pw_file, "w") as f:
        f.write(PASSWORD + "\n")
    cluster = EtcdCluster(os.path.join(work, "etcd"), size=1).start()
    rec = Recorder(cluster.endpoints[0])
    c = Capture(tool, rec, key_file, pw_file)
    try:
        k = PREFIX + "k"
        # the client
        c.run("get", ["get", k], name="get-absent")
        c.run("create", ["create", k, "v"], name="create-new")
        c.run("create", ["create", k, "v"], name="create-exists")
        got = c.run("get", ["get", k])
        modrev = str(got.get("mod_revision", 2))
        c.run("cas " + modrev, ["cas", k, modrev, "v2"], name="cas-ok")
        c.run("cas " + modrev, ["cas", k, modrev, "v3"], name="cas-stale")
        c.run("put", ["put", PREFIX + "a", "alpha"])
        c.run("put", ["put", PREFIX + "b", "b" * 300], name="put-b")
        c.run("list", ["list", PREFIX])
        c.run("list 2", ["list", PREFIX, "2"], name="list-limit")
        c.run("keys", ["keys", PREFIX])
        c.run("revision", ["revision"])
        lease = c.run("lease-grant", ["lease-grant", "60"]).get("id", "1")
        c.run("put " + lease, ["put", k, "leased", lease], name="put-lease")
        c.run("get", ["get", k], name="get-leased")
        c.run("lease-keepalive " + lease, ["lease-keepalive", lease], name="keepalive")
        c.run("lease-revoke " + lease, ["lease-revoke", lease], name="revoke")
        c.run("lease-keepalive " + lease, ["lease-keepalive", lease], name="keepalive-gone")
        c.run("lease-revoke " + lease, ["lease-revoke", lease], name="revoke-gone")
        c.run("put 12345", ["put", k, "v", "12345"], name="put-no-lease")
        c.run("del", ["del", PREFIX + "a"])
        c.run("del-prefix", ["del-prefix", PREFIX])

        # the store
        c.run("store-verify", ["store-verify"], name="verify-first")
        c.run("store-verify", ["store-verify"], name="verify-again")
        c.run("store-save", ["store-save", "jobs", NAME, "job.json", "{}"])
        c.run("store-save secret", ["store-save", "jobs", NAME, "job.json", "{}", "secret"],
              name="save-secret")
        pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n" \
              "-----END PRIVATE KEY-----\n"
        c.run("store-save secret", ["store-save", "domains", NAME, "privkey.pem", pem,
                                    "secret"], name="save-privkey")
        c.run("store-save", ["store-save", "domains", NAME, "cert.pem", "a chain"],
              name="save-cert")
        c.run("store-load", ["store-load", "domains", NAME, "privkey.pem"], name="load-sealed")
        c.run("store-load", ["store-load", "domains", NAME, "cert.pem"], name="load-plain")
        c.run("store-load", ["store-load", "domains", NAME, "none.pem"], name="load-absent")
        c.run("store-list", ["store-list", "domains"])
        c.run("store-list name", ["store-list", "domains", NAME], name="list-name")
        c.run("store-mtime", ["store-mtime", "domains", NAME])
        c.run("store-mtime aspect", ["store-mtime", "domains", NAME, "privkey.pem"],
              name="mtime-aspect")
        for aspect in ("privkey.pem", "cert.pem"):
            c.run("store-save", ["store-save", "staging", NAME, aspect, "new " + aspect,
                                 "secret"], name="stage-" + aspect)
        c.run("store-move 2", ["store-move", "staging", "domains", NAME, "2"], name="move")
        c.run("store-save", ["store-save", "staging", NAME, "privkey.pem", "newer"],
              name="stage-again")
        c.run("store-move 2", ["store-move", "staging", "domains", NAME, "2"],
              name="move-archive")
        c.run("store-move 2", ["store-move", "staging", "domains", NAME, "2"],
              name="move-nothing")
        claim = c.run("store-claim", ["store-claim", NAME, OWNER, "60"], name="claim-new")
        token = str(claim.get("token", 1))
        c.run("store-claim", ["store-claim", NAME, OWNER, "60"], name="claim-again")
        c.run("store-claim host-b", ["store-claim", NAME, "host-b", "60"], name="claim-busy")
        c.run("store-renew " + token, ["store-renew", NAME, OWNER, token, "60"], name="renew")
        c.run("store-save-fenced " + token, ["store-save", "jobs", NAME, "job.json", "{}"],
              fence=token, name="save-fenced")
        c.run("store-save-fenced 3", ["store-save", "jobs", NAME, "job.json", "{}"],
              fence="3", name="save-fenced-stale")
        c.run("store-save", ["store-save", "staging", NAME, "cert.pem", "c"],
              name="stage-fenced")
        c.run("store-move-fenced " + token, ["store-move", "staging", "domains", NAME, "2"],
              fence=token, name="move-fenced")
        c.run("store-remove-fenced " + token, ["store-remove", "jobs", NAME], fence=token,
              name="remove-fenced")
        c.run("store-release " + token, ["store-release", NAME, OWNER, token, "60"],
              name="release")
        c.run("store-release " + token, ["store-release", NAME, OWNER, token, "60"],
              name="release-gone")
        c.run("store-remove cert.pem", ["store-remove", "domains", NAME, "cert.pem"],
              name="remove-aspect")
        c.run("store-remove", ["store-remove", "domains", NAME], name="remove-name")

        # watches: the client's, and the store's on challenges/
        url = cluster.endpoints[0]

        def client_changes():
            c.run("put", ["put", PREFIX + "w", "one"], name="watched-put")
            c.run("del", ["del", PREFIX + "w"], name="watched-del")

        def challenge_changes():
            c.run("store-save", ["store-save", "challenges", "http-01", "tok", "tok.thumb"],
                  name="watched-save")
            c.run("store-save secret", ["store-save", "challenges", "tls-alpn-01",
                                        NAME + ".key", pem, "secret"], name="watched-secret")
            c.run("store-remove", ["store-remove", "challenges", "http-01", "tok"],
                  name="watched-remove")

        watch_seed("watch", "watch", url, PREFIX, client_changes)
        watch_seed("store-watch", "store-watch", url, PREFIX + "challenges/",
                   challenge_changes)

        # error bodies of the gateway
        raw_seed("txn-duplicate-key", "create", [post(url, "/v3/kv/txn", {
            "success": [{"request_put": {"key": b64(k), "value": b64("1")}},
                        {"request_put": {"key": b64(k), "value": b64("2")}}]})])
        raw_seed("range-bad-json", "get", [post(url, "/v3/kv/range", {"key": 5})])
        raw_seed("lease-grant-bad-ttl", "lease-grant", [post(url, "/v3/lease/grant",
                                                             {"TTL": "x"})])
        raw_seed("no-such-path", "revision", [post(url, "/v3/kv/nothing", {})])

        # with auth: a user that may use PREFIX only
        cluster.enable_auth(USER, PASSWORD, PREFIX)
        c.run("get", ["get", k], auth=True, name="auth-get")
        c.run("store-claim", ["store-claim", NAME, OWNER, "60"], auth=True, name="auth-claim")
        c.run("get", ["get", "other/k"], auth=True, name="auth-denied")
        c.run("get", ["get", k], name="auth-missing")
        with open(pw_file, "w") as f:
            f.write("wrong\n")
        c.run("get", ["get", k], auth=True, name="auth-wrong-password")
    finally:
        rec.stop()
        cluster.stop()
    print("capture_etcd: %d seeds in %s (work dir %s)" % (c.count + 6, CORPUS, work))


if __name__ == "__main__":
    main()
