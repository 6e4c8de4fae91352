/* acme_store_etcd.c: the cluster store on etcd. Each item is one key whose
 * value carries its mtime and is authenticated with the store key: sealed
 * (secrets) or with a MAC (the rest), bound to its key name. */
#include <stdlib.h>
#include <string.h>

#include <apr_atomic.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_names.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_etcd.h"
#include "acme_store.h"
#include "acme_store_etcd.h"

/* The item envelope, "acme-item 2 <mtime in usec> " then
 *   "m <base64url HMAC-SHA256>\n<data>": the MAC covers the etcd key, the
 *       mtime and the data;
 *   "s\n<sealed data>": AES-256-GCM with the etcd key and the mtime as
 *       associated data.
 * Both keys are derived from the store key, one per use. So a value opens
 * only under its own key name, with its own time, and only if a holder of
 * the store key wrote it. Version 1 ("acme-item 1 <mtime> <p|s>\n") sealed
 * secrets with the store key itself and left the rest plain, which anyone
 * who can write to etcd could have written: see open_old(). */
#define ITEM_MAGIC "acme-item "
#define ITEM_V1 '1'
#define ITEM_V2 '2'
#define ITEM_MAC 'm'
#define ITEM_SEALED 's'
#define ITEM_PLAIN 'p'          /* version 1 only */
#define ITEM_MAC_B64 43         /* base64url of ACME_MAC_LEN bytes, unpadded */
#define ITEM_MAC_CONTEXT "acme-item 2 m"
#define KDF_SEAL "mod_acme etcd item seal v2"
#define KDF_MAC "mod_acme etcd item mac v2"
/* open_item(): a version 1 item, which only open_old() may vouch for */
#define ITEM_EOLD APR_INCOMPLETE
#define LOCKS_DIR "locks/"
#define META_KEY "store"        /* <prefix>store: schema, sealed (see acme_store_etcd_verify) */
#define MAX_PREFIX 200
#define MOVE_ATTEMPTS 4
#define LIST_PAGE 1000
#define TS_LEN 14           /* YYYYmmddHHMMSS, as the filesystem store names archives */
#define REFUSAL_SLOTS 64    /* refusals remembered, so each is logged at error level once */

typedef struct {
    apr_pool_t *pool;
    acme_etcd_t *etcd;
    const char *prefix;
    const unsigned char *key;                   /* the store key: version 1 items only */
    unsigned char seal_key[ACME_SEAL_KEY_LEN];  /* derived from it */
    unsigned char mac_key[ACME_MAC_LEN];
    /* per slot (by the hash of an etcd key): the hashes of the key and the
     * value last refused there (see refusal_level) */
    volatile apr_uint64_t *refusals;
    /* acme_store_etcd_snapshot(), _view(): items read at once, per prefix */
    int nsnap;
    const char *snap_prefix[ACME_SG_COUNT];
    apr_hash_t *snap[ACME_SG_COUNT];    /* etcd key -> acme_etcd_kv_t* */
    int snap_from_kept;          /* snap is kept copies: loads copy what they answer */
    apr_pool_t *keep;            /* acme_store_etcd_keep(): NULL, nothing is kept */
    int keep_make;               /* kept copies are made in keep, else found there */
    apr_pool_t *own;             /* unmanaged: the kept copies not found in keep */
    apr_hash_t *own_kept;        /* KEPT_KEY... -> kept_t, in own */
} es_t;

/* The snapshot's answer for key: *pin is set when key is of the snapshot's
 * name, and then NULL means absent. */
static const acme_etcd_kv_t *snap_get(const es_t *es, const char *key, int *pin)
{
    int i;

    for (i = 0; i < es->nsnap; ++i) {
        if (!strncmp(key, es->snap_prefix[i], strlen(es->snap_prefix[i]))) {
            *pin = 1;
            return apr_hash_get(es->snap[i], key, APR_HASH_KEY_STRING);
        }
    }
    *pin = 0;
    return NULL;
}

static void snap_drop(const es_t *es)
{
    es_t *w = (es_t *)es;   /* the store's own state, not the caller's data */

    w->nsnap = 0;
    w->snap_from_kept = 0;
}

static apr_status_t snap_cleanup(void *data)
{
    snap_drop(data);
    return APR_SUCCESS;
}

/* etcd down is expected and reported by the callers; garbage from etcd is not. */
static apr_status_t report(acme_result_t *r, apr_pool_t *p)
{
    int quiet = r->problem && (!strcmp(r->problem, "acme:network")
                               || !strcmp(r->problem, "acme:stopped"));

    acme_log(ACME_LOG_MARK, quiet ? ACME_LOG_DEBUG : ACME_LOG_ERR, r->status,
             ACMELOG(1102) "store: %s", acme_result_describe(r, p));
    return r->status != APR_SUCCESS ? r->status : APR_EGENERAL;
}

static const char *name_prefix(const es_t *es, acme_store_group_t g, const char *name,
                               apr_pool_t *p)
{
    const char *gn = acme_store_group_name(g);

    if (!gn || (name && !acme_store_name_is_valid(name))) {
        return NULL;
    }
    return name ? apr_pstrcat(p, es->prefix, gn, "/", name, "/", NULL)
                : apr_pstrcat(p, es->prefix, gn, "/", NULL);
}

static const char *item_key(const es_t *es, acme_store_group_t g, const char *name,
                            const char *aspect, apr_pool_t *p)
{
    const char *np = name ? name_prefix(es, g, name, p) : NULL;

    if (!np || !acme_store_name_is_valid(aspect)) {
        return NULL;
    }
    return apr_pstrcat(p, np, aspect, NULL);
}

const char *acme_store_etcd_key(acme_store_t *s, acme_store_group_t g, const char *name,
                                const char *aspect, apr_pool_t *p)
{
    return item_key(s->baton, g, name, aspect, p);
}

/* ---- the item envelope --------------------------------------------------------------- */

typedef struct {
    char version;           /* ITEM_V1, ITEM_V2 */
    char form;              /* ITEM_MAC, ITEM_SEALED, ITEM_PLAIN */
    apr_time_t mtime;
    const char *mac;        /* ITEM_MAC: ITEM_MAC_B64 characters */
    const char *payload;    /* into the value, which the etcd client NUL-terminates */
    apr_size_t len;
} head_t;

static int parse_head(head_t *h, const char *value, apr_size_t vlen)
{
    apr_size_t i = sizeof(ITEM_MAGIC) - 1, digits = 0;

    memset(h, 0, sizeof(*h));
    if (vlen < i + 2 || memcmp(value, ITEM_MAGIC, i) || value[i + 1] != ' ') {
        return 0;
    }
    h->version = value[i];
    for (i += 2; i < vlen && apr_isdigit(value[i]) && digits < 18; ++i, ++digits) {
        h->mtime = h->mtime * 10 + (value[i] - '0');
    }
    if ((h->version != ITEM_V1 && h->version != ITEM_V2) || !digits || i + 2 > vlen
        || value[i] != ' ') {
        return 0;
    }
    h->form = value[i + 1];
    i += 2;
    if (h->version == ITEM_V2 && h->form == ITEM_MAC) {
        if (i + ITEM_MAC_B64 + 1 >= vlen || value[i] != ' ') {
            return 0;
        }
        h->mac = value + i + 1;
        i += ITEM_MAC_B64 + 1;
    }
    else if (h->form != ITEM_SEALED && !(h->version == ITEM_V1 && h->form == ITEM_PLAIN)) {
        return 0;
    }
    if (i >= vlen || value[i] != '\n') {
        return 0;
    }
    h->payload = value + i + 1;
    h->len = vlen - i - 1;
    return 1;
}

/* The MAC's input: NUL cannot occur in a key name or a time, so no field
 * can shift into another. */
static apr_status_t item_mac(unsigned char mac[ACME_MAC_LEN], const es_t *es, const char *key,
                             apr_time_t mtime, const char *data, apr_size_t len, apr_pool_t *p)
{
    const char *ts = apr_psprintf(p, "%" APR_TIME_T_FMT, mtime);
    apr_size_t klen = strlen(key) + 1, tlen = strlen(ts) + 1, clen = sizeof(ITEM_MAC_CONTEXT);
    char *buf = apr_palloc(p, clen + klen + tlen + len + 1);

    memcpy(buf, ITEM_MAC_CONTEXT, clen);
    memcpy(buf + clen, key, klen);
    memcpy(buf + clen + klen, ts, tlen);
    memcpy(buf + clen + klen + tlen, data, len);
    return acme_mac(mac, es->mac_key, sizeof(es->mac_key), buf, clen + klen + tlen + len);
}

/* A sealed item's associated data; the time is digits only, so the key
 * name after it cannot make two different pairs look alike. */
static const char *seal_ad(const char *key, apr_time_t mtime, apr_pool_t *p)
{
    return apr_psprintf(p, "acme-item 2 s\n%" APR_TIME_T_FMT "\n%s", mtime, key);
}

static apr_status_t encode(const char **pout, apr_size_t *plen, const es_t *es, const char *key,
                           const char *data, apr_size_t len, int secret, apr_time_t mtime,
                           apr_pool_t *p)
{
    unsigned char mac[ACME_MAC_LEN];
    const char *payload = data, *head;
    apr_size_t hlen;
    char *out;
    apr_status_t rv;

    *pout = NULL;
    *plen = 0;
    rv = secret ? acme_seal(&payload, p, es->seal_key, seal_ad(key, mtime, p), data, len)
                : item_mac(mac, es, key, mtime, data, len, p);
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(1103) "store: cannot %s %s",
                 secret ? "seal" : "authenticate", key);
        return rv;
    }
    if (secret) {
        len = strlen(payload);
        head = apr_psprintf(p, ITEM_MAGIC "2 %" APR_TIME_T_FMT " s\n", mtime);
    }
    else {
        head = apr_psprintf(p, ITEM_MAGIC "2 %" APR_TIME_T_FMT " m %s\n", mtime,
                            acme_b64url_encode(p, mac, sizeof(mac)));
    }
    hlen = strlen(head);
    out = apr_palloc(p, hlen + len + 1);
    memcpy(out, head, hlen);
    memcpy(out + hlen, payload, len);
    out[hlen + len] = '\0';
    *pout = out;
    *plen = hlen + len;
    return APR_SUCCESS;
}

/* The level of a refusal's log line: an error the first time this process
 * refuses this value at this key, debug when it is refused again. Some
 * items are polled every second (the batch markers), and a refused one
 * would otherwise fill the error log; a new value written there is logged
 * again. Threads share the slots: a lost update costs one line more. */
