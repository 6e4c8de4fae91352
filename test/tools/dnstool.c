/* dnstool.c: drives the dns-01 engine (acme_dns) from the command line, so
 * the integration tests can publish and withdraw TXT records on real servers. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>

#include "acme_util.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_dns.h"

static void usage(void)
{
    fprintf(stderr,
        "usage: dnstool [options] publish|add|wait|withdraw|target NAME [VALUE]\n"
        "  --server H[:P]     the update server (required)\n"
        "  --key FILE         TSIG key file (required except for 'target')\n"
        "  --check H[:P]      check server instead of the zone's NS (repeatable)\n"
        "  --timeout SECS     propagation bound (default 120)\n"
        "  --interval SECS    poll interval (default 2)\n"
        "  --ttl N            record TTL (default 60)\n"
        "  --ns-port P        port of the zone's NS (default 53)\n"
        "  -v                 log at debug level\n"
        "publish = add + wait; withdraw deletes VALUE only; target prints\n"
        "record, owner and zone.\n");
}

static void log_stderr(void *baton, const char *file, int line, int level, apr_status_t rv,
                       const char *msg)
{
    (void)baton;
    fprintf(stderr, "[%d] %s:%d %s\n", level, file, line, msg);
}

static int seconds(apr_interval_time_t *pt, const char *arg)
{
    return acme_duration_parse(pt, arg, "s") == APR_SUCCESS;
}

int main(int argc, const char *const *argv)
{
    static const apr_getopt_option_t opts[] = {
        {"server", 's', 1, "update server"},
        {"key", 'k', 1, "TSIG key file"},
        {"check", 'c', 1, "check server"},
        {"timeout", 't', 1, "propagation bound"},
        {"interval", 'i', 1, "poll interval"},
        {"ttl", 'T', 1, "TTL"},
        {"ns-port", 'n', 1, "NS port"},
        {"verbose", 'v', 0, "verbose"},
        {NULL, 0, 0, NULL}
    };
    apr_pool_t *p;
    apr_getopt_t *g;
    acme_dns_config_t *conf;
    acme_dns_server_t *srv;
    acme_dns_tsig_t *key;
    acme_dns_target_t *t;
    acme_result_t *r;
    const char *arg, *err, *cmd, *name, *value, *key_file = NULL;
    apr_int64_t n;
    int opt, verbose = 0;
    apr_status_t rv;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);
    conf = acme_dns_config_make(p);
    conf->check = apr_array_make(p, 2, sizeof(acme_dns_server_t *));
    r = acme_result_make(p);
    apr_getopt_init(&g, p, argc, argv);
    while ((rv = apr_getopt_long(g, opts, &opt, &arg)) == APR_SUCCESS) {
        switch (opt) {
        case 's':
        case 'c':
            if (acme_dns_server_parse(&srv, p, arg, 53, &err) != APR_SUCCESS) {
                fprintf(stderr, "dnstool: %s\n", err);
                return 2;
            }
            if (opt == 's') conf->update = *srv;
            else APR_ARRAY_PUSH(conf->check, acme_dns_server_t *) = srv;
            break;
        case 'k':
            key_file = arg;
            break;
        case 't':
        case 'i':
            if (!seconds(opt == 't' ? &conf->check_timeout : &conf->poll_interval, arg)) {
                fprintf(stderr, "dnstool: bad duration '%s'\n", arg);
                return 2;
            }
            break;
        case 'T':
        case 'n':
            n = apr_strtoi64(arg, NULL, 10);
            if (n < 1 || n > (opt == 'n' ? 65535 : 86400)) {
                fprintf(stderr, "dnstool: bad number '%s'\n", arg);
                return 2;
            }
            if (opt == 'T') conf->ttl = (apr_uint32_t)n;
            else conf->ns_port = (apr_port_t)n;
            break;
        case 'v':
            verbose = 1;
            break;
        }
    }
    if (rv != APR_EOF || g->ind + 2 > argc || !conf->update.host) {
        usage();
        return 2;
    }
    cmd = argv[g->ind];
    name = argv[g->ind + 1];
    value = g->ind + 2 < argc ? argv[g->ind + 2] : NULL;
    acme_log_set(log_stderr, NULL, verbose ? ACME_LOG_DEBUG : ACME_LOG_INFO);
    if (key_file) {
        if (acme_dns_tsig_load(&key, p, key_file, ACME_KEYFILE_ANY_OWNER, &err) != APR_SUCCESS) {
            fprintf(stderr, "dnstool: %s\n", err);
            return 2;
        }
        conf->key = key;
    }
    if (strcmp(cmd, "target") && (!value || !conf->key)) {
        usage();
        return 2;
    }
    if (!strcmp(cmd, "publish")) {
        rv = acme_dns_publish(conf, name, value, p, r);
    }
    else if (!strcmp(cmd, "withdraw")) {
        rv = acme_dns_withdraw(conf, name, value, p, r);
    }
    else if (!strcmp(cmd, "target") || !strcmp(cmd, "add") || !strcmp(cmd, "wait")) {
        rv = acme_dns_target_find(&t, conf, name, p, r);
        if (rv == APR_SUCCESS && !strcmp(cmd, "target")) {
            printf("record %s\nowner %s\nzone %s\n", t->record, t->owner, t->zone);
        }
        else if (rv == APR_SUCCESS && !strcmp(cmd, "add")) {
            rv = acme_dns_add(conf, t, value, p, r);
        }
        else if (rv == APR_SUCCESS) {
            rv = acme_dns_wait(conf, t, value, p, r);
        }
    }
    else {
        usage();
        return 2;
    }
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "dnstool: %s\n", acme_result_describe(r, p));
        fprintf(stderr, "dnstool: class %d\n", (int)acme_result_classify(r));
    }
    else {
        printf("ok\n");
    }
    /* the pool's cleanups free what ldns allocated (a leak checker sees it) */
    apr_pool_destroy(p);
    apr_terminate();
    return rv == APR_SUCCESS ? 0 : 1;
}
