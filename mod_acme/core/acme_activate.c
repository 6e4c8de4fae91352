/* acme_activate.c: a staged result becomes the domain's active one, after
 * the checks that the child's writing it calls for (see acme_activate.h). */
#include <unistd.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_network_io.h>

#include "acme_util.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_job.h"
#include "acme_names.h"
#include "acme_activate.h"

/* Is the staged pair of type t usable? *ppresent: 0 there is none (or it
 * is the active one), 1 there is one, -1 (a shared store only) there is
 * one for other names: another server of the fleet, configured otherwise
 * (a rolling change), made it, and it is neither this server's to activate
 * nor to remove.
 * The child wrote it, and the child's account is every web application's:
 * a result must be a pair for the domain's names, and newer than what is
 * active (a certificate staged again would otherwise be a restart at the
 * child's will, and an older one a downgrade). */
static apr_status_t validate_staged(const acme_activate_t *a, acme_key_type_t t, int *ppresent,
                                    const char **perr, apr_pool_t *p)
{
    acme_store_t *st = a->store;
    apr_array_header_t *chain, *active;
    acme_pkey_t *key = NULL;
    const char *cert, *keypem, *cur, *cf = acme_job_cert_file(p, t);
    apr_size_t clen, klen, curlen;
    apr_status_t rv;

    rv = st->load(st, ACME_SG_STAGING, a->domain, cf, &cert, &clen, p);
    *ppresent = !APR_STATUS_IS_ENOENT(rv);
    if (!*ppresent) {
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS || acme_chain_from_pem(&chain, p, cert, clen) != APR_SUCCESS
        || chain->nelts < 1) {
        *perr = "the certificate file cannot be read";
        return rv != APR_SUCCESS ? rv : APR_EINVAL;
    }
    if ((st->flags & ACME_STORE_SHARED)
        && !acme_cert_covers(APR_ARRAY_IDX(chain, 0, const acme_cert_t *), a->names)) {
        *ppresent = -1;
        return APR_SUCCESS;
    }
    if (st->load(st, ACME_SG_STAGING, a->domain, acme_job_key_file(p, t), &keypem, &klen, p)
            != APR_SUCCESS
        || acme_pkey_from_pem(&key, p, keypem, klen) != APR_SUCCESS) {
        *perr = "the key file cannot be read";
        return APR_EINVAL;
    }
    if (st->load(st, ACME_SG_DOMAINS, a->domain, cf, &cur, &curlen, p) == APR_SUCCESS) {
        if (curlen == clen && !memcmp(cur, cert, clen)) {
            *ppresent = 0; /* the active one: nothing new */
            return APR_SUCCESS;
        }
        if (acme_chain_from_pem(&active, p, cur, curlen) == APR_SUCCESS && active->nelts > 0
            && acme_cert_not_before(APR_ARRAY_IDX(chain, 0, const acme_cert_t *))
                   < acme_cert_not_before(APR_ARRAY_IDX(active, 0, const acme_cert_t *))) {
            *perr = "it is older than the active certificate";
            return APR_EINVAL;
        }
    }
    rv = acme_pair_check(chain, key, a->names, apr_time_now(), perr, p);
    if (rv == APR_SUCCESS && a->good) {
        a->good(a->baton, cert, clen, keypem, klen);
    }
    return rv;
}

/* The key types activation looks at. A local store holds this server's
 * results; a shared one the fleet's, and a server whose key types differ
 * (a rolling change) checks, activates and keeps every type the others
 * made: it never drops what the fleet serves. */
static const apr_array_header_t *activation_types(const acme_activate_t *a, apr_pool_t *p)
{
    apr_array_header_t *types;
    int t;

    if (!(a->store->flags & ACME_STORE_SHARED)) {
        return a->key_types;
    }
    types = apr_array_make(p, ACME_KEY_RSA4096, sizeof(acme_key_type_t));
    for (t = ACME_KEY_P256; t <= ACME_KEY_RSA4096; ++t) {
        APR_ARRAY_PUSH(types, acme_key_type_t) = (acme_key_type_t)t;
    }
    return types;
}

acme_staged_t acme_activate_check(const acme_activate_t *a, const char **perr,
                                  acme_key_type_t *pbad, apr_status_t *prv, apr_pool_t *p)
{
    const apr_array_header_t *types = activation_types(a, p);
    int i, present, staged = 0, other = 0;

    *prv = APR_SUCCESS;
    for (i = 0; i < types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(types, i, acme_key_type_t);
        *prv = validate_staged(a, t, &present, perr, p);
        if (*prv != APR_SUCCESS) {
            *pbad = t;
            return ACME_STAGED_BAD;
        }
        other |= present < 0;
        staged += present > 0;
    }
    return other ? ACME_STAGED_OTHERS : staged > 0 ? ACME_STAGED_GOOD : ACME_STAGED_NONE;
}

void acme_activate_refuse(const acme_activate_t *a, acme_key_type_t bad, apr_status_t rv,
                          const char *err, apr_pool_t *p)
{
    acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv == APR_EINVAL ? 0 : rv, ACMELOG(0301)
             "%s: the staged %s certificate is not activated: %s. It is removed; "
             "a new one will be ordered.", a->domain, acme_key_type_name(bad), err);
    a->store->remove(a->store, ACME_SG_STAGING, a->domain, NULL, p);
}