static int refusal_level(const es_t *es, const char *key, const char *value, apr_size_t vlen)
{
    apr_ssize_t klen = APR_HASH_KEY_STRING, n = (apr_ssize_t)vlen;
    apr_uint64_t kh = apr_hashfunc_default(key, &klen);
    apr_uint64_t mark = kh << 32 | apr_hashfunc_default(value, &n);
    volatile apr_uint64_t *slot = &es->refusals[kh % REFUSAL_SLOTS];

    if (apr_atomic_read64(slot) == mark) {
        return ACME_LOG_DEBUG;
    }
    apr_atomic_set64(slot, mark);
    return ACME_LOG_ERR;
}

static apr_status_t refused(const es_t *es, const char *key, const char *value,
                            apr_size_t vlen, const char *why)
{
    acme_log(ACME_LOG_MARK, refusal_level(es, key, value, vlen), APR_EINVAL, ACMELOG(1400)
             "store: etcd item %s is refused and treated as absent: %s. Only a holder of "
             "ManagedStoreEncryptionKey writes valid items; if this server did not, someone "
             "else with write access to etcd did", key, why);
    return APR_EINVAL;
}

static apr_status_t not_unsealed(const es_t *es, const char *key, const char *value,
                                 apr_size_t vlen, const char *err)
{
    acme_log(ACME_LOG_MARK, refusal_level(es, key, value, vlen), APR_EINVAL, ACMELOG(1104)
             "store: etcd item %s does not decrypt with ManagedStoreEncryptionKey (%s): refused, "
             "treated as absent", key, err ? err : "?");
    return APR_EINVAL;
}

/* A version 1 sealed item: AES-256-GCM under the store key itself, with
 * the key name as associated data. The GCM tag authenticates it (its time
 * excepted, which says only which copy is newer). */
static apr_status_t open_v1_sealed(const char **pdata, apr_size_t *plen, const es_t *es,
                                   const acme_etcd_kv_t *kv, const head_t *h, apr_pool_t *p)
{
    const char *err = NULL;

    if (acme_unseal(pdata, plen, p, es->key, kv->key, h->payload, h->len, &err)
        != APR_SUCCESS) {
        return not_unsealed(es, kv->key, kv->value, kv->value_len, err);
    }
    return APR_SUCCESS;
}

/* An item as it is now: APR_SUCCESS with its data (and mtime, when pmtime),
 * APR_EINVAL (logged, naming the key) for anything that does not
 * authenticate, ITEM_EOLD (not logged) for a version 1 item. */
static apr_status_t open_item(const char **pdata, apr_size_t *plen, apr_time_t *pmtime,
                              const es_t *es, const char *key, const char *value,
                              apr_size_t vlen, apr_pool_t *p)
{
    unsigned char want[ACME_MAC_LEN], *got;
    apr_size_t glen;
    const char *err = NULL;
    head_t h;

    *pdata = NULL;
    *plen = 0;
    if (!parse_head(&h, value, vlen)) {
        acme_log(ACME_LOG_MARK, refusal_level(es, key, value, vlen), APR_EINVAL, ACMELOG(1105)
                 "store: etcd item %s is not in mod_acme's item format (written by something "
                 "else?)", key);
        return APR_EINVAL;
    }
    if (pmtime) {
        *pmtime = h.mtime;
    }
    if (h.version == ITEM_V1) {
        return ITEM_EOLD;
    }
    if (h.form == ITEM_SEALED) {
        if (acme_unseal(pdata, plen, p, es->seal_key, seal_ad(key, h.mtime, p), h.payload,
                        h.len, &err) != APR_SUCCESS) {
            return not_unsealed(es, key, value, vlen, err);
        }
        return APR_SUCCESS;
    }
    if (acme_b64url_decode(&got, &glen, p, apr_pstrmemdup(p, h.mac, ITEM_MAC_B64))
        != APR_SUCCESS || glen != ACME_MAC_LEN
        || item_mac(want, es, key, h.mtime, h.payload, h.len, p) != APR_SUCCESS
        || !acme_mac_equal(want, got, ACME_MAC_LEN)) {
        return refused(es, key, value, vlen, "its MAC does not match (altered, copied from "
                       "another key, or written without the store key)");
    }
    *pdata = h.payload;
    *plen = h.len;
    return APR_SUCCESS;
}

apr_status_t acme_store_etcd_item_encode(const char **pvalue, apr_size_t *plen, acme_store_t *s,
                                         const char *key, const char *data, apr_size_t len,
                                         int secret, apr_time_t mtime, apr_pool_t *p)
{
    return encode(pvalue, plen, s->baton, key, data, len, secret, mtime, p);
}

apr_status_t acme_store_etcd_item_open(const char **pdata, apr_size_t *plen, apr_time_t *pmtime,
                                       acme_store_t *s, const char *key, const char *value,
                                       apr_size_t vlen, apr_pool_t *p)
{
    apr_status_t rv = open_item(pdata, plen, pmtime, s->baton, key, value, vlen, p);

    return rv == ITEM_EOLD ? refused(s->baton, key, value, vlen,
                                     "an item of mod_acme's earlier format") : rv;
}

/* ---- the items of version 1 ------------------------------------------------------------ */

typedef struct {
    const acme_etcd_kv_t *kv;
    const char *aspect;
    head_t h;
    const char *data;       /* opened; NULL: refused */
    apr_size_t len;
    int rewrite;            /* vouched for as version 1: write it in the new form */
} old_t;

static old_t *old_find(apr_array_header_t *items, const char *aspect)
{
    int i;

    for (i = 0; i < items->nelts; ++i) {
        old_t *o = &APR_ARRAY_IDX(items, i, old_t);
        if (!strcmp(o->aspect, aspect)) {
            return o;
        }
    }
    return NULL;
}

/* A version 1 plain cert.<tag>.pem: its leaf must belong to the key beside
 * it, and that key must still be a version 1 sealed item: once a name's
 * items are in the new form, no plain certificate is ever taken again. */
static const acme_cert_t *old_cert_leaf(apr_array_header_t *items, const old_t *o,
                                        apr_pool_t *p)
{
    apr_size_t n = strlen(o->aspect);
    const old_t *k;
    apr_array_header_t *chain;
    acme_pkey_t *key;
    const acme_cert_t *leaf;

    if (n <= 9 || strncmp(o->aspect, "cert.", 5) || strcmp(o->aspect + n - 4, ".pem")) {
        return NULL;
    }
    k = old_find(items, apr_pstrcat(p, "privkey.", apr_pstrmemdup(p, o->aspect + 5, n - 9),
                                    ".pem", NULL));
    if (!k || !k->data || k->h.version != ITEM_V1 || k->h.form != ITEM_SEALED
        || acme_chain_from_pem(&chain, p, o->h.payload, o->h.len) != APR_SUCCESS
        || acme_pkey_from_pem(&key, p, k->data, k->len) != APR_SUCCESS) {
        return NULL;
    }
    leaf = APR_ARRAY_IDX(chain, 0, const acme_cert_t *);
    return acme_cert_matches_key(leaf, key) ? leaf : NULL;
}

/* A version 1 plain meta.json: only beside certificates vouched for, and
 * naming nothing that all of them do not cover. */
static int old_meta_ok(const old_t *o, const apr_array_header_t *leaves, apr_pool_t *p)
{
    acme_json_t *json;
    apr_array_header_t *names;
    const char *jerr;
    int i;

    if (strcmp(o->aspect, ACME_JOB_META) || !leaves->nelts
        || acme_json_parse(&json, p, o->h.payload, o->h.len, &jerr) != APR_SUCCESS
        || acme_json_getsa(&names, json, p, ACME_MK_NAMES, NULL) != APR_SUCCESS
        || !names->nelts) {
        return 0;
    }
    for (i = 0; i < leaves->nelts; ++i) {
        if (!acme_cert_covers(APR_ARRAY_IDX(leaves, i, const acme_cert_t *), names)) {
            return 0;
        }
    }
    return 1;
}

/* The items under dir (one name's) as a server of version 1 left them,
 * read once and written anew. A sealed item authenticates itself. A plain
 * one could have been written by anyone, so only what the sealed items
 * vouch for is taken: a certificate whose leaf is the sealed key beside it,
 * and the meta.json beside such certificates. The rest is refused (logged,
 * treated as absent) and left as it is; a server writes it anew when it
 * needs it. Returns aspect -> old_t* of the items that open, in either form. */
