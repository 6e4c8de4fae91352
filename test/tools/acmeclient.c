/* acmeclient.c: a small command-line ACME client over the core engine, for
 * the integration tests: account, order, challenges as files, revocation. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_atomic.h>
#include <apr_thread_proc.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_http.h"
#include "acme_acme.h"
#include "acme_dns.h"

typedef struct {
    apr_pool_t *pool;
    const char *challenge_dir;
    const char *challtestsrv;   /* management URL for dns-01 */
    acme_http_t *http;          /* to talk to challtestsrv */
    acme_dns_config_t *dns;     /* dns-01 through RFC 2136 (--dns-update) */
} publisher_t;

static void usage(void)
{
    fprintf(stderr,
        "usage: acmeclient --dir URL [options]\n"
        "  --ca-file F          trust anchors for the CA's HTTPS\n"
        "  --account-key F      account key (created if missing)\n"
        "  --contact URI        account contact (repeatable)\n"
        "  --eab-kid K --eab-hmac H   external account binding\n"
        "  --existing-only      only look up the account (onlyReturnExisting)\n"
        "  --rollover NEWKEY    change the account key to NEWKEY (created if missing)\n"
        "  --update-contact URI replace the account's contacts (repeatable)\n"
        "  --deactivate         deactivate the account\n"
        "  --names a,b          order a certificate for these names\n"
        "  --each-name a,b --out-dir D [--parallel K]   one certificate per name, K at\n"
        "                       a time (default all), sharing the account, the directory\n"
        "                       and nonces: D/<name>.crt and D/<name>.key (the benchmark's floor)\n"
        "  --challenge T[,T]    allowed challenge types (default http-01)\n"
        "  --challenge-dir D    http-01: D/<token>; tls-alpn-01: D/<name>.crt/.key\n"
        "  --challtestsrv URL   dns-01 through pebble-challtestsrv's management API\n"
        "  --dns-update H:P --dns-key F [--dns-check H:P]...  dns-01 through RFC 2136\n"
        "  --cert-out F --key-out F   where the chain and its key go\n"
        "  --key-type T         certificate key type (default P-256)\n"
        "  --profile P --replaces ID --preferred-issuer CN\n"
        "  --order-url URL      resume this order\n"
        "  --timeout SECS       polling deadline (default 120)\n"
        "  --nonce-retries N    badNonce retries (default 10)\n"
        "  --revoke CERTFILE [--reason N] [--by-cert-key KEYFILE]\n"
        "  -v                   verbose (repeat for more)\n");
}

static void log_stderr(void *baton, const char *file, int line, int level, apr_status_t rv,
                       const char *msg)
{
    (void)baton;
    fprintf(stderr, "[%d] %s:%d %s\n", level, file, line, msg);
}

static apr_status_t write_file(const char *path, const char *data, apr_size_t len, apr_pool_t *p)
{
    apr_file_t *f;
    apr_status_t rv;

    rv = apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_TRUNCATE
                       | APR_FOPEN_BINARY, APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_write_full(f, data, len, NULL);
    apr_file_close(f);
    return rv;
}

static apr_status_t challtestsrv_post(publisher_t *pub, const char *path, const char *host,
                                      const char *value, apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p);
    acme_http_response_t *resp;
    acme_result_t *r = acme_result_make(p);
    const char *body;
    apr_status_t rv;

    acme_json_sets(j, apr_pstrcat(p, "_acme-challenge.", host, ".", NULL), "host", NULL);
    if (value) {
        acme_json_sets(j, value, "value", NULL);
    }
    body = acme_json_dump(j, p, 1);
    rv = acme_http_do(pub->http, &resp, p, "POST", apr_pstrcat(p, pub->challtestsrv, path, NULL),
                      NULL, body, strlen(body), 0, r);
    if (rv == APR_SUCCESS && resp->status != 200) {
        rv = APR_EGENERAL;
    }
    return rv;
}

