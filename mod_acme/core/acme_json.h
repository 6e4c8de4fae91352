/* acme_json.h: the only door to jansson. Values live in pools: a json
 * object is released when the pool that created (or wrapped) it goes away.
 * Getters take a NULL-terminated key path and return a neutral value
 * (NULL, 0, default) when the path is missing or of the wrong type. */
#ifndef ACME_JSON_H
#define ACME_JSON_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

typedef struct acme_json_t acme_json_t;

typedef enum {
    ACME_JSON_NONE = 0, /* missing */
    ACME_JSON_OBJECT,
    ACME_JSON_ARRAY,
    ACME_JSON_STRING,
    ACME_JSON_INT,
    ACME_JSON_REAL,
    ACME_JSON_BOOL,
    ACME_JSON_NULL
} acme_json_type_t;

acme_json_t *acme_json_new_object(apr_pool_t *p);
acme_json_t *acme_json_new_array(apr_pool_t *p);
/* Parses exactly one JSON value (object or array). On failure returns
 * APR_EINVAL and *perr says what and where (line/column). */
apr_status_t acme_json_parse(acme_json_t **pjson, apr_pool_t *p, const char *data,
                             apr_size_t len, const char **perr);
apr_status_t acme_json_read_file(acme_json_t **pjson, apr_pool_t *p, const char *path,
                                 const char **perr);
/* Compact (no whitespace) and sorted keys when compact != 0, else indented. */
const char *acme_json_dump(const acme_json_t *j, apr_pool_t *p, int compact);
acme_json_t *acme_json_clone(const acme_json_t *j, apr_pool_t *p);

acme_json_type_t acme_json_type(const acme_json_t *j, ...);
int acme_json_has(const acme_json_t *j, ...);
const char *acme_json_gets(const acme_json_t *j, ...);  /* string, or NULL */
long long acme_json_getl(const acme_json_t *j, ...);    /* integer, or 0 */
int acme_json_getb(const acme_json_t *j, ...);          /* true -> 1, else 0 */
/* A time stored as integer seconds since the epoch. 0 when missing, of the
 * wrong type or outside 1970..9999: a corrupt file must not overflow the
 * microseconds of apr_time_t. */
apr_time_t acme_json_gett(const acme_json_t *j, ...);
/* A sub-value wrapped for pool p; shares data with the parent. */
acme_json_t *acme_json_getj(const acme_json_t *j, apr_pool_t *p, ...);
/* An array of strings at path; non-string elements -> APR_EINVAL. Missing -> empty. */
apr_status_t acme_json_getsa(apr_array_header_t **pa, const acme_json_t *j, apr_pool_t *p, ...);

/* Setters create intermediate objects along the path. The last argument
 * before NULL is the key to set. */
apr_status_t acme_json_sets(acme_json_t *j, const char *value, ...);
apr_status_t acme_json_setl(acme_json_t *j, long long value, ...);
apr_status_t acme_json_setb(acme_json_t *j, int value, ...);
apr_status_t acme_json_setj(acme_json_t *j, const acme_json_t *value, ...);
apr_status_t acme_json_setsa(acme_json_t *j, const apr_array_header_t *strs, ...);
apr_status_t acme_json_del(acme_json_t *j, ...);

/* Arrays */
apr_size_t acme_json_array_len(const acme_json_t *j);
acme_json_t *acme_json_array_at(const acme_json_t *j, apr_pool_t *p, apr_size_t i);
apr_status_t acme_json_array_append(acme_json_t *arr, const acme_json_t *value);
apr_status_t acme_json_array_appends(acme_json_t *arr, const char *value);
apr_status_t acme_json_array_appendl(acme_json_t *arr, long long value);

/* Object iteration: calls cb for each key; stops on non-zero return. */
typedef int acme_json_iter_cb(void *baton, const char *key, acme_json_t *value);
int acme_json_iter(const acme_json_t *j, apr_pool_t *p, acme_json_iter_cb *cb, void *baton);

#endif /* ACME_JSON_H */