static apr_status_t open_old(apr_hash_t **popened, const es_t *es, const char *dir,
                             apr_pool_t *p)
{
    acme_result_t *r = acme_result_make(p);
    apr_array_header_t *kvs, *items, *leaves = apr_array_make(p, 2, sizeof(const acme_cert_t *));
    apr_hash_t *opened = apr_hash_make(p);
    acme_etcd_txn_t *t = acme_etcd_txn_make(p);
    acme_etcd_txn_result_t *res;
    apr_size_t dlen = strlen(dir);
    const char *value;
    apr_size_t vlen;
    int i, puts = 0;

    *popened = opened;
    if (acme_etcd_get_prefix(&kvs, NULL, es->etcd, dir, 0, 0, p, r) != APR_SUCCESS) {
        return report(r, p);
    }
    items = apr_array_make(p, kvs->nelts, sizeof(old_t));
    for (i = 0; i < kvs->nelts; ++i) {
        const acme_etcd_kv_t *kv = APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t *);
        old_t *o;

        if (strchr(kv->key + dlen, '/') || !acme_store_name_is_valid(kv->key + dlen)) {
            continue;   /* not an item of ours, as in list */
        }
        o = apr_array_push(items);
        memset(o, 0, sizeof(*o));
        o->kv = kv;
        o->aspect = kv->key + dlen;
        parse_head(&o->h, o->kv->value, o->kv->value_len);
        if (open_item(&o->data, &o->len, NULL, es, o->kv->key, o->kv->value, o->kv->value_len,
                      p) == ITEM_EOLD && o->h.form == ITEM_SEALED) {
            o->rewrite = open_v1_sealed(&o->data, &o->len, es, o->kv, &o->h, p)
                         == APR_SUCCESS;
        }
    }
    for (i = 0; i < items->nelts; ++i) {
        old_t *o = &APR_ARRAY_IDX(items, i, old_t);
        const acme_cert_t *leaf;

        if (o->h.form == ITEM_PLAIN && (leaf = old_cert_leaf(items, o, p)) != NULL) {
            APR_ARRAY_PUSH(leaves, const acme_cert_t *) = leaf;
            o->data = o->h.payload;
            o->len = o->h.len;
            o->rewrite = 1;
        }
    }
    for (i = 0; i < items->nelts; ++i) {
        old_t *o = &APR_ARRAY_IDX(items, i, old_t);

        if (o->h.form == ITEM_PLAIN && !o->data) {
            if (old_meta_ok(o, leaves, p)) {
                o->data = o->h.payload;
                o->len = o->h.len;
                o->rewrite = 1;
            }
            else {
                refused(es, o->kv->key, o->kv->value, o->kv->value_len, "it is a plain item "
                        "of mod_acme's earlier item format, "
                        "which anyone with write access to etcd could have written, and "
                        "nothing vouches for it (only a certificate of the sealed key beside "
                        "it and that certificate's meta.json are taken over)");
            }
        }
        if (o->data) {
            apr_hash_set(opened, o->aspect, APR_HASH_KEY_STRING, o);
        }
        if (o->rewrite && encode(&value, &vlen, es, o->kv->key, o->data, o->len,
                                 o->h.form == ITEM_SEALED, o->h.mtime, p) == APR_SUCCESS) {
            /* only if nobody wrote it meanwhile */
            acme_etcd_txn_if_mod(t, o->kv->key, o->kv->mod_revision);
            acme_etcd_txn_put(t, ACME_ETCD_THEN, o->kv->key, value, vlen, 0);
            ++puts;
        }
    }
    if (puts && acme_etcd_txn_commit(&res, es->etcd, t, p, r) == APR_SUCCESS
        && res->succeeded) {
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, APR_SUCCESS, ACMELOG(1401) "store: %d item(s) "
                 "under %s rewritten in the authenticated item format", puts, dir);
    }
    /* a rewrite that did not apply (etcd down, or a concurrent write) is
     * tried again at the next read: what was vouched for holds meanwhile */
    return APR_SUCCESS;
}

/* kv, an item of dir, whatever its form: version 1 items are opened with
 * the other items of their name, by open_old() once per *pold. */
static apr_status_t open_in_dir(const char **pdata, apr_size_t *plen, apr_time_t *pmtime,
                                int *psealed, apr_hash_t **pold, const es_t *es, const char *dir,
                                const acme_etcd_kv_t *kv, apr_pool_t *p)
{
    const old_t *o;
    head_t h;
    apr_status_t rv;

    rv = open_item(pdata, plen, pmtime, es, kv->key, kv->value, kv->value_len, p);
    if (psealed) {
        *psealed = parse_head(&h, kv->value, kv->value_len) && h.form == ITEM_SEALED;
    }
    if (rv != ITEM_EOLD) {
        return rv;
    }
    if (!*pold && (rv = open_old(pold, es, dir, p)) != APR_SUCCESS) {
        return rv;
    }
    o = apr_hash_get(*pold, kv->key + strlen(dir), APR_HASH_KEY_STRING);
    if (!o) {
        return APR_EINVAL;      /* open_old said why */
    }
    *pdata = o->data;
    *plen = o->len;
    if (pmtime) {
        *pmtime = o->h.mtime;
    }
    if (psealed) {
        *psealed = o->h.form == ITEM_SEALED;
    }
    return APR_SUCCESS;
}

static apr_status_t open_any(const char **pdata, apr_size_t *plen, const es_t *es,
                             const acme_etcd_kv_t *kv, apr_pool_t *p)
{
    const char *slash = strrchr(kv->key, '/');
    apr_hash_t *old = NULL;

    if (!slash) {
        /* every item key has the prefix */
        return refused(es, kv->key, kv->value, kv->value_len, "not an item key");
    }
    return open_in_dir(pdata, plen, NULL, NULL, &old, es,
                       apr_pstrmemdup(p, kv->key, (apr_size_t)(slash - kv->key + 1)), kv, p);
}

/* ---- items --------------------------------------------------------------------------- */

static apr_status_t es_load(acme_store_t *s, acme_store_group_t g, const char *name,
                            const char *aspect, const char **pdata, apr_size_t *plen,
                            apr_pool_t *p)
{
    const es_t *es = s->baton;
    const char *key = item_key(es, g, name, aspect, p);
    acme_result_t *r = acme_result_make(p);
    acme_etcd_kv_t *kv;
    apr_status_t rv;

    int in_snap;

    *pdata = NULL;
    *plen = 0;
    if (!key) {
        return APR_EINVAL;
    }
    kv = (acme_etcd_kv_t *)snap_get(es, key, &in_snap);
    rv = in_snap ? (kv ? APR_SUCCESS : APR_ENOENT) : acme_etcd_get(&kv, es->etcd, key, p, r);
    if (rv == APR_ENOENT) {
        return rv;
    }
    if (rv != APR_SUCCESS) {
        return report(r, p);
    }
    rv = open_any(pdata, plen, es, kv, p);
    if (rv == APR_SUCCESS && in_snap && es->snap_from_kept) {
        /* the kept copy changes at the next snapshot; p's caller keeps its own */
        *pdata = apr_pstrmemdup(p, *pdata, *plen);
    }
    return rv;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names (or, with leaves, the aspects) below a prefix of plen bytes. */
static void add_entries(apr_array_header_t *names, apr_hash_t *seen,
                        const apr_array_header_t *kvs, apr_size_t plen, int leaves,
                        apr_pool_t *p)
{
    int i;

    for (i = 0; i < kvs->nelts; ++i) {
        const char *rest = APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t *)->key + plen;
        const char *slash = strchr(rest, '/');
        const char *entry;

        if (leaves) {
            entry = slash ? NULL : rest;
        }
        else {
            entry = slash ? apr_pstrmemdup(p, rest, (apr_size_t)(slash - rest)) : NULL;
        }
        /* keys we would never write (by hand, another tool) are not items */
        if (!entry || !acme_store_name_is_valid(entry)
            || apr_hash_get(seen, entry, APR_HASH_KEY_STRING)) {
            continue;
        }
        apr_hash_set(seen, entry, APR_HASH_KEY_STRING, entry);
        APR_ARRAY_PUSH(names, const char *) = entry;
    }
}

/* The keys below pre, in pages (a large fleet's listing never hits an
 * answer limit), all as of one revision: *prev
 * (0: now, then set to the answer's). min: only keys written at or after
 * it. *pcount: every key of the group then, changed or not. */
static apr_status_t read_pages(apr_array_header_t **pkvs, apr_int64_t *pcount, apr_int64_t *prev,
                               const es_t *es, const char *pre, int keys_only, apr_int64_t min,
                               apr_pool_t *p, acme_result_t *r)
{
    apr_array_header_t *all = apr_array_make(p, 64, sizeof(acme_etcd_kv_t *));
    acme_etcd_range_t q;
    acme_etcd_range_result_t res;
    int first = 1;

    memset(&q, 0, sizeof(q));
    q.prefix = pre;
    q.keys_only = keys_only;
    q.limit = LIST_PAGE;
    q.revision = *prev;
    q.min_mod_revision = min;
    *pkvs = all;
    *pcount = 0;
    do {
        if (acme_etcd_range(&res, es->etcd, &q, p, r) != APR_SUCCESS) {
            return report(r, p);
        }
        if (first) {
            *pcount = res.count;
            *prev = q.revision = res.revision;   /* the next pages as of the same */
            first = 0;
        }
        apr_array_cat(all, res.kvs);
        if (res.kvs->nelts) {
            /* the smallest key after the last one */
            q.from = apr_pstrcat(p, APR_ARRAY_IDX(res.kvs, res.kvs->nelts - 1,
                                                  acme_etcd_kv_t *)->key, "\x01", NULL);
        }
    } while (res.more && res.kvs->nelts);
    return APR_SUCCESS;
}

static apr_status_t es_list(acme_store_t *s, acme_store_group_t g, const char *name,
                            apr_array_header_t **pnames, apr_pool_t *p)
{
    const es_t *es = s->baton;
    const char *pre = name_prefix(es, g, name, p);
    acme_result_t *r = acme_result_make(p);
    apr_array_header_t *kvs, *names = apr_array_make(p, 16, sizeof(const char *));
    apr_int64_t rev = 0, count;
    apr_status_t rv;

    *pnames = names;
    if (!pre) {
        return APR_EINVAL;
    }
    if ((rv = read_pages(&kvs, &count, &rev, es, pre, 1, 0, p, r)) != APR_SUCCESS) {
        return rv;
    }
    add_entries(names, apr_hash_make(p), kvs, strlen(pre), name != NULL, p);
    qsort(names->elts, (size_t)names->nelts, sizeof(const char *), cmp_str);
    return name && !names->nelts ? APR_ENOENT : APR_SUCCESS;
}

static apr_status_t es_mtime(acme_store_t *s, acme_store_group_t g, const char *name,
                             const char *aspect, apr_time_t *pmtime, apr_pool_t *p)
{
    const es_t *es = s->baton;
    acme_result_t *r = acme_result_make(p);
    apr_array_header_t *kvs;
    apr_hash_t *old = NULL;
    const char *pre, *dir, *data;
    apr_size_t len;
    apr_time_t t;
    apr_status_t rv;
    int i, n;

    *pmtime = 0;
    if (!name) {
        return APR_EINVAL;
    }
    dir = name_prefix(es, g, name, p);
    pre = aspect ? item_key(es, g, name, aspect, p) : dir;
    if (!pre) {
        return APR_EINVAL;
    }
    if (aspect) {
        acme_etcd_kv_t *kv;
        int in_snap;

        kv = (acme_etcd_kv_t *)snap_get(es, pre, &in_snap);
        rv = in_snap ? (kv ? APR_SUCCESS : APR_ENOENT) : acme_etcd_get(&kv, es->etcd, pre, p, r);
        if (rv == APR_ENOENT) {
            return rv;
        }
        if (rv != APR_SUCCESS) {
            return report(r, p);
        }
        kvs = apr_array_make(p, 1, sizeof(acme_etcd_kv_t *));
        APR_ARRAY_PUSH(kvs, acme_etcd_kv_t *) = kv;
    }
    else if (acme_etcd_get_prefix(&kvs, NULL, es->etcd, pre, 0, 0, p, r) != APR_SUCCESS) {
        return report(r, p);
    }
    /* a name's time is that of its newest item, as a directory's would be;
     * a time counts only from an item that authenticates */
    for (i = 0, n = 0; i < kvs->nelts; ++i) {
        const acme_etcd_kv_t *kv = APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t *);
        const char *rest = kv->key + strlen(pre);

        if (!aspect && (strchr(rest, '/') || !acme_store_name_is_valid(rest))) {
            continue;   /* not an item of ours, as in list */
        }
        rv = open_in_dir(&data, &len, &t, NULL, &old, es, dir, kv, p);
        if (rv == APR_EINVAL && !aspect) {
            continue;   /* refused (logged): as if absent */
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        ++n;
        if (t > *pmtime) {
            *pmtime = t;
        }
    }
    return n ? APR_SUCCESS : APR_ENOENT;
}

