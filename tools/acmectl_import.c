/* acmectl_import.c: `acmectl import certbot [DIR]`. Reads certbot's tree
 * (renewal/NAME.conf, the files it names, accounts/.../ID/) and writes the
 * store as the server's activation does; changes nothing of certbot's. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_file_info.h>
#include <apr_hash.h>
#include <apr_lib.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_names.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_job.h"
#include "acme_store.h"
#include "acmectl_import.h"

#define CONF_MAX (64 * 1024)  /* a renewal conf; PEM and JSON files: ACME_FILE_MAX */
#define ACCOUNT_SEARCH_DEPTH 6 /* accounts/<host>/<path...>/directory/<id> */
#define KEEP_ARCHIVED 5        /* as the server's activation */

static const char *status_text(apr_pool_t *p, apr_status_t rv)
{
    char buf[256];
    return apr_pstrdup(p, apr_strerror(rv, buf, sizeof(buf)));
}

typedef struct {
    const char *name;           /* the lineage: renewal/<name>.conf */
    const char *server;         /* the CA's directory URL */
    const char *account;        /* certbot's account id */
    const char *fullchain, *privkey;
} lineage_t;

typedef struct {
    acme_store_t *store;
    const char *dir;
    apr_pool_t *pool;
    apr_hash_t *accounts;       /* certbot account id -> "" once handled */
    int failed;
} import_t;

static void say(const char *what, const char *name, const char *fmt, ...) ACME_PRINTF(3, 4);
static void say(const char *what, const char *name, const char *fmt, ...)
{
    apr_pool_t *p;
    va_list ap;

    apr_pool_create(&p, NULL);
    va_start(ap, fmt);
    printf("%-9s %s: %s\n", what, name, apr_pvsprintf(p, fmt, ap));
    va_end(ap);
    apr_pool_destroy(p);
}

/* The "key = value" lines certbot's renewal conf (configobj) has: the top
 * section's file paths and [renewalparams]' server and account. */
static apr_status_t lineage_read(lineage_t *l, const char *path, apr_pool_t *p)
{
    const char *data, *line, *next;
    apr_size_t len;
    apr_status_t rv = acme_file_read(&data, &len, path, CONF_MAX, p);

    if (rv != APR_SUCCESS) return rv;
    for (line = data; *line; line = next) {
        const char *eol = strchr(line, '\n'), *eq;
        char *key, *val, *e;

        next = eol ? eol + 1 : line + strlen(line);
        eq = memchr(line, '=', (apr_size_t)((eol ? eol : next) - line));
        if (!eq || *line == '#' || *line == '[') continue;
        key = apr_pstrndup(p, line, (apr_size_t)(eq - line));
        val = apr_pstrndup(p, eq + 1, (apr_size_t)((eol ? eol : next) - eq - 1));
        apr_collapse_spaces(key, key);
        while (apr_isspace(*val)) ++val;
        e = val + strlen(val);
        while (e > val && apr_isspace(e[-1])) *--e = '\0';
        if (!strcmp(key, "server")) l->server = val;
        else if (!strcmp(key, "account")) l->account = val;
        else if (!strcmp(key, "fullchain")) l->fullchain = val;
        else if (!strcmp(key, "privkey")) l->privkey = val;
    }
    return APR_SUCCESS;
}

/* The first ManagedDomain whose names the certificate covers. */
static const apr_array_header_t *domain_for(const apr_array_header_t *domains,
                                            const acme_cert_t *leaf)
{
    int i;

    for (i = 0; i < domains->nelts; ++i) {
        const apr_array_header_t *names = APR_ARRAY_IDX(domains, i, apr_array_header_t *);
        if (acme_cert_covers(leaf, names)) return names;
    }
    return NULL;
}

/* The directory of certbot's account id below accounts/ (its path there
 * is the server's URL, which certbot spells its own way: searched). */
static const char *account_dir(const char *dir, const char *id, int depth, apr_pool_t *p)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    const char *found = NULL;

    if (depth > ACCOUNT_SEARCH_DEPTH || apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return NULL;
    }
    while (!found && apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d) == APR_SUCCESS) {
        if (fi.filetype != APR_DIR || !strcmp(fi.name, ".") || !strcmp(fi.name, "..")) continue;
        found = !strcmp(fi.name, id) ? apr_pstrcat(p, dir, "/", fi.name, NULL)
                                     : account_dir(apr_pstrcat(p, dir, "/", fi.name, NULL), id,
                                                   depth + 1, p);
    }
    apr_dir_close(d);
    return found;
}

