/* acme_status.c: one function from (job spec, store contents, now) to a
 * domain's status record, with the one set of state names and rules. */
#include <string.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_thread_mutex.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_renew.h"
#include "acme_names.h"
#include "acme_status.h"
#include "acme_jobrec.h"

static const char *const state_names[ACME_DS_COUNT] = {
    "missing-config", "renewing", "expiring", "error", "pending", "due", "ok"
};

const char *acme_status_state_name(acme_domain_state_t s)
{
    return s < ACME_DS_COUNT ? state_names[s] : "unknown";
}

/* In a shared store, how long a staged result for other names (another
 * server's, in a rolling change) holds this server's order back: its maker
 * activates it at its next restart; one left by a maker that is gone for
 * good must not block the domain for ever. */
#define ACME_STATUS_OTHERS_STAGED_WAIT apr_time_from_sec(3600)

/* A staged result counts only when it covers every configured name: one
 * for an older set of names is replaced, not activated. In a shared store
 * one for other names counts for a while too: ordering over it would be
 * the fight docs/cluster.md ("Rolling changes") rules out. */
static int staged_complete(acme_store_t *store, const acme_job_spec_t *spec, apr_time_t now,
                           apr_pool_t *p)
{
    acme_json_t *meta;
    apr_array_header_t *names;
    apr_time_t at = 0;
    const char *t;
    int i, j, found;

    if (acme_store_load_json(store, ACME_SG_STAGING, spec->domain, ACME_JOB_META, &meta, p)
            != APR_SUCCESS
        || acme_json_getsa(&names, meta, p, ACME_MK_NAMES, NULL) != APR_SUCCESS) {
        return 0;
    }
    t = acme_json_gets(meta, ACME_MK_STAGED, NULL);
    if ((store->flags & ACME_STORE_SHARED) && t
        && acme_time_parse_rfc3339(&at, t) == APR_SUCCESS
        && now - at < ACME_STATUS_OTHERS_STAGED_WAIT) {
        return 1;
    }
    for (i = 0; i < spec->names->nelts; ++i) {
        const char *n = APR_ARRAY_IDX(spec->names, i, const char *);
        for (found = 0, j = 0; j < names->nelts && !found; ++j) {
            found = !strcmp(n, APR_ARRAY_IDX(names, j, const char *));
        }
        if (!found) return 0;
    }
    return 1;
}

static int count_orders(void *baton, const char *key, acme_json_t *value)
{
    (void)key;
    if (acme_json_type(value, NULL) == ACME_JSON_STRING) ++*(int *)baton;
    return 0;
}

/* Every run begins with a "renewing" event and ends with "staged" or
 * "errored"; other events say nothing about runs. */
static int run_in_progress(const acme_json_t *events, apr_pool_t *p)
{
    apr_size_t n = acme_json_array_len(events);
    const char *type;

    while (n-- > 0) {
        type = acme_json_gets(acme_json_array_at(events, p, n), ACME_JK_EV_TYPE, NULL);
        if (!type) continue;
        if (!strcmp(type, "renewing") || !strcmp(type, "order-created")) return 1;
        if (!strcmp(type, "staged") || !strcmp(type, "errored")) return 0;
    }
    return 0;
}

/* The renewal time under ARI, from the CA's last answer that job.json
 * remembers for this very certificate; else the window time. Marks
 * st->ari_due when the CA should be asked (again). */
