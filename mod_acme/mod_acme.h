/* mod_acme.h: what the glue files of mod_acme share among themselves. */
#ifndef MOD_ACME_H
#define MOD_ACME_H

#include <httpd.h>
#include <http_config.h>

#include "acme_store.h"
#include "mod_acme_config.h"

extern module AP_MODULE_DECLARE_DATA acme_module;

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
/* With etcd, in a child: the scheduler's store, whose reads of each
 * domain's status come from a view of the store at most
 * ACME_SCHED_VIEW_AGE old (acme_store_etcd_view). NULL otherwise. */
extern acme_store_t *acme_mod_sched_store;
/* With etcd, in the parent: the restart thread's store, whose scans of
 * every domain's staged and active meta data read from a view of the
 * store that it keeps up to date (copies of its own). NULL otherwise. */
extern acme_store_t *acme_mod_scan_store;
extern volatile apr_uint32_t acme_mod_watch_stop;
/* Parsed certificate facts of this generation, for every acme_status_get. */
extern struct acme_status_cache_t *acme_mod_status_cache;

/* What lives across server generations (httpd reloads the module at each
 * restart, its statics with it): 'size' zeroed bytes in the process pool
 * under 'key', made at the first call. Main thread only. */
void *acme_mod_process_mem(server_rec *s, const char *key, apr_size_t size);
/* The same for a hash. */
apr_hash_t *acme_mod_process_hash(server_rec *s, const char *key);
/* A certificate chain and key (their files' contents) that make a pair
 * mod_ssl can load: not decoded again while both files stay the same. */
void acme_mod_pair_good(server_rec *s, const char *cert, apr_size_t clen, const char *key,
                        apr_size_t klen);
#define ACME_LOOKUP_TIMEOUT apr_time_from_msec(1500)
/* etcd could not be reached at start-up: this generation serves the cache. */
extern int acme_mod_store_down;
/* For status and metrics: does the store answer now (one small request to
 * etcd; always 1 for the file store), and how many etcd requests failed. */
void acme_mod_store_state(int *pup, apr_uint32_t *perrors, server_rec *s, apr_pool_t *p);

/* A certificate file of SSL vhosts (their SSLCertificateFile), as the
 * parent read it at post_config: how the status shows certificates the
 * module does not manage. Never a key, nor a key file's path. */
typedef struct acme_watched_t {
    const char *file;
    const char *name;             /* ServerName of its first vhost: the metrics' label */
    apr_array_header_t *vhosts;   /* const char*: "name:port" of every vhost naming it */
    const char *managed_by;       /* the ManagedDomain of one of them (a takeover), or NULL */
    int served;                   /* mod_ssl serves it for at least one of them */
    const char *error;            /* why its expiry is unknown, or NULL */
    apr_time_t not_before, not_after;
    const char *issuer, *subject, *fingerprint;  /* CNs; SHA-256 "AB:CD:..." */
    apr_array_header_t *sans;     /* const char*, or NULL */
} acme_watched_t;

/* The managed domain that has the name itself, else the one whose wildcard
 * covers it; NULL when none does. */
acme_domain_t *acme_mod_domain_for_name(acme_global_t *g, const char *name, apr_pool_t *p);

/* mod_acme_https.c: ManagedRequireHttps, the redirect to https and HSTS. */
void acme_https_register_hooks(void);

/* mod_acme_challenge.c */
void acme_challenge_register_hooks(void);
/* Adds acme-tls/1 to the Protocols of the SSL vhosts of domains that may
 * be validated with tls-alpn-01. */
void acme_challenge_setup_protocols(acme_global_t *g, apr_pool_t *p);

/* mod_acme_drive.c: the watchdogs (parent: activation restart; child:
 * renewal jobs). */
apr_status_t acme_drive_start(acme_global_t *g, server_rec *s, apr_pool_t *p);
/* Parent, at post_config: activates staged results. Returns how many. */
int acme_drive_activate(acme_global_t *g, server_rec *s, apr_pool_t *p);
void acme_drive_register_hooks(void);

/* mod_acme_status.c: the server-status section and the acme-status
 * (JSON) and acme-metrics (Prometheus) handlers. */
void acme_status_register_hooks(void);

/* Log message ids: "AH" numbers belong to httpd; ours are "ACME0nnn". */

#endif /* MOD_ACME_H */
