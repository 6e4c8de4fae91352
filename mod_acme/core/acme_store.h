/* acme_store.h: where accounts, keys, certificates, staged results,
 * challenge data and job state live. An interface (table of functions) so a
 * cluster backend can replace the filesystem one without touching callers.
 *
 * Items are addressed as (group, name, aspect): e.g. (DOMAINS, "example.org",
 * "cert.p256.pem"). Every save is atomic (temp file, fsync, rename): a crash
 * leaves the old or the new content, never a mix. */
#ifndef ACME_STORE_H
#define ACME_STORE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <apr_user.h>

struct acme_json_t;

typedef enum {
    ACME_SG_ACCOUNTS = 0, /* accounts/<ca-id>/account.json, account.key.pem (child r/w) */
    ACME_SG_DOMAINS,      /* domains/<domain>/... active certs and keys (root) */
    ACME_SG_STAGING,      /* staging/<domain>/... results waiting for activation (child r/w) */
    ACME_SG_CHALLENGES,   /* challenges/<type>/<token or name> (child r/w) */
    ACME_SG_JOBS,         /* jobs/<domain>/job.json (child r/w) */
    ACME_SG_ARCHIVE,      /* archive/<domain>.<YYYYmmddHHMMSS>[.n]/ replaced domains (bounded) */
    ACME_SG_COUNT
} acme_store_group_t;

typedef struct acme_store_t acme_store_t;

struct acme_store_t {
    void *baton;
    /* Loads the whole item (NUL-terminated, not counted in *plen). APR_ENOENT
     * when missing. Every name and aspect must pass acme_store_name_is_valid,
     * else APR_EINVAL: they come from config and from the CA. */
    apr_status_t (*load)(acme_store_t *s, acme_store_group_t g, const char *name,
                         const char *aspect, const char **pdata, apr_size_t *plen,
                         apr_pool_t *p);
    /* secret != 0: mode 0600 (keys); else 0644. */
    apr_status_t (*save)(acme_store_t *s, acme_store_group_t g, const char *name,
                         const char *aspect, const char *data, apr_size_t len,
                         int secret, apr_pool_t *p);
    /* aspect NULL removes the whole name (recursively). Missing is success. */
    apr_status_t (*remove)(acme_store_t *s, acme_store_group_t g, const char *name,
                           const char *aspect, apr_pool_t *p);
    /* Names in a group (sorted); aspects of a name when name != NULL.
     * Temporary files and dotfiles are never listed. A missing name gives
     * APR_ENOENT (and an empty array). */
    apr_status_t (*list)(acme_store_t *s, acme_store_group_t g, const char *name,
                         apr_array_header_t **pnames, apr_pool_t *p);
    /* Modification time of an item (or of a name when aspect is NULL). */
    apr_status_t (*mtime)(acme_store_t *s, acme_store_group_t g, const char *name,
                          const char *aspect, apr_time_t *pmtime, apr_pool_t *p);
    /* Moves name from one group to another, replacing what is there; the
     * replaced one goes to the archive (bounded to keep_archived per name).
     * APR_ENOENT when from/name is missing (to/name is then left alone).
     * A crash between archiving and the final rename leaves from/name in
     * place, so calling move again completes. */
    apr_status_t (*move)(acme_store_t *s, acme_store_group_t from, acme_store_group_t to,
                         const char *name, int keep_archived, apr_pool_t *p);
    /* Lease lock: APR_EBUSY when another owner holds an unexpired lease.
     * Locking again as the same owner extends the lease. An expired lease
     * is taken over. unlock removes the lock only when owner matches
     * (APR_EBUSY otherwise); a missing lock is success. */
    apr_status_t (*lock)(acme_store_t *s, const char *lockname, const char *owner,
                         apr_interval_time_t lease, apr_pool_t *p);
    apr_status_t (*unlock)(acme_store_t *s, const char *lockname, const char *owner,
                           apr_pool_t *p);
    /* A filesystem path for the item, for consumers that need files (mod_ssl).
     * NULL for backends without paths. */
    const char *(*path)(acme_store_t *s, acme_store_group_t g, const char *name,
                        const char *aspect, apr_pool_t *p);
};

/* Creates the filesystem store below base_dir (created 0755 if missing,
 * with its groups and a schema version file). Refuses a store with a newer
 * schema (APR_EGENERAL, *perr says so). */
apr_status_t acme_store_fs_create(acme_store_t **pstore, apr_pool_t *p, const char *base_dir,
                                  const char **perr);
/* Parent (root) only: makes the groups the child writes owned by uid/gid,
 * keeps DOMAINS and ARCHIVE owned by root. */
apr_status_t acme_store_fs_set_owner(acme_store_t *s, apr_uid_t uid, apr_gid_t gid,
                                     apr_pool_t *p);
const char *acme_store_fs_base(acme_store_t *s);

/* The clock the filesystem store uses for lease expiry and archive names;
 * tests install a fake one. NULL restores apr_time_now. */
typedef apr_time_t acme_store_clock_cb(void *baton);
void acme_store_fs_set_clock(acme_store_t *s, acme_store_clock_cb *cb, void *baton);

/* Non-zero iff s may be used as a store name or aspect: 1..255 bytes of
 * printable ASCII, no '/', no "..", no leading '.'. A path-traversal
 * defence; the store applies it to every name, aspect and lock name. */
int acme_store_name_is_valid(const char *s);

const char *acme_store_group_name(acme_store_group_t g);

/* Convenience wrappers. load_json: APR_EINVAL (and a log line naming the
 * item) when the content is not JSON. save_json writes mode 0644. */
apr_status_t acme_store_load_json(acme_store_t *s, acme_store_group_t g, const char *name,
                                  const char *aspect, struct acme_json_t **pjson, apr_pool_t *p);
apr_status_t acme_store_save_json(acme_store_t *s, acme_store_group_t g, const char *name,
                                  const char *aspect, const struct acme_json_t *json,
                                  apr_pool_t *p);

#define ACME_STORE_SCHEMA 1

#endif /* ACME_STORE_H */