static apr_time_t ari_renew_at(acme_status_t *st, const acme_status_cert_t *c,
                               apr_time_t window_at, apr_time_t now)
{
    acme_renew_input_t in;
    acme_renew_decision_t dec;
    acme_ari_window_t w;
    acme_renew_window_t win;
    const char *known;

    if (acme_json_getl(st->ari, ACME_JK_ARI_UNSUPPORTED, NULL) > apr_time_sec(now)
        || !c->ari_id) {
        return window_at; /* no ARI at the CA, or no AKI to name the certificate */
    }
    known = acme_json_gets(c->ari, ACME_JK_ARI_CERT_ID, NULL);
    if (!known || strcmp(known, c->ari_id)
        || acme_json_gett(c->ari, ACME_JK_ARI_NEXT_POLL, NULL) <= now) {
        st->ari_due = 1;
    }
    if (!known || strcmp(known, c->ari_id) || !acme_json_has(c->ari, ACME_JK_ARI_START, NULL)) {
        return window_at;
    }
    memset(&in, 0, sizeof(in));
    w.start = acme_json_gett(c->ari, ACME_JK_ARI_START, NULL);
    w.end = acme_json_gett(c->ari, ACME_JK_ARI_END, NULL);
    w.explanation_url = NULL;
    win.is_percent = 1;
    win.percent = 33.0;
    win.duration = 0;
    in.not_before = c->not_before;
    in.not_after = c->not_after;
    in.window = &win;
    in.ari = &w;
    in.prev_ari_start = w.start;
    in.prev_ari_end = w.end;
    in.prev_chosen = acme_json_gett(c->ari, ACME_JK_ARI_CHOSEN, NULL);
    in.rand_fraction = 0.5;
    in.now = now;
    return acme_renew_decide(&dec, &in) == APR_SUCCESS ? dec.renew_at : window_at;
}

struct acme_status_cache_t {
    apr_pool_t *pool;
    apr_thread_mutex_t *mutex;
    apr_hash_t *certs;             /* "<store>/<domain>/<file>" -> cert_facts_t */
    apr_hash_t *pauses;            /* CA URL -> pause_memo_t */
};

/* A CA's shared pause (jobs/_ca/), as read at 'checked'. */
typedef struct {
    apr_time_t until, checked;
} pause_memo_t;

/* The pause is one item for all of a CA's domains: with the cache it is
 * read at most once a second, not once per domain (a job reads it itself
 * before it asks the CA anything). */
#define ACME_PAUSE_MEMO apr_time_from_sec(1)

typedef struct {
    apr_time_t mtime;              /* of the file these facts are from */
    apr_time_t not_before, not_after;
    const char *issuer, *serial, *fingerprint, *ari_id;
    apr_array_header_t *sans;
} cert_facts_t;

apr_status_t acme_status_cache_create(acme_status_cache_t **pcache, apr_pool_t *p)
{
    acme_status_cache_t *sc = apr_pcalloc(p, sizeof(*sc));

    sc->pool = p;
    sc->certs = apr_hash_make(p);
    sc->pauses = apr_hash_make(p);
    *pcache = sc;
    return apr_thread_mutex_create(&sc->mutex, APR_THREAD_MUTEX_DEFAULT, p);
}

static apr_time_t ca_paused(acme_status_cache_t *sc, acme_store_t *store, const char *ca,
                            apr_pool_t *p)
{
    apr_time_t real = apr_time_now(), until;
    pause_memo_t *m = NULL;

    if (sc && ca) {
        apr_thread_mutex_lock(sc->mutex);
        m = apr_hash_get(sc->pauses, ca, APR_HASH_KEY_STRING);
        until = m && real - m->checked < ACME_PAUSE_MEMO ? m->until : -1;
        apr_thread_mutex_unlock(sc->mutex);
        if (until >= 0) {
            return until;
        }
    }
    until = acme_job_ca_pause_until(store, ca, p);
    if (sc && ca) {
        apr_thread_mutex_lock(sc->mutex);
        if (!(m = apr_hash_get(sc->pauses, ca, APR_HASH_KEY_STRING))) {
            m = apr_pcalloc(sc->pool, sizeof(*m));
            apr_hash_set(sc->pauses, apr_pstrdup(sc->pool, ca), APR_HASH_KEY_STRING, m);
        }
        m->until = until;
        m->checked = real;
        apr_thread_mutex_unlock(sc->mutex);
    }
    return until;
}