static int activate_staged(const acme_activate_t *a, apr_pool_t *p)
{
    acme_store_t *st = a->store;
    const char *err = NULL, *data;
    apr_size_t len;
    apr_status_t rv = APR_SUCCESS;
    acme_key_type_t bad = 0;
    const apr_array_header_t *types = activation_types(a, p);
    acme_staged_t staged = acme_activate_check(a, &err, &bad, &rv, p);
    int i;

    if (staged == ACME_STAGED_BAD) {
        acme_activate_refuse(a, bad, rv, err, p);
        return 0;
    }
    if (staged == ACME_STAGED_OTHERS) {
        return 0;   /* its maker activates it; the glue logs the difference */
    }
    if (staged == ACME_STAGED_NONE) {
        st->remove(st, ACME_SG_STAGING, a->domain, NULL, p);
        return 0;
    }
    /* Key types not renewed this time keep their active files: copy them
     * so the domain's directory is replaced as one complete set. */
    for (i = 0; i < types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(types, i, acme_key_type_t);
        const char *cf = acme_job_cert_file(p, t), *kf = acme_job_key_file(p, t);

        if (st->load(st, ACME_SG_STAGING, a->domain, cf, &data, &len, p) == APR_SUCCESS) continue;
        if (st->load(st, ACME_SG_DOMAINS, a->domain, cf, &data, &len, p) == APR_SUCCESS) {
            st->save(st, ACME_SG_STAGING, a->domain, cf, data, len, 0, p);
            if (st->load(st, ACME_SG_DOMAINS, a->domain, kf, &data, &len, p) == APR_SUCCESS) {
                st->save(st, ACME_SG_STAGING, a->domain, kf, data, len, 1, p);
            }
        }
    }
    rv = st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, a->domain, ACME_ACTIVATE_KEEP_ARCHIVED,
                  p);
    if (APR_STATUS_IS_ENOENT(rv) && (st->flags & ACME_STORE_SHARED)) {
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(0304)
                 "%s: another server of the cluster activated the new certificate first",
                 a->domain);
        return 1;
    }
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0302)
                 "%s: cannot activate the staged certificate in %s", a->domain, st->where);
        return 0;
    }
    acme_log(ACME_LOG_MARK, ACME_LOG_NOTICE, 0, ACMELOG(0303) "%s: new certificate activated",
             a->domain);
    return 1;
}

int acme_activate_domain(const acme_activate_t *a, int *pbusy, apr_pool_t *p)
{
    acme_store_t *st = a->store;
    acme_store_claim_t *c = NULL;
    const char *data;
    apr_size_t len;
    int n;

    if (pbusy) *pbusy = 0;

    if (st->load(st, ACME_SG_STAGING, a->domain, ACME_JOB_META, &data, &len, p) != APR_SUCCESS) {
        return 0;
    }
    if (st->flags & ACME_STORE_SHARED) {
        /* Servers restarting at the same moment: one activates, and the
         * others must not take its half-moved result for a broken one. */
        char host[APRMAXHOSTLEN + 1];
        if (apr_gethostname(host, sizeof(host), p) != APR_SUCCESS) {
            apr_cpystrn(host, "-", sizeof(host));
        }
        if (st->claim(st, &c, a->domain,
                      apr_psprintf(p, "mod_acme-parent-%d@%s", (int)getpid(), host),
                      apr_time_from_sec(30), p) != APR_SUCCESS) {
            if (pbusy) *pbusy = 1;
            return 0;   /* another server is at it, or was: the glue looks again later */
        }
        if (st->snapshot) { /* the staged items, read once for the checks */
            st->snapshot(st, ACME_SG_STAGING, a->domain, p);
        }
        if (st->load(st, ACME_SG_STAGING, a->domain, ACME_JOB_META, &data, &len, p)
            != APR_SUCCESS) {
            st->release(st, c, p);
            return 0;   /* activated meanwhile */
        }
    }
    n = activate_staged(a, p);
    if (c) {
        st->release(st, c, p);
    }
    return n;
}

apr_hash_t *acme_activate_staged_names(acme_store_t *st, apr_pool_t *p)
{
    apr_hash_t *h = apr_hash_make(p);
    apr_array_header_t *names;
    int i;

    if (st->list(st, ACME_SG_STAGING, NULL, &names, p) == APR_SUCCESS) {
        for (i = 0; i < names->nelts; ++i) {
            apr_hash_set(h, APR_ARRAY_IDX(names, i, const char *), APR_HASH_KEY_STRING, "1");
        }
    }
    return h;
}

void acme_activate_mark(acme_store_t *st, apr_pool_t *p)
{
    if (st->flags & ACME_STORE_SHARED) {
        st->save(st, ACME_SG_STAGING, ACME_ACTIVATE_BATCH_NAME, ACME_ACTIVATE_BATCH_STAGED, "1", 1,
                 ACME_STORE_VOLATILE, p);
    }
}
