/* acme_store_etcd.h: the cluster store, acme_store_t on etcd v3. One key per
 * item, <prefix><group>/<name>/<aspect>; secret items only sealed (AES-256-GCM). */
#ifndef ACME_STORE_ETCD_H
#define ACME_STORE_ETCD_H

#include <apr_pools.h>

#include "acme_store.h"

struct acme_etcd_t;

#define ACME_STORE_ETCD_PREFIX_DEFAULT "mod_acme/"

/* prefix: NULL = default; a '/' is appended when it does not end in one.
 * seal_key: ACME_SEAL_KEY_LEN bytes (acme_store_key_load); it must outlive
 * the store. Nothing is sent to etcd here: a server starts while etcd is
 * down. *perr says what is wrong with the arguments. */
apr_status_t acme_store_etcd_create(acme_store_t **pstore, apr_pool_t *p,
                                    struct acme_etcd_t *etcd, const char *prefix,
                                    const unsigned char *seal_key, const char **perr);

/* The etcd key of an item (NULL when a name is not valid); for tests and
 * for tools that inspect etcd. */
const char *acme_store_etcd_key(acme_store_t *s, acme_store_group_t g, const char *name,
                                const char *aspect, apr_pool_t *p);

/* Claims: a lock key bound to an etcd lease, so that etcd drops it when its
 * holder stops renewing. *ptoken is the lock key's create revision: it grows
 * with every new claim, and every fenced write compares it. Claiming again
 * as the same owner renews and returns the same token. APR_EBUSY when
 * another owner holds it. */
apr_status_t acme_store_etcd_claim(apr_int64_t *ptoken, acme_store_t *s, const char *lockname,
                                   const char *owner, apr_interval_time_t lease, apr_pool_t *p);
/* Keeps the claim alive; APR_EBUSY when it is no longer the one of token. */
apr_status_t acme_store_etcd_renew(acme_store_t *s, const char *lockname, apr_int64_t token,
                                   apr_pool_t *p);
/* Ends the claim of token; a claim that is gone or someone else's is left alone. */
apr_status_t acme_store_etcd_release(acme_store_t *s, const char *lockname, apr_int64_t token,
                                     apr_pool_t *p);
/* save/remove done only while the claim of token holds (one etcd txn); a
 * stale holder's write is refused with APR_EBUSY and a log line saying why. */
apr_status_t acme_store_etcd_save_fenced(acme_store_t *s, const char *lockname,
                                         apr_int64_t token, acme_store_group_t g,
                                         const char *name, const char *aspect, const char *data,
                                         apr_size_t len, int secret, apr_pool_t *p);
apr_status_t acme_store_etcd_remove_fenced(acme_store_t *s, const char *lockname,
                                           apr_int64_t token, acme_store_group_t g,
                                           const char *name, const char *aspect, apr_pool_t *p);

#endif /* ACME_STORE_ETCD_H */