/* The facts of the file's version mt, or NULL. Entries are never freed, so
 * the pointer stays good after the lock is released. */
static const cert_facts_t *facts_get(acme_status_cache_t *sc, const char *id, apr_time_t mt)
{
    const cert_facts_t *f;

    apr_thread_mutex_lock(sc->mutex);
    f = apr_hash_get(sc->certs, id, APR_HASH_KEY_STRING);
    apr_thread_mutex_unlock(sc->mutex);
    return f && f->mtime == mt ? f : NULL;
}

static void facts_put(acme_status_cache_t *sc, const char *id, apr_time_t mt,
                      const acme_status_cert_t *c)
{
    cert_facts_t *f;

    apr_thread_mutex_lock(sc->mutex);
    f = apr_pcalloc(sc->pool, sizeof(*f));
    f->mtime = mt;
    f->not_before = c->not_before;
    f->not_after = c->not_after;
    f->issuer = apr_pstrdup(sc->pool, c->issuer);
    f->serial = apr_pstrdup(sc->pool, c->serial);
    f->fingerprint = apr_pstrdup(sc->pool, c->fingerprint);
    f->ari_id = c->ari_id ? apr_pstrdup(sc->pool, c->ari_id) : NULL;
    if (c->sans) {
        int i;
        f->sans = apr_array_make(sc->pool, c->sans->nelts, sizeof(const char *));
        for (i = 0; i < c->sans->nelts; ++i) {
            APR_ARRAY_PUSH(f->sans, const char *) =
                apr_pstrdup(sc->pool, APR_ARRAY_IDX(c->sans, i, const char *));
        }
    }
    apr_hash_set(sc->certs, apr_pstrdup(sc->pool, id), APR_HASH_KEY_STRING, f);
    apr_thread_mutex_unlock(sc->mutex);
}

static acme_status_cert_t *cert_read(acme_status_t *st, acme_store_t *store,
                                     const acme_job_spec_t *spec, const acme_json_t *job,
                                     acme_key_type_t t, apr_time_t now, apr_pool_t *p)
{
    acme_status_cert_t *c = apr_pcalloc(p, sizeof(*c));
    const char *file = acme_job_cert_file(p, t), *id = NULL;
    const cert_facts_t *f = NULL;
    apr_array_header_t *chain;
    apr_time_t mt = 0;
    apr_status_t rv;

    c->type = t;
    /* only where a version costs a stat: elsewhere (etcd) it costs a read */
    if (spec->status_cache && (store->flags & ACME_STORE_CHEAP_MTIME)
        && store->mtime(store, ACME_SG_DOMAINS, spec->domain, file, &mt, p) == APR_SUCCESS) {
        id = apr_pstrcat(p, store->where ? store->where : store->kind, "/", spec->domain, "/",
                         file, NULL);
        f = facts_get(spec->status_cache, id, mt);
    }
    if (f) {
        c->present = 1;
        c->not_before = f->not_before;
        c->not_after = f->not_after;
        c->issuer = f->issuer;
        c->serial = f->serial;
        c->fingerprint = f->fingerprint;
        c->ari_id = f->ari_id;
        c->sans = f->sans;
        c->covers = acme_sans_cover(c->sans, spec->names, p);
        goto window;
    }
    rv = acme_store_load_chain(store, ACME_SG_DOMAINS, spec->domain, file, &chain, p);
    if (rv != APR_SUCCESS) {
        if (!APR_STATUS_IS_ENOENT(rv)) {
            c->load_error = rv == APR_EINVAL ? "the item holds no valid PEM certificate"
                                             : "the item cannot be read";
        }
        return c;
    }
    c->present = 1;
    c->leaf = APR_ARRAY_IDX(chain, 0, const acme_cert_t *);
    c->covers = acme_cert_covers(c->leaf, spec->names);
    c->not_before = acme_cert_not_before(c->leaf);
    c->not_after = acme_cert_not_after(c->leaf);
    c->issuer = acme_cert_issuer_cn(c->leaf, p);
    c->serial = acme_cert_serial_hex(c->leaf, p);
    c->fingerprint = acme_cert_fingerprint(c->leaf, p);
    if (acme_cert_ari_id(&c->ari_id, p, c->leaf) != APR_SUCCESS) c->ari_id = NULL;
    if (acme_cert_sans(&c->sans, p, c->leaf) != APR_SUCCESS) c->sans = NULL;
    if (id) {
        facts_put(spec->status_cache, id, mt, c);
    }
window:
    if (acme_json_type(st->ari, acme_key_type_file_tag(t), NULL) == ACME_JSON_OBJECT) {
        c->ari = acme_json_getj(st->ari, p, acme_key_type_file_tag(t), NULL);
    }
    c->renew_at = acme_renew_at_window(c->not_before, c->not_after, &spec->window);
    if (spec->ari && job) {
        c->renew_at = ari_renew_at(st, c, c->renew_at, now);
    }
    return c;
}

