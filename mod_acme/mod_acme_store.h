/* mod_acme_store.h: the stores of the current configuration generation,
 * for the few glue files that read or write them (parent and children). */
#ifndef MOD_ACME_STORE_H
#define MOD_ACME_STORE_H

#include <apr_atomic.h>

#include <httpd.h>

#include "acme_store.h"

/* The store of the current config generation (parent and children). */
extern acme_store_t *acme_mod_store;
/* Where mod_ssl's files are made when the store has no paths; the store
 * itself for the file store. */
extern acme_store_t *acme_mod_cache;
/* With etcd, in children: the store for challenge lookups, whose requests
 * give up after ACME_LOOKUP_TIMEOUT. NULL with the file store. */
extern acme_store_t *acme_mod_lookup_store;
/* With etcd, in a child: the challenges' change feed (a client of its own),
 * and the word that ends it. */
extern acme_store_t *acme_mod_watch_store;
extern volatile apr_uint32_t acme_mod_watch_stop;
/* With etcd, in a child: the scheduler's store, whose reads of each
 * domain's status come from a view of the store at most
 * ACME_SCHED_VIEW_AGE old (its view slot). NULL otherwise. */
extern acme_store_t *acme_mod_sched_store;
/* Ends the scheduler store's requests when the child stops (a hanging etcd
 * must not hold the child past httpd's patience). */
extern volatile apr_uint32_t acme_mod_sched_stop;
/* With etcd, in the parent: the restart thread's store, whose scans of
 * every domain's staged and active meta data read from a view of the
 * store that it keeps up to date (copies of its own). NULL otherwise. */
extern acme_store_t *acme_mod_scan_store;
#define ACME_LOOKUP_TIMEOUT apr_time_from_msec(1500)
/* etcd could not be reached at start-up: this generation serves the cache. */
extern int acme_mod_store_down;
/* For status and metrics: does the store answer now (one small request to
 * etcd; always 1 for the file store), and how many etcd requests failed. */
void acme_mod_store_state(int *pup, apr_uint32_t *perrors, server_rec *s, apr_pool_t *p);

#endif /* MOD_ACME_STORE_H */