/* ---- claims ------------------------------------------------------------------------ */

static int owner_is_valid(const char *owner)
{
    apr_size_t i;

    for (i = 0; owner && owner[i]; ++i) {
        if (!apr_isgraph(owner[i]) || i > 255) {
            return 0;
        }
    }
    return owner && owner[0];
}

static const char *lock_key(const es_t *es, const char *lockname, apr_pool_t *p)
{
    return acme_store_name_is_valid(lockname) ? apr_pstrcat(p, es->prefix, LOCKS_DIR, lockname,
                                                            NULL) : NULL;
}

static int is_owner(const acme_etcd_kv_t *kv, const char *owner)
{
    return kv->value_len == strlen(owner) && !memcmp(kv->value, owner, kv->value_len);
}

static acme_store_claim_t *claim_make(const char *name, const char *owner, apr_uint64_t token,
                                      apr_interval_time_t lease, apr_pool_t *p)
{
    acme_store_claim_t *c = apr_pcalloc(p, sizeof(*c));

    c->name = apr_pstrdup(p, name);
    c->owner = apr_pstrdup(p, owner);
    c->token = token;
    c->lease = lease;
    return c;
}

/* The claim is a key bound to an etcd lease, so that etcd drops it when its
 * holder stops renewing (crash, pause, partition). Its create revision is
 * the token: every new claim of any name gets a greater one. */
