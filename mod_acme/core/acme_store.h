/* acme_store.h: where accounts, keys, certificates, staged results,
 * challenge data and job state live. An interface (table of functions) so a
 * cluster backend can replace the filesystem one without touching callers.
 * The generic helpers are in acme_store.c, the backends in acme_store_*.c.
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

/* A change to an item (data NULL: removed), or with name NULL: the feed is
 * established, and every change from then on follows. */
typedef apr_status_t acme_store_watch_fn(void *baton, const char *name, const char *aspect,
                                         const char *data, apr_size_t len, apr_pool_t *p);

/* A claim on a name (a domain): the one job, in this process or in the
 * cluster, that may write that domain's items. The token is a number that
 * only grows: a holder that lost its claim (its lease ran out while it was
 * paused, and another took over) writes with an older token, and the
 * backend refuses those writes. */
typedef struct acme_store_claim_t {
    const char *name;
    const char *owner;           /* who holds it: shown to whoever waits */
    apr_uint64_t token;          /* the fencing token */
    apr_interval_time_t lease;   /* renew well before this runs out */
    void *impl;                  /* the backend's */
} acme_store_claim_t;

/* A write with a token that is no longer the holder's. */
#define ACME_STORE_EFENCED (APR_OS_START_USERERR + 71)

/* save flags */
#define ACME_STORE_SECRET 1      /* a private key: mode 0600, sealed in a shared store */
#define ACME_STORE_VOLATILE 2    /* can be made again: atomic, but no fsync */
/* One of several items of a name saved together: its data is made durable,
 * its name with the next save of the same name without this flag (the file
 * store syncs the directory once for all). Until then a crash may lose it. */
#define ACME_STORE_PART 4

/* What a store is (acme_store_t.flags): callers ask these, never which
 * backend it is. */
#define ACME_STORE_LOCAL 0       /* this server's alone (the file store) */
#define ACME_STORE_SHARED 1      /* the fleet's: several servers read and write it (etcd) */
#define ACME_STORE_CHEAP_MTIME 2 /* an item's version (mtime) costs a stat, not a request */

struct acme_store_t {
    void *baton;
    const char *kind;            /* "file", "etcd": for messages and status only */
    int flags;                   /* ACME_STORE_SHARED, ACME_STORE_CHEAP_MTIME */
    const char *where;           /* the directory or the endpoints, for messages */
    /* Set on a fenced view (acme_store_fenced): save, remove and move are
     * refused with ACME_STORE_EFENCED unless the claim is still current. */
    const acme_store_claim_t *fence;
    /* Loads the whole item (NUL-terminated, not counted in *plen). APR_ENOENT
     * when missing. Every name and aspect must pass acme_store_name_is_valid,
     * else APR_EINVAL: they come from config and from the CA. */
    apr_status_t (*load)(acme_store_t *s, acme_store_group_t g, const char *name,
                         const char *aspect, const char **pdata, apr_size_t *plen,
                         apr_pool_t *p);
    /* flags: ACME_STORE_SECRET for keys (0600); else 0644. */
    apr_status_t (*save)(acme_store_t *s, acme_store_group_t g, const char *name,
                         const char *aspect, const char *data, apr_size_t len,
                         int flags, apr_pool_t *p);
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
    /* Claims name for owner for 'lease'. APR_EBUSY when another owner holds
     * an unexpired claim (*pclaim then says who, with token 0). Claiming
     * again as the same owner renews the lease and keeps the token; taking
     * over a free or expired claim gives a greater token. */
    apr_status_t (*claim)(acme_store_t *s, acme_store_claim_t **pclaim, const char *name,
                          const char *owner, apr_interval_time_t lease, apr_pool_t *p);
    /* Extends the lease; ACME_STORE_EFENCED when the claim was lost. */
    apr_status_t (*renew)(acme_store_t *s, acme_store_claim_t *c, apr_pool_t *p);
    /* Gives the claim up (the token stays used). Releasing a lost claim
     * changes nothing and is success. */
    apr_status_t (*release)(acme_store_t *s, acme_store_claim_t *c, apr_pool_t *p);
    /* A filesystem path for the item, for mod_ssl, which needs files. NULL
     * for backends without paths: acme_store_file() copies the item into a
     * local cache then. Nothing else uses paths. */
    const char *(*path)(acme_store_t *s, acme_store_group_t g, const char *name,
                        const char *aspect, apr_pool_t *p);
    /* Feeds every item that group g holds to fn, then (name NULL) says the
     * watch is established, then feeds every change as it happens, for at
     * most duration: nothing between the items and the changes is missed.
     * Returns APR_SUCCESS when that ran out (watch again: a new watch feeds
     * the items again), APR_EINTR on stop, else the
     * failure. NULL when the backend has no change feed (the filesystem
     * store: readers look at mtimes). It holds the store's connection for
     * its duration: give it a store of its own. */
    apr_status_t (*watch)(acme_store_t *s, acme_store_group_t g, apr_interval_time_t duration,
                          acme_store_watch_fn *fn, void *baton, apr_pool_t *p);
    /* Optional (NULL: nothing to do). Reads the items of one name (or, name
     * NULL, of the whole group) at once and answers loads and mtimes of them
     * from memory until p goes or a write comes; p NULL ends it. For a
     * backend whose reads are requests (etcd). */
    apr_status_t (*snapshot)(acme_store_t *s, acme_store_group_t g, const char *name,
                             apr_pool_t *p);
    /* Optional (NULL: every read is the store's own). The items of several
     * whole groups (n of them; 0 ends it) from copies the store keeps across
     * generations, brought up to date when older than max_age (for etcd:
     * only what changed since, acme_store_etcd_view). For readers that may
     * see a state max_age old, never for one that decides under a claim. */
    apr_status_t (*view)(acme_store_t *s, const acme_store_group_t *groups, int n,
                         apr_interval_time_t max_age, apr_pool_t *p);
    /* Optional (NULL: nothing to sweep). Removes what interrupted writes
     * left that is older than age (the file store), and the answers in
     * challenges/ written more than ACME_STORE_ANSWER_STALE ago (a run that
     * died left them: a job withdraws its own, kept ones within a day);
     * returns how many. Safe while jobs publish, and, in a shared store,
     * while other servers sweep: an answer written again meanwhile stays. */
    int (*sweep)(acme_store_t *s, apr_interval_time_t age, apr_pool_t *p);
};

