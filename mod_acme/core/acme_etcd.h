/* acme_etcd.h: an etcd v3 client over etcd's JSON gateway (/v3/...), the
 * transport of the cluster store. Every answer from etcd is checked before use. */
#ifndef ACME_ETCD_H
#define ACME_ETCD_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

struct acme_http_t;
struct acme_result_t;

#define ACME_ETCD_MAX_VALUE_DEFAULT (1024 * 1024)
#define ACME_ETCD_TIMEOUT_DEFAULT apr_time_from_sec(5)
/* Keys are text for us; a longer or binary one in an answer is garbage. */
#define ACME_ETCD_MAX_KEY 1024
/* The longest password file (ManagedStoreAuth) read. */
#define ACME_ETCD_MAX_PASSWORD 4096

typedef struct acme_etcd_t acme_etcd_t;

typedef struct acme_etcd_config_t {
    /* const char *: base URLs "https://host:port", tried in turn on a network
     * error or a 5xx; the last one that answered is tried first. */
    const apr_array_header_t *endpoints;
    const char *ca_file;        /* PEM trust anchors for https endpoints, or NULL */
    const char *cert_file;      /* client certificate (etcd --client-cert-auth), or NULL */
    const char *key_file;
    const char *user;           /* NULL: no etcd auth */
    const char *password_file;  /* with user: the password (one line) */
    int password_flags;         /* ACME_KEYFILE_ANY_OWNER: a password file of any owner
                                 * (a CLI not run as root); the mode is always checked */
    apr_interval_time_t timeout;          /* per request; 0 = default */
    apr_size_t max_value;                 /* values above this are refused; 0 = default */
    volatile apr_uint32_t *stop;          /* non-zero aborts waits and requests; may be NULL */
    volatile apr_uint32_t *errors;        /* counts requests that failed; may be NULL */
} acme_etcd_config_t;

typedef struct acme_etcd_kv_t {
    const char *key;
    const char *value;      /* NUL-terminated (not counted); NULL when keys only */
    apr_size_t value_len;
    apr_int64_t create_revision;
    apr_int64_t mod_revision;
    apr_int64_t version;
    apr_int64_t lease;      /* 0: none */
} acme_etcd_kv_t;

void acme_etcd_config_init(acme_etcd_config_t *conf);

/* http NULL: a libcurl client with the TLS settings of conf. The password
 * file is read here (the parent reads it at start-up), under the rule of
 * acme_secret_file_read. Failures fill r
 * (problem "acme:config" when the configuration is wrong). */
apr_status_t acme_etcd_create(acme_etcd_t **petcd, apr_pool_t *p, const acme_etcd_config_t *conf,
                              struct acme_http_t *http, struct acme_result_t *r);
/* The endpoint that answered last (or the first configured). */
const char *acme_etcd_endpoint(const acme_etcd_t *e);
/* All endpoints, comma-separated, for messages. */
const char *acme_etcd_endpoints(const acme_etcd_t *e, apr_pool_t *p);

/* APR_ENOENT (r untouched) when key is absent. */
apr_status_t acme_etcd_get(acme_etcd_kv_t **pkv, acme_etcd_t *e, const char *key, apr_pool_t *p,
                           struct acme_result_t *r);
/* Keys starting with prefix, in key order: an array of acme_etcd_kv_t *.
 * keys_only: values are not fetched. limit 0: all; *pmore (may be NULL) is
 * set when the limit cut the answer. */
apr_status_t acme_etcd_get_prefix(apr_array_header_t **pkvs, int *pmore, acme_etcd_t *e,
                                  const char *prefix, int keys_only, apr_int64_t limit,
                                  apr_pool_t *p, struct acme_result_t *r);
/* The same from key `from` on (NULL: from the prefix), to page through a
 * long listing: the next page starts after the last key seen. */
apr_status_t acme_etcd_get_prefix_from(apr_array_header_t **pkvs, int *pmore, acme_etcd_t *e,
                                       const char *prefix, const char *from, int keys_only,
                                       apr_int64_t limit, apr_pool_t *p,
                                       struct acme_result_t *r);
/* A range over the keys starting with prefix, as the restart's snapshot
 * reads them: from key `from` on (NULL: the prefix), as of revision
 * (0: now), only keys written at or after min_mod_revision (0: all; etcd
 * still counts every key of the range), at most limit (0: all). */
typedef struct acme_etcd_range_t {
    const char *prefix;
    const char *from;
    int keys_only;
    apr_int64_t limit;
    apr_int64_t revision;
    apr_int64_t min_mod_revision;
} acme_etcd_range_t;

typedef struct acme_etcd_range_result_t {
    apr_array_header_t *kvs;    /* acme_etcd_kv_t *, in key order */
    int more;                   /* the limit cut the answer */
    apr_int64_t count;          /* keys in [from, end of prefix) as of revision, unfiltered */
    apr_int64_t revision;       /* the revision the answer is of */
} acme_etcd_range_result_t;

apr_status_t acme_etcd_range(acme_etcd_range_result_t *res, acme_etcd_t *e,
                             const acme_etcd_range_t *q, apr_pool_t *p, struct acme_result_t *r);