static apr_status_t publish(void *baton, const char *type, const char *name, const char *token,
                            const char *key_authz, apr_pool_t *p, acme_result_t *r)
{
    publisher_t *pub = baton;
    const char *cert_pem, *key_pem;
    apr_status_t rv;

    if (!strcmp(type, "http-01") && pub->challenge_dir) {
        return write_file(apr_pstrcat(p, pub->challenge_dir, "/", token, NULL), key_authz,
                          strlen(key_authz), p);
    }
    if (!strcmp(type, "tls-alpn-01") && pub->challenge_dir) {
        rv = acme_tls_alpn01_make(&cert_pem, &key_pem, p, name, key_authz);
        if (rv == APR_SUCCESS) {
            /* key first: a reader that sees the certificate finds its key */
            rv = write_file(apr_pstrcat(p, pub->challenge_dir, "/", name, ".key", NULL), key_pem,
                            strlen(key_pem), p);
        }
        if (rv == APR_SUCCESS) {
            rv = write_file(apr_pstrcat(p, pub->challenge_dir, "/", name, ".crt", NULL), cert_pem,
                            strlen(cert_pem), p);
        }
        return rv;
    }
    if (!strcmp(type, "dns-01") && pub->dns) {
        rv = acme_dns_publish(pub->dns, name, acme_dns01_value(p, key_authz), p, r);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "acmeclient: %s\n", acme_result_describe(r, p));
        }
        return rv;
    }
    if (!strcmp(type, "dns-01") && pub->challtestsrv) {
        return challtestsrv_post(pub, "/set-txt", name, acme_dns01_value(p, key_authz), p);
    }
    fprintf(stderr, "acmeclient: cannot publish %s for %s (no --challenge-dir/--challtestsrv)\n",
            type, name);
    return APR_ENOTIMPL;
}

static void withdraw(void *baton, const char *type, const char *name, const char *token,
                     const char *key_authz, apr_pool_t *p)
{
    publisher_t *pub = baton;

    if (!strcmp(type, "http-01") && pub->challenge_dir) {
        apr_file_remove(apr_pstrcat(p, pub->challenge_dir, "/", token, NULL), p);
    }
    else if (!strcmp(type, "tls-alpn-01") && pub->challenge_dir) {
        apr_file_remove(apr_pstrcat(p, pub->challenge_dir, "/", name, ".crt", NULL), p);
        apr_file_remove(apr_pstrcat(p, pub->challenge_dir, "/", name, ".key", NULL), p);
    }
    else if (!strcmp(type, "dns-01") && pub->dns) {
        acme_result_t *r = acme_result_make(p);

        if (acme_dns_withdraw(pub->dns, name, acme_dns01_value(p, key_authz), p, r)
            != APR_SUCCESS) {
            fprintf(stderr, "acmeclient: %s\n", acme_result_describe(r, p));
        }
    }
    else if (!strcmp(type, "dns-01") && pub->challtestsrv) {
        challtestsrv_post(pub, "/clear-txt", name, NULL, p);
    }
}

static void order_created(void *baton, const char *url)
{
    (void)baton;
    printf("order=%s\n", url);
    fflush(stdout);
}

static apr_status_t load_or_make_key(acme_pkey_t **pkey, apr_pool_t *p, const char *path,
                                     acme_key_type_t type, acme_result_t *r)
{
    apr_finfo_t fi;
    apr_status_t rv;

    if (apr_stat(&fi, path, APR_FINFO_TYPE, p) == APR_SUCCESS) {
        rv = acme_pkey_load(pkey, p, path);
        if (rv != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:config", "cannot load the key %s", path);
        }
        return rv;
    }
    rv = acme_pkey_gen(pkey, p, type);
    if (rv == APR_SUCCESS) {
        rv = acme_pkey_save(*pkey, p, path);
    }
    if (rv != APR_SUCCESS) {
        acme_result_set(r, rv, "acme:config", "cannot create the key %s", path);
    }
    return rv;
}