/* An answer in challenges/ older than this goes with the sweep. */
#define ACME_STORE_ANSWER_STALE apr_time_from_sec(86400)

/* A view of s whose writes carry the claim c (allocated from p). */
acme_store_t *acme_store_fenced(apr_pool_t *p, const acme_store_t *s,
                                const acme_store_claim_t *c);

/* save, unless the item already holds exactly data (no write, no fsync):
 * for copies that every restart makes again. */
apr_status_t acme_store_save_changed(acme_store_t *s, acme_store_group_t g, const char *name,
                                     const char *aspect, const char *data, apr_size_t len,
                                     int flags, apr_pool_t *p);

/* A file for an item, for mod_ssl: the store's own path when it has
 * paths, else a copy written into the local cache store (fs). */
apr_status_t acme_store_file(const char **ppath, acme_store_t *s, acme_store_t *cache,
                             acme_store_group_t g, const char *name, const char *aspect,
                             int flags, apr_pool_t *p);

/* Creates the filesystem store below base_dir (created 0755 if missing,
 * with its groups and a schema version file). Refuses a store with a newer
 * schema (APR_EGENERAL, *perr says so). A full or read-only disk is not
 * refused: the store opens for reading, *perr says what could not be
 * written; each write then fails with its own error. */
apr_status_t acme_store_fs_create(acme_store_t **pstore, apr_pool_t *p, const char *base_dir,
                                  const char **perr);
/* Parent (root) only: makes the groups the child writes owned by uid/gid,
 * keeps DOMAINS and ARCHIVE owned by root. */
apr_status_t acme_store_fs_set_owner(acme_store_t *s, apr_uid_t uid, apr_gid_t gid,
                                     apr_pool_t *p);
/* The sweep slot of the filesystem store: temporary files and directories
 * of interrupted writes older than age (a write in progress is younger),
 * and stale answers. */
#define ACME_STORE_STALE_AGE apr_time_from_sec(15 * 60)
int acme_store_fs_sweep(acme_store_t *s, apr_interval_time_t age, apr_pool_t *p);
/* Removes the whole store, base directory included (temporary stores). */
apr_status_t acme_store_fs_remove_all(acme_store_t *s, apr_pool_t *p);

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
 * item) when the content is not JSON. save_json writes mode 0644. The
 * chain and key loaders read certificates and keys (APR_ENOENT: missing;
 * APR_EINVAL: not PEM of that kind). */
apr_status_t acme_store_load_json(acme_store_t *s, acme_store_group_t g, const char *name,
                                  const char *aspect, struct acme_json_t **pjson, apr_pool_t *p);
apr_status_t acme_store_save_json(acme_store_t *s, acme_store_group_t g, const char *name,
                                  const char *aspect, const struct acme_json_t *json,
                                  apr_pool_t *p);
/* The same with save flags (ACME_STORE_VOLATILE, ...). */
apr_status_t acme_store_save_json_as(acme_store_t *s, acme_store_group_t g, const char *name,
                                     const char *aspect, const struct acme_json_t *json,
                                     int flags, apr_pool_t *p);

struct acme_pkey_t;
apr_status_t acme_store_load_chain(acme_store_t *s, acme_store_group_t g, const char *name,
                                   const char *aspect, apr_array_header_t **pchain,
                                   apr_pool_t *p);
apr_status_t acme_store_load_pkey(acme_store_t *s, acme_store_group_t g, const char *name,
                                  const char *aspect, struct acme_pkey_t **pkey, apr_pool_t *p);

#define ACME_STORE_SCHEMA 1

#endif /* ACME_STORE_H */
