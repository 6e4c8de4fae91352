/* mod_acme.h: what the glue files of mod_acme share among themselves. */
#ifndef MOD_ACME_H
#define MOD_ACME_H

#include <httpd.h>
#include <http_config.h>

#include "mod_acme_config.h"

extern module AP_MODULE_DECLARE_DATA acme_module;

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

/* mod_acme_status.c: the server-status section and the acme-status
 * (JSON) and acme-metrics (Prometheus) handlers. */
void acme_status_register_hooks(void);

/* Log message ids: "AH" numbers belong to httpd; ours are "ACME0nnn". */

#endif /* MOD_ACME_H */
