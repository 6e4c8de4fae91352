/* acme_json.c: the jansson wrapper. jansson values are reference counted;
 * each acme_json_t holds one reference released by its pool's cleanup. */
#include <stdarg.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <jansson.h>

#include "acme_json.h"
#include "acme_util.h"

struct acme_json_t {
    apr_pool_t *pool;
    json_t *j;
};

static apr_status_t json_cleanup(void *data)
{
    acme_json_t *aj = data;

    if (aj->j) {
        json_decref(aj->j);
        aj->j = NULL;
    }
    return APR_SUCCESS;
}

/* Takes over the reference held on j. */
static acme_json_t *wrap(apr_pool_t *p, json_t *j)
{
    acme_json_t *aj = apr_palloc(p, sizeof(*aj));

    aj->pool = p;
    aj->j = j;
    apr_pool_cleanup_register(p, aj, json_cleanup, apr_pool_cleanup_null);
    return aj;
}

acme_json_t *acme_json_new_object(apr_pool_t *p)
{
    return wrap(p, json_object());
}

acme_json_t *acme_json_new_array(apr_pool_t *p)
{
    return wrap(p, json_array());
}

apr_status_t acme_json_parse(acme_json_t **pjson, apr_pool_t *p, const char *data,
                             apr_size_t len, const char **perr)
{
    json_error_t err;
    json_t *j;

    *pjson = NULL;
    if (perr) {
        *perr = NULL;
    }
    if (!data) {
        if (perr) *perr = "no data";
        return APR_EINVAL;
    }
    j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
    if (!j) {
        if (perr) {
            *perr = apr_psprintf(p, "%s (line %d, column %d)", err.text, err.line, err.column);
        }
        return APR_EINVAL;
    }
    if (!json_is_object(j) && !json_is_array(j)) {
        json_decref(j);
        if (perr) *perr = "not a JSON object or array";
        return APR_EINVAL;
    }
    *pjson = wrap(p, j);
    return APR_SUCCESS;
}

apr_status_t acme_json_read_file(acme_json_t **pjson, apr_pool_t *p, const char *path,
                                 const char **perr)
{
    const char *data;
    apr_size_t n;
    apr_status_t rv;

    *pjson = NULL;
    if (perr) *perr = NULL;
    rv = acme_file_read(&data, &n, path, 16 * 1024 * 1024, p);
    if (rv != APR_SUCCESS) {
        if (perr) *perr = apr_psprintf(p, rv == APR_EINVAL ? "%s is not a regular file of "
                                       "at most 16 MiB" : "cannot read %s", path);
        return rv;
    }
    rv = acme_json_parse(pjson, p, data, n, perr);
    if (rv != APR_SUCCESS && perr) {
        *perr = apr_psprintf(p, "%s: %s", path, *perr);
    }
    return rv;
}

const char *acme_json_dump(const acme_json_t *j, apr_pool_t *p, int compact)
{
    char *s;
    const char *out;
    size_t flags = JSON_SORT_KEYS | (compact ? JSON_COMPACT : JSON_INDENT(2));

    if (!j || !j->j) {
        return NULL;
    }
    s = json_dumps(j->j, flags | JSON_ENCODE_ANY);
    if (!s) {
        return NULL;
    }
    out = apr_pstrdup(p, s);
    free(s);
    return out;
}

acme_json_t *acme_json_clone(const acme_json_t *j, apr_pool_t *p)
{
    return wrap(p, json_deep_copy(j->j));
}

/* Walks the key path; NULL when something along the way is missing. */
static json_t *vlookup(const acme_json_t *aj, va_list ap)
{
    json_t *j = aj ? aj->j : NULL;
    const char *key;

    while (j && (key = va_arg(ap, const char *)) != NULL) {
        j = json_is_object(j) ? json_object_get(j, key) : NULL;
    }
    return j;
}

#define LOOKUP(var, aj, last)   \
    do {                        \
        va_list ap_;            \
        va_start(ap_, last);    \
        var = vlookup(aj, ap_); \
        va_end(ap_);            \
    } while (0)