static void job_read(acme_status_t *st, const acme_jobrec_t *rec, apr_pool_t *p)
{
    st->errors = rec->errors;
    st->next_attempt = rec->next_attempt;
    st->last_error = rec->errors ? rec->last_error : NULL;
    st->preflight = rec->preflight_diagnosis;
    if (st->preflight) {
        st->preflight_time = rec->preflight_time;
        st->preflight_holding = rec->preflight_holding;
    }
    st->job_state = rec->state;
    st->job_ca = rec->ca;
    st->last_success = rec->last_success;
    st->last_run = rec->last_run;
    st->renewals_ok = rec->renewals_ok;
    st->renewals_failed = rec->renewals_failed;
    st->orders = rec->orders;
    if (st->orders) acme_json_iter(st->orders, p, count_orders, &st->in_flight);
    st->events = rec->events;
    if (st->events) st->run_in_progress = run_in_progress(st->events, p);
    st->ari = rec->ari;
}

static void meta_read(acme_status_t *st, acme_store_t *store, const char *domain, apr_pool_t *p)
{
    acme_json_t *meta = NULL, *staged = NULL;
    const char *t;

    if (acme_store_load_json(store, ACME_SG_DOMAINS, domain, ACME_JOB_META, &meta, p)
        == APR_SUCCESS) {
        st->cert_ca = acme_json_gets(meta, ACME_MK_CA, NULL);
        if (acme_json_getsa(&st->meta_names, meta, p, ACME_MK_NAMES, NULL) != APR_SUCCESS) {
            st->meta_names = NULL;
        }
        if (!st->last_success && (t = acme_json_gets(meta, ACME_MK_STAGED, NULL))) {
            acme_time_parse_rfc3339(&st->last_success, t);
        }
    }
    if (!st->meta_names
        && acme_store_load_json(store, ACME_SG_STAGING, domain, ACME_JOB_META, &staged, p)
               == APR_SUCCESS
        && acme_json_getsa(&st->meta_names, staged, p, ACME_MK_NAMES, NULL) != APR_SUCCESS) {
        st->meta_names = NULL;
    }
}

/* Renewal is late when its time has passed and little of the lifetime is left. */
static int is_expiring(const acme_status_cert_t *c, apr_time_t now)
{
    return c->covers && c->renew_at <= now
           && c->not_after - now < (c->not_after - c->not_before) / ACME_EXPIRING_DIVISOR;
}

