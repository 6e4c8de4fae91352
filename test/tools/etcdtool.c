/* etcdtool.c: drives the core's etcd client (and later the etcd store) from
 * the command line, for the integration tests against a real etcd cluster. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_http.h"
#include "acme_etcd.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_store_etcd.h"

/* Exit codes the tests look at */
#define EXIT_OK 0
#define EXIT_ERROR 1
#define EXIT_NO 2      /* absent key, failed compare, expired lease, busy claim */
#define EXIT_FENCED 3  /* a write with a claim that is no longer current */

static void usage(void)
{
    fprintf(stderr,
        "usage: etcdtool --endpoints URL[,URL...] [options] COMMAND ARGS\n"
        "  --ca-file F --cert F --key F     TLS trust anchors and client certificate\n"
        "  --user U --password-file F       etcd auth\n"
        "  --timeout SECS                   per request (default 5)\n"
        "  --max-value BYTES                value size limit\n"
        "  -v                               verbose\n"
        "commands (JSON on stdout; exit 2 = absent / compare failed / lease gone):\n"
        "  get KEY | put KEY VALUE [LEASE] | del KEY | del-prefix KEY\n"
        "  list PREFIX [LIMIT] | keys PREFIX [LIMIT] | revision\n"
        "  create KEY VALUE [LEASE]   put only if KEY is absent\n"
        "  cas KEY MODREV VALUE       put only if KEY's mod_revision is MODREV\n"
        "  lease-grant TTL | lease-keepalive ID | lease-revoke ID\n"
        "store commands (--seal-key FILE [--prefix P]; exit 2 = absent / busy):\n"
        "  store-save GROUP NAME ASPECT VALUE [secret] | store-load GROUP NAME ASPECT\n"
        "  store-list GROUP [NAME] | store-mtime GROUP NAME [ASPECT]\n"
        "  store-remove GROUP NAME [ASPECT] | store-move FROM TO NAME KEEP\n"
        "  store-claim NAME OWNER SECS | store-renew NAME OWNER TOKEN SECS\n"
        "  store-release NAME OWNER TOKEN SECS | store-key GROUP NAME ASPECT | store-verify\n"
        "  store-sweep                  removes answers older than a day: {\"removed\": n}\n"
        "  --fence NAME,OWNER,TOKEN: writes through a view fenced by that claim (exit 3:\n"
        "  refused)\n");
}

static void log_stderr(void *baton, const char *file, int line, int level, apr_status_t rv,
                       const char *msg)
{
    (void)baton; (void)rv;
    fprintf(stderr, "[%d] %s:%d %s\n", level, file, line, msg);
}

static apr_int64_t num(const char *s)
{
    char *end;
    apr_int64_t v = apr_strtoi64(s, &end, 10);

    if (!*s || *end) {
        fprintf(stderr, "etcdtool: '%s' is not a number\n", s);
        exit(EXIT_ERROR);
    }
    return v;
}

static acme_json_t *kv_json(const acme_etcd_kv_t *kv, apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p);

    acme_json_sets(j, kv->key, "key", NULL);
    if (kv->value) {
        acme_json_sets(j, kv->value, "value", NULL);
        acme_json_setl(j, (long long)kv->value_len, "value_len", NULL);
    }
    acme_json_setl(j, kv->create_revision, "create_revision", NULL);
    acme_json_setl(j, kv->mod_revision, "mod_revision", NULL);
    acme_json_setl(j, kv->version, "version", NULL);
    acme_json_setl(j, kv->lease, "lease", NULL);
    return j;
}

static void print_json(const acme_json_t *j, apr_pool_t *p)
{
    printf("%s\n", acme_json_dump(j, p, 1));
}