/* --each-name: threads that take the next name until none is left. */
typedef struct {
    apr_array_header_t *names;
    volatile apr_uint32_t next, failed;
    const char *dir_url, *out_dir;
    acme_http_config_t *hconf;
    acme_ca_shared_t *shared;
    const acme_pkey_t *account_key;
    const char *kid;
    acme_order_params_t params;   /* without names and key */
    acme_key_type_t key_type;
} each_t;

static void *APR_THREAD_FUNC each_thread(apr_thread_t *t, void *data)
{
    each_t *e = data;
    apr_pool_t *p;
    apr_uint32_t i;

    apr_pool_create_unmanaged_ex(&p, NULL, NULL);
    while ((i = apr_atomic_inc32(&e->next)) < (apr_uint32_t)e->names->nelts) {
        const char *name = APR_ARRAY_IDX(e->names, i, const char *), *pem, *url;
        acme_order_params_t params = e->params;
        acme_result_t *r = acme_result_make(p);
        acme_http_t *http;
        acme_client_t *c;
        acme_pkey_t *key;
        apr_status_t rv;

        apr_array_header_t *one = apr_array_make(p, 1, sizeof(const char *));

        APR_ARRAY_PUSH(one, const char *) = name;
        params.names = one;
        if ((rv = acme_http_curl_create(&http, p, e->hconf)) == APR_SUCCESS
            && (rv = acme_client_create(&c, p, e->dir_url, http)) == APR_SUCCESS
            && (rv = acme_pkey_gen(&key, p, e->key_type)) == APR_SUCCESS) {
            acme_client_share(c, e->shared);
            acme_client_set_account(c, e->account_key, e->kid);
            params.cert_key = key;
            rv = acme_order_run(&pem, &url, c, &params, p, r);
        }
        if (rv == APR_SUCCESS) {
            rv = write_file(apr_pstrcat(p, e->out_dir, "/", name, ".crt", NULL), pem,
                            strlen(pem), p);
        }
        if (rv == APR_SUCCESS) {
            rv = acme_pkey_save(key, p, apr_pstrcat(p, e->out_dir, "/", name, ".key", NULL));
        }
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "acmeclient: %s: %s\n", name, acme_result_describe(r, p));
            apr_atomic_inc32(&e->failed);
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    (void)t; /* returns: pthread_exit() would leave poisoned frames for ASan */
    return NULL;
}

static apr_status_t issue_each(each_t *e, int parallel, apr_pool_t *p)
{
    apr_thread_t **threads;
    apr_status_t rv, trv;
    int i;

    if ((rv = acme_ca_shared_create(&e->shared, p)) != APR_SUCCESS) {
        return rv;
    }
    if (parallel <= 0 || parallel > e->names->nelts) parallel = e->names->nelts;
    threads = apr_pcalloc(p, sizeof(*threads) * (apr_size_t)parallel);
    for (i = 0; i < parallel; ++i) {
        if ((rv = apr_thread_create(&threads[i], NULL, each_thread, e, p)) != APR_SUCCESS) {
            break;
        }
    }
    while (--i >= 0) {
        apr_thread_join(&trv, threads[i]);
    }
    printf("issued=%d\nfailed=%u\n", e->names->nelts - (int)e->failed, e->failed);
    return rv != APR_SUCCESS ? rv : e->failed ? APR_EGENERAL : APR_SUCCESS;
}

static apr_array_header_t *split_list(apr_pool_t *p, const char *s)
{
    apr_array_header_t *a = apr_array_make(p, 4, sizeof(const char *));
    char *copy = apr_pstrdup(p, s), *last, *tok;

    for (tok = apr_strtok(copy, ",", &last); tok; tok = apr_strtok(NULL, ",", &last)) {
        if (*tok) {
            APR_ARRAY_PUSH(a, const char *) = tok;
        }
    }
    return a;
}