static apr_status_t es_claim(acme_store_t *s, acme_store_claim_t **pclaim, const char *name,
                             const char *owner, apr_interval_time_t lease, apr_pool_t *p)
{
    const es_t *es = s->baton;
    const char *key = lock_key(es, name, p);
    acme_result_t *r = acme_result_make(p);
    apr_int64_t ttl = (apr_int64_t)((lease + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC), id, left;
    acme_etcd_kv_t *kv;
    acme_etcd_txn_t *t;
    acme_etcd_txn_result_t *res;
    apr_array_header_t *held;
    apr_status_t rv;
    int attempt;

    *pclaim = NULL;
    if (!key || !owner_is_valid(owner) || lease <= 0) {
        return APR_EINVAL;
    }
    for (attempt = 0; attempt < 3; ++attempt) {
        rv = acme_etcd_get(&kv, es->etcd, key, p, r);
        if (rv == APR_SUCCESS) {
            if (!is_owner(kv, owner)) {
                *pclaim = claim_make(name, owner_is_valid(kv->value) ? kv->value : "?", 0,
                                     lease, p);
                return APR_EBUSY;
            }
            /* ours already: claiming again renews it */
            rv = kv->lease ? acme_etcd_lease_keepalive(&left, es->etcd, kv->lease, p, r)
                           : APR_SUCCESS;
            if (rv == APR_ENOENT) {
                continue;   /* expired just now: claim anew */
            }
            if (rv != APR_SUCCESS) {
                return report(r, p);
            }
            *pclaim = claim_make(name, owner, (apr_uint64_t)kv->create_revision, lease, p);
            return APR_SUCCESS;
        }
        if (rv != APR_ENOENT) {
            return report(r, p);
        }
        if (acme_etcd_lease_grant(&id, es->etcd, ttl, p, r) != APR_SUCCESS) {
            return report(r, p);
        }
        t = acme_etcd_txn_make(p);
        acme_etcd_txn_if_absent(t, key);
        acme_etcd_txn_put(t, ACME_ETCD_THEN, key, owner, strlen(owner), id);
        acme_etcd_txn_get(t, ACME_ETCD_ELSE, key, 0);
        if (acme_etcd_txn_commit(&res, es->etcd, t, p, r) != APR_SUCCESS) {
            rv = report(r, p);
            acme_result_reset(r);
            acme_etcd_lease_revoke(es->etcd, id, p, r);
            return rv;
        }
        if (res->succeeded) {
            /* the txn created the key: its create revision */
            *pclaim = claim_make(name, owner, (apr_uint64_t)res->revision, lease, p);
            return APR_SUCCESS;
        }
        acme_etcd_lease_revoke(es->etcd, id, p, r);
        held = APR_ARRAY_IDX(res->ranges, 0, apr_array_header_t *);
        if (held->nelts && !is_owner(APR_ARRAY_IDX(held, 0, acme_etcd_kv_t *), owner)) {
            kv = APR_ARRAY_IDX(held, 0, acme_etcd_kv_t *);
            *pclaim = claim_make(name, owner_is_valid(kv->value) ? kv->value : "?", 0, lease, p);
            return APR_EBUSY;
        }
        /* ours after all (an earlier attempt that looked failed), or gone: again */
    }
    *pclaim = claim_make(name, "?", 0, lease, p);
    return APR_EBUSY;
}

/* Extends the lease of a claim that is still this one (same lock key
 * revision). One that ran out stays lost, even when nobody has taken the
 * name since: taking it again with a new token would let a paused holder's
 * stale work through, after the server that took over has finished. */
static apr_status_t es_renew(acme_store_t *s, acme_store_claim_t *c, apr_pool_t *p)
{
    const es_t *es = s->baton;
    const char *key = lock_key(es, c->name, p);
    acme_result_t *r = acme_result_make(p);
    apr_int64_t left;
    acme_etcd_kv_t *kv;
    apr_status_t rv;

    if (!key) {
        return APR_EINVAL;
    }
    rv = acme_etcd_get(&kv, es->etcd, key, p, r);
    if (rv == APR_ENOENT
        || (rv == APR_SUCCESS && ((apr_uint64_t)kv->create_revision != c->token
                                  || !is_owner(kv, c->owner) || !kv->lease))) {
        return ACME_STORE_EFENCED;
    }
    if (rv == APR_SUCCESS) {
        rv = acme_etcd_lease_keepalive(&left, es->etcd, kv->lease, p, r);
        if (rv == APR_ENOENT || (rv == APR_SUCCESS && left <= 0)) {
            return ACME_STORE_EFENCED; /* ran out just now */
        }
    }
    return rv == APR_SUCCESS ? APR_SUCCESS : report(r, p);
}

static apr_status_t es_release(acme_store_t *s, acme_store_claim_t *c, apr_pool_t *p)
{
    const es_t *es = s->baton;
    const char *key = lock_key(es, c->name, p);
    acme_result_t *r = acme_result_make(p);
    acme_etcd_kv_t *kv;
    acme_etcd_txn_t *t;
    acme_etcd_txn_result_t *res;
    apr_status_t rv;

    if (!key) {
        return APR_EINVAL;
    }
    rv = acme_etcd_get(&kv, es->etcd, key, p, r);
    if (rv == APR_ENOENT || (rv == APR_SUCCESS
                             && (apr_uint64_t)kv->create_revision != c->token)) {
        return APR_SUCCESS;     /* gone already, or another holder's now */
    }
    if (rv != APR_SUCCESS) {
        return report(r, p);
    }
    t = acme_etcd_txn_make(p);
    acme_etcd_txn_if_create(t, key, kv->create_revision);
    acme_etcd_txn_delete(t, ACME_ETCD_THEN, key, 0);
    if (acme_etcd_txn_commit(&res, es->etcd, t, p, r) != APR_SUCCESS) {
        return report(r, p);
    }
    if (res->succeeded && kv->lease) {
        acme_etcd_lease_revoke(es->etcd, kv->lease, p, r);
    }
    return APR_SUCCESS;
}

/* ---- writes, fenced when the view carries a claim ---------------------------------------- */

/* Makes t apply only while the view's claim is current; the ELSE branch
 * reads the lock, so that a refusal can say who holds it now. */
static void fence_txn(acme_etcd_txn_t *t, const es_t *es, const acme_store_claim_t *c,
                      apr_pool_t *p)
{
    const char *lkey = lock_key(es, c->name, p);

    acme_etcd_txn_if_create(t, lkey, (apr_int64_t)c->token);
    acme_etcd_txn_get(t, ACME_ETCD_ELSE, lkey, 0);
}

/* After a txn that did not apply: was it the fence? */
static int fence_refused(const acme_etcd_txn_result_t *res, const acme_store_claim_t *c,
                         const char *what, apr_pool_t *p)
{
    apr_array_header_t *held;
    const acme_etcd_kv_t *kv = NULL;

    if (res->succeeded || !res->ranges->nelts) {
        return 0;
    }
    held = APR_ARRAY_IDX(res->ranges, res->ranges->nelts - 1, apr_array_header_t *);
    if (held->nelts) {
        kv = APR_ARRAY_IDX(held, 0, acme_etcd_kv_t *);
        if ((apr_uint64_t)kv->create_revision == c->token) {
            return 0;   /* the claim holds: something else changed */
        }
    }
    acme_log(ACME_LOG_MARK, ACME_LOG_ERR, ACME_STORE_EFENCED, ACMELOG(1107) "store: %s for %s with "
             "the claim token %" APR_UINT64_T_FMT " of '%s' is refused: that claim is no longer "
             "current (its lease ran out and %s)", what, c->name, c->token, c->owner,
             kv ? apr_psprintf(p, "'%s' holds token %" APR_INT64_T_FMT,
                               owner_is_valid(kv->value) ? kv->value : "?", kv->create_revision)
                : "nobody holds it now");
    return 1;
}

static apr_status_t es_save(acme_store_t *s, acme_store_group_t g, const char *name,
                            const char *aspect, const char *data, apr_size_t len, int flags,
                            apr_pool_t *p)
{
    const es_t *es = s->baton;
    const char *key = item_key(es, g, name, aspect, p), *value;
    acme_result_t *r = acme_result_make(p);
    acme_etcd_txn_t *t;
    acme_etcd_txn_result_t *res;
    apr_size_t vlen;
    apr_status_t rv;

    snap_drop(es);   /* what it read may change now */

    if (!key) {
        return APR_EINVAL;
    }
    rv = encode(&value, &vlen, es, key, data, len, flags & ACME_STORE_SECRET, apr_time_now(), p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!s->fence) {
        if (acme_etcd_put(NULL, es->etcd, key, value, vlen, 0, p, r) != APR_SUCCESS) {
            rv = report(r, p);
        }
        return rv;
    }
    t = acme_etcd_txn_make(p);
    fence_txn(t, es, s->fence, p);
    acme_etcd_txn_put(t, ACME_ETCD_THEN, key, value, vlen, 0);
    if (acme_etcd_txn_commit(&res, es->etcd, t, p, r) != APR_SUCCESS) {
        return report(r, p);
    }
    if (!res->succeeded) {
        fence_refused(res, s->fence, apr_pstrcat(p, "writing ", key, NULL), p);
        return ACME_STORE_EFENCED;
    }
    return APR_SUCCESS;
}

static apr_status_t es_remove(acme_store_t *s, acme_store_group_t g, const char *name,
                              const char *aspect, apr_pool_t *p)
{
    const es_t *es = s->baton;
    const char *key = aspect ? item_key(es, g, name, aspect, p)
                             : name ? name_prefix(es, g, name, p) : NULL;
    acme_result_t *r = acme_result_make(p);
    acme_etcd_txn_t *t;
    acme_etcd_txn_result_t *res;

    snap_drop(es);   /* what it read may change now */

    if (!key) {
        return APR_EINVAL;
    }
    if (!s->fence) {
        if (acme_etcd_delete(NULL, es->etcd, key, aspect == NULL, p, r) != APR_SUCCESS) {
            return report(r, p);
        }
        return APR_SUCCESS;
    }
    t = acme_etcd_txn_make(p);
    fence_txn(t, es, s->fence, p);
    acme_etcd_txn_delete(t, ACME_ETCD_THEN, key, aspect == NULL);
    if (acme_etcd_txn_commit(&res, es->etcd, t, p, r) != APR_SUCCESS) {
        return report(r, p);
    }
    if (!res->succeeded) {
        fence_refused(res, s->fence, apr_pstrcat(p, "removing ", key, NULL), p);
        return ACME_STORE_EFENCED;
    }
    return APR_SUCCESS;
}

/* ---- move, with a bounded archive ------------------------------------------------------ */

/* Is entry "<name>.<14 digits>[.<digits>]"? Strict, so that "example.org"
 * never claims the archive of "example.org.uk". *pts points at the digits. */
static int archive_entry_of(const char *entry, const char *name, const char **pts)
{
    apr_size_t n = strlen(name), i;
    const char *rest;

    if (strncmp(entry, name, n) || entry[n] != '.') {
        return 0;
    }
    rest = entry + n + 1;
    for (i = 0; i < TS_LEN; ++i) {
        if (!apr_isdigit(rest[i])) {
            return 0;
        }
    }
    *pts = rest;
    if (!rest[TS_LEN]) {
        return 1;
    }
    if (rest[TS_LEN] != '.' || !rest[TS_LEN + 1]) {
        return 0;
    }
    for (i = TS_LEN + 1; rest[i]; ++i) {
        if (!apr_isdigit(rest[i]) || i > TS_LEN + 9) {
            return 0;
        }
    }
    return 1;
}

typedef struct {
    const char *entry;
    const char *ts;     /* TS_LEN digits */
    long seq;           /* the ".n" of entries made in the same second */
} archived_t;

static int cmp_archived_newest_first(const void *a, const void *b)
{
    const archived_t *x = a, *y = b;
    int c = strncmp(y->ts, x->ts, TS_LEN);

    return c ? c : (y->seq > x->seq) - (y->seq < x->seq);
}

static void archived_push(apr_array_header_t *arr, const char *entry, const char *ts)
{
    archived_t *a = apr_array_push(arr);

    a->entry = entry;
    a->ts = ts;
    a->seq = ts[TS_LEN] == '.' ? strtol(ts + TS_LEN + 1, NULL, 10) : 0;
}

typedef struct {
    const char *aspect;
    const char *data;
    apr_size_t len;
    apr_time_t mtime;
    int sealed;
} item_t;

/* The items under pre, opened (sealed ones too: they are resealed for
 * their new key, since the old key name is their associated data). One
 * that does not authenticate is left out, as if absent: it is never moved
 * or archived, and goes with the name it was under. */
static apr_status_t read_items(apr_array_header_t **pitems, const es_t *es, const char *pre,
                               apr_pool_t *p, acme_result_t *r)
{
    apr_array_header_t *kvs, *items;
    apr_hash_t *old = NULL;
    apr_size_t plen = strlen(pre);
    apr_status_t rv;
    int i;

    *pitems = NULL;
    if (acme_etcd_get_prefix(&kvs, NULL, es->etcd, pre, 0, 0, p, r) != APR_SUCCESS) {
        return report(r, p);
    }
    items = apr_array_make(p, kvs->nelts, sizeof(item_t));
    for (i = 0; i < kvs->nelts; ++i) {
        const acme_etcd_kv_t *kv = APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t *);
        item_t it;

        it.aspect = kv->key + plen;
        if (strchr(it.aspect, '/') || !acme_store_name_is_valid(it.aspect)) {
            continue;
        }
        rv = open_in_dir(&it.data, &it.len, &it.mtime, &it.sealed, &old, es, pre, kv, p);
        if (rv == APR_EINVAL) {
            continue;   /* logged, naming the key */
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        APR_ARRAY_PUSH(items, item_t) = it;
    }
    *pitems = items;
    return APR_SUCCESS;
}

static apr_status_t put_items(acme_etcd_txn_t *t, const es_t *es, const char *pre,
                              const apr_array_header_t *items, apr_pool_t *p)
{
    const char *value;
    apr_size_t vlen;
    apr_status_t rv;
    int i;

    for (i = 0; i < items->nelts; ++i) {
        const item_t *it = &APR_ARRAY_IDX(items, i, item_t);
        const char *key = apr_pstrcat(p, pre, it->aspect, NULL);

        rv = encode(&value, &vlen, es, key, it->data, it->len, it->sealed, it->mtime, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        acme_etcd_txn_put(t, ACME_ETCD_THEN, key, value, vlen, 0);
    }
    return APR_SUCCESS;
}

/* One attempt: read, then a txn that applies only if nothing involved
 * changed since the read. *pdone 0: something did, read again. */
static apr_status_t move_once(int *pdone, const es_t *es, const acme_store_claim_t *fence,
                              acme_store_group_t from, acme_store_group_t to, const char *name,
                              int keep, apr_pool_t *p, acme_result_t *r)
{
    const char *src = name_prefix(es, from, name, p), *dst = name_prefix(es, to, name, p);
    const char *arch_group = name_prefix(es, ACME_SG_ARCHIVE, NULL, p);
    const char *arch_pre = apr_pstrcat(p, arch_group, name, ".", NULL);
    apr_array_header_t *src_items, *dst_items, *akvs, *entries;
    apr_hash_t *seen = apr_hash_make(p);
    acme_etcd_txn_t *t = acme_etcd_txn_make(p);
    acme_etcd_txn_result_t *res;
    apr_int64_t rev;
    apr_status_t rv;
    int i;

    *pdone = 0;
    if (acme_etcd_revision(&rev, es->etcd, p, r) != APR_SUCCESS) {
        return report(r, p);
    }
    if ((rv = read_items(&src_items, es, src, p, r)) != APR_SUCCESS
        || (rv = read_items(&dst_items, es, dst, p, r)) != APR_SUCCESS) {
        return rv;
    }
    if (!src_items->nelts) {
        *pdone = 1;
        return APR_ENOENT;  /* the current one stays: nothing replaces it */
    }
    acme_etcd_txn_if_prefix_unchanged(t, src, rev);
    acme_etcd_txn_if_prefix_unchanged(t, dst, rev);
    acme_etcd_txn_if_prefix_unchanged(t, arch_pre, rev);
    if (fence) {
        fence_txn(t, es, fence, p);
    }

    entries = apr_array_make(p, 4, sizeof(archived_t));
    if (keep > 0) {
        if (acme_etcd_get_prefix(&akvs, NULL, es->etcd, arch_pre, 1, 0, p, r) != APR_SUCCESS) {
            return report(r, p);
        }
        for (i = 0; i < akvs->nelts; ++i) {
            const char *rest = APR_ARRAY_IDX(akvs, i, acme_etcd_kv_t *)->key + strlen(arch_group);
            const char *slash = strchr(rest, '/'), *entry, *ts;

            entry = slash ? apr_pstrmemdup(p, rest, (apr_size_t)(slash - rest)) : NULL;
            if (entry && archive_entry_of(entry, name, &ts)
                && !apr_hash_get(seen, entry, APR_HASH_KEY_STRING)) {
                apr_hash_set(seen, entry, APR_HASH_KEY_STRING, entry);
                archived_push(entries, entry, ts);
            }
        }
        if (dst_items->nelts) {
            apr_time_exp_t tm;
            char ts[32];
            apr_size_t tslen = 0;
            const char *entry;
            long n = 1;

            apr_time_exp_gmt(&tm, apr_time_now());
            apr_strftime(ts, &tslen, sizeof(ts), "%Y%m%d%H%M%S", &tm);
            entry = apr_pstrcat(p, name, ".", ts, NULL);
            while (apr_hash_get(seen, entry, APR_HASH_KEY_STRING)) {
                entry = apr_psprintf(p, "%s.%s.%ld", name, ts, n++);
            }
            archived_push(entries, entry, entry + strlen(name) + 1);
            rv = put_items(t, es, apr_pstrcat(p, arch_group, entry, "/", NULL), dst_items, p);
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
    }
    /* etcd refuses a txn whose puts fall into one of its delete ranges:
     * the old items that the new ones do not overwrite go one by one */
    for (i = 0; i < dst_items->nelts; ++i) {
        const char *aspect = APR_ARRAY_IDX(dst_items, i, item_t).aspect;
        int j, replaced = 0;

        for (j = 0; j < src_items->nelts && !replaced; ++j) {
            replaced = !strcmp(aspect, APR_ARRAY_IDX(src_items, j, item_t).aspect);
        }
        if (!replaced) {
            acme_etcd_txn_delete(t, ACME_ETCD_THEN, apr_pstrcat(p, dst, aspect, NULL), 0);
        }
    }
    if ((rv = put_items(t, es, dst, src_items, p)) != APR_SUCCESS) {
        return rv;
    }
    acme_etcd_txn_delete(t, ACME_ETCD_THEN, src, 1);
    qsort(entries->elts, (size_t)entries->nelts, sizeof(archived_t), cmp_archived_newest_first);
    for (i = keep > 0 ? keep : 0; i < entries->nelts; ++i) {
        acme_etcd_txn_delete(t, ACME_ETCD_THEN,
                             apr_pstrcat(p, arch_group, APR_ARRAY_IDX(entries, i, archived_t).entry,
                                         "/", NULL), 1);
    }
    if (acme_etcd_txn_commit(&res, es->etcd, t, p, r) != APR_SUCCESS) {
        return report(r, p);
    }
    if (fence && fence_refused(res, fence, apr_psprintf(p, "moving %s to %s", src, dst), p)) {
        *pdone = 1;
        return ACME_STORE_EFENCED;
    }
    *pdone = res->succeeded;
    return APR_SUCCESS;
}

static apr_status_t es_move(acme_store_t *s, acme_store_group_t from, acme_store_group_t to,
                            const char *name, int keep_archived, apr_pool_t *p)
{
    const es_t *es = s->baton;
    acme_result_t *r = acme_result_make(p);
    apr_pool_t *sub;
    apr_status_t rv = APR_EGENERAL;
    int attempt, done = 0;

    snap_drop(es);   /* what it read may change now */

    if (!name || from == to || to == ACME_SG_ARCHIVE || !name_prefix(es, from, name, p)
        || !name_prefix(es, to, name, p)) {
        return APR_EINVAL;
    }
    apr_pool_create(&sub, p);
    for (attempt = 0; attempt < MOVE_ATTEMPTS && !done; ++attempt) {
        apr_pool_clear(sub);
        rv = move_once(&done, es, s->fence, from, to, name, keep_archived, sub, r);
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    apr_pool_destroy(sub);
    if (rv == APR_SUCCESS && !done) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, APR_EAGAIN, ACMELOG(1106) "store: moving %s/%s to %s "
                 "lost to concurrent changes %d times", acme_store_group_name(from), name,
                 acme_store_group_name(to), MOVE_ATTEMPTS);
        rv = APR_EAGAIN;
    }
    return rv;
}

/* ---- the sweep of stale answers --------------------------------------------------------- */

/* Is kv a stale answer: a key <pre><type>/<aspect> of ours whose header
 * says it was written before 'before'? The header's time is taken without
 * its MAC: the delete that follows compares the value's mod_revision, so
 * it removes this value and no other, and a writer to etcd that made the
 * time up could have deleted its own value anyway. So what no longer
 * authenticates (answers of the earlier format) goes too. */
static int answer_is_stale(const acme_etcd_kv_t *kv, apr_size_t plen, apr_time_t before)
{
    const char *rest = kv->key + plen, *slash = strchr(rest, '/');
    char type[256];
    head_t h;

    if (!slash || (apr_size_t)(slash - rest) >= sizeof(type)
        || !acme_store_name_is_valid(slash + 1)) {
        return 0;
    }
    apr_cpystrn(type, rest, (apr_size_t)(slash - rest) + 1);
    return acme_store_name_is_valid(type) && kv->value
           && parse_head(&h, kv->value, kv->value_len) && h.mtime < before;
}

/* Removes the answers in challenges/ written more than ACME_STORE_ANSWER_STALE
 * ago (a job withdraws its own, kept ones within a day: these are what a
 * run that died, a domain taken out of the configuration or a server gone
 * left). Every server sweeps: each delete is a txn on the mod_revision
 * read, so an answer that a job published again meanwhile stays, and of
 * servers sweeping at once one deletes it. A page at a time, so a fleet's
 * years of leftovers never sit in memory at once. (age is for temporary
 * files, which etcd's atomic writes never leave.) */
static int es_sweep(acme_store_t *s, apr_interval_time_t age, apr_pool_t *p)
{
    const es_t *es = s->baton;
    const char *pre = name_prefix(es, ACME_SG_CHALLENGES, NULL, p);
    apr_time_t before = apr_time_now() - ACME_STORE_ANSWER_STALE;
    acme_result_t *r = acme_result_make(p);
    acme_etcd_range_t q;
    acme_etcd_range_result_t res;
    acme_etcd_txn_result_t *done;
    apr_pool_t *page;
    int i, removed = 0, failed = 0;

    (void)age;
    memset(&q, 0, sizeof(q));
    q.prefix = pre;
    q.limit = LIST_PAGE;
    apr_pool_create(&page, p);
    do {
        apr_pool_clear(page);
        if (acme_etcd_range(&res, es->etcd, &q, page, r) != APR_SUCCESS) {
            failed = 1;
            break;
        }
        for (i = 0; i < res.kvs->nelts && !failed; ++i) {
            const acme_etcd_kv_t *kv = APR_ARRAY_IDX(res.kvs, i, acme_etcd_kv_t *);
            acme_etcd_txn_t *t;

            if (!answer_is_stale(kv, strlen(pre), before)) {
                continue;
            }
            t = acme_etcd_txn_make(page);
            acme_etcd_txn_if_mod(t, kv->key, kv->mod_revision);
            acme_etcd_txn_delete(t, ACME_ETCD_THEN, kv->key, 0);
            failed = acme_etcd_txn_commit(&done, es->etcd, t, page, r) != APR_SUCCESS;
            removed += !failed && done->succeeded;
        }
        if (res.kvs->nelts) {
            /* the smallest key after the last one */
            q.from = apr_pstrcat(p, APR_ARRAY_IDX(res.kvs, res.kvs->nelts - 1,
                                                  acme_etcd_kv_t *)->key, "\x01", NULL);
        }
    } while (!failed && res.more && res.kvs->nelts);
    apr_pool_destroy(page);
    if (removed) {
        snap_drop(es);   /* what it read may have changed */
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, APR_SUCCESS, ACMELOG(2500) "store: removed %d "
                 "challenge answer(s) older than a day from %s", removed, pre);
    }
    if (failed) {
        int quiet = r->problem && !strcmp(r->problem, "acme:stopped");
        acme_log(ACME_LOG_MARK, quiet ? ACME_LOG_DEBUG : ACME_LOG_WARNING, r->status,
                 ACMELOG(2501) "store: the sweep of challenge answers older than a day in %s "
                 "stopped (tried again at the next sweep): %s", pre, acme_result_describe(r, p));
    }
    return removed;
}

static const char *es_path(acme_store_t *s, acme_store_group_t g, const char *name,
                           const char *aspect, apr_pool_t *p)
{
    (void)s; (void)g; (void)name; (void)aspect; (void)p;
    return NULL;    /* no files: the parent copies into its local cache for mod_ssl */
}

/* ---- the cluster's schema and key check ------------------------------------------------- */

/* ---- snapshot ----------------------------------------------------------------------- */

/* What the last snapshot of a group read, kept for the next one in a pool
 * of the caller's that outlives the configuration (acme_store_etcd_keep),
 * found there under KEPT_KEY and the group's prefix. Nothing in it points
 * into the module (no cleanup, no function): httpd unloads the module at a
 * restart and loads it again. The values are kept as etcd sent them, and
 * opened (MAC checked, unsealed) at every load, as a fresh read is. */
#define KEPT_KEY "mod_acme etcd snapshot 1 "     /* bump when kept_t changes */
#define KEPT_MAX ((apr_size_t)512 * 1024 * 1024)   /* beyond it, nothing is kept */

typedef struct {
    apr_pool_t *parent;     /* where pool is made */
    apr_pool_t *pool;       /* the items and the cluster id */
    apr_hash_t *items;      /* etcd key -> acme_etcd_kv_t *, with values */
    const char *cluster;    /* etcd's cluster id when they were read */
    apr_int64_t revision;   /* items is what the group held at it; 0: nothing kept */
    apr_time_t at;          /* when they were brought up to date */
    apr_size_t live, dead;  /* bytes of the items, and of items since replaced */
} kept_t;

static apr_status_t own_destroy(void *data)
{
    apr_pool_destroy(data);
    return APR_SUCCESS;
}

/* The copies of a store of its own: an unmanaged pool, so that a thread
 * that must not touch httpd's pools (the parent's restart thread) can use
 * it; with ACME_KEEP_OWN, one that keep holds across generations. */
typedef struct {
    apr_pool_t *pool;
    apr_hash_t *kept;       /* KEPT_KEY... -> kept_t, in pool */
} own_t;

void acme_store_etcd_keep(acme_store_t *s, apr_pool_t *keep, acme_keep_mode_t mode)
{
    es_t *es = s->baton;
    own_t *own = NULL;
    const char *key;

    es->keep = mode == ACME_KEEP_OWN ? NULL : keep;
    es->keep_make = mode == ACME_KEEP_MAKE && keep;
    if (mode == ACME_KEEP_OWN && keep) {
        key = apr_pstrcat(es->pool, KEPT_KEY "own ", es->prefix, NULL);
        apr_pool_userdata_get((void **)&own, key, keep);
        if (!own) {
            own = apr_pcalloc(keep, sizeof(*own));
            if (apr_pool_create_unmanaged_ex(&own->pool, NULL, NULL) != APR_SUCCESS) {
                return;
            }
            own->kept = apr_hash_make(own->pool);
            apr_pool_userdata_set(own, apr_pstrdup(keep, key), apr_pool_cleanup_null, keep);
        }
    }
    else {
        own = apr_pcalloc(es->pool, sizeof(*own));
        if (apr_pool_create_unmanaged_ex(&own->pool, NULL, NULL) != APR_SUCCESS) {
            return;
        }
        own->kept = apr_hash_make(own->pool);
        apr_pool_cleanup_register(es->pool, own->pool, own_destroy, apr_pool_cleanup_null);
    }
    es->own = own->pool;
    es->own_kept = own->kept;
}

static kept_t *kept_of(const es_t *es, const char *pre, apr_pool_t *p)
{
    const char *key = apr_pstrcat(p, KEPT_KEY, pre, NULL);
    kept_t *k = NULL;

    if (!es->own_kept) {
        return NULL;
    }
    if (es->keep) {
        apr_pool_userdata_get((void **)&k, key, es->keep);
    }
    if (!k) {
        k = apr_hash_get(es->own_kept, key, APR_HASH_KEY_STRING);
    }
    if (!k && es->keep_make) {
        k = apr_pcalloc(es->keep, sizeof(*k));
        k->parent = es->keep;
        apr_pool_userdata_set(k, apr_pstrdup(es->keep, key), apr_pool_cleanup_null, es->keep);
    }
    else if (!k) {
        /* not made by keep's owner: this store's own */
        k = apr_pcalloc(es->own, sizeof(*k));
        k->parent = es->own;
        apr_hash_set(es->own_kept, apr_pstrdup(es->own, key), APR_HASH_KEY_STRING, k);
    }
    return k;
}

static void kept_reset(kept_t *k)
{
    if (k->pool) {
        apr_pool_destroy(k->pool);
    }
    apr_pool_create(&k->pool, k->parent);
    k->items = apr_hash_make(k->pool);
    k->cluster = NULL;
    k->revision = 0;
    k->live = k->dead = 0;
}

static apr_size_t kv_size(const acme_etcd_kv_t *kv)
{
    return sizeof(*kv) + strlen(kv->key) + 1 + kv->value_len + 1;
}

/* kv into k (replacing what was there), or out of it when value is NULL */
static void kept_put(kept_t *k, const acme_etcd_kv_t *kv, int remove)
{
    acme_etcd_kv_t *old = apr_hash_get(k->items, kv->key, APR_HASH_KEY_STRING), *c;

    if (old) {
        k->live -= kv_size(old);
        k->dead += kv_size(old);
    }
    if (remove) {
        apr_hash_set(k->items, kv->key, APR_HASH_KEY_STRING, NULL);
        return;
    }
    c = apr_pmemdup(k->pool, kv, sizeof(*kv));
    c->key = old ? old->key : apr_pstrdup(k->pool, kv->key);
    c->value = kv->value ? apr_pstrmemdup(k->pool, kv->value, kv->value_len) : NULL;
    apr_hash_set(k->items, c->key, APR_HASH_KEY_STRING, c);
    k->live += kv_size(c);
}

/* Replaced items are garbage in k's pool: copied out once they outweigh the rest. */
static void kept_compact(kept_t *k)
{
    apr_pool_t *old = k->pool;
    apr_hash_t *items = k->items;
    const char *cluster = k->cluster;
    apr_int64_t revision = k->revision;
    apr_hash_index_t *hi;

    if (k->dead <= k->live) {
        return;
    }
    k->pool = NULL;
    kept_reset(k);
    for (hi = apr_hash_first(NULL, items); hi; hi = apr_hash_next(hi)) {
        kept_put(k, apr_hash_this_val(hi), 0);
    }
    k->cluster = cluster ? apr_pstrdup(k->pool, cluster) : NULL;
    k->revision = revision;
    apr_pool_destroy(old);
}

/* Brings k up to now, reading the values of what changed since k->revision
 * only. etcd counts the group's keys as of the answer's revision; the keys
 * that k lacks are all among the changed ones (created since), so when
 * count minus those is not k's size, keys were deleted: then one listing of
 * the keys (no values) says which. APR_EGENERAL: k cannot be brought up to
 * date (another cluster, or one restored from an older backup, an answer
 * that does not add up):
 * read everything. */
static apr_status_t kept_update(int *pchanged, int *pdropped, kept_t *k, const es_t *es,
                                const char *pre, apr_pool_t *p, acme_result_t *r)
{
    apr_array_header_t *kvs, *keys;
    apr_hash_t *present;
    apr_hash_index_t *hi;
    const char *cluster;
    apr_int64_t rev = 0, count, fresh = 0;
    apr_status_t rv;
    int i;

    *pchanged = *pdropped = 0;
    rv = read_pages(&kvs, &count, &rev, es, pre, 0, k->revision + 1, p, r);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    cluster = acme_etcd_cluster_id(es->etcd);
    if (rev < k->revision || !cluster || !k->cluster || strcmp(cluster, k->cluster)) {
        return APR_EGENERAL;    /* another cluster, or one restored from a backup */
    }
    for (i = 0; i < kvs->nelts; ++i) {
        const acme_etcd_kv_t *kv = APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t *);
        if (kv->mod_revision <= k->revision || kv->mod_revision > rev) {
            return APR_EGENERAL;    /* not what was asked for */
        }
        fresh += !apr_hash_get(k->items, kv->key, APR_HASH_KEY_STRING);
    }
    if (count - fresh != (apr_int64_t)apr_hash_count(k->items)) {
        rv = read_pages(&keys, &count, &rev, es, pre, 1, 0, p, r);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        present = apr_hash_make(p);
        for (i = 0; i < keys->nelts; ++i) {
            const acme_etcd_kv_t *kv = APR_ARRAY_IDX(keys, i, acme_etcd_kv_t *);
            const acme_etcd_kv_t *had = apr_hash_get(k->items, kv->key, APR_HASH_KEY_STRING);
            if (kv->mod_revision <= k->revision
                && (!had || had->mod_revision != kv->mod_revision)) {
                return APR_EGENERAL;    /* unchanged, but not what k holds */
            }
            apr_hash_set(present, kv->key, APR_HASH_KEY_STRING, kv);
        }
        for (hi = apr_hash_first(p, k->items); hi; hi = apr_hash_next(hi)) {
            const acme_etcd_kv_t *kv = apr_hash_this_val(hi);
            if (!apr_hash_get(present, kv->key, APR_HASH_KEY_STRING)) {
                kept_put(k, kv, 1);     /* setting an entry to NULL during iteration is fine */
                ++*pdropped;
            }
        }
    }
    for (i = 0; i < kvs->nelts; ++i) {
        kept_put(k, APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t *), 0);
    }
    *pchanged = kvs->nelts;
    k->revision = rev;
    return APR_SUCCESS;
}