/* certbot's account of the lineage's CA, unless the store has one for it. */
static void import_account(import_t *im, const lineage_t *l, apr_pool_t *p)
{
    acme_store_t *st = im->store;
    const char *adir, *caid, *url, *pem, *err = NULL, *have;
    acme_json_t *jwk, *regr, *acct, *body, *contact;
    acme_pkey_t *key;
    apr_status_t rv;

    if (!l->account || !l->server || apr_hash_get(im->accounts, l->account, APR_HASH_KEY_STRING)) {
        return;
    }
    apr_hash_set(im->accounts, l->account, APR_HASH_KEY_STRING, "");
    caid = acme_job_account_id(p, l->server, NULL);
    adir = account_dir(apr_pstrcat(p, im->dir, "/accounts", NULL), l->account, 0, p);
    if (!adir) {
        say("skipped", apr_psprintf(p, "account %s", l->account),
            "not found under %s/accounts", im->dir);
        return;
    }
    if ((rv = acme_json_read_file(&regr, p, apr_pstrcat(p, adir, "/regr.json", NULL), &err))
            != APR_SUCCESS
        || !(url = acme_json_gets(regr, "uri", NULL))) {
        say("skipped", apr_psprintf(p, "account %s", l->account),
            "%s/regr.json has no account URL (%s)", adir, err ? err : "no \"uri\"");
        return;
    }
    if (acme_store_load_json(st, ACME_SG_ACCOUNTS, caid, ACME_ACCOUNT_JSON, &acct, p)
        == APR_SUCCESS) {
        have = acme_json_gets(acct, ACME_AK_URL, NULL);
        say("skipped", apr_psprintf(p, "account %s", l->account),
            have && !strcmp(have, url) ? "imported already (%s)"
                                       : "the store has its own account for %s: kept", have && !strcmp(have, url) ? url : l->server);
        return;
    }
    /* the private JWK is certbot's secret: its parser's messages are not shown */
    if (acme_json_read_file(&jwk, p, apr_pstrcat(p, adir, "/private_key.json", NULL), NULL)
            != APR_SUCCESS
        || acme_pkey_from_private_jwk(&key, p, jwk) != APR_SUCCESS
        || acme_pkey_to_pem(&pem, p, key) != APR_SUCCESS) {
        say("failed", apr_psprintf(p, "account %s", l->account),
            "%s/private_key.json is not a private key this module can use (EC P-256/P-384 or "
            "RSA 2048-4096 as a JWK)", adir);
        im->failed = 1;
        return;
    }
    acct = acme_json_new_object(p);
    acme_json_sets(acct, url, ACME_AK_URL, NULL);
    acme_json_sets(acct, l->server, ACME_AK_CA, NULL);
    body = acme_json_getj(regr, p, "body", NULL);
    contact = body ? acme_json_getj(body, p, "contact", NULL) : NULL;
    if (contact) acme_json_setj(acct, contact, ACME_AK_CONTACT, NULL);
    acme_json_sets(acct, acme_time_rfc3339(p, apr_time_now()), ACME_AK_CREATED, NULL);
    acme_json_sets(acct, "certbot", "imported-from", NULL);
    /* the key first: an account.json never names a key we do not have */
    if ((rv = st->save(st, ACME_SG_ACCOUNTS, caid, ACME_ACCOUNT_KEY, pem, strlen(pem), 1, p))
            != APR_SUCCESS
        || (rv = acme_store_save_json(st, ACME_SG_ACCOUNTS, caid, ACME_ACCOUNT_JSON, acct, p))
               != APR_SUCCESS) {
        say("failed", apr_psprintf(p, "account %s", l->account), "cannot write accounts/%s: %s",
            caid, status_text(p, rv));
        im->failed = 1;
        return;
    }
    say("imported", apr_psprintf(p, "account %s", l->account), "%s at %s, as accounts/%s",
        url, l->server, caid);
}

/* A domain's other key types keep their active files: the directory is
 * replaced as one complete set, as the server's activation does. */
