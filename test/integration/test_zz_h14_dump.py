from test_cluster import cluster_factory  # noqa
def test_dump(cluster_factory):
    c = cluster_factory(1)
    s = c.servers[0]
    c.write_configs(["dump.changed.test"])
    c.start()
    c.wait_served_everywhere(["dump.changed.test"])
    for k, v in c.etcd_values():
        print("KEY", k, repr(v[:300]) if "meta" in k or "job" in k else len(v))
    print(open(s.conf_file).read()[:1500])