/* The cluster id of the first answer (NULL before one came). */
const char *acme_etcd_cluster_id(const acme_etcd_t *e);

/* lease 0: none. *prevision (may be NULL): the revision of the write. */
apr_status_t acme_etcd_put(apr_int64_t *prevision, acme_etcd_t *e, const char *key,
                           const char *value, apr_size_t len, apr_int64_t lease, apr_pool_t *p,
                           struct acme_result_t *r);
/* prefix != 0: every key starting with key. *pdeleted may be NULL. */
apr_status_t acme_etcd_delete(apr_int64_t *pdeleted, acme_etcd_t *e, const char *key, int prefix,
                              apr_pool_t *p, struct acme_result_t *r);
/* The cluster's current revision (grows with every write). */
apr_status_t acme_etcd_revision(apr_int64_t *prevision, acme_etcd_t *e, apr_pool_t *p,
                                struct acme_result_t *r);

/* Transactions: if every compare holds, the THEN ops run, else the ELSE ops,
 * atomically. */
typedef struct acme_etcd_txn_t acme_etcd_txn_t;
#define ACME_ETCD_THEN 1
#define ACME_ETCD_ELSE 0

acme_etcd_txn_t *acme_etcd_txn_make(apr_pool_t *p);
void acme_etcd_txn_if_absent(acme_etcd_txn_t *t, const char *key);
void acme_etcd_txn_if_mod(acme_etcd_txn_t *t, const char *key, apr_int64_t mod_revision);
void acme_etcd_txn_if_create(acme_etcd_txn_t *t, const char *key, apr_int64_t create_revision);
void acme_etcd_txn_if_value(acme_etcd_txn_t *t, const char *key, const char *value,
                            apr_size_t len);
/* No key starting with prefix was written after revision (a key created or
 * changed since fails it; deletions do not). */
void acme_etcd_txn_if_prefix_unchanged(acme_etcd_txn_t *t, const char *prefix,
                                       apr_int64_t revision);
void acme_etcd_txn_put(acme_etcd_txn_t *t, int branch, const char *key, const char *value,
                       apr_size_t len, apr_int64_t lease);
void acme_etcd_txn_delete(acme_etcd_txn_t *t, int branch, const char *key, int prefix);
void acme_etcd_txn_get(acme_etcd_txn_t *t, int branch, const char *key, int prefix);

typedef struct acme_etcd_txn_result_t {
    int succeeded;              /* the compares held: THEN ran */
    apr_int64_t revision;
    /* One apr_array_header_t * (of acme_etcd_kv_t *) per get of the branch
     * that ran, in the order they were added. */
    apr_array_header_t *ranges;
} acme_etcd_txn_result_t;

/* A network error after etcd applied the txn looks like a failure; the
 * retry on the next endpoint then sees the compares fail. Callers make
 * their compares recognise their own earlier write. */
apr_status_t acme_etcd_txn_commit(acme_etcd_txn_result_t **pres, acme_etcd_t *e,
                                  const acme_etcd_txn_t *t, apr_pool_t *p,
                                  struct acme_result_t *r);

/* Leases (ttl in seconds). keepalive: APR_ENOENT when the lease is gone
 * (expired or revoked). revoke: a lease already gone is success. */
apr_status_t acme_etcd_lease_grant(apr_int64_t *pid, acme_etcd_t *e, apr_int64_t ttl,
                                   apr_pool_t *p, struct acme_result_t *r);
apr_status_t acme_etcd_lease_keepalive(apr_int64_t *pttl, acme_etcd_t *e, apr_int64_t id,
                                       apr_pool_t *p, struct acme_result_t *r);
apr_status_t acme_etcd_lease_revoke(acme_etcd_t *e, apr_int64_t id, apr_pool_t *p,
                                    struct acme_result_t *r);

/* Watches every key starting with prefix from start_revision on (0: from
 * now; after a range read of revision R, R + 1 misses nothing), for at most
 * duration: fn gets each change in order (deleted: kv holds the key only), and once,
 * with kv NULL, when the watch is established. Returns APR_SUCCESS when the
 * duration ran out or etcd ended the stream (watch again: changes in
 * between are not replayed), APR_EINTR on stop, else the failure (a
 * non-success from fn ends the watch with that status). The client is held
 * for the whole duration: give the watch an acme_etcd_t of its own. */
typedef apr_status_t acme_etcd_watch_fn(void *baton, const acme_etcd_kv_t *kv, int deleted,
                                        apr_pool_t *p);
apr_status_t acme_etcd_watch(acme_etcd_t *e, const char *prefix, apr_int64_t start_revision,
                             apr_interval_time_t duration, acme_etcd_watch_fn *fn, void *baton,
                             apr_pool_t *p, struct acme_result_t *r);

/* Standard base64 with padding, as etcd's gateway speaks it. decode is
 * strict: APR_EINVAL on any other character, bad padding or length. */
const char *acme_etcd_b64_encode(apr_pool_t *p, const void *data, apr_size_t len);
apr_status_t acme_etcd_b64_decode(unsigned char **pdata, apr_size_t *plen, apr_pool_t *p,
                                  const char *s);

#endif /* ACME_ETCD_H */