static void keep_other_types(acme_store_t *st, const char *domain, acme_key_type_t imported,
                             apr_pool_t *p)
{
    static const acme_key_type_t types[] = {ACME_KEY_P256, ACME_KEY_P384, ACME_KEY_RSA2048,
                                            ACME_KEY_RSA3072, ACME_KEY_RSA4096};
    const char *data;
    apr_size_t len, i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); ++i) {
        const char *cf = acme_job_cert_file(p, types[i]), *kf = acme_job_key_file(p, types[i]);
        if (types[i] == imported
            || st->load(st, ACME_SG_DOMAINS, domain, cf, &data, &len, p) != APR_SUCCESS) {
            continue;
        }
        st->save(st, ACME_SG_STAGING, domain, cf, data, len, 0, p);
        if (st->load(st, ACME_SG_DOMAINS, domain, kf, &data, &len, p) == APR_SUCCESS) {
            st->save(st, ACME_SG_STAGING, domain, kf, data, len, 1, p);
        }
    }
}

/* 1 when the lineage is one of a ManagedDomain (its account then matters). */
static int import_lineage(import_t *im, const apr_array_header_t *domains, lineage_t *l,
                          apr_pool_t *p)
{
    acme_store_t *st = im->store;
    const char *chain_pem, *key_data, *why = NULL, *domain, *cf, *kf, *key_pem, *old;
    const apr_array_header_t *names;
    apr_array_header_t *chain, *sans, *have;
    apr_size_t clen, klen, olen;
    acme_pkey_t *key;
    acme_cert_t *leaf;
    acme_key_type_t t;
    acme_json_t *meta;
    apr_time_t now = apr_time_now(), mt;
    apr_status_t rv;

    if (!l->fullchain) l->fullchain = apr_pstrcat(p, im->dir, "/live/", l->name, "/fullchain.pem", NULL);
    if (!l->privkey) l->privkey = apr_pstrcat(p, im->dir, "/live/", l->name, "/privkey.pem", NULL);
    if ((rv = acme_file_read(&chain_pem, &clen, l->fullchain, 0, p)) != APR_SUCCESS
        || (rv = acme_chain_from_pem(&chain, p, chain_pem, clen)) != APR_SUCCESS) {
        say("failed", l->name, "cannot read a certificate chain from %s: %s", l->fullchain,
            status_text(p, rv));
        im->failed = 1;
        return 0;
    }
    if ((rv = acme_file_read(&key_data, &klen, l->privkey, 0, p)) != APR_SUCCESS
        || (rv = acme_pkey_from_pem(&key, p, key_data, klen)) != APR_SUCCESS) {
        say("failed", l->name, "cannot read a private key from %s: %s", l->privkey,
            status_text(p, rv));
        im->failed = 1;
        return 0;
    }
    leaf = APR_ARRAY_IDX(chain, 0, acme_cert_t *);
    if (!(names = domain_for(domains, leaf))) {
        acme_cert_sans(&sans, p, leaf);
        say("skipped", l->name, "no ManagedDomain whose names its certificate covers (it has "
            "%s)", sans ? apr_array_pstrcat(p, sans, ' ') : "no names");
        return 0;
    }
    domain = APR_ARRAY_IDX(names, 0, const char *);
    if (acme_pair_check(chain, key, names, now, &why, p) != APR_SUCCESS) {
        say("skipped", l->name, "its certificate cannot serve %s: %s", domain, why);
        return 1;
    }
    t = acme_pkey_type(key);
    cf = acme_job_cert_file(p, t);
    kf = acme_job_key_file(p, t);
    if (st->load(st, ACME_SG_DOMAINS, domain, cf, &old, &olen, p) == APR_SUCCESS
        && acme_chain_from_pem(&have, p, old, olen) == APR_SUCCESS
        && acme_cert_not_after(APR_ARRAY_IDX(have, 0, acme_cert_t *)) >= acme_cert_not_after(leaf)) {
        say("skipped", l->name, "the store's %s certificate of %s is %s (valid until %s)",
            acme_key_type_name(t), domain,
            !strcmp(acme_cert_fingerprint(APR_ARRAY_IDX(have, 0, acme_cert_t *), p),
                    acme_cert_fingerprint(leaf, p)) ? "this one, imported already" : "newer",
            acme_time_rfc3339(p, acme_cert_not_after(APR_ARRAY_IDX(have, 0, acme_cert_t *))));
        return 1;
    }
    if (st->mtime(st, ACME_SG_STAGING, domain, ACME_JOB_META, &mt, p) == APR_SUCCESS) {
        say("skipped", l->name, "a renewed certificate of %s is staged and waits for the "
            "server's restart; run the import again after it", domain);
        return 1;
    }
    meta = acme_json_new_object(p);
    acme_json_setsa(meta, (apr_array_header_t *)names, ACME_MK_NAMES, NULL);
    if (l->server) acme_json_sets(meta, l->server, ACME_MK_CA, NULL);
    acme_json_sets(meta, acme_time_rfc3339(p, now), ACME_MK_STAGED, NULL);
    acme_json_sets(meta, apr_pstrcat(p, "certbot:", l->name, NULL), "imported-from", NULL);
    st->remove(st, ACME_SG_STAGING, domain, NULL, p);
    keep_other_types(st, domain, t, p);
    if ((rv = acme_pkey_to_pem(&key_pem, p, key)) != APR_SUCCESS
        || (rv = st->save(st, ACME_SG_STAGING, domain, kf, key_pem, strlen(key_pem), 1, p))
               != APR_SUCCESS
        || (rv = st->save(st, ACME_SG_STAGING, domain, cf, chain_pem, clen, 0, p)) != APR_SUCCESS
        || (rv = acme_store_save_json(st, ACME_SG_STAGING, domain, ACME_JOB_META, meta, p))
               != APR_SUCCESS
        || (rv = st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, domain, KEEP_ARCHIVED, p))
               != APR_SUCCESS) {
        st->remove(st, ACME_SG_STAGING, domain, NULL, p);
        say("failed", l->name, "cannot write domains/%s in the store: %s", domain,
            status_text(p, rv));
        im->failed = 1;
        return 1;
    }
    say("imported", l->name, "%s certificate of %s (%s), valid until %s", acme_key_type_name(t),
        domain, apr_array_pstrcat(p, (apr_array_header_t *)names, ' '),
        acme_time_rfc3339(p, acme_cert_not_after(leaf)));
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int acmectl_import_certbot(acme_store_t *store, const apr_array_header_t *domains,
                           const char *dir, apr_pool_t *p)
{
    import_t im = {store, dir, p, apr_hash_make(p), 0};
    apr_array_header_t *confs = apr_array_make(p, 8, sizeof(const char *));
    const char *rdir = apr_pstrcat(p, dir, "/renewal", NULL);
    apr_pool_t *lp;
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv;
    int i;

    if ((rv = apr_dir_open(&d, rdir, p)) != APR_SUCCESS) {
        fprintf(stderr, "acmectl: cannot read %s (%s): is %s certbot's directory "
                "(--config-dir, /etc/letsencrypt by default)?\n", rdir, status_text(p, rv),
                dir);
        return 1;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d) == APR_SUCCESS) {
        apr_size_t n = strlen(fi.name);
        if (fi.filetype == APR_REG && n > 5 && !strcmp(fi.name + n - 5, ".conf")) {
            APR_ARRAY_PUSH(confs, const char *) = apr_pstrndup(p, fi.name, n - 5);
        }
    }
    apr_dir_close(d);
    qsort(confs->elts, (size_t)confs->nelts, sizeof(const char *), cmp_str);
    if (confs->nelts == 0) {
        printf("nothing to import: %s has no certbot lineage\n", rdir);
    }
    apr_pool_create(&lp, p);
    for (i = 0; i < confs->nelts; ++i, apr_pool_clear(lp)) {
        lineage_t l = {APR_ARRAY_IDX(confs, i, const char *), NULL, NULL, NULL, NULL};
        const char *path = apr_pstrcat(lp, rdir, "/", l.name, ".conf", NULL);
        if ((rv = lineage_read(&l, path, lp)) != APR_SUCCESS) {
            say("failed", l.name, "cannot read %s: %s", path, status_text(lp, rv));
            im.failed = 1;
            continue;
        }
        l.account = l.account ? apr_pstrdup(p, l.account) : NULL; /* the hash outlives lp */
        if (import_lineage(&im, domains, &l, lp)) {
            import_account(&im, &l, lp);
        }
    }
    apr_pool_destroy(lp);
    return im.failed;
}