static void state_decide(acme_status_t *st, const char *config_problem, apr_time_t now)
{
    if (config_problem) {
        st->state = ACME_DS_MISSING_CONFIG;
        st->reason = config_problem;
    }
    else if (st->in_flight > 0 || st->run_in_progress || st->staged) {
        st->state = ACME_DS_RENEWING;
        st->reason = st->staged ? "a new certificate waits for the graceful restart"
                                : "an order is in progress";
    }
    else if (st->expiring) {
        st->state = ACME_DS_EXPIRING;
        st->reason = st->not_after <= now ? "the certificate has expired and is not renewed"
                                          : "the certificate ends soon and is not renewed yet";
    }
    else if (st->errors > 0) {
        st->state = ACME_DS_ERROR;
        st->reason = "the last renewal attempt failed";
    }
    else if (!st->has_cert) {
        st->state = ACME_DS_PENDING;
        st->reason = "no certificate yet";
    }
    else if (st->due->nelts > 0) {
        st->state = ACME_DS_DUE;
        st->reason = st->renew_requested ? "a renewal was requested"
                                         : "the renewal time has come";
    }
    else {
        st->state = ACME_DS_OK;
        st->reason = "certificate valid";
    }
    /* What happens next, and when. */
    st->next_kind = "none";
    if (config_problem) {
        return;
    }
    if (st->staged) {
        st->next_kind = "activation";
    }
    else if (st->errors > 0 && st->next_attempt > 0) {
        st->next = st->next_attempt;
        st->next_kind = "retry";
    }
    else if (!st->has_cert || st->renew_requested) {
        st->next = now;
        st->next_kind = "due";
    }
    else if (st->renew_at) {
        st->next = st->renew_at > now ? st->renew_at : now;
        st->next_kind = st->renew_at > now ? "renew" : "due";
    }
}

apr_status_t acme_status_get(acme_status_t **pst, acme_store_t *store,
                             const acme_job_spec_t *spec, const char *config_problem,
                             apr_time_t now, apr_pool_t *p)
{
    acme_status_t *st = apr_pcalloc(p, sizeof(*st));
    acme_json_t *job = NULL;
    acme_jobrec_t *rec;
    apr_time_t mt;
    int i;

    st->due = apr_array_make(p, 2, sizeof(acme_key_type_t));
    st->certs = apr_array_make(p, 2, sizeof(acme_status_cert_t *));
    st->staged = staged_complete(store, spec, now, p);
    if (acme_jobrec_read(&rec, store, spec->domain, p, NULL) == APR_SUCCESS) {
        job_read(st, rec, p);
        job = rec->json;
    }
    meta_read(st, store, spec->domain, p);
    st->ca_url = acme_job_current_ca(spec, job);
    st->has_cert = spec->key_types->nelts > 0;
    for (i = 0; i < spec->key_types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(spec->key_types, i, acme_key_type_t);
        acme_status_cert_t *c = cert_read(st, store, spec, job, t, now, p);

        APR_ARRAY_PUSH(st->certs, acme_status_cert_t *) = c;
        if (!c->covers) {
            st->has_cert = 0;
            APR_ARRAY_PUSH(st->due, acme_key_type_t) = t;
            continue;
        }
        if (!st->renew_at || c->renew_at < st->renew_at) st->renew_at = c->renew_at;
        if (!st->first || c->not_after < st->first->not_after) st->first = c;
        st->expiring |= is_expiring(c, now);
        if (c->renew_at <= now) APR_ARRAY_PUSH(st->due, acme_key_type_t) = t;
    }
    if (st->first) {
        st->not_after = st->first->not_after;
        st->not_before = st->first->not_before;
    }
    if (spec->memo && spec->memo->ari_next > now) {
        st->ari_due = 0;
    }
    if (spec->memo && spec->memo->next_attempt > st->next_attempt) {
        /* This process saw failures that the store could not record. */
        st->next_attempt = spec->memo->next_attempt;
        if (spec->memo->errors > st->errors) st->errors = spec->memo->errors;
    }
    st->retry_after_active = st->last_error && st->last_error->retry_after > now;
    if (!st->staged && store->mtime(store, ACME_SG_JOBS, spec->domain, ACME_JOB_RENEW_REQUEST,
                                    &mt, p) == APR_SUCCESS) {
        /* An operator asked for it: every type, now. */
        apr_array_clear(st->due);
        for (i = 0; i < spec->key_types->nelts; ++i) {
            APR_ARRAY_PUSH(st->due, acme_key_type_t) =
                APR_ARRAY_IDX(spec->key_types, i, acme_key_type_t);
        }
        st->next_attempt = 0;
        st->renew_requested = 1;
    }
    {
        /* One server's rate limit at the CA holds every server back. */
        apr_time_t paused = ca_paused(spec->status_cache, store, st->ca_url, p);
        if (paused > now) {
            if (paused > st->next_attempt) st->next_attempt = paused;
            st->ari_due = 0;
        }
    }
    if (st->staged) {
        /* Waiting for activation: nothing is due until the restart. */
        apr_array_clear(st->due);
    }
    state_decide(st, config_problem, now);
    *pst = st;
    return APR_SUCCESS;
}