/* One group (or one name of it) into the view: from its kept copy when
 * there is one, brought up to date unless that was done within max_age. */
static apr_status_t view_add(es_t *es, acme_store_group_t g, const char *name,
                             apr_interval_time_t max_age, apr_pool_t *p)
{
    const char *pre, *cluster;
    acme_result_t *r = acme_result_make(p);
    apr_array_header_t *kvs;
    apr_hash_t *items;
    apr_int64_t rev = 0, count, since;
    apr_time_t now = apr_time_now();
    kept_t *k;
    int i, changed = 0, dropped = 0;

    if (!(pre = name_prefix(es, g, name, p)) || es->nsnap >= ACME_SG_COUNT) {
        return APR_EINVAL;
    }
    k = name ? NULL : kept_of(es, pre, p);
    since = k ? k->revision : 0;
    if (since && k->at <= now && now - k->at < max_age) {
        items = k->items;   /* fresh enough for this caller */
    }
    else if (since && kept_update(&changed, &dropped, k, es, pre, p, r) == APR_SUCCESS) {
        kept_compact(k);
        k->at = now;
        if (k->live > KEPT_MAX) {
            k->revision = 0;    /* grown too large: read whole, and not kept, next time */
        }
        /* a tick's look that found nothing new is not worth a line */
        acme_log(ACME_LOG_MARK, changed || dropped || !max_age ? ACME_LOG_INFO : ACME_LOG_DEBUG,
                 APR_SUCCESS,
                 ACMELOG(2400) "store: %s read: %d item(s) written since revision %"
                 APR_INT64_T_FMT " of %u, %d removed", pre, changed, since,
                 apr_hash_count(k->items), dropped);
        items = k->items;
    }
    else {
        if (read_pages(&kvs, &count, &rev, es, pre, 0, 0, p, r) != APR_SUCCESS) {
            if (k) {
                /* read whole next time; no pool is made here: a failure
                 * comes at a child's stop too, while its pools go */
                k->revision = 0;
            }
            return r->status != APR_SUCCESS ? r->status : APR_EGENERAL;
        }
        items = apr_hash_make(p);
        for (i = 0; i < kvs->nelts; ++i) {
            acme_etcd_kv_t *kv = APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t *);
            apr_hash_set(items, kv->key, APR_HASH_KEY_STRING, kv);
        }
        cluster = acme_etcd_cluster_id(es->etcd);
        if (k) {
            /* the next view reads what changed after this one */
            kept_reset(k);
            for (i = 0; i < kvs->nelts && k->live <= KEPT_MAX; ++i) {
                kept_put(k, APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t *), 0);
            }
            if (k->live <= KEPT_MAX && rev && cluster) {
                k->revision = rev;
                k->at = now;
                k->cluster = apr_pstrdup(k->pool, cluster);
                items = k->items;
            }
            else {
                kept_reset(k);
            }
            acme_log(ACME_LOG_MARK, ACME_LOG_INFO, APR_SUCCESS, ACMELOG(2401) "store: %s read: "
                     "all %d item(s), as of revision %" APR_INT64_T_FMT "%s", pre, kvs->nelts,
                     rev, k->revision ? "" : "; too large to keep for the next view");
        }
    }
    es->snap_from_kept |= k && items == k->items;
    es->snap_prefix[es->nsnap] = pre;
    es->snap[es->nsnap++] = items;
    return APR_SUCCESS;
}