static int cmd_kv(acme_etcd_t *e, int argc, const char *const *argv, apr_pool_t *p,
                  acme_result_t *r)
{
    const char *cmd = argv[0];
    acme_json_t *out = acme_json_new_object(p), *arr;
    acme_etcd_kv_t *kv;
    acme_etcd_txn_t *t;
    acme_etcd_txn_result_t *res;
    apr_array_header_t *kvs;
    apr_int64_t v = 0;
    apr_status_t rv;
    int more, i;

#define NEED(n) if (argc < (n) + 1) { usage(); return EXIT_ERROR; }
    if (!strcmp(cmd, "get")) {
        NEED(1);
        rv = acme_etcd_get(&kv, e, argv[1], p, r);
        if (rv == APR_ENOENT) {
            return EXIT_NO;
        }
        if (rv == APR_SUCCESS) {
            out = kv_json(kv, p);
        }
    }
    else if (!strcmp(cmd, "put")) {
        NEED(2);
        rv = acme_etcd_put(&v, e, argv[1], argv[2], strlen(argv[2]), argc > 3 ? num(argv[3]) : 0,
                           p, r);
        acme_json_setl(out, v, "revision", NULL);
    }
    else if (!strcmp(cmd, "del") || !strcmp(cmd, "del-prefix")) {
        NEED(1);
        rv = acme_etcd_delete(&v, e, argv[1], !strcmp(cmd, "del-prefix"), p, r);
        acme_json_setl(out, v, "deleted", NULL);
    }
    else if (!strcmp(cmd, "list") || !strcmp(cmd, "keys")) {
        NEED(1);
        rv = acme_etcd_get_prefix(&kvs, &more, e, argv[1], !strcmp(cmd, "keys"),
                                  argc > 2 ? num(argv[2]) : 0, p, r);
        if (rv == APR_SUCCESS) {
            arr = acme_json_new_array(p);
            for (i = 0; i < kvs->nelts; ++i) {
                acme_json_array_append(arr, kv_json(APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t *), p));
            }
            acme_json_setj(out, arr, "kvs", NULL);
            acme_json_setb(out, more, "more", NULL);
        }
    }
    else if (!strcmp(cmd, "revision")) {
        rv = acme_etcd_revision(&v, e, p, r);
        acme_json_setl(out, v, "revision", NULL);
    }
    else if (!strcmp(cmd, "create") || !strcmp(cmd, "cas")) {
        int is_cas = !strcmp(cmd, "cas");
        const char *value;

        NEED(is_cas ? 3 : 2);
        value = argv[is_cas ? 3 : 2];
        t = acme_etcd_txn_make(p);
        if (is_cas) {
            acme_etcd_txn_if_mod(t, argv[1], num(argv[2]));
        }
        else {
            acme_etcd_txn_if_absent(t, argv[1]);
        }
        acme_etcd_txn_put(t, ACME_ETCD_THEN, argv[1], value, strlen(value),
                          !is_cas && argc > 3 ? num(argv[3]) : 0);
        acme_etcd_txn_get(t, ACME_ETCD_THEN, argv[1], 0);
        acme_etcd_txn_get(t, ACME_ETCD_ELSE, argv[1], 0);
        rv = acme_etcd_txn_commit(&res, e, t, p, r);
        if (rv == APR_SUCCESS) {
            kvs = APR_ARRAY_IDX(res->ranges, 0, apr_array_header_t *);
            acme_json_setb(out, res->succeeded, "succeeded", NULL);
            acme_json_setl(out, res->revision, "revision", NULL);
            if (kvs->nelts) {
                acme_json_setj(out, kv_json(APR_ARRAY_IDX(kvs, 0, acme_etcd_kv_t *), p), "kv",
                               NULL);
            }
            print_json(out, p);
            return res->succeeded ? EXIT_OK : EXIT_NO;
        }
    }
    else if (!strcmp(cmd, "lease-grant")) {
        NEED(1);
        rv = acme_etcd_lease_grant(&v, e, num(argv[1]), p, r);
        acme_json_sets(out, apr_psprintf(p, "%" APR_INT64_T_FMT, v), "id", NULL);
    }
    else if (!strcmp(cmd, "lease-keepalive")) {
        NEED(1);
        rv = acme_etcd_lease_keepalive(&v, e, num(argv[1]), p, r);
        if (rv == APR_ENOENT) {
            return EXIT_NO;
        }
        acme_json_setl(out, v, "ttl", NULL);
    }
    else if (!strcmp(cmd, "lease-revoke")) {
        NEED(1);
        rv = acme_etcd_lease_revoke(e, num(argv[1]), p, r);
    }
    else {
        usage();
        return EXIT_ERROR;
    }
#undef NEED
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "etcdtool: %s: %s\n", cmd, acme_result_describe(r, p));
        return EXIT_ERROR;
    }
    acme_json_sets(out, acme_etcd_endpoint(e), "endpoint", NULL);
    print_json(out, p);
    return EXIT_OK;
}

static acme_store_group_t group_of(const char *name)
{
    int g;

    for (g = 0; g < ACME_SG_COUNT; ++g) {
        if (!strcmp(name, acme_store_group_name((acme_store_group_t)g))) {
            return (acme_store_group_t)g;
        }
    }
    fprintf(stderr, "etcdtool: unknown store group '%s'\n", name);
    exit(EXIT_ERROR);
}