enum {
    OPT_DIR = 256, OPT_CA_FILE, OPT_ACCOUNT_KEY, OPT_CONTACT, OPT_EAB_KID, OPT_EAB_HMAC,
    OPT_EXISTING, OPT_ROLLOVER, OPT_DEACTIVATE, OPT_NAMES, OPT_CHALLENGE, OPT_CHALLENGE_DIR,
    OPT_CHALLTESTSRV, OPT_CERT_OUT, OPT_KEY_OUT, OPT_KEY_TYPE, OPT_PROFILE, OPT_REPLACES,
    OPT_PREFERRED, OPT_ORDER_URL, OPT_TIMEOUT, OPT_NONCE_RETRIES, OPT_REVOKE, OPT_REASON,
    OPT_BY_CERT_KEY, OPT_UPDATE_CONTACT, OPT_DNS_UPDATE, OPT_DNS_KEY, OPT_DNS_CHECK,
    OPT_EACH_NAME, OPT_OUT_DIR, OPT_PARALLEL
};

static const apr_getopt_option_t options[] = {
    {"dir", OPT_DIR, 1, "directory URL"},
    {"ca-file", OPT_CA_FILE, 1, "trust anchors"},
    {"account-key", OPT_ACCOUNT_KEY, 1, "account key file"},
    {"contact", OPT_CONTACT, 1, "contact URI"},
    {"eab-kid", OPT_EAB_KID, 1, "EAB key id"},
    {"eab-hmac", OPT_EAB_HMAC, 1, "EAB HMAC"},
    {"existing-only", OPT_EXISTING, 0, "onlyReturnExisting"},
    {"rollover", OPT_ROLLOVER, 1, "new account key"},
    {"deactivate", OPT_DEACTIVATE, 0, "deactivate account"},
    {"update-contact", OPT_UPDATE_CONTACT, 1, "new contact URI"},
    {"names", OPT_NAMES, 1, "names"},
    {"each-name", OPT_EACH_NAME, 1, "one certificate per name"},
    {"out-dir", OPT_OUT_DIR, 1, "output dir for --each-name"},
    {"parallel", OPT_PARALLEL, 1, "threads for --each-name"},
    {"challenge", OPT_CHALLENGE, 1, "challenge types"},
    {"challenge-dir", OPT_CHALLENGE_DIR, 1, "challenge dir"},
    {"challtestsrv", OPT_CHALLTESTSRV, 1, "challtestsrv management URL"},
    {"cert-out", OPT_CERT_OUT, 1, "chain output"},
    {"key-out", OPT_KEY_OUT, 1, "key output"},
    {"key-type", OPT_KEY_TYPE, 1, "key type"},
    {"profile", OPT_PROFILE, 1, "profile"},
    {"replaces", OPT_REPLACES, 1, "ARI id"},
    {"preferred-issuer", OPT_PREFERRED, 1, "issuer CN"},
    {"order-url", OPT_ORDER_URL, 1, "resume order"},
    {"timeout", OPT_TIMEOUT, 1, "seconds"},
    {"nonce-retries", OPT_NONCE_RETRIES, 1, "count"},
    {"revoke", OPT_REVOKE, 1, "certificate file"},
    {"reason", OPT_REASON, 1, "reason code"},
    {"by-cert-key", OPT_BY_CERT_KEY, 1, "certificate key file"},
    {"dns-update", OPT_DNS_UPDATE, 1, "RFC 2136 update server"},
    {"dns-key", OPT_DNS_KEY, 1, "TSIG key file"},
    {"dns-check", OPT_DNS_CHECK, 1, "DNS check server"},
    {"help", 'h', 0, "help"},
    {NULL, 'v', 0, "verbose"},
    {NULL, 0, 0, NULL}
};