apr_status_t acme_store_etcd_snapshot(acme_store_t *s, acme_store_group_t g, const char *name,
                                      apr_pool_t *p)
{
    es_t *es = s->baton;
    apr_status_t rv;

    snap_drop(es);
    if (!p) {
        return APR_SUCCESS;
    }
    if ((rv = view_add(es, g, name, 0, p)) != APR_SUCCESS) {
        snap_drop(es);
        return rv;
    }
    apr_pool_cleanup_register(p, es, snap_cleanup, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

apr_status_t acme_store_etcd_view(acme_store_t *s, const acme_store_group_t *groups, int n,
                                  apr_interval_time_t max_age, apr_pool_t *p)
{
    es_t *es;
    apr_status_t rv = APR_SUCCESS;
    int i;

    if (!s || strcmp(s->kind, "etcd")) {
        return APR_ENOTIMPL;    /* files: every read is local anyway */
    }
    es = s->baton;
    snap_drop(es);
    if (!p) {
        return APR_SUCCESS;
    }
    for (i = 0; i < n && rv == APR_SUCCESS; ++i) {
        rv = view_add(es, groups[i], NULL, max_age, p);
    }
    if (rv != APR_SUCCESS) {
        snap_drop(es);      /* every read asks etcd, as without a view */
        return rv;
    }
    apr_pool_cleanup_register(p, es, snap_cleanup, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

/* ---- watch -------------------------------------------------------------------------- */

typedef struct {
    const es_t *es;
    apr_size_t skip;                 /* strlen of the group's prefix */
    acme_store_watch_fn *fn;
    void *baton;
} es_watch_t;

static apr_status_t es_watch_event(void *baton, const acme_etcd_kv_t *kv, int deleted,
                                   apr_pool_t *p)
{
    es_watch_t *w = baton;
    const es_t *es = w->es;
    const char *name, *aspect, *data = NULL;
    apr_size_t len = 0;
    char *slash;
    apr_status_t rv;

    if (!kv) {
        return w->fn(w->baton, NULL, NULL, NULL, 0, p);
    }
    name = apr_pstrdup(p, kv->key + w->skip);
    slash = strchr(name, '/');
    if (!slash) {
        return APR_SUCCESS;     /* not an item: nothing of ours */
    }
    *slash = '\0';
    aspect = slash + 1;
    if (!acme_store_name_is_valid(name) || !acme_store_name_is_valid(aspect)) {
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, APR_EINVAL, ACMELOG(1108) "store: a changed "
                 "etcd key below %s is not an item name (written by something else?); ignored",
                 es->prefix);
        return APR_SUCCESS;
    }
    /* a challenge of the earlier item format is not taken over: it is
     * plain, and answers for a few minutes at most */
    rv = deleted ? APR_SUCCESS : open_item(&data, &len, NULL, es, kv->key, kv->value,
                                           kv->value_len, p);
    if (rv == ITEM_EOLD) {
        refused(es, kv->key, kv->value, kv->value_len,
                "a challenge in mod_acme's earlier item format");
    }
    if (rv != APR_SUCCESS) {
        return APR_SUCCESS;     /* logged, naming the key; a reader refuses it too */
    }
    return w->fn(w->baton, name, aspect, data, len, p);
}

static apr_status_t es_watch(acme_store_t *s, acme_store_group_t g, apr_interval_time_t duration,
                             acme_store_watch_fn *fn, void *baton, apr_pool_t *p)
{
    const es_t *es = s->baton;
    const char *pre = name_prefix(es, g, NULL, p);
    acme_result_t *r = acme_result_make(p);
    apr_array_header_t *kvs;
    apr_int64_t rev = 0, count;
    es_watch_t w;
    apr_status_t rv;
    int i;

    if (!pre) {
        return APR_EINVAL;
    }
    w.es = es;
    w.skip = strlen(pre);
    w.fn = fn;
    w.baton = baton;
    /* what the group holds first (a new child knows every answer at once,
     * not one lookup at a time), then the changes after that revision */
    if ((rv = read_pages(&kvs, &count, &rev, es, pre, 0, 0, p, r)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < kvs->nelts; ++i) {
        if ((rv = es_watch_event(&w, APR_ARRAY_IDX(kvs, i, acme_etcd_kv_t *), 0, p))
            != APR_SUCCESS) {
            return rv;
        }
    }
    rv = acme_etcd_watch(es->etcd, pre, rev + 1, duration, es_watch_event, &w, p, r);
    return rv == APR_SUCCESS || rv == APR_EINTR ? rv : report(r, p);
}

/* The schema item of a cluster that version 1 set up: sealed with the store
 * key itself, so it authenticates; written anew in the current form. */
static apr_status_t upgrade_schema_item(const char **pdata, apr_size_t *plen, const es_t *es,
                                        const acme_etcd_kv_t *kv, apr_pool_t *p)
{
    acme_result_t *r = acme_result_make(p);
    acme_etcd_txn_t *t;
    acme_etcd_txn_result_t *res;
    const char *value;
    apr_size_t vlen;
    head_t h;
    apr_status_t rv;

    if (!parse_head(&h, kv->value, kv->value_len) || h.form != ITEM_SEALED) {
        return refused(es, kv->key, kv->value, kv->value_len,
                       "the store's schema item is plain (mod_acme never wrote it so)");
    }
    rv = open_v1_sealed(pdata, plen, es, kv, &h, p);
    if (rv != APR_SUCCESS
        || encode(&value, &vlen, es, kv->key, *pdata, *plen, 1, h.mtime, p) != APR_SUCCESS) {
        return rv != APR_SUCCESS ? rv : APR_EGENERAL;
    }
    t = acme_etcd_txn_make(p);
    acme_etcd_txn_if_mod(t, kv->key, kv->mod_revision);
    acme_etcd_txn_put(t, ACME_ETCD_THEN, kv->key, value, vlen, 0);
    /* lost to another server that did the same: its copy is as good */
    acme_etcd_txn_commit(&res, es->etcd, t, p, r);
    return APR_SUCCESS;
}

apr_status_t acme_store_etcd_verify(acme_store_t *s, apr_pool_t *p, const char **perr)
{
    const es_t *es = s->baton;
    const char *key = apr_pstrcat(p, es->prefix, META_KEY, NULL), *value, *data, *jerr;
    char fresh[64];
    acme_result_t *r = acme_result_make(p);
    acme_etcd_kv_t *kv;
    acme_etcd_txn_t *t;
    acme_etcd_txn_result_t *res;
    acme_json_t *json;
    apr_size_t vlen, len;
    apr_status_t rv;
    long long schema;

    *perr = NULL;
    rv = acme_etcd_get(&kv, es->etcd, key, p, r);
    if (rv == APR_ENOENT) {
        /* the first server of the cluster */
        apr_snprintf(fresh, sizeof(fresh), "{\"schema\": %d}\n", ACME_STORE_SCHEMA);
        rv = encode(&value, &vlen, es, key, fresh, strlen(fresh), 1, apr_time_now(), p);
        if (rv != APR_SUCCESS) {
            *perr = "cannot seal the store's schema item";
            return rv;
        }
        t = acme_etcd_txn_make(p);
        acme_etcd_txn_if_absent(t, key);
        acme_etcd_txn_put(t, ACME_ETCD_THEN, key, value, vlen, 0);
        acme_etcd_txn_get(t, ACME_ETCD_ELSE, key, 0);
        if (acme_etcd_txn_commit(&res, es->etcd, t, p, r) != APR_SUCCESS) {
            *perr = acme_result_describe(r, p);
            return r->status;
        }
        if (res->succeeded) {
            return APR_SUCCESS;
        }
        /* another server was first: check what it wrote */
        kv = APR_ARRAY_IDX(APR_ARRAY_IDX(res->ranges, 0, apr_array_header_t *), 0,
                           acme_etcd_kv_t *);
        rv = APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        *perr = acme_result_describe(r, p);
        return r->status;
    }
    rv = open_item(&data, &len, NULL, es, key, kv->value, kv->value_len, p);
    if (rv == ITEM_EOLD) {
        rv = upgrade_schema_item(&data, &len, es, kv, p);
    }
    if (rv != APR_SUCCESS) {
        *perr = apr_psprintf(p, "the etcd store under %s was set up with another "
                             "ManagedStoreEncryptionKey (%s does not decrypt): every server of "
                             "a cluster needs the same key file", es->prefix, key);
        return APR_EACCES;
    }
    if (acme_json_parse(&json, p, data, len, &jerr) != APR_SUCCESS
        || acme_json_type(json, "schema", NULL) != ACME_JSON_INT
        || (schema = acme_json_getl(json, "schema", NULL)) < 1) {
        *perr = apr_psprintf(p, "the etcd item %s is corrupt: it must hold {\"schema\": %d}",
                             key, ACME_STORE_SCHEMA);
        return APR_EINVAL;
    }
    if (schema > ACME_STORE_SCHEMA) {
        *perr = apr_psprintf(p, "the etcd store under %s has schema %" APR_INT64_T_FMT ", newer "
                             "than this mod_acme's %d: update this server", es->prefix,
                             (apr_int64_t)schema, ACME_STORE_SCHEMA);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t es_wipe(void *data)
{
    es_t *es = data;

    acme_wipe(es->seal_key, sizeof(es->seal_key));
    acme_wipe(es->mac_key, sizeof(es->mac_key));
    return APR_SUCCESS;
}

/* ---- creation ---------------------------------------------------------------------------- */

apr_status_t acme_store_etcd_create(acme_store_t **pstore, apr_pool_t *p,
                                    struct acme_etcd_t *etcd, const char *prefix,
                                    const unsigned char *seal_key, const char **perr)
{
    acme_store_t *s;
    es_t *es;
    apr_size_t i, n;

    *pstore = NULL;
    *perr = NULL;
    prefix = prefix ? prefix : ACME_STORE_ETCD_PREFIX_DEFAULT;
    n = strlen(prefix);
    if (!n || n > MAX_PREFIX || strstr(prefix, "..")) {
        *perr = apr_psprintf(p, "the etcd key prefix must have 1 to %d characters and no '..'",
                             MAX_PREFIX);
        return APR_EINVAL;
    }
    for (i = 0; i < n; ++i) {
        if (!apr_isgraph(prefix[i])) {
            *perr = "the etcd key prefix must be printable ASCII without spaces";
            return APR_EINVAL;
        }
    }
    if (!etcd || !seal_key) {
        *perr = "the etcd store needs an etcd client and the encryption key";
        return APR_EINVAL;
    }
    es = apr_pcalloc(p, sizeof(*es));
    es->pool = p;
    es->etcd = etcd;
    es->prefix = prefix[n - 1] == '/' ? apr_pstrdup(p, prefix) : apr_pstrcat(p, prefix, "/", NULL);
    es->key = seal_key;
    if (acme_key_derive(es->seal_key, sizeof(es->seal_key), seal_key, ACME_SEAL_KEY_LEN,
                        KDF_SEAL) != APR_SUCCESS
        || acme_key_derive(es->mac_key, sizeof(es->mac_key), seal_key, ACME_SEAL_KEY_LEN,
                           KDF_MAC) != APR_SUCCESS) {
        *perr = "cannot derive the item keys from the encryption key";
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, es, es_wipe, apr_pool_cleanup_null);
    es->refusals = apr_pcalloc(p, REFUSAL_SLOTS * sizeof(*es->refusals));
    s = apr_pcalloc(p, sizeof(*s));
    s->baton = es;
    s->load = es_load;
    s->save = es_save;
    s->remove = es_remove;
    s->list = es_list;
    s->mtime = es_mtime;
    s->move = es_move;
    s->claim = es_claim;
    s->renew = es_renew;
    s->release = es_release;
    s->path = es_path;
    s->watch = es_watch;
    s->snapshot = acme_store_etcd_snapshot;
    s->view = acme_store_etcd_view;
    s->sweep = es_sweep;
    s->flags = ACME_STORE_SHARED;
    s->kind = "etcd";
    s->where = acme_etcd_endpoints(etcd, p);
    *pstore = s;
    return APR_SUCCESS;
}