static int cmd_store(acme_store_t *st, int argc, const char *const *argv, apr_pool_t *p)
{
    const char *cmd = argv[0], *data;
    acme_json_t *out = acme_json_new_object(p);
    apr_array_header_t *names;
    apr_size_t len;
    apr_time_t mtime;
    apr_status_t rv;

#define NEED(n) if (argc < (n) + 1) { usage(); return EXIT_ERROR; }
    if (!strcmp(cmd, "store-save")) {
        NEED(4);
        rv = st->save(st, group_of(argv[1]), argv[2], argv[3], argv[4], strlen(argv[4]),
                      argc > 5 && !strcmp(argv[5], "secret") ? ACME_STORE_SECRET : 0, p);
    }
    else if (!strcmp(cmd, "store-load")) {
        NEED(3);
        rv = st->load(st, group_of(argv[1]), argv[2], argv[3], &data, &len, p);
        if (rv == APR_SUCCESS) {
            acme_json_sets(out, data, "data", NULL);
            acme_json_setl(out, (long long)len, "len", NULL);
        }
    }
    else if (!strcmp(cmd, "store-list")) {
        NEED(1);
        rv = st->list(st, group_of(argv[1]), argc > 2 ? argv[2] : NULL, &names, p);
        if (rv == APR_SUCCESS) {
            acme_json_setsa(out, names, "names", NULL);
        }
    }
    else if (!strcmp(cmd, "store-mtime")) {
        NEED(2);
        rv = st->mtime(st, group_of(argv[1]), argv[2], argc > 3 ? argv[3] : NULL, &mtime, p);
        acme_json_setl(out, (long long)mtime, "mtime", NULL);
    }
    else if (!strcmp(cmd, "store-remove")) {
        NEED(2);
        rv = st->remove(st, group_of(argv[1]), argv[2], argc > 3 ? argv[3] : NULL, p);
    }
    else if (!strcmp(cmd, "store-move")) {
        NEED(4);
        rv = st->move(st, group_of(argv[1]), group_of(argv[2]), argv[3], (int)num(argv[4]), p);
    }
    else if (!strcmp(cmd, "store-claim")) {
        acme_store_claim_t *c;

        NEED(3);
        rv = st->claim(st, &c, argv[1], argv[2], apr_time_from_sec(num(argv[3])), p);
        if (rv == APR_EBUSY && c) {
            fprintf(stderr, "etcdtool: store-claim: busy, held by %s\n", c->owner);
            return EXIT_NO;
        }
        if (rv == APR_SUCCESS) {
            acme_json_setl(out, (long long)c->token, "token", NULL);
        }
    }
    else if (!strcmp(cmd, "store-renew") || !strcmp(cmd, "store-release")) {
        acme_store_claim_t c;

        NEED(4);
        memset(&c, 0, sizeof(c));
        c.name = argv[1];
        c.owner = argv[2];
        c.token = (apr_uint64_t)num(argv[3]);
        c.lease = apr_time_from_sec(num(argv[4]));
        rv = !strcmp(cmd, "store-renew") ? st->renew(st, &c, p) : st->release(st, &c, p);
        acme_json_setl(out, (long long)c.token, "token", NULL);
    }
    else if (!strcmp(cmd, "store-sweep")) {
        acme_json_setl(out, st->sweep(st, ACME_STORE_STALE_AGE, p), "removed", NULL);
        rv = APR_SUCCESS;
    }
    else if (!strcmp(cmd, "store-verify")) {
        const char *err;

        rv = acme_store_etcd_verify(st, p, &err);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "etcdtool: store-verify: %s\n", err ? err : "failed");
            return EXIT_ERROR;
        }
    }
    else if (!strcmp(cmd, "store-key")) {
        NEED(3);
        data = acme_store_etcd_key(st, group_of(argv[1]), argv[2], argv[3], p);
        rv = data ? APR_SUCCESS : APR_EINVAL;
        if (data) {
            acme_json_sets(out, data, "key", NULL);
        }
    }
    else {
        usage();
        return EXIT_ERROR;
    }
#undef NEED
    if (rv == APR_ENOENT || rv == APR_EBUSY) {
        fprintf(stderr, "etcdtool: %s: %s\n", cmd, rv == APR_EBUSY ? "busy" : "absent");
        return EXIT_NO;
    }
    if (rv == ACME_STORE_EFENCED) {
        fprintf(stderr, "etcdtool: %s: refused, the claim is no longer current\n", cmd);
        return EXIT_FENCED;
    }
    if (rv != APR_SUCCESS) {
        char buf[256];

        fprintf(stderr, "etcdtool: %s failed: %s\n", cmd, apr_strerror(rv, buf, sizeof(buf)));
        return EXIT_ERROR;
    }
    print_json(out, p);
    return EXIT_OK;
}