static int dns_option(publisher_t *pub, int ch, const char *arg)
{
    acme_dns_server_t *srv;
    acme_dns_tsig_t *key;
    const char *err;

    if (!pub->dns) {
        pub->dns = acme_dns_config_make(pub->pool);
        pub->dns->check = apr_array_make(pub->pool, 2, sizeof(acme_dns_server_t *));
    }
    if (ch == OPT_DNS_KEY) {
        if (acme_dns_tsig_load(&key, pub->pool, arg, ACME_KEYFILE_ANY_OWNER, &err) != APR_SUCCESS) {
            fprintf(stderr, "acmeclient: %s\n", err);
            return 0;
        }
        pub->dns->key = key;
        return 1;
    }
    if (acme_dns_server_parse(&srv, pub->pool, arg, 53, &err) != APR_SUCCESS) {
        fprintf(stderr, "acmeclient: %s\n", err);
        return 0;
    }
    if (ch == OPT_DNS_UPDATE) pub->dns->update = *srv;
    else APR_ARRAY_PUSH(pub->dns->check, acme_dns_server_t *) = srv;
    return 1;
}

static int parse_int(const char *s, int min, int max, int *pv)
{
    char *end;
    apr_int64_t v = apr_strtoi64(s, &end, 10);

    if (!*s || *end || v < min || v > max) {
        return 0;
    }
    *pv = (int)v;
    return 1;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    apr_getopt_t *opt;
    const char *arg;
    int ch, verbose = 0, existing = 0, deactivate = 0, reason = -1, timeout = 120;
    int nonce_retries = -1, parallel = 0;
    const char *each_arg = NULL, *out_dir = NULL;
    const char *dir_url = NULL, *ca_file = NULL, *account_key_file = NULL;
    const char *eab_kid = NULL, *eab_hmac = NULL, *rollover = NULL, *names_arg = NULL;
    const char *challenges = "http-01", *cert_out = NULL, *key_out = NULL;
    const char *key_type = "P-256", *revoke = NULL, *by_cert_key = NULL;
    apr_array_header_t *contact, *new_contact;
    acme_http_config_t hconf;
    acme_http_t *http;
    acme_client_t *client;
    acme_result_t *r;
    acme_pkey_t *account_key, *new_key, *cert_key;
    acme_account_t *acct;
    acme_order_params_t params;
    publisher_t pub;
    apr_status_t rv = APR_SUCCESS;
    int exit_code = 1;

    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&p, NULL);
    memset(&params, 0, sizeof(params));
    memset(&pub, 0, sizeof(pub));
    pub.pool = p;
    contact = apr_array_make(p, 2, sizeof(const char *));
    new_contact = apr_array_make(p, 2, sizeof(const char *));
    r = acme_result_make(p);

    apr_getopt_init(&opt, p, argc, argv);
    while ((rv = apr_getopt_long(opt, options, &ch, &arg)) == APR_SUCCESS) {
        switch (ch) {
        case OPT_DIR: dir_url = arg; break;
        case OPT_CA_FILE: ca_file = arg; break;
        case OPT_ACCOUNT_KEY: account_key_file = arg; break;
        case OPT_CONTACT: APR_ARRAY_PUSH(contact, const char *) = arg; break;
        case OPT_EAB_KID: eab_kid = arg; break;
        case OPT_EAB_HMAC: eab_hmac = arg; break;
        case OPT_EXISTING: existing = 1; break;
        case OPT_ROLLOVER: rollover = arg; break;
        case OPT_DEACTIVATE: deactivate = 1; break;
        case OPT_UPDATE_CONTACT: APR_ARRAY_PUSH(new_contact, const char *) = arg; break;
        case OPT_NAMES: names_arg = arg; break;
        case OPT_EACH_NAME: each_arg = arg; break;
        case OPT_OUT_DIR: out_dir = arg; break;
        case OPT_PARALLEL:
            if (!parse_int(arg, 1, 10000, &parallel)) {
                fprintf(stderr, "acmeclient: bad --parallel %s\n", arg);
                return 1;
            }
            break;
        case OPT_CHALLENGE: challenges = arg; break;
        case OPT_CHALLENGE_DIR: pub.challenge_dir = arg; break;
        case OPT_CHALLTESTSRV: pub.challtestsrv = arg; break;
        case OPT_DNS_UPDATE:
        case OPT_DNS_KEY:
        case OPT_DNS_CHECK:
            if (!dns_option(&pub, ch, arg)) return 1;
            break;
        case OPT_CERT_OUT: cert_out = arg; break;
        case OPT_KEY_OUT: key_out = arg; break;
        case OPT_KEY_TYPE: key_type = arg; break;
        case OPT_PROFILE: params.profile = arg; break;
        case OPT_REPLACES: params.replaces = arg; break;
        case OPT_PREFERRED: params.preferred_issuer = arg; break;
        case OPT_ORDER_URL: params.order_url = arg; break;
        case OPT_REVOKE: revoke = arg; break;
        case OPT_BY_CERT_KEY: by_cert_key = arg; break;
        case OPT_TIMEOUT:
            if (!parse_int(arg, 1, 3600, &timeout)) {
                fprintf(stderr, "acmeclient: bad --timeout %s\n", arg);
                return 1;
            }
            break;
        case OPT_NONCE_RETRIES:
            if (!parse_int(arg, 0, 100, &nonce_retries)) {
                fprintf(stderr, "acmeclient: bad --nonce-retries %s\n", arg);
                return 1;
            }
            break;
        case OPT_REASON:
            if (!parse_int(arg, 0, 10, &reason)) {
                fprintf(stderr, "acmeclient: bad --reason %s\n", arg);
                return 1;
            }
            break;
        case 'v': ++verbose; break;
        case 'h': usage(); return 0;
        default: usage(); return 1;
        }
    }
    if (rv != APR_EOF || opt->ind < argc || !dir_url || !account_key_file
        || (pub.dns && (!pub.dns->key || !pub.dns->update.host))) {
        usage();
        return 1;
    }
    if (verbose) {
        acme_log_set(log_stderr, NULL, verbose > 1 ? ACME_LOG_TRACE1 : ACME_LOG_DEBUG);
    }

    acme_http_config_init(&hconf);
    hconf.ca_file = ca_file;
    if ((rv = acme_http_global_init()) != APR_SUCCESS
        || (rv = acme_http_curl_create(&http, p, &hconf)) != APR_SUCCESS) {
        acme_result_set(r, rv, "acme:config", "cannot set up HTTP");
        goto leave;
    }
    pub.http = http;
    if (acme_client_create(&client, p, dir_url, http) != APR_SUCCESS) {
        acme_result_set(r, APR_EINVAL, "acme:config", "bad directory URL %s", dir_url);
        goto leave;
    }
    if (nonce_retries >= 0) {
        acme_client_set_nonce_retries(client, nonce_retries);
    }

    acme_result_activity(r, "account");
    rv = load_or_make_key(&account_key, p, account_key_file, ACME_KEY_P256, r);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    acme_client_set_account(client, account_key, NULL);
    rv = existing ? acme_account_find(&acct, client, p, r)
                  : acme_account_new(&acct, client, contact, 1, eab_kid, eab_hmac, p, r);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    printf("account=%s\n", acct->url);
    fflush(stdout);

    if (new_contact->nelts) {
        acme_result_activity(r, "updating the account contacts");
        if ((rv = acme_account_update(&acct, client, new_contact, p, r)) != APR_SUCCESS) {
            goto leave;
        }
        printf("contact=%s\n", apr_array_pstrcat(p, acct->contact, ','));
    }

    if (rollover) {
        acme_result_activity(r, "key rollover");
        rv = load_or_make_key(&new_key, p, rollover, ACME_KEY_P256, r);
        if (rv == APR_SUCCESS) {
            rv = acme_account_key_change(client, new_key, p, r);
        }
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        printf("rollover=ok\n");
    }

    if (revoke) {
        apr_array_header_t *chain;
        const acme_cert_t *cert;
        acme_pkey_t *ckey = NULL;

        acme_result_activity(r, "revoking %s", revoke);
        if ((rv = acme_chain_load(&chain, p, revoke)) != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:config", "cannot load the certificate %s", revoke);
            goto leave;
        }
        cert = APR_ARRAY_IDX(chain, 0, const acme_cert_t *);
        if (by_cert_key && (rv = acme_pkey_load(&ckey, p, by_cert_key)) != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:config", "cannot load the key %s", by_cert_key);
            goto leave;
        }
        if ((rv = acme_cert_revoke(client, cert, reason, ckey, p, r)) != APR_SUCCESS) {
            goto leave;
        }
        printf("revoked=%s\n", acme_cert_serial_hex(cert, p));
    }

    if (names_arg) {
        const char *pem, *order_url;
        apr_array_header_t *chain;
        acme_key_type_t kt = acme_key_type_parse(key_type);

        if (kt == ACME_KEY_NONE) {
            acme_result_set(r, APR_EINVAL, "acme:config", "unknown key type %s", key_type);
            rv = APR_EINVAL;
            goto leave;
        }
        if ((rv = acme_pkey_gen(&cert_key, p, kt)) != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:config", "cannot generate a %s key", key_type);
            goto leave;
        }
        params.names = split_list(p, names_arg);
        params.challenges = split_list(p, challenges);
        params.publish = publish;
        params.withdraw = withdraw;
        params.created = order_created;
        params.baton = &pub;
        params.cert_key = cert_key;
        params.timeout = apr_time_from_sec(timeout);
        rv = acme_order_run(&pem, &order_url, client, &params, p, r);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        if (params.order_url) {
            printf("order=%s\n", order_url);
        }
        if ((rv = acme_chain_from_pem(&chain, p, pem, strlen(pem))) != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:malformed-response", "the chain does not parse");
            goto leave;
        }
        printf("serial=%s\n", acme_cert_serial_hex(APR_ARRAY_IDX(chain, 0, const acme_cert_t *),
                                                   p));
        if (cert_out && (rv = write_file(cert_out, pem, strlen(pem), p)) != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:config", "cannot write %s", cert_out);
            goto leave;
        }
        if (key_out) {
            if ((rv = acme_pkey_save(cert_key, p, key_out)) != APR_SUCCESS) {
                acme_result_set(r, rv, "acme:config", "cannot write %s", key_out);
                goto leave;
            }
        }
    }

    if (each_arg) {
        each_t e;
        memset(&e, 0, sizeof(e));
        e.names = split_list(p, each_arg);
        e.dir_url = dir_url;
        e.out_dir = out_dir ? out_dir : ".";
        e.hconf = &hconf;
        e.account_key = account_key;
        e.kid = acct->url;
        e.key_type = acme_key_type_parse(key_type);
        e.params = params;
        e.params.challenges = split_list(p, challenges);
        e.params.publish = publish;
        e.params.withdraw = withdraw;
        e.params.baton = &pub;
        e.params.timeout = apr_time_from_sec(timeout);
        if (e.key_type == ACME_KEY_NONE) {
            rv = acme_result_set(r, APR_EINVAL, "acme:config", "unknown key type %s", key_type);
            goto leave;
        }
        if ((rv = issue_each(&e, parallel, p)) != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:config", "%u of %d certificates failed", e.failed,
                            e.names->nelts);
            goto leave;
        }
    }

    if (deactivate) {
        acme_result_activity(r, "deactivating the account");
        if ((rv = acme_account_deactivate(client, p, r)) != APR_SUCCESS) {
            goto leave;
        }
        printf("deactivated=%s\n", acme_client_account_url(client));
    }
    exit_code = 0;

leave:
    if (exit_code) {
        if (r->status == APR_SUCCESS) {
            r->status = rv ? rv : APR_EGENERAL;
        }
        fprintf(stderr, "acmeclient: %s\n", acme_result_describe(r, p));
    }
    fflush(stdout);
    apr_pool_destroy(p);
    return exit_code;
}
