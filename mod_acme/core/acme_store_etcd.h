/* acme_store_etcd.h: the cluster store, acme_store_t on etcd v3. One key per
 * item, <prefix><group>/<name>/<aspect>; every value authenticated with the
 * store key and bound to its key name: secrets sealed (AES-256-GCM), the
 * rest with an HMAC-SHA256. */
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
 * for tools that inspect etcd. Claims live at <prefix>locks/<name>. */
const char *acme_store_etcd_key(acme_store_t *s, acme_store_group_t g, const char *name,
                                const char *aspect, apr_pool_t *p);

/* Checks, once etcd answers, that this server may use the cluster's data:
 * <prefix>store holds {"schema": n} sealed with the encryption key. The first
 * server writes it; a server with another key, or of an older schema, gets
 * APR_EACCES / APR_EGENERAL and *perr says what to fix. Network errors are
 * returned as they are (etcd down: try again later). */
apr_status_t acme_store_etcd_verify(acme_store_t *s, apr_pool_t *p, const char **perr);

/* Reads every item of (g, name), or of the whole group when name is NULL
 * (in pages), at once; until p is cleared, or a write or another snapshot
 * through s, loads and mtimes of those items are answered from that copy.
 * A restart reads every domain's certificates, keys and meta data, some
 * several times: a few requests instead of one per read. p NULL only
 * drops the copy. Not thread-safe: for a store that one thread uses (the
 * parent's, during the configuration passes). */
apr_status_t acme_store_etcd_snapshot(acme_store_t *s, acme_store_group_t g, const char *name,
                                      apr_pool_t *p);

/* keep: a pool that outlives the configuration (the process pool), where a
 * snapshot of a whole group keeps what it read, with etcd's revision then.
 * The next snapshot of that group (in this or a later generation of the
 * configuration, through a store made anew, or in a child that inherited
 * keep) reads only the values of the keys written since, and drops the
 * keys deleted since. The memory is what a snapshot holds anyway, at most
 * twice (replaced items are copied out once they outweigh the rest), and
 * nothing above 512 MiB per group. */
typedef enum {
    ACME_KEEP_MAKE,     /* the copies are made in keep: its owner only (the parent's main
                         * thread, at the configuration pass) */
    ACME_KEEP_FIND,     /* found in keep (a child's, inherited), else made in an unmanaged
                         * pool of the store's own, gone with the store */
    ACME_KEEP_OWN       /* copies of the store's own only, in an unmanaged pool that keep
                         * holds across generations: for a thread that must not touch
                         * httpd's pools (the parent's restart thread); keep NULL: gone
                         * with the store */
} acme_keep_mode_t;
void acme_store_etcd_keep(acme_store_t *s, apr_pool_t *keep, acme_keep_mode_t mode);

/* The snapshot of several whole groups at once, each from its kept copy
 * (acme_store_etcd_keep) when that was brought up to date less than
 * max_age ago, else brought up to date now (one request per group when
 * nothing was deleted). For readers that may see a state max_age old (the
 * scheduler's look at each domain's status), not for those that decide on
 * what they read (a job under its claim). APR_ENOTIMPL: s is no etcd store
 * (then every read is the store's own). A failure leaves no view. */
apr_status_t acme_store_etcd_view(acme_store_t *s, const acme_store_group_t *groups, int n,
                                  apr_interval_time_t max_age, apr_pool_t *p);

/* The item envelope, for tests and the fuzz target. encode: the value that
 * the store writes for data at key (sealed when secret). open: the data of
 * a value read at key; APR_EINVAL (logged, naming key) when it does not
 * authenticate with the store's key as key's item, an item of the earlier
 * format included (the store takes those over only with the other items of
 * their name, see docs/etcd.md). */
apr_status_t acme_store_etcd_item_encode(const char **pvalue, apr_size_t *plen, acme_store_t *s,
                                         const char *key, const char *data, apr_size_t len,
                                         int secret, apr_time_t mtime, apr_pool_t *p);
apr_status_t acme_store_etcd_item_open(const char **pdata, apr_size_t *plen, apr_time_t *pmtime,
                                       acme_store_t *s, const char *key, const char *value,
                                       apr_size_t vlen, apr_pool_t *p);

#endif /* ACME_STORE_ETCD_H */