int main(int argc, const char *const *argv)
{
    static const apr_getopt_option_t opts[] = {
        {"endpoints", 'e', 1, "etcd client URLs"},
        {"ca-file", 'C', 1, "CA file"},
        {"cert", 'c', 1, "client certificate"},
        {"key", 'k', 1, "client key"},
        {"user", 'u', 1, "etcd user"},
        {"password-file", 'P', 1, "password file"},
        {"timeout", 't', 1, "seconds"},
        {"max-value", 'm', 1, "bytes"},
        {"verbose", 'v', 0, "verbose"},
        {"prefix", 'x', 1, "store key prefix"},
        {"seal-key", 'K', 1, "store encryption key file"},
        {"fence", 'F', 1, "NAME,OWNER,TOKEN"},
        {NULL, 0, 0, NULL},
    };
    apr_pool_t *p;
    apr_getopt_t *os;
    const char *arg, *endpoints = NULL, *prefix = NULL, *seal_key_file = NULL, *err;
    const char *fence = NULL;
    const unsigned char *seal_key;
    acme_store_t *st;
    char *tok, *last;
    acme_etcd_config_t conf;
    acme_etcd_t *e;
    acme_result_t *r;
    apr_array_header_t *eps;
    apr_status_t rv;
    int opt, verbose = 0;

    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&p, NULL);
    r = acme_result_make(p);
    acme_etcd_config_init(&conf);
    apr_getopt_init(&os, p, argc, argv);
    os->interleave = 0;
    while ((rv = apr_getopt_long(os, opts, &opt, &arg)) == APR_SUCCESS) {
        switch (opt) {
        case 'e': endpoints = arg; break;
        case 'C': conf.ca_file = arg; break;
        case 'c': conf.cert_file = arg; break;
        case 'k': conf.key_file = arg; break;
        case 'u': conf.user = arg; break;
        case 'P': conf.password_file = arg; conf.password_flags = ACME_KEYFILE_ANY_OWNER; break;
        case 't': conf.timeout = apr_time_from_sec(num(arg)); break;
        case 'm': conf.max_value = (apr_size_t)num(arg); break;
        case 'v': ++verbose; break;
        case 'x': prefix = arg; break;
        case 'K': seal_key_file = arg; break;
        case 'F': fence = arg; break;
        default: usage(); return EXIT_ERROR;
        }
    }
    if (rv != APR_EOF || !endpoints || os->ind >= argc) {
        usage();
        return EXIT_ERROR;
    }
    acme_log_set(log_stderr, NULL, verbose ? ACME_LOG_TRACE1 : ACME_LOG_WARNING);
    eps = apr_array_make(p, 3, sizeof(const char *));
    for (tok = apr_strtok(apr_pstrdup(p, endpoints), ",", &last); tok;
         tok = apr_strtok(NULL, ",", &last)) {
        APR_ARRAY_PUSH(eps, const char *) = tok;
    }
    conf.endpoints = eps;
    if (acme_http_global_init() != APR_SUCCESS
        || acme_etcd_create(&e, p, &conf, NULL, r) != APR_SUCCESS) {
        fprintf(stderr, "etcdtool: %s\n", acme_result_describe(r, p));
        return EXIT_ERROR;
    }
    if (!strncmp(argv[os->ind], "store-", 6)) {
        if (!seal_key_file) {
            fprintf(stderr, "etcdtool: store commands need --seal-key\n");
            return EXIT_ERROR;
        }
        /* the tests run as any user: the module itself checks the owner */
        if (acme_store_key_load(&seal_key, p, seal_key_file, ACME_KEYFILE_ANY_OWNER, &err)
            != APR_SUCCESS
            || acme_store_etcd_create(&st, p, e, prefix, seal_key, &err) != APR_SUCCESS) {
            fprintf(stderr, "etcdtool: %s\n", err);
            return EXIT_ERROR;
        }
        if (fence) {
            acme_store_claim_t *c = apr_pcalloc(p, sizeof(*c));

            c->name = apr_strtok(apr_pstrdup(p, fence), ",", &last);
            c->owner = apr_strtok(NULL, ",", &last);
            tok = apr_strtok(NULL, ",", &last);
            if (!c->name || !c->owner || !tok) {
                usage();
                return EXIT_ERROR;
            }
            c->token = (apr_uint64_t)num(tok);
            st = acme_store_fenced(p, st, c);
        }
        return cmd_store(st, argc - os->ind, argv + os->ind, p);
    }
    return cmd_kv(e, argc - os->ind, argv + os->ind, p, r);
}