apr_int64_t acme_status_days_left(apr_time_t not_after, apr_time_t now)
{
    apr_interval_time_t left = not_after - now, day = apr_time_from_sec(86400);

    return left / day - (left % day < 0 ? 1 : 0);
}

acme_json_t *acme_status_cert_json(const acme_status_cert_t *c, apr_time_t now, apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p);

    acme_json_sets(j, acme_key_type_name(c->type), "key-type", NULL);
    acme_json_setb(j, c->covers, "covers-names", NULL);
    acme_json_sets(j, acme_time_rfc3339(p, c->not_before), "valid-from", NULL);
    acme_json_sets(j, acme_time_rfc3339(p, c->not_after), "valid-until", NULL);
    acme_json_setl(j, acme_status_days_left(c->not_after, now), "days-left", NULL);
    if (c->issuer) acme_json_sets(j, c->issuer, "issuer", NULL);
    if (c->serial) acme_json_sets(j, c->serial, "serial", NULL);
    if (c->fingerprint) acme_json_sets(j, c->fingerprint, "sha256-fingerprint", NULL);
    if (c->sans) acme_json_setsa(j, c->sans, "names", NULL);
    return j;
}

acme_json_t *acme_status_error_json(const acme_result_t *e, apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p);
    int i;

    if (e->problem) acme_json_sets(j, e->problem, "problem", NULL);
    if (e->detail) acme_json_sets(j, e->detail, "detail", NULL);
    if (e->activity) acme_json_sets(j, e->activity, "activity", NULL);
    if (e->http_status) acme_json_setl(j, e->http_status, "http-status", NULL);
    if (e->retry_after > 0) {
        acme_json_sets(j, acme_time_rfc3339(p, e->retry_after), "retry-after", NULL);
    }
    if (e->subproblems && e->subproblems->nelts) {
        acme_json_t *subs = acme_json_new_array(p);
        for (i = 0; i < e->subproblems->nelts; ++i) {
            const acme_subproblem_t *sp = APR_ARRAY_IDX(e->subproblems, i, acme_subproblem_t *);
            acme_json_t *o = acme_json_new_object(p);
            if (sp->type) acme_json_sets(o, sp->type, "problem", NULL);
            if (sp->detail) acme_json_sets(o, sp->detail, "detail", NULL);
            if (sp->id_value) acme_json_sets(o, sp->id_value, "identifier", NULL);
            acme_json_array_append(subs, o);
        }
        acme_json_setj(j, subs, "subproblems", NULL);
    }
    return j;
}

acme_json_t *acme_status_preflight_json(const acme_status_t *st, apr_pool_t *p)
{
    acme_json_t *j;

    if (!st->preflight) return NULL;
    j = acme_json_new_object(p);
    acme_json_sets(j, st->preflight, "diagnosis", NULL);
    if (st->preflight_time) {
        acme_json_sets(j, acme_time_rfc3339(p, st->preflight_time), "time", NULL);
    }
    acme_json_setb(j, st->preflight_holding, "holding", NULL);
    return j;
}
