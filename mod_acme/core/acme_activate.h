/* acme_activate.h: staged results become active. The checks a staged result
 * must pass (the child wrote it), its refusal, and the move from staging/
 * into domains/, on any store; the httpd glue (mod_acme_restart.c) decides
 * when, and keeps what lives across server generations. */
#ifndef ACME_ACTIVATE_H
#define ACME_ACTIVATE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_hash.h>

#include "acme_crypto.h"

struct acme_store_t;

/* The marker the child touches whenever it stages a result (and the parent
 * after an activation in a shared store): the parent scans the domains
 * only when it changes. */
#define ACME_ACTIVATE_BATCH_NAME "_batch"
#define ACME_ACTIVATE_BATCH_STAGED "staged"
/* Replaced results kept in the archive, per domain. */
#define ACME_ACTIVATE_KEEP_ARCHIVED 5

/* A staged pair found good (the files' contents), e.g. to skip decoding it
 * again when it is handed to the server. */
typedef void acme_activate_good_fn(void *baton, const char *cert, apr_size_t clen,
                                   const char *key, apr_size_t klen);

/* One domain as activation sees it: plain data from the configuration. */
typedef struct acme_activate_t {
    struct acme_store_t *store;
    const char *domain;                   /* the store name */
    const apr_array_header_t *names;      /* const char*: what a result must cover */
    const apr_array_header_t *key_types;  /* acme_key_type_t: this server's */
    acme_activate_good_fn *good;          /* may be NULL */
    void *baton;
} acme_activate_t;

/* What is staged for a domain (acme_activate_check). */
typedef enum {
    ACME_STAGED_BAD = -1,   /* a staged type fails its checks (*perr, *pbad) */
    ACME_STAGED_NONE = 0,   /* nothing, or only the active certificate again */
    ACME_STAGED_GOOD = 1,   /* every staged type is good */
    ACME_STAGED_OTHERS = 2  /* a shared store: another server's result, for other names */
} acme_staged_t;

/* Checks every key type the domain has staged: a local store's result must
 * be a pair for a->names, newer than the active one; a shared store's for
 * every key type (the fleet's, in a rolling change). a->good hears of each
 * good pair. */
acme_staged_t acme_activate_check(const acme_activate_t *a, const char **perr,
                                  acme_key_type_t *pbad, apr_status_t *prv, apr_pool_t *p);

/* A staged result that fails its checks is refused once: logged (ACME0301)
 * and removed, so it costs no further restart and the next run orders a
 * good one. */
void acme_activate_refuse(const acme_activate_t *a, acme_key_type_t bad, apr_status_t rv,
                          const char *err, apr_pool_t *p);

/* Activates the domain's staged result, if there is one: 1 when its
 * certificate is now the staged one. A shared store's activation holds the
 * domain's claim; *pbusy (if not NULL) says another process held it. */
int acme_activate_domain(const acme_activate_t *a, int *pbusy, apr_pool_t *p);

/* The names that have something staged: one listing, not a read per domain. */
apr_hash_t *acme_activate_staged_names(struct acme_store_t *st, apr_pool_t *p);

/* After activations in a shared store: the other servers poll the marker. */
void acme_activate_mark(struct acme_store_t *st, apr_pool_t *p);

#endif /* ACME_ACTIVATE_H */
