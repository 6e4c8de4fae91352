import base64, collections, re, time
from harness import util
from harness.forwarder import Forwarder
from test_cluster import cluster_factory  # noqa

def summarize(reqs, prefix):
    c = collections.Counter()
    for path, body in reqs:
        key = base64.b64decode((body or {}).get("key", "")).decode("latin-1") if body else ""
        key = key.replace(prefix, "")
        key = re.sub(r"r\d+\.changed\.test", "D", key)
        extra = ",".join(k for k in sorted((body or {}).keys()) if k not in ("key",))
        c[(path, key, extra)] += 1
    for k, v in sorted(c.items(), key=lambda kv: -kv[1]):
        print(v, k)

def test_scratch(cluster_factory, etcd_cluster):
    c = cluster_factory(1)
    s = c.servers[0]
    names = ["r%d.changed.test" % i for i in range(4)]
    port = int(etcd_cluster.endpoints[0].rsplit(":", 1)[1])
    proxy = Forwarder(util.free_port(), [port], http=True).start()
    try:
        conf = c.config(s, names).replace(" ".join(etcd_cluster.endpoints),
                                          "http://127.0.0.1:%d" % proxy.listen_port)
        s.write_config(conf)
        s.start()
        c.wait_served_everywhere(names)
        time.sleep(5)
        m = len(proxy.requests)
        s.graceful()
        m2 = len(proxy.requests)
        print("=== graceful pass", m2 - m); summarize(proxy.requests[m:m2], c.prefix)
        time.sleep(15)
        m3 = len(proxy.requests)
        print("=== after graceful 15s", m3 - m2); summarize(proxy.requests[m2:m3], c.prefix)
        time.sleep(60)
        m4 = len(proxy.requests)
        print("=== idle 60s", m4 - m3); summarize(proxy.requests[m3:m4], c.prefix)
    finally:
        s.stop(); proxy.stop()
