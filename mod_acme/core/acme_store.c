/* acme_store.c: what every store backend shares: names, JSON, certificate
 * and key loading through the interface, fenced views and mod_ssl's files. */

#include <apr_strings.h>

#include <string.h>

#include "acme_crypto.h"
#include "acme_json.h"
#include "acme_store.h"
#include "acme_util.h"

#define ACME_STORE_NAME_MAX 255

static const char *const group_names[ACME_SG_COUNT] = {
    "accounts", "domains", "staging", "challenges", "jobs", "archive"
};

const char *acme_store_group_name(acme_store_group_t g)
{
    if ((int)g < 0 || g >= ACME_SG_COUNT) {
        return NULL;
    }
    return group_names[g];
}

int acme_store_name_is_valid(const char *s)
{
    apr_size_t i;

    if (!s || !s[0] || s[0] == '.') {
        return 0;
    }
    for (i = 0; s[i]; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (i >= ACME_STORE_NAME_MAX) {
            return 0;
        }
        if (c < 0x20 || c > 0x7e || c == '/') {
            return 0;
        }
        if (c == '.' && s[i + 1] == '.') {
            return 0;
        }
    }
    return 1;
}


apr_status_t acme_store_load_json(acme_store_t *s, acme_store_group_t g, const char *name,
                                  const char *aspect, struct acme_json_t **pjson, apr_pool_t *p)
{
    const char *data, *jerr = NULL;
    apr_size_t len;
    apr_status_t rv;

    *pjson = NULL;
    rv = s->load(s, g, name, aspect, &data, &len, p);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = acme_json_parse(pjson, p, data, len, &jerr);
    if (rv != APR_SUCCESS) {
        rv = APR_EINVAL;
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0908) "store: %s/%s/%s is not valid JSON: %s",
                 acme_store_group_name(g), name, aspect, jerr ? jerr : "?");
    }
leave:
    return rv;
}

apr_status_t acme_store_save_json(acme_store_t *s, acme_store_group_t g, const char *name,
                                  const char *aspect, const struct acme_json_t *json,
                                  apr_pool_t *p)
{
    return acme_store_save_json_as(s, g, name, aspect, json, 0, p);
}

apr_status_t acme_store_save_json_as(acme_store_t *s, acme_store_group_t g, const char *name,
                                     const char *aspect, const struct acme_json_t *json,
                                     int flags, apr_pool_t *p)
{
    const char *data;

    if (!json) {
        return APR_EINVAL;
    }
    data = acme_json_dump(json, p, 0);
    if (!data) {
        return APR_EGENERAL;
    }
    data = apr_pstrcat(p, data, "\n", NULL);
    return s->save(s, g, name, aspect, data, strlen(data), flags, p);
}

apr_status_t acme_store_load_chain(acme_store_t *s, acme_store_group_t g, const char *name,
                                   const char *aspect, apr_array_header_t **pchain,
                                   apr_pool_t *p)
{
    const char *data;
    apr_size_t len;
    apr_status_t rv = s->load(s, g, name, aspect, &data, &len, p);

    *pchain = NULL;
    if (rv == APR_SUCCESS) {
        rv = acme_chain_from_pem(pchain, p, data, len);
        if (rv == APR_SUCCESS && (*pchain)->nelts < 1) rv = APR_EINVAL;
        if (rv != APR_SUCCESS) rv = APR_EINVAL;
    }
    return rv;
}

apr_status_t acme_store_load_pkey(acme_store_t *s, acme_store_group_t g, const char *name,
                                  const char *aspect, acme_pkey_t **pkey, apr_pool_t *p)
{
    const char *data;
    apr_size_t len;
    apr_status_t rv = s->load(s, g, name, aspect, &data, &len, p);

    *pkey = NULL;
    if (rv == APR_SUCCESS && acme_pkey_from_pem(pkey, p, data, len) != APR_SUCCESS) {
        rv = APR_EINVAL;
    }
    return rv;
}

acme_store_t *acme_store_fenced(apr_pool_t *p, const acme_store_t *s,
                                const acme_store_claim_t *c)
{
    acme_store_t *v = apr_pmemdup(p, s, sizeof(*s));

    v->fence = c;
    return v;
}

apr_status_t acme_store_save_changed(acme_store_t *s, acme_store_group_t g, const char *name,
                                     const char *aspect, const char *data, apr_size_t len,
                                     int flags, apr_pool_t *p)
{
    const char *old;
    apr_size_t olen;

    if (s->load(s, g, name, aspect, &old, &olen, p) == APR_SUCCESS && olen == len
        && !memcmp(old, data, len)) {
        return APR_SUCCESS;
    }
    return s->save(s, g, name, aspect, data, len, flags, p);
}

apr_status_t acme_store_file(const char **ppath, acme_store_t *s, acme_store_t *cache,
                             acme_store_group_t g, const char *name, const char *aspect,
                             int flags, apr_pool_t *p)
{
    const char *data;
    apr_size_t len;
    apr_status_t rv;

    *ppath = s->path(s, g, name, aspect, p);
    if (*ppath) {
        return APR_SUCCESS;
    }
    rv = s->load(s, g, name, aspect, &data, &len, p);
    if (rv == APR_SUCCESS) {
        rv = acme_store_save_changed(cache, g, name, aspect, data, len, flags, p);
    }
    else if (!APR_STATUS_IS_ENOENT(rv)
             && cache->load(cache, g, name, aspect, &data, &len, p) == APR_SUCCESS) {
        /* The store is unreachable or gave a bad value: the last good copy. */
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, rv, ACMELOG(0909) "store: %s/%s/%s cannot be "
                 "read from %s; the local copy in the cache is used", acme_store_group_name(g),
                 name, aspect, s->where ? s->where : s->kind);
        rv = APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        *ppath = cache->path(cache, g, name, aspect, p);
        rv = *ppath ? APR_SUCCESS : APR_ENOTIMPL;
    }
    return rv;
}