static acme_json_type_t type_of(json_t *j)
{
    if (!j) return ACME_JSON_NONE;
    switch (json_typeof(j)) {
    case JSON_OBJECT: return ACME_JSON_OBJECT;
    case JSON_ARRAY: return ACME_JSON_ARRAY;
    case JSON_STRING: return ACME_JSON_STRING;
    case JSON_INTEGER: return ACME_JSON_INT;
    case JSON_REAL: return ACME_JSON_REAL;
    case JSON_TRUE:
    case JSON_FALSE: return ACME_JSON_BOOL;
    case JSON_NULL: return ACME_JSON_NULL;
    }
    return ACME_JSON_NONE;
}

acme_json_type_t acme_json_type(const acme_json_t *aj, ...)
{
    json_t *j;

    LOOKUP(j, aj, aj);
    return type_of(j);
}

int acme_json_has(const acme_json_t *aj, ...)
{
    json_t *j;

    LOOKUP(j, aj, aj);
    return j != NULL;
}

const char *acme_json_gets(const acme_json_t *aj, ...)
{
    json_t *j;

    LOOKUP(j, aj, aj);
    return json_is_string(j) ? json_string_value(j) : NULL;
}

long long acme_json_getl(const acme_json_t *aj, ...)
{
    json_t *j;

    LOOKUP(j, aj, aj);
    return json_is_integer(j) ? (long long)json_integer_value(j) : 0;
}

/* 9999-12-31T23:59:59Z */
#define JSON_TIME_MAX 253402300799LL

apr_time_t acme_json_gett(const acme_json_t *aj, ...)
{
    json_t *j;
    json_int_t v;

    LOOKUP(j, aj, aj);
    if (!json_is_integer(j)) return 0;
    v = json_integer_value(j);
    return v >= 0 && v <= JSON_TIME_MAX ? apr_time_from_sec((apr_time_t)v) : 0;
}

int acme_json_getb(const acme_json_t *aj, ...)
{
    json_t *j;

    LOOKUP(j, aj, aj);
    return json_is_true(j) ? 1 : 0;
}

acme_json_t *acme_json_getj(const acme_json_t *aj, apr_pool_t *p, ...)
{
    json_t *j;

    LOOKUP(j, aj, p);
    return j ? wrap(p, json_incref(j)) : NULL;
}

apr_status_t acme_json_getsa(apr_array_header_t **pa, const acme_json_t *aj, apr_pool_t *p, ...)
{
    json_t *j, *v;
    size_t i;

    LOOKUP(j, aj, p);
    *pa = apr_array_make(p, 5, sizeof(const char *));
    if (!j) {
        return APR_SUCCESS;
    }
    if (!json_is_array(j)) {
        return APR_EINVAL;
    }
    json_array_foreach(j, i, v) {
        if (!json_is_string(v)) {
            return APR_EINVAL;
        }
        APR_ARRAY_PUSH(*pa, const char *) = apr_pstrdup(p, json_string_value(v));
    }
    return APR_SUCCESS;
}

/* Finds (creating objects as needed) the parent object for the last key of
 * the path; *pkey gets that last key. */
static apr_status_t vparent(json_t **pparent, const char **pkey, acme_json_t *aj, va_list ap)
{
    json_t *j = aj->j, *next;
    const char *key, *nkey;

    key = va_arg(ap, const char *);
    if (!key || !json_is_object(j)) {
        return APR_EINVAL;
    }
    while ((nkey = va_arg(ap, const char *)) != NULL) {
        next = json_object_get(j, key);
        if (!next) {
            next = json_object();
            if (json_object_set_new(j, key, next)) {
                return APR_ENOMEM;
            }
        }
        else if (!json_is_object(next)) {
            return APR_EINVAL;
        }
        j = next;
        key = nkey;
    }
    *pparent = j;
    *pkey = key;
    return APR_SUCCESS;
}

/* Steals v. */
static apr_status_t vset(acme_json_t *aj, json_t *v, va_list ap)
{
    json_t *parent;
    const char *key;
    apr_status_t rv;

    if (!v) {
        return APR_ENOMEM;
    }
    rv = vparent(&parent, &key, aj, ap);
    if (rv != APR_SUCCESS) {
        json_decref(v);
        return rv;
    }
    return json_object_set_new(parent, key, v) ? APR_ENOMEM : APR_SUCCESS;
}

#define SET_WITH(aj, v, last)        \
    do {                             \
        va_list ap_;                 \
        apr_status_t rv_;            \
        va_start(ap_, last);         \
        rv_ = vset(aj, v, ap_);      \
        va_end(ap_);                 \
        return rv_;                  \
    } while (0)

apr_status_t acme_json_sets(acme_json_t *aj, const char *value, ...)
{
    SET_WITH(aj, value ? json_string(value) : json_null(), value);
}

apr_status_t acme_json_setl(acme_json_t *aj, long long value, ...)
{
    SET_WITH(aj, json_integer((json_int_t)value), value);
}

apr_status_t acme_json_setb(acme_json_t *aj, int value, ...)
{
    SET_WITH(aj, json_boolean(value), value);
}

apr_status_t acme_json_setj(acme_json_t *aj, const acme_json_t *value, ...)
{
    SET_WITH(aj, value ? json_deep_copy(value->j) : json_null(), value);
}

apr_status_t acme_json_setsa(acme_json_t *aj, const apr_array_header_t *strs, ...)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; strs && i < strs->nelts; ++i) {
        json_array_append_new(arr, json_string(APR_ARRAY_IDX(strs, i, const char *)));
    }
    SET_WITH(aj, arr, strs);
}

apr_status_t acme_json_del(acme_json_t *aj, ...)
{
    json_t *parent;
    const char *key;
    apr_status_t rv;
    va_list ap;

    va_start(ap, aj);
    rv = vparent(&parent, &key, aj, ap);
    va_end(ap);
    if (rv == APR_SUCCESS) {
        json_object_del(parent, key);
    }
    return rv;
}

apr_size_t acme_json_array_len(const acme_json_t *aj)
{
    return (aj && json_is_array(aj->j)) ? json_array_size(aj->j) : 0;
}

acme_json_t *acme_json_array_at(const acme_json_t *aj, apr_pool_t *p, apr_size_t i)
{
    json_t *v;

    if (!aj || !json_is_array(aj->j)) {
        return NULL;
    }
    v = json_array_get(aj->j, i);
    return v ? wrap(p, json_incref(v)) : NULL;
}

apr_status_t acme_json_array_append(acme_json_t *arr, const acme_json_t *value)
{
    if (!json_is_array(arr->j)) {
        return APR_EINVAL;
    }
    return json_array_append_new(arr->j, json_deep_copy(value->j)) ? APR_ENOMEM : APR_SUCCESS;
}

apr_status_t acme_json_array_appends(acme_json_t *arr, const char *value)
{
    if (!json_is_array(arr->j)) {
        return APR_EINVAL;
    }
    return json_array_append_new(arr->j, json_string(value)) ? APR_ENOMEM : APR_SUCCESS;
}

apr_status_t acme_json_array_appendl(acme_json_t *arr, long long value)
{
    if (!json_is_array(arr->j)) {
        return APR_EINVAL;
    }
    return json_array_append_new(arr->j, json_integer((json_int_t)value)) ? APR_ENOMEM
                                                                          : APR_SUCCESS;
}

int acme_json_iter(const acme_json_t *aj, apr_pool_t *p, acme_json_iter_cb *cb, void *baton)
{
    const char *key;
    json_t *v;
    int rc;

    if (!aj || !json_is_object(aj->j)) {
        return 0;
    }
    json_object_foreach(aj->j, key, v) {
        rc = cb(baton, key, wrap(p, json_incref(v)));
        if (rc) {
            return rc;
        }
    }
    return 0;
}
