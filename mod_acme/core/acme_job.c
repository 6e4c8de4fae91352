/* acme_job.c: drives one managed domain from "certificate due" to "result
 * staged", persisting each step so that restarts resume instead of repeat. */
#include <string.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_network_io.h>
#include <unistd.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_http.h"
#include "acme_acme.h"
#include "acme_store.h"
#include "acme_renew.h"
#include "acme_job.h"
#include "acme_jobrec.h"
#include "acme_publish.h"
#include "acme_preflight.h"
#include "acme_status.h"

/* One account per CA: jobs running in parallel must not create two. */
static apr_thread_mutex_t *account_mutex;

apr_status_t acme_job_init(apr_pool_t *p)
{
    if (account_mutex) {
        return APR_SUCCESS;
    }
    acme_http_global_init();
    return apr_thread_mutex_create(&account_mutex, APR_THREAD_MUTEX_DEFAULT, p);
}

const char *acme_job_cert_file(apr_pool_t *p, acme_key_type_t t)
{
    return apr_psprintf(p, "cert.%s.pem", acme_key_type_file_tag(t));
}

const char *acme_job_key_file(apr_pool_t *p, acme_key_type_t t)
{
    return apr_psprintf(p, "privkey.%s.pem", acme_key_type_file_tag(t));
}

const char *acme_job_ca_id(apr_pool_t *p, const char *ca_url)
{
    unsigned char digest[32];
    char *s, *c;
    const char *rest = ca_url;

    if (!strncasecmp(rest, "https://", 8)) rest += 8;
    s = apr_pstrndup(p, rest, 48);
    for (c = s; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '-' && *c != '.') *c = '_';
    }
    /* The hash keeps two CAs apart whose URLs only differ after 48 chars. */
    acme_sha256(digest, ca_url, strlen(ca_url));
    return apr_psprintf(p, "%s-%02x%02x%02x%02x", s, digest[0], digest[1], digest[2], digest[3]);
}

const char *acme_job_account_id(apr_pool_t *p, const char *ca_url, const char *eab_kid)
{
    const char *id = acme_job_ca_id(p, ca_url);
    char *k, *c;

    if (!eab_kid || !*eab_kid) {
        return id;
    }
    k = apr_pstrndup(p, eab_kid, 32);
    for (c = k; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '-') *c = '_';
    }
    return apr_psprintf(p, "%s-eab-%s", id, k);
}

static const char *ca_pause_item(apr_pool_t *p, const char *ca_url)
{
    return apr_pstrcat(p, acme_job_ca_id(p, ca_url), ".json", NULL);
}

apr_time_t acme_job_ca_pause_until(acme_store_t *store, const char *ca_url, apr_pool_t *p)
{
    acme_json_t *j;
    const char *ca;

    if (!ca_url || acme_store_load_json(store, ACME_SG_JOBS, ACME_CA_PAUSE_NAME,
                                        ca_pause_item(p, ca_url), &j, p) != APR_SUCCESS) {
        return 0;
    }
    ca = acme_json_gets(j, ACME_PK_CA, NULL);
    return ca && !strcmp(ca, ca_url) ? apr_time_from_sec(acme_json_getl(j, ACME_PK_UNTIL, NULL))
                                     : 0;
}

apr_status_t acme_job_ca_pause_set(acme_store_t *store, const char *ca_url, apr_time_t until,
                                   const char *detail, apr_pool_t *p)
{
    acme_json_t *j;

    if (acme_job_ca_pause_until(store, ca_url, p) >= until) {
        return APR_SUCCESS;
    }
    j = acme_json_new_object(p);
    acme_json_sets(j, ca_url, ACME_PK_CA, NULL);
    acme_json_setl(j, apr_time_sec(until) + (until % APR_USEC_PER_SEC ? 1 : 0), ACME_PK_UNTIL,
                   NULL);
    if (detail) acme_json_sets(j, detail, ACME_PK_DETAIL, NULL);
    return acme_store_save_json(store, ACME_SG_JOBS, ACME_CA_PAUSE_NAME,
                                ca_pause_item(p, ca_url), j, p);
}

/* ---- the order guard ---------------------------------------------------------- */

struct acme_job_guard_t {
    apr_pool_t *pool;
    apr_thread_mutex_t *mutex;    /* jobs take from their own threads */
    acme_store_t *store;
    const char *item;             /* <server>.json in jobs/_guard/ */
    int limit;
    apr_hash_t *cas;              /* CA URL -> acme_rate_guard_t* */
};

static acme_rate_guard_t *guard_of(acme_job_guard_t *guard, const char *ca_url)
{
    acme_rate_guard_t *g = apr_hash_get(guard->cas, ca_url, APR_HASH_KEY_STRING);

    if (!g) {
        g = apr_palloc(guard->pool, sizeof(*g));
        acme_rate_guard_init(g, guard->pool, guard->limit);
        apr_hash_set(guard->cas, apr_pstrdup(guard->pool, ca_url), APR_HASH_KEY_STRING, g);
    }
    return g;
}

/* What a record is read up to: far above any configuration, so that only
 * a damaged one is cut. */
#define GUARD_CAS_MAX 64
#define GUARD_TIMES_MAX 100000

typedef struct {
    acme_job_guard_t *guard;
    apr_pool_t *p;
} guard_read_t;

static int guard_read_ca(void *baton, const char *ca_url, acme_json_t *arr)
{
    guard_read_t *gr = baton;
    apr_size_t i, n = acme_json_array_len(arr);
    apr_time_t *times;
    int k = 0;

    if (!apr_hash_get(gr->guard->cas, ca_url, APR_HASH_KEY_STRING)
        && apr_hash_count(gr->guard->cas) >= GUARD_CAS_MAX) {
        return 0; /* a damaged record: more CAs than any configuration names */
    }
    if (n > GUARD_TIMES_MAX) {
        n = GUARD_TIMES_MAX;
    }
    times = apr_palloc(gr->p, sizeof(apr_time_t) * (n + 1));
    for (i = 0; i < n; ++i) {
        apr_time_t t = acme_json_gett(acme_json_array_at(arr, gr->p, i), NULL);
        if (t > 0) times[k++] = t; /* anything else is damage: skipped */
    }
    acme_rate_guard_merge(guard_of(gr->guard, ca_url), times, k, gr->p);
    return 0;
}

/* Merges the stored record into memory: another process of this server
 * (the previous generation's child) may have counted orders meanwhile. */
static void guard_read(acme_job_guard_t *guard, apr_pool_t *p)
{
    acme_json_t *j;
    guard_read_t gr;
    apr_status_t rv;

    rv = acme_store_load_json(guard->store, ACME_SG_JOBS, ACME_GUARD_NAME, guard->item, &j, p);
    if (rv == APR_EINVAL) {
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, 0, ACMELOG(1900) "the order guard's record "
                 "jobs/%s/%s is damaged: counting this server's orders from zero (it is "
                 "rewritten at the next order)", ACME_GUARD_NAME, guard->item);
    }
    if (rv != APR_SUCCESS) {
        return;
    }
    gr.guard = guard;
    gr.p = p;
    acme_json_iter(acme_json_getj(j, p, ACME_GK_ORDERS, NULL), p, guard_read_ca, &gr);
}

static void guard_write(acme_job_guard_t *guard, apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p), *orders = acme_json_new_object(p);
    apr_hash_index_t *hi;
    const char *data;
    apr_status_t rv;

    for (hi = apr_hash_first(p, guard->cas); hi; hi = apr_hash_next(hi)) {
        const void *ca_url;
        void *v;
        acme_rate_guard_t *g;
        acme_json_t *arr = acme_json_new_array(p);
        int i;

        apr_hash_this(hi, &ca_url, NULL, &v);
        g = v;
        for (i = 0; i < g->n; ++i) {
            acme_json_array_appendl(arr, apr_time_sec(g->times[i]));
        }
        acme_json_setj(orders, arr, (const char *)ca_url, NULL);
    }
    acme_json_setj(j, orders, ACME_GK_ORDERS, NULL);
    data = acme_json_dump(j, p, 0);
    /* Can be lost without harm (the guard is a cap), hence volatile. */
    rv = guard->store->save(guard->store, ACME_SG_JOBS, ACME_GUARD_NAME, guard->item, data,
                            strlen(data), ACME_STORE_VOLATILE, p);
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, rv, "the order guard's record jobs/%s/%s "
                 "cannot be written: the count holds in memory", ACME_GUARD_NAME, guard->item);
    }
}

apr_status_t acme_job_guard_create(acme_job_guard_t **pguard, apr_pool_t *p, acme_store_t *store,
                                   const char *server, int limit)
{
    acme_job_guard_t *guard = apr_pcalloc(p, sizeof(*guard));
    char host[APRMAXHOSTLEN + 1], *c;
    apr_pool_t *ptemp;
    apr_status_t rv;

    *pguard = NULL;
    if (!server) {
        if (apr_gethostname(host, sizeof(host), p) != APR_SUCCESS) {
            apr_cpystrn(host, "localhost", sizeof(host));
        }
        server = host;
    }
    if ((rv = apr_thread_mutex_create(&guard->mutex, APR_THREAD_MUTEX_DEFAULT, p))
        != APR_SUCCESS) {
        goto leave;
    }
    guard->pool = p;
    guard->store = store;
    guard->limit = limit;
    guard->cas = apr_hash_make(p);
    /* a store name: the host name's letters, digits, '-' and '.' */
    guard->item = c = apr_pstrcat(p, apr_pstrndup(p, server, 64), ".json", NULL);
    for (; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '-' && *c != '.') *c = '_';
    }
    apr_pool_create(&ptemp, p);
    guard_read(guard, ptemp);
    apr_pool_destroy(ptemp);
    *pguard = guard;
leave:
    return rv;
}

apr_time_t acme_job_guard_fits(acme_job_guard_t *guard, const char *ca_url, apr_time_t now,
                               int count)
{
    apr_time_t fits;

    apr_thread_mutex_lock(guard->mutex);
    fits = acme_rate_guard_fits(guard_of(guard, ca_url), now, count);
    apr_thread_mutex_unlock(guard->mutex);
    return fits;
}

apr_status_t acme_job_guard_take(acme_job_guard_t *guard, const char *ca_url, apr_time_t now,
                                 apr_pool_t *p, acme_result_t *r)
{
    acme_rate_guard_t *g;
    apr_time_t fits;
    apr_status_t rv = APR_SUCCESS;

    apr_thread_mutex_lock(guard->mutex);
    guard_read(guard, p);
    g = guard_of(guard, ca_url);
    /* whole seconds, as the record keeps them: a merge finds them again */
    fits = acme_rate_guard_take(g, apr_time_from_sec(apr_time_sec(now)), 1);
    if (fits) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, 0, ACMELOG(0335) "SAFETY STOP: %d new orders went "
                 "to the CA %s from this server in the last hour, the most it allows for its "
                 "certificates; no new order goes to it before %s. Something keeps failing: see "
                 "the errors logged before this line.", g->n, ca_url,
                 acme_time_rfc3339(p, fits));
        rv = acme_result_set(r, APR_EAGAIN, ACME_PROBLEM_SAFETY_STOP, "SAFETY STOP: %d new "
                             "orders went to the CA %s from this server in the last hour; no "
                             "new order before %s", g->n, ca_url, acme_time_rfc3339(p, fits));
        r->retry_after = fits;
    }
    else {
        guard_write(guard, p);
    }
    apr_thread_mutex_unlock(guard->mutex);
    return rv;
}

/* The CA in use: failover moves through spec->ca_urls. */
/* job.json's "ca-index", within the configured CAs (the file is the
 * child's: anything else counts as the first). */
static int ca_index(const acme_job_spec_t *spec, const acme_json_t *job)
{
    long long idx = job ? acme_json_getl(job, ACME_JK_CA_INDEX, NULL) : 0;

    return (idx < 0 || idx >= spec->ca_urls->nelts) ? 0 : (int)idx;
}

const char *acme_job_current_ca(const acme_job_spec_t *spec, const acme_json_t *job)
{
    if (!spec->ca_urls || spec->ca_urls->nelts == 0) {
        return spec->ca_url;
    }
    return APR_ARRAY_IDX(spec->ca_urls, ca_index(spec, job), const char *);
}

static apr_time_t job_now(const acme_job_spec_t *spec)
{
    return spec->clock ? spec->clock(spec->clock_baton) : apr_time_now();
}

static int stopping(const acme_job_spec_t *spec)
{
    return spec->stop && apr_atomic_read32(spec->stop);
}

/* When a run that ended before the CA was asked tries again: base, twice
 * as long with each such run in a row, at most max (or base if longer). */
static apr_time_t wait_next(const acme_job_spec_t *spec, apr_interval_time_t base,
                            apr_interval_time_t max)
{
    int n = spec->memo ? ++spec->memo->waits : 1;
    double frac = (double)acme_random_below(1000000) / 1000000.0;
    apr_time_t now = job_now(spec), next;

    if (base <= 0) {
        base = ACME_JOB_BUSY_WAIT;
    }
    if (max < base) {
        max = base;
    }
    next = acme_backoff_next(now, n, base, frac, 0, 0);
    return next > now + max ? now + max : next;
}

void acme_job_event(acme_json_t *job, apr_pool_t *p, const char *type, const char *detail)
{
    acme_json_t *old = acme_json_getj(job, p, ACME_JK_EVENTS, NULL);
    acme_json_t *events = acme_json_new_array(p), *ev;
    apr_size_t n = acme_json_array_len(old), i;

    for (i = n >= ACME_JOB_EVENTS_MAX ? n - ACME_JOB_EVENTS_MAX + 1 : 0; i < n; ++i) {
        acme_json_array_append(events, acme_json_array_at(old, p, i));
    }
    ev = acme_json_new_object(p);
    acme_json_sets(ev, acme_time_rfc3339(p, apr_time_now()), "time", NULL);
    acme_json_sets(ev, type, ACME_JK_EV_TYPE, NULL);
    if (detail) acme_json_sets(ev, detail, ACME_JK_EV_DETAIL, NULL);
    acme_json_array_append(events, ev);
    acme_json_setj(job, events, ACME_JK_EVENTS, NULL);
}

/* ---- ARI (RFC 9773) ------------------------------------------------------------ */

static apr_status_t make_client(acme_client_t **pclient, acme_http_t **phttp,
                                const acme_job_spec_t *spec, const char *ca_url, apr_pool_t *p,
                                acme_result_t *r)
{
    acme_http_config_t hconf;
    acme_http_t *http;
    apr_status_t rv;

    acme_http_config_init(&hconf);
    hconf.ca_file = spec->ca_file;
    hconf.proxy = spec->proxy;
    hconf.proxy_ca_file = spec->proxy_ca_file;
    hconf.abort = spec->stop;
    rv = spec->http ? spec->http(&http, p, &hconf, spec->http_baton)
                    : acme_http_curl_create(&http, p, &hconf);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:internal", "cannot set up the HTTP client");
    }
    rv = acme_client_create(pclient, p, ca_url, http);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:config", "cannot use the CA URL %s", ca_url);
    }
    acme_client_set_abort(*pclient, spec->stop);
    acme_client_set_wait_cb(*pclient, spec->on_wait, spec->wait_baton);
    if (spec->shared) acme_client_share(*pclient, spec->shared);
    if (phttp) *phttp = http;
    return APR_SUCCESS;
}

static apr_status_t ari_ask(acme_json_t *job, acme_http_t *http, const char *base,
                            const acme_job_spec_t *spec, acme_key_type_t t,
                            const acme_cert_t *leaf, apr_pool_t *p, acme_result_t *r)
{
    const char *tag = acme_key_type_file_tag(t), *certid, *url;
    acme_http_response_t *resp;
    acme_renew_input_t in;
    acme_renew_decision_t dec;
    acme_ari_window_t w;
    apr_time_t now = job_now(spec), retry = 0;
    apr_status_t rv;

    if (acme_cert_ari_id(&certid, p, leaf) != APR_SUCCESS) {
        return APR_SUCCESS;
    }
    url = apr_pstrcat(p, base, base[strlen(base) - 1] == '/' ? "" : "/", certid, NULL);
    acme_result_activity(r, "asking the CA's renewal information for %s (%s)", spec->domain,
                         acme_key_type_name(t));
    rv = acme_http_do(http, &resp, p, "GET", url, NULL, NULL, 0, 1, r);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = acme_renewal_info_parse(&w, &retry, resp, url, now, p, r);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    memset(&in, 0, sizeof(in));
    in.not_before = acme_cert_not_before(leaf);
    in.not_after = acme_cert_not_after(leaf);
    in.window = &spec->window;
    in.ari = &w;
    if (!strcmp(acme_json_gets(job, ACME_JK_ARI, tag, ACME_JK_ARI_CERT_ID, NULL) ? acme_json_gets(job, ACME_JK_ARI, tag, ACME_JK_ARI_CERT_ID, NULL) : "", certid)) {
        in.prev_ari_start = acme_json_gett(job, ACME_JK_ARI, tag, ACME_JK_ARI_START, NULL);
        in.prev_ari_end = acme_json_gett(job, ACME_JK_ARI, tag, ACME_JK_ARI_END, NULL);
        in.prev_chosen = acme_json_gett(job, ACME_JK_ARI, tag, ACME_JK_ARI_CHOSEN, NULL);
    }
    in.rand_fraction = (double)acme_random_below(1000000) / 1000000.0;
    in.now = now;
    if (acme_renew_decide(&dec, &in) != APR_SUCCESS) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "renewalInfo %s: unusable window", url);
    }
    acme_json_sets(job, certid, ACME_JK_ARI, tag, ACME_JK_ARI_CERT_ID, NULL);
    acme_json_setl(job, apr_time_sec(w.start), ACME_JK_ARI, tag, ACME_JK_ARI_START, NULL);
    acme_json_setl(job, apr_time_sec(w.end), ACME_JK_ARI, tag, ACME_JK_ARI_END, NULL);
    acme_json_setl(job, apr_time_sec(dec.chosen ? dec.chosen : dec.renew_at), ACME_JK_ARI, tag,
                   ACME_JK_ARI_CHOSEN, NULL);
    acme_json_setl(job, apr_time_sec(acme_ari_next_poll(now, retry > now ? retry - now : 0)),
                   "ari", tag, "next-poll", NULL);
    if (w.explanation_url) {
        acme_json_sets(job, w.explanation_url, ACME_JK_ARI, tag, ACME_JK_ARI_EXPLANATION, NULL);
    }
    if (dec.chosen_changed) {
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(0401) "%s: the CA suggests renewing %s between %s "
                 "and %s; chosen: %s", spec->domain, acme_key_type_name(t),
                 acme_time_rfc3339(p, w.start), acme_time_rfc3339(p, w.end),
                 acme_time_rfc3339(p, dec.renew_at));
    }
    return APR_SUCCESS;
}

/* The refresh's part of job.json ("ari"); baton NULL: the record as it is. */
static apr_status_t ari_put(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    (void)p;
    if (baton) acme_json_setj(rec->json, baton, ACME_JK_ARI, NULL);
    return APR_SUCCESS;
}

/* The refresh writes without the claim (acme_jobrec_update takes it for
 * the write): while a run holds it, the refresh waits for the run. */
static apr_status_t ari_write(acme_store_t *store, const acme_job_spec_t *spec,
                              acme_json_t *ari, apr_pool_t *p, acme_result_t *r)
{
    acme_result_t *wr = acme_result_make(p);
    apr_status_t rv = acme_jobrec_update(store, NULL, spec->domain, ari_put, ari, p, wr);

    if (rv == APR_EBUSY) {
        acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, 0, ACMELOG(2351) "%s: %s; renewal information "
                 "asked again later", spec->domain, wr->detail);
        if (spec->memo) spec->memo->ari_next = job_now(spec) + ACME_JOB_BUSY_WAIT;
    }
    else if (rv != APR_SUCCESS) {
        acme_result_set(r, rv, ACME_PROBLEM_STORE_UNWRITABLE,
                        "the store cannot be written (jobs/%s/%s): the CA's renewal information "
                        "is not asked until it can", spec->domain, ACME_JOB_STATE);
        if (spec->memo) {
            spec->memo->ari_next = wait_next(spec, spec->retry_delay, ACME_JOB_STORE_WAIT_MAX);
        }
    }
    return rv;
}

apr_status_t acme_job_ari_refresh(acme_store_t *store, const acme_job_spec_t *spec,
                                  apr_pool_t *p, acme_result_t *r)
{
    acme_jobrec_t *rec;
    acme_json_t *job;
    acme_client_t *client;
    acme_http_t *http;
    const acme_directory_t *dir;
    const char *ca;
    apr_status_t rv = APR_SUCCESS;
    int i;

    /* An answer that cannot be kept would be asked for again at once. */
    rv = ari_write(store, spec, NULL, p, r);
    if (rv != APR_SUCCESS) {
        return rv == APR_EBUSY ? APR_SUCCESS : rv;
    }
    acme_jobrec_read(&rec, store, spec->domain, p, NULL);
    job = rec ? rec->json : acme_json_new_object(p);
    ca = acme_job_current_ca(spec, job);
    rv = make_client(&client, &http, spec, ca, p, r);
    if (rv == APR_SUCCESS) {
        rv = acme_client_directory(&dir, client, r);
    }
    if (rv != APR_SUCCESS) {
        /* The CA is down or answers garbage: asked again after a growing
         * wait (the renewal window applies meanwhile), never at once. */
        if (spec->memo) {
            spec->memo->ari_next = wait_next(spec, spec->retry_delay, ACME_JOB_ARI_WAIT_MAX);
        }
        return rv;
    }
    if (!dir->renewal_info) {
        acme_json_setl(job, apr_time_sec(job_now(spec)) + 86400, ACME_JK_ARI,
                       ACME_JK_ARI_UNSUPPORTED, NULL);
        goto save;
    }
    acme_json_del(job, ACME_JK_ARI, ACME_JK_ARI_UNSUPPORTED, NULL);
    for (i = 0; i < spec->key_types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(spec->key_types, i, acme_key_type_t);
        apr_array_header_t *chain;
        apr_status_t rv2;

        if (acme_store_load_chain(store, ACME_SG_DOMAINS, spec->domain, acme_job_cert_file(p, t),
                                  &chain, p) != APR_SUCCESS) {
            continue;
        }
        rv2 = ari_ask(job, http, dir->renewal_info, spec, t,
                      APR_ARRAY_IDX(chain, 0, acme_cert_t *), p, r);
        if (rv2 != APR_SUCCESS) {
            /* Ask again later; the window rule stays in force meanwhile. */
            acme_json_setl(job, apr_time_sec(job_now(spec)) + 3600, ACME_JK_ARI,
                           acme_key_type_file_tag(t), ACME_JK_ARI_NEXT_POLL, NULL);
            rv = rv2;
        }
    }
save:
    if (acme_json_type(job, ACME_JK_ARI, NULL) == ACME_JSON_OBJECT) {
        /* Only "ari": a run may have written the rest meanwhile. */
        apr_status_t wrv = ari_write(store, spec, acme_json_getj(job, p, ACME_JK_ARI, NULL), p,
                                     rv == APR_SUCCESS ? r : acme_result_make(p));
        if (rv == APR_SUCCESS && wrv != APR_EBUSY) rv = wrv;
    }
    return rv;
}

/* ---- persisted job state ---------------------------------------------------- */

typedef struct {
    acme_store_t *store;       /* fenced by the job's claim */
    const acme_store_claim_t *claim;
    const char *domain;
    const char *ca_url;        /* the CA of this run */
    acme_json_t *json;
    const char *tag;   /* key type tag of the order in flight */
    acme_client_t *client;     /* NULL until the CA is set up */
    apr_pool_t *pool;
} job_ctx_t;

/* The job holds the claim: its copy is the record (acme_jobrec.h). */
static apr_status_t job_save(job_ctx_t *jc)
{
    apr_status_t rv = acme_jobrec_update(jc->store, jc->claim, jc->domain, acme_jobrec_put,
                                         jc->json, jc->pool, NULL);
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0403) "%s: cannot save the job state", jc->domain);
    }
    return rv;
}

static void order_created_cb(void *baton, const char *order_url)
{
    job_ctx_t *jc = baton;

    acme_json_sets(jc->json, order_url, ACME_JK_ORDERS, jc->tag, NULL);
    job_save(jc);
    acme_job_event(jc->json, jc->pool, "order-created", order_url);
    acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(0404) "%s: order %s created", jc->domain, order_url);
}

/* The order engine's callbacks, through the spec's publishers. */
typedef struct {
    job_ctx_t *job;
    const acme_job_spec_t *spec;
} run_baton_t;

static acme_answer_t *answer_make(const run_baton_t *rb, const char *name, const char *token,
                                  const char *key_authz, apr_pool_t *p)
{
    acme_answer_t *a = apr_pcalloc(p, sizeof(*a));

    a->domain = rb->spec->domain;
    a->name = name;
    a->token = token;
    a->key_authz = key_authz;
    a->stop = rb->spec->stop;
    return a;
}

static apr_status_t run_publish(void *baton, const char *type, const char *name,
                                const char *token, const char *key_authz, apr_pool_t *p,
                                acme_result_t *r)
{
    run_baton_t *rb = baton;
    const acme_publisher_t *pub = acme_publisher_find(rb->spec->publishers, type);

    if (!pub) {
        return acme_result_set(r, APR_ENOTIMPL, "acme:config", "%s: nothing publishes %s "
                               "answers (for dns-01: ManagedDNSHook or ManagedDNSUpdate)",
                               rb->spec->domain, type);
    }
    return pub->publish(pub, rb->job->store, answer_make(rb, name, token, key_authz, p), p, r);
}

/* The kept answers other than type/token; *pfound: whether it was one. */
static acme_json_t *kept_without(job_ctx_t *jc, const char *type, const char *token,
                                 int *pfound)
{
    apr_pool_t *p = jc->pool;
    acme_json_t *old = acme_json_getj(jc->json, p, ACME_JK_KEPT_ANSWERS, NULL);
    acme_json_t *kept = acme_json_new_array(p), *a;
    apr_size_t n = acme_json_array_len(old), i;
    const char *t, *k;

    *pfound = 0;
    for (i = 0; i < n; ++i) {
        a = acme_json_array_at(old, p, i);
        t = acme_json_gets(a, "type", NULL);
        k = acme_json_gets(a, "token", NULL);
        if (t && k && !strcmp(t, type) && !strcmp(k, token)) {
            *pfound = 1;
        }
        else {
            acme_json_array_append(kept, a);
        }
    }
    return kept;
}

/* The CA was asked to validate this answer and its authorization is not
 * final (a restart stopped the run, or it timed out): withdrawn it would
 * fail the validation (in a cluster the CA may ask another server, which
 * reads it from the store). It stays published, noted in job.json, until
 * a later run finds the authorization final. */
static void run_keep(void *baton, const char *type, const char *name, const char *token,
                     const char *key_authz, const char *authz_url, apr_pool_t *p)
{
    run_baton_t *rb = baton;
    job_ctx_t *jc = rb->job;
    acme_json_t *kept, *a;
    int found;

    (void)p;
    kept = kept_without(jc, type, token, &found);
    a = acme_json_new_object(jc->pool);
    acme_json_sets(a, type, "type", NULL);
    acme_json_sets(a, name, "name", NULL);
    acme_json_sets(a, token, "token", NULL);
    acme_json_sets(a, key_authz, "key-authz", NULL);
    acme_json_sets(a, authz_url, ACME_JK_KA_AUTHZ, NULL);
    acme_json_setl(a, apr_time_sec(job_now(rb->spec)), ACME_JK_KA_SINCE, NULL);
    acme_json_array_append(kept, a);
    acme_json_setj(jc->json, kept, ACME_JK_KEPT_ANSWERS, NULL);
    job_save(jc);
    if (!found) {
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(0409) "%s: the CA may still be "
                 "validating %s for %s: the answer stays published until its authorization "
                 "is over", jc->domain, type, name);
    }
}

static void run_withdraw(void *baton, const char *type, const char *name, const char *token,
                         const char *key_authz, apr_pool_t *p)
{
    run_baton_t *rb = baton;
    const acme_publisher_t *pub = acme_publisher_find(rb->spec->publishers, type);
    acme_json_t *kept;
    int found;

    if (!pub) {
        return;
    }
    pub->withdraw(pub, rb->job->store, answer_make(rb, name, token, key_authz, p), p);
    kept = kept_without(rb->job, type, token, &found);
    if (found) {
        acme_json_setj(rb->job->json, kept, ACME_JK_KEPT_ANSWERS, NULL);
        job_save(rb->job);
    }
}

typedef struct {
    acme_json_t *posted;
    apr_time_t fresh;          /* unix seconds */
} posted_keep_t;

static int posted_copy_fresh(void *baton, const char *url, acme_json_t *when)
{
    posted_keep_t *pk = baton;
    long long t = acme_json_getl(when, NULL);

    if (t > pk->fresh) {
        acme_json_setl(pk->posted, t, url, NULL);
    }
    return 0;
}

/* Before a challenge is POSTed: noted in job.json (saved, or no POST), so
 * that the run resuming the order after a restart does not ask the CA to
 * validate again (a second validation, which a withdrawn answer fails). */
static apr_status_t run_posting(void *baton, const char *url, apr_pool_t *p, acme_result_t *r)
{
    run_baton_t *rb = baton;
    job_ctx_t *jc = rb->job;
    acme_json_t *old = acme_json_getj(jc->json, jc->pool, ACME_JK_POSTED, NULL);
    acme_json_t *posted = acme_json_new_object(jc->pool);
    apr_time_t now = job_now(rb->spec);
    apr_time_t fresh = apr_time_sec(now - ACME_JOB_POSTED_FRESH);
    posted_keep_t pk;
    apr_status_t rv;

    (void)p;
    if (acme_json_getl(old, url, NULL) > fresh) {
        return APR_EEXIST;
    }
    /* older ones say nothing any more: dropped, the object stays small */
    pk.posted = posted;
    pk.fresh = fresh;
    acme_json_iter(old, jc->pool, posted_copy_fresh, &pk);
    acme_json_setl(posted, apr_time_sec(now), url, NULL);
    acme_json_setj(jc->json, posted, ACME_JK_POSTED, NULL);
    rv = job_save(jc);
    if (rv != APR_SUCCESS) {
        rv = acme_result_set(r, rv, ACME_PROBLEM_STORE_UNWRITABLE, "the store cannot be "
                             "written (jobs/%s/%s): the challenge %s is not answered until it "
                             "can", jc->domain, ACME_JOB_STATE, url);
    }
    return rv;
}

static void run_unposted(void *baton, const char *url)
{
    run_baton_t *rb = baton;
    job_ctx_t *jc = rb->job;

    acme_json_del(jc->json, ACME_JK_POSTED, url, NULL);
    job_save(jc);
}

/* Answers kept by earlier runs: withdrawn once their authorization is
 * final, gone from the CA, or a day old; the others stay for a later run.
 * A run that got its certificates withdraws all (even while the server
 * stops, when the CA cannot be asked): nothing runs for the domain again
 * before its renewal, and its names' authorizations are valid. */
static void kept_answers_withdraw(job_ctx_t *jc, const acme_job_spec_t *spec, int all)
{
    apr_pool_t *p = jc->pool;
    acme_json_t *kept = acme_json_getj(jc->json, p, ACME_JK_KEPT_ANSWERS, NULL), *a;
    acme_json_t *left = acme_json_new_array(p);
    apr_size_t n = acme_json_array_len(kept), i;
    apr_time_t stale = apr_time_sec(job_now(spec) - ACME_JOB_ANSWER_STALE);
    run_baton_t rb;

    if (!n) {
        return;
    }
    rb.job = jc;
    rb.spec = spec;
    for (i = 0; i < n; ++i) {
        const acme_publisher_t *pub;
        const char *type, *name, *token, *authz;

        a = acme_json_array_at(kept, p, i);
        type = acme_json_gets(a, "type", NULL);
        pub = type ? acme_publisher_find(spec->publishers, type) : NULL;
        name = acme_json_gets(a, "name", NULL);
        token = acme_json_gets(a, "token", NULL);
        authz = acme_json_gets(a, ACME_JK_KA_AUTHZ, NULL);
        if (!all && authz && acme_json_getl(a, ACME_JK_KA_SINCE, NULL) > stale
            && !(jc->client && acme_authz_final(jc->client, authz, p))) {
            acme_json_array_append(left, a);
        }
        else if (pub && name && token) {
            pub->withdraw(pub, jc->store, answer_make(&rb, name, token,
                                                      acme_json_gets(a, "key-authz", NULL), p),
                          p);
        }
    }
    if (acme_json_array_len(left)) {
        acme_json_setj(jc->json, left, ACME_JK_KEPT_ANSWERS, NULL);
    }
    else {
        acme_json_del(jc->json, ACME_JK_KEPT_ANSWERS, NULL);
    }
}

static void run_created(void *baton, const char *order_url)
{
    order_created_cb(((run_baton_t *)baton)->job, order_url);
}

/* The guard counts what reaches the CA: a newOrder, not a run that failed
 * before it (claim, store) and not a resumed order. */
static apr_status_t run_before_new(void *baton, apr_pool_t *p, acme_result_t *r)
{
    run_baton_t *rb = baton;

    if (!rb->spec->guard) {
        return APR_SUCCESS;
    }
    return acme_job_guard_take(rb->spec->guard, rb->job->ca_url, job_now(rb->spec), p, r);
}


/* ---- account ---------------------------------------------------------------- */

/* Who holds a claim, as other processes and servers see it (no spaces: the
 * etcd store takes printable owners without blanks). */
static const char *claim_owner(apr_pool_t *p)
{
    char host[APRMAXHOSTLEN + 1];

    if (apr_gethostname(host, sizeof(host), p) != APR_SUCCESS) {
        apr_cpystrn(host, "-", sizeof(host));
    }
    return apr_psprintf(p, "mod_acme-pid-%d@%s", (int)getpid(), host);
}

/* The servers of a cluster share the account: one creates it, the others
 * wait for it (the mutex only covers this process's jobs). APR_EEXIST: it
 * appeared while waiting. */
#define ACME_ACCOUNT_WAIT apr_time_from_sec(20)
static apr_status_t claim_account(acme_store_claim_t **pclaim, acme_store_t *store,
                                  const char *caid, const acme_job_spec_t *spec, apr_pool_t *p)
{
    const char *name = apr_pstrcat(p, "account-", caid, NULL), *owner = claim_owner(p);
    apr_time_t until = apr_time_now() + ACME_ACCOUNT_WAIT;
    apr_time_t mt;
    apr_status_t rv;

    for (;;) {
        rv = store->claim(store, pclaim, name, owner, ACME_JOB_LEASE, p);
        if (rv != APR_EBUSY) {
            return rv;
        }
        *pclaim = NULL;
        if (store->mtime(store, ACME_SG_ACCOUNTS, caid, "account.json", &mt, p) == APR_SUCCESS) {
            return APR_EEXIST;
        }
        if (apr_time_now() > until || stopping(spec)) {
            return APR_EBUSY;
        }
        apr_sleep(apr_time_from_msec(500));
    }
}

static apr_status_t ensure_account(acme_client_t *client, acme_store_t *store,
                                   const acme_job_spec_t *spec, const char *ca_url, apr_pool_t *p,
                                   acme_result_t *r)
{
    const char *caid = acme_job_account_id(p, ca_url, spec->eab_kid);
    acme_json_t *acct = NULL;
    acme_pkey_t *key = NULL;
    acme_account_t *account;
    const acme_directory_t *dir;
    const char *data, *url;
    apr_size_t len;
    apr_array_header_t *contacts;
    acme_store_claim_t *aclaim = NULL;
    int claimed = 0;
    apr_status_t rv;

    apr_thread_mutex_lock(account_mutex);
again:
    key = NULL;
    if (store->load(store, ACME_SG_ACCOUNTS, caid, "account.key.pem", &data, &len, p)
        == APR_SUCCESS) {
        rv = acme_pkey_from_pem(&key, p, data, len);
        if (rv != APR_SUCCESS) {
            rv = acme_result_set(r, rv, "acme:store",
                                 "the account key in accounts/%s/account.key.pem cannot be read; "
                                 "it is kept as it is: move it away to create a new account", caid);
            goto leave;
        }
        if (acme_store_load_json(store, ACME_SG_ACCOUNTS, caid, "account.json", &acct, p)
            == APR_SUCCESS && (url = acme_json_gets(acct, "url", NULL))) {
            acme_client_set_account(client, key, url);
            rv = APR_SUCCESS;
            goto leave;
        }
    }
    if (!claimed) {
        claimed = 1;
        rv = claim_account(&aclaim, store, caid, spec, p);
        if (rv == APR_SUCCESS || rv == APR_EEXIST) {
            goto again;     /* what another server may have made meanwhile */
        }
        acme_result_set(r, rv, rv == APR_EBUSY ? ACME_PROBLEM_BUSY : ACME_PROBLEM_STORE_UNWRITABLE,
                        "the ACME account for %s is being created by %s", ca_url,
                        aclaim && aclaim->owner ? aclaim->owner : "another process");
        goto leave;
    }
    rv = acme_client_directory(&dir, client, r);
    if (rv != APR_SUCCESS) goto leave;
    if (!spec->agree_tos) {
        rv = acme_result_set(r, APR_EACCES, "acme:config",
                             "no ACME account exists yet for %s, and creating one means "
                             "accepting the CA's terms of service%s%s: add 'ManagedAgreeTOS on' "
                             "to the configuration", ca_url,
                             dir->terms_of_service ? " at " : "",
                             dir->terms_of_service ? dir->terms_of_service : "");
        goto leave;
    }
    if (!key) {
        /* The key is saved before the CA sees it: an account the CA
         * creates is never one we have lost the key of. */
        rv = acme_pkey_gen(&key, p, ACME_KEY_P256);
        if (rv == APR_SUCCESS) {
            const char *pem;
            rv = acme_pkey_to_pem(&pem, p, key);
            if (rv == APR_SUCCESS) {
                rv = store->save(store, ACME_SG_ACCOUNTS, caid, "account.key.pem", pem,
                                 strlen(pem), 1, p);
            }
        }
        if (rv != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:store", "cannot create and save an account key in "
                            "accounts/%s", caid);
            goto leave;
        }
    }
    acme_client_set_account(client, key, NULL);
    contacts = apr_array_make(p, 1, sizeof(const char *));
    if (spec->contact) {
        APR_ARRAY_PUSH(contacts, const char *) = spec->contact;
    }
    acme_result_activity(r, "creating an ACME account at %s", ca_url);
    if (dir->eab_required && !spec->eab_kid) {
        rv = acme_result_set(r, APR_EACCES, "acme:config",
                             "the CA %s requires External Account Binding: add "
                             "'ManagedEAB <key id> <HMAC key>' with the values the CA gave you",
                             ca_url);
        goto leave;
    }
    rv = acme_account_new(&account, client, contacts, 1, spec->eab_kid, spec->eab_hmac, p, r);
    if (rv != APR_SUCCESS) goto leave;
    acct = acme_json_new_object(p);
    acme_json_sets(acct, account->url, "url", NULL);
    acme_json_sets(acct, ca_url, ACME_AK_CA, NULL);
    if (spec->eab_kid) acme_json_sets(acct, spec->eab_kid, ACME_AK_EAB_KID, NULL);
    acme_json_setsa(acct, contacts, "contact", NULL);
    acme_json_sets(acct, acme_time_rfc3339(p, apr_time_now()), "created", NULL);
    rv = acme_store_save_json(store, ACME_SG_ACCOUNTS, caid, "account.json", acct, p);
    if (rv != APR_SUCCESS) {
        acme_result_set(r, rv, "acme:store", "cannot save accounts/%s/account.json", caid);
        goto leave;
    }
    acme_log(ACME_LOG_MARK, ACME_LOG_NOTICE, 0, ACMELOG(0405) "created ACME account %s at %s", account->url,
             ca_url);
leave:
    if (aclaim) {
        store->release(store, aclaim, p);
    }
    apr_thread_mutex_unlock(account_mutex);
    return rv;
}

/* ---- one certificate ------------------------------------------------------- */

static apr_status_t load_or_make_key(acme_pkey_t **pkey, acme_store_t *store, const char *domain,
                                     acme_key_type_t t, apr_pool_t *p)
{
    const char *fname = acme_job_key_file(p, t), *data, *pem;
    apr_size_t len;
    apr_status_t rv;

    if (store->load(store, ACME_SG_JOBS, domain, fname, &data, &len, p) == APR_SUCCESS
        && acme_pkey_from_pem(pkey, p, data, len) == APR_SUCCESS
        && acme_pkey_type(*pkey) == t) {
        return APR_SUCCESS;
    }
    rv = acme_pkey_gen(pkey, p, t);
    if (rv != APR_SUCCESS) return rv;
    rv = acme_pkey_to_pem(&pem, p, *pkey);
    if (rv != APR_SUCCESS) return rv;
    return store->save(store, ACME_SG_JOBS, domain, fname, pem, strlen(pem), 1, p);
}

static apr_array_header_t *usable_challenges(job_ctx_t *jc, const acme_job_spec_t *spec,
                                             apr_pool_t *p)
{
    apr_array_header_t *failed = NULL, *out;
    int i, j;

    acme_json_getsa(&failed, jc->json, p, ACME_JK_FAILED_CHALLENGES, NULL);
    out = apr_array_make(p, spec->challenges->nelts, sizeof(const char *));
    for (i = 0; i < spec->challenges->nelts; ++i) {
        const char *t = APR_ARRAY_IDX(spec->challenges, i, const char *);
        int bad = 0;
        for (j = 0; failed && j < failed->nelts; ++j) {
            bad |= !strcmp(t, APR_ARRAY_IDX(failed, j, const char *));
        }
        if (!bad && acme_publisher_find(spec->publishers, t)) {
            APR_ARRAY_PUSH(out, const char *) = t;
        }
    }
    /* When every type failed once, start over with all of them. */
    return out->nelts ? out : (apr_array_header_t *)spec->challenges;
}

static apr_status_t get_cert(const char **ppem, acme_client_t *client, acme_store_t *store,
                             const acme_job_spec_t *spec, job_ctx_t *jc, acme_key_type_t t,
                             acme_pkey_t *key, apr_pool_t *p, acme_result_t *r)
{
    acme_order_params_t params;
    run_baton_t rb;
    const char *order_url = NULL;
    apr_status_t rv;

    memset(&params, 0, sizeof(params));
    rb.spec = spec;
    rb.job = jc;
    jc->tag = acme_key_type_file_tag(t);
    params.names = spec->names;
    params.challenges = usable_challenges(jc, spec, p);
    params.publish = run_publish;
    params.withdraw = run_withdraw;
    params.keep = run_keep;
    params.posting = run_posting;
    params.unposted = run_unposted;
    params.created = run_created;
    params.before_new = run_before_new;
    params.baton = &rb;
    params.cert_key = key;
    params.order_url = acme_json_gets(jc->json, ACME_JK_ORDERS, jc->tag, NULL);
    params.timeout = apr_time_from_sec(120);
    if (!params.order_url) {
        const acme_directory_t *dir;

        rv = acme_client_directory(&dir, client, r);
        if (rv != APR_SUCCESS) return rv;
        if (spec->profile) {
            if (apr_table_get(dir->profiles, spec->profile)) {
                params.profile = spec->profile;
            }
            else if (spec->profile_mandatory) {
                const apr_array_header_t *arr = apr_table_elts(dir->profiles);
                apr_array_header_t *offered = apr_array_make(p, 4, sizeof(const char *));
                int k;
                for (k = 0; k < arr->nelts; ++k) {
                    APR_ARRAY_PUSH(offered, const char *) =
                        APR_ARRAY_IDX(arr, k, apr_table_entry_t).key;
                }
                return acme_result_set(r, APR_EINVAL, "acme:config",
                                       "the CA does not offer the profile '%s' that "
                                       "ManagedProfile makes mandatory (it offers: %s)",
                                       spec->profile,
                                       offered->nelts ? apr_array_pstrcat(p, offered, ' ')
                                                      : "none");
            }
            else {
                acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(0406) "%s: the CA does not offer the profile "
                         "'%s'; ordering with its default", spec->domain, spec->profile);
            }
        }
        if (spec->ari && dir->renewal_info) {
            /* Tell the CA which certificate this one replaces (RFC 9773 5). */
            apr_array_header_t *chain;
            const char *certid;
            if (acme_store_load_chain(store, ACME_SG_DOMAINS, spec->domain,
                                      acme_job_cert_file(p, t), &chain, p) == APR_SUCCESS
                && acme_cert_ari_id(&certid, p, APR_ARRAY_IDX(chain, 0, acme_cert_t *))
                       == APR_SUCCESS) {
                params.replaces = certid;
            }
        }
    }
    if (params.order_url) {
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(0407) "%s: resuming order %s", spec->domain,
                 params.order_url);
    }
    acme_result_activity(r, "ordering a %s certificate for %s", acme_key_type_name(t),
                         spec->domain);
    rv = acme_order_run(ppem, &order_url, client, &params, p, r);
    if (rv != APR_SUCCESS && rv != APR_EINTR) {
        /* Resume the order next time unless the CA says it is over. */
        const char *url = acme_json_gets(jc->json, ACME_JK_ORDERS, jc->tag, NULL);
        if (url) {
            acme_order_t *o;
            acme_result_t *r2 = acme_result_make(p);
            acme_state_t st = ACME_STATE_UNKNOWN;

            if (acme_order_get(&o, client, url, p, r2) == APR_SUCCESS) st = o->status;
            else if (r2->http_status == 404) st = ACME_STATE_INVALID;
            if (st == ACME_STATE_INVALID || st == ACME_STATE_EXPIRED
                || st == ACME_STATE_DEACTIVATED) {
                acme_json_del(jc->json, ACME_JK_ORDERS, jc->tag, NULL);
            }
        }
        if (acme_result_classify(r) == ACME_ERRCLASS_VALIDATION && params.challenges->nelts > 1) {
            /* Next attempt: the next allowed type first. */
            acme_json_t *failed = acme_json_new_array(p);
            acme_json_array_appends(failed, APR_ARRAY_IDX(params.challenges, 0, const char *));
            acme_json_setj(jc->json, failed, ACME_JK_FAILED_CHALLENGES, NULL);
        }
    }
    return rv;
}

/* The names of the key types, for events and meta.json. */
static apr_array_header_t *type_names(apr_pool_t *p, const apr_array_header_t *types)
{
    apr_array_header_t *tn = apr_array_make(p, 2, sizeof(const char *));
    int i;

    for (i = 0; i < types->nelts; ++i) {
        APR_ARRAY_PUSH(tn, const char *) =
            acme_key_type_name(APR_ARRAY_IDX(types, i, acme_key_type_t));
    }
    return tn;
}

/* The run's first write: that the run began is said again by every later
 * write, so this one need not be synced (a crash that loses it leaves the
 * record of the run before). */
static apr_status_t begin_put(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    rec->save_flags = ACME_STORE_VOLATILE;
    return acme_jobrec_put(rec, baton, p);
}

/* Step 1: the job state is loaded and the run recorded. An order whose URL
 * cannot be kept is lost at the next failure, and the one after it too:
 * nothing is asked of the CA before the store takes our writes. */
static apr_status_t run_begin(job_ctx_t *jc, const acme_job_spec_t *spec,
                              const apr_array_header_t *types, acme_result_t *r)
{
    apr_pool_t *p = jc->pool;
    acme_jobrec_t *rec;
    apr_status_t rv;

    /* missing or damaged: a new record; unreadable: nothing done */
    rv = acme_jobrec_read(&rec, jc->store, spec->domain, p, NULL);
    if (!rec) {
        return acme_result_set(r, rv, ACME_PROBLEM_STORE_UNWRITABLE, "the store cannot be read "
                               "(jobs/%s/%s): nothing is asked of the CA until it can",
                               spec->domain, ACME_JOB_STATE);
    }
    jc->json = rec->json;
    jc->ca_url = acme_job_current_ca(spec, jc->json);
    acme_json_setl(jc->json, apr_time_sec(job_now(spec)), "last-run", NULL);
    acme_json_sets(jc->json, jc->ca_url, ACME_JK_CA, NULL);
    acme_job_event(jc->json, p, "renewing", apr_array_pstrcat(p, type_names(p, types), ' '));
    rv = acme_jobrec_update(jc->store, jc->claim, spec->domain, begin_put, jc->json, p, NULL);
    if (rv != APR_SUCCESS) {
        acme_result_set(r, rv, ACME_PROBLEM_STORE_UNWRITABLE,
                        "the store cannot be written (jobs/%s/%s): nothing is asked of the CA "
                        "until it can", spec->domain, ACME_JOB_STATE);
    }
    return rv;
}

/* Is the leaf of chain due for renewal at now, by the renewal window? */
static int chain_due(const apr_array_header_t *chain, const acme_job_spec_t *spec, apr_time_t now)
{
    const acme_cert_t *leaf = APR_ARRAY_IDX(chain, 0, const acme_cert_t *);

    return acme_renew_at_window(acme_cert_not_before(leaf), acme_cert_not_after(leaf),
                                &spec->window) <= now;
}

/* Step 2, per key type: order (or resume), check, and stage key and chain. */
static apr_status_t run_type(job_ctx_t *jc, acme_client_t *client, const acme_job_spec_t *spec,
                             acme_key_type_t t, acme_result_t *r)
{
    acme_store_t *store = jc->store;
    apr_pool_t *p = jc->pool;
    const char *pem, *keypem, *why;
    apr_array_header_t *chain;
    acme_pkey_t *key;
    apr_status_t rv;
    int fresh;

    if (stopping(spec)) {
        return acme_result_set(r, APR_EINTR, "acme:stopped", "stopped by a server restart; "
                               "the order is resumed after it");
    }
    /* Staged by a run that was cut off before the other types: no second order. */
    if (acme_store_load_chain(store, ACME_SG_STAGING, spec->domain, acme_job_cert_file(p, t),
                              &chain, p) == APR_SUCCESS
        && acme_store_load_pkey(store, ACME_SG_STAGING, spec->domain, acme_job_key_file(p, t),
                                &key, p) == APR_SUCCESS
        && acme_pair_check(chain, key, spec->names, job_now(spec), &why, p) == APR_SUCCESS
        && !chain_due(chain, spec, job_now(spec))) {
        return APR_SUCCESS;
    }
    rv = load_or_make_key(&key, store, spec->domain, t, p);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:store", "cannot create the %s key for %s",
                               acme_key_type_name(t), spec->domain);
    }
    for (fresh = 0;; fresh = 1) {
        const char *resumed = acme_json_gets(jc->json, ACME_JK_ORDERS, acme_key_type_file_tag(t),
                                             NULL);
        rv = get_cert(&pem, client, store, spec, jc, t, key, p, r);
        if (rv != APR_SUCCESS) return rv;
        rv = acme_chain_from_pem(&chain, p, pem, strlen(pem));
        if (rv == APR_SUCCESS) {
            rv = acme_pair_check(chain, key, spec->names, job_now(spec), &why, p);
        }
        else {
            why = "it is not a PEM certificate chain";
        }
        if (rv != APR_SUCCESS || fresh || !resumed || !chain_due(chain, spec, job_now(spec))) {
            break;
        }
        /* A run cut off after staging left its order in job.json, and what
         * it gave is the certificate in use since: order anew. */
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(0411) "%s: the order %s gave a "
                 "certificate that is due for renewal already; ordering a new one", spec->domain,
                 resumed);
        acme_json_del(jc->json, ACME_JK_ORDERS, jc->tag, NULL);
    }
    if (rv != APR_SUCCESS) {
        acme_json_del(jc->json, ACME_JK_ORDERS, jc->tag, NULL);
        return acme_result_set(r, rv, "acme:malformed-response",
                               "the CA's certificate for %s cannot be used: %s", spec->domain,
                               why);
    }
    rv = acme_pkey_to_pem(&keypem, p, key);
    /* parts of the staged set: durable with meta.json (run_stage) */
    if (rv == APR_SUCCESS) {
        rv = store->save(store, ACME_SG_STAGING, spec->domain, acme_job_key_file(p, t), keypem,
                         strlen(keypem), ACME_STORE_SECRET | ACME_STORE_PART, p);
    }
    if (rv == APR_SUCCESS) {
        rv = store->save(store, ACME_SG_STAGING, spec->domain, acme_job_cert_file(p, t), pem,
                         strlen(pem), ACME_STORE_PART, p);
    }
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:store", "cannot stage the certificate for %s",
                               spec->domain);
    }
    /* The order is done: never resume it again (run_record saves that; a
     * run cut off before finds the staged pair above and orders nothing). */
    acme_json_del(jc->json, ACME_JK_ORDERS, jc->tag, NULL);
    return APR_SUCCESS;
}

/* Step 3: meta.json last, its presence says the staged set is complete. */
static apr_status_t run_stage(job_ctx_t *jc, const acme_job_spec_t *spec,
                              const apr_array_header_t *types, acme_result_t *r)
{
    acme_store_t *store = jc->store;
    apr_pool_t *p = jc->pool;
    acme_json_t *meta = acme_json_new_object(p);
    apr_status_t rv;

    acme_json_setsa(meta, spec->names, ACME_MK_NAMES, NULL);
    acme_json_sets(meta, jc->ca_url, ACME_MK_CA, NULL);
    acme_json_sets(meta, acme_time_rfc3339(p, job_now(spec)), ACME_MK_STAGED, NULL);
    acme_json_setsa(meta, type_names(p, types), "key-types", NULL);
    rv = acme_store_save_json(store, ACME_SG_STAGING, spec->domain, ACME_JOB_META, meta, p);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:store", "cannot stage the certificate for %s",
                               spec->domain);
    }
    return APR_SUCCESS;
}

/* Step 5, after a staged set is recorded: the keys of its orders are no
 * longer needed. Not before: job.json may still name an order of one. */
static void run_forget_keys(job_ctx_t *jc, const apr_array_header_t *types)
{
    int i;

    for (i = 0; i < types->nelts; ++i) {
        jc->store->remove(jc->store, ACME_SG_JOBS, jc->domain,
                          acme_job_key_file(jc->pool, APR_ARRAY_IDX(types, i, acme_key_type_t)),
                          jc->pool);
    }
}

/* Step 4: what the outcome means for the next attempt: counters, backoff,
 * CA failover, all in job.json and in the memo. */
static void run_record(job_ctx_t *jc, const acme_job_spec_t *spec, apr_status_t rv,
                       acme_result_t *r)
{
    apr_pool_t *p = jc->pool;
    const char *ca_url = jc->ca_url;

    if (rv == APR_SUCCESS) {
        acme_json_setl(jc->json, 0, ACME_JK_ERRORS, NULL);
        acme_json_setl(jc->json, 0, ACME_JK_NEXT_ATTEMPT, NULL);
        acme_json_del(jc->json, ACME_JK_LAST_ERROR, NULL);
        acme_json_del(jc->json, ACME_JK_FAILED_CHALLENGES, NULL);
        acme_json_del(jc->json, ACME_JK_PREFLIGHT, NULL);
        acme_json_setl(jc->json, apr_time_sec(job_now(spec)), "last-success", NULL);
        acme_json_setl(jc->json, acme_json_getl(jc->json, ACME_JK_RENEWALS_OK, NULL) + 1, ACME_JK_RENEWALS_OK,
                       NULL);
        acme_json_setl(jc->json, 0, ACME_JK_CA_ERRORS, NULL);
        acme_json_sets(jc->json, "staged", ACME_JK_STATE, NULL);
        acme_job_event(jc->json, p, "staged", NULL);
        jc->store->remove(jc->store, ACME_SG_JOBS, spec->domain, ACME_JOB_RENEW_REQUEST, p);
        if (spec->memo) {
            int warned = spec->memo->settings_warned;
            memset(spec->memo, 0, sizeof(*spec->memo));
            spec->memo->settings_warned = warned;
        }
    }
    else if (r->problem && !strcmp(r->problem, ACME_PROBLEM_SAFETY_STOP)) {
        /* Held back by this server's own guard: not the CA's failure, so
         * no error counted (and no failover), just no order before then. */
        apr_time_t next = apr_time_from_sec(apr_time_sec(r->retry_after) + 1);

        acme_json_setl(jc->json, apr_time_sec(next), ACME_JK_NEXT_ATTEMPT, NULL);
        if (spec->memo) spec->memo->next_attempt = next;
        acme_json_setj(jc->json, acme_result_to_json(r, p), ACME_JK_LAST_ERROR, NULL);
        acme_job_event(jc->json, p, "held", acme_result_describe(r, p));
    }
    else if (rv != APR_EINTR) {
        int errors = (int)acme_json_getl(jc->json, ACME_JK_ERRORS, NULL);
        double frac = (double)acme_random_below(1000000) / 1000000.0;
        acme_errclass_t cls = acme_result_classify(r);
        apr_time_t next;

        if (spec->memo && spec->memo->errors > errors) {
            errors = spec->memo->errors; /* job.json missed some: the store failed */
        }
        errors++;
        next = acme_backoff_next(job_now(spec), errors, spec->retry_delay, frac,
                                 r->retry_after, cls == ACME_ERRCLASS_CONFIG);

        int ca_errors = (int)acme_json_getl(jc->json, "ca-errors", NULL) + 1;

        acme_json_setl(jc->json, errors, ACME_JK_ERRORS, NULL);
        acme_json_setl(jc->json, acme_json_getl(jc->json, ACME_JK_RENEWALS_FAILED, NULL) + 1,
                       ACME_JK_RENEWALS_FAILED, NULL);
        if (spec->ca_urls && spec->ca_urls->nelts > 1 && ca_errors >= ACME_JOB_FAILOVER_AFTER) {
            int idx = (ca_index(spec, jc->json) + 1) % spec->ca_urls->nelts;
            const char *next_ca = APR_ARRAY_IDX(spec->ca_urls, idx, const char *);

            acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, 0, ACMELOG(0408) "%s: %d failures in a row with the CA "
                     "%s; switching to %s", spec->domain, ca_errors, ca_url, next_ca);
            acme_job_event(jc->json, p, "ca-switched", next_ca);
            acme_json_setl(jc->json, idx, ACME_JK_CA_INDEX, NULL);
            acme_json_del(jc->json, ACME_JK_ORDERS, NULL);
            ca_errors = 0;
            /* The next CA need not wait for this one's backoff. */
            next = job_now(spec) + spec->retry_delay;
        }
        acme_json_setl(jc->json, ca_errors, ACME_JK_CA_ERRORS, NULL);
        acme_json_setl(jc->json, apr_time_sec(next) + 1, ACME_JK_NEXT_ATTEMPT, NULL);
        if (spec->memo) {
            spec->memo->errors = errors;
            spec->memo->next_attempt = apr_time_from_sec(apr_time_sec(next) + 1);
        }
        acme_json_setj(jc->json, acme_result_to_json(r, p), ACME_JK_LAST_ERROR, NULL);
        acme_json_sets(jc->json, cls == ACME_ERRCLASS_CONFIG ? "config-error" : "error", ACME_JK_STATE,
                       NULL);
        acme_job_event(jc->json, p, "errored", acme_result_describe(r, p));
    }
    if (rv == APR_SUCCESS || (rv != APR_EINTR && !stopping(spec))) {
        kept_answers_withdraw(jc, spec, rv == APR_SUCCESS);
        /* A run that ended by itself (not a restart's stop) was not cut
         * off mid-POST: its orders are done or failed, and a challenge
         * still pending after it never reached the CA (a network error):
         * a later run may ask for it. */
        acme_json_del(jc->json, ACME_JK_POSTED, NULL);
    }
    job_save(jc);
}

/* Members of a that are not in b, blank-separated; NULL: none. */
static const char *names_missing(apr_pool_t *p, const apr_array_header_t *a,
                                 const apr_array_header_t *b)
{
    apr_array_header_t *out = apr_array_make(p, 2, sizeof(const char *));
    int i, j, found;

    for (i = 0; i < a->nelts; ++i) {
        const char *n = APR_ARRAY_IDX(a, i, const char *);
        for (found = 0, j = 0; j < b->nelts && !found; ++j) {
            found = !strcmp(n, APR_ARRAY_IDX(b, j, const char *));
        }
        if (!found) APR_ARRAY_PUSH(out, const char *) = n;
    }
    return out->nelts ? apr_array_pstrcat(p, out, ' ') : NULL;
}

const char *acme_job_settings_diff(acme_store_t *store, acme_store_group_t g,
                                   const acme_job_spec_t *spec, apr_time_t *pstaged,
                                   apr_pool_t *p)
{
    apr_array_header_t *names, *types, *cas, *diffs = apr_array_make(p, 3, sizeof(const char *));
    apr_array_header_t *ours = type_names(p, spec->key_types);
    acme_json_t *meta;
    const char *ca, *only_here, *only_there, *t;

    *pstaged = 0;
    if (acme_store_load_json(store, g, spec->domain, ACME_JOB_META, &meta, p)
        != APR_SUCCESS) {
        return NULL;
    }
    t = acme_json_gets(meta, ACME_MK_STAGED, NULL);
    if (t) {
        acme_time_parse_rfc3339(pstaged, t);
    }
    if (acme_json_getsa(&names, meta, p, ACME_MK_NAMES, NULL) == APR_SUCCESS) {
        only_here = names_missing(p, spec->names, names);
        only_there = names_missing(p, names, spec->names);
        if (only_here || only_there) {
            APR_ARRAY_PUSH(diffs, const char *) = apr_psprintf(p, "names: only here %s, only "
                "stored %s", only_here ? only_here : "none", only_there ? only_there : "none");
        }
    }
    if (acme_json_getsa(&types, meta, p, "key-types", NULL) == APR_SUCCESS
        && (names_missing(p, ours, types) || names_missing(p, types, ours))) {
        APR_ARRAY_PUSH(diffs, const char *) = apr_psprintf(p, "key types: here %s, stored %s",
            apr_array_pstrcat(p, ours, ' '), apr_array_pstrcat(p, types, ' '));
    }
    ca = acme_json_gets(meta, ACME_MK_CA, NULL);
    if (ca) {
        /* any of the configured CAs: failover is no difference */
        cas = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(cas, const char *) = ca;
        if (spec->ca_urls && spec->ca_urls->nelts ? names_missing(p, cas, spec->ca_urls) != NULL
                                                  : strcmp(ca, spec->ca_url) != 0) {
            APR_ARRAY_PUSH(diffs, const char *) = apr_psprintf(p, "CA: here %s, stored %s",
                                                               acme_job_current_ca(spec, NULL),
                                                               ca);
        }
    }
    return diffs->nelts ? apr_array_pstrcat(p, diffs, ';') : NULL;
}

void acme_job_settings_warn(const char *domain, const char *diff)
{
    acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, 0, ACMELOG(0410) "%s: this server's settings "
             "differ from those the stored certificates were made with (%s). Give every "
             "server of the cluster the same Managed* settings for the domain.", domain, diff);
}

/* In a shared store, only what is due by time (or asked for by an operator)
 * replaces another server's young certificates made with other settings. */
static const apr_array_header_t *settings_filter(acme_store_t *store,
                                                 const acme_job_spec_t *spec,
                                                 const apr_array_header_t *types,
                                                 apr_time_t *puntil, apr_pool_t *p)
{
    apr_array_header_t *keep;
    apr_time_t staged, now = job_now(spec), mt;
    const char *diff;
    int i;

    *puntil = 0;
    diff = store->flags & ACME_STORE_SHARED
               ? acme_job_settings_diff(store, ACME_SG_DOMAINS, spec, &staged, p) : NULL;
    if (!diff) {
        return types;
    }
    if (!spec->memo || !spec->memo->settings_warned) {
        acme_job_settings_warn(spec->domain, diff);
        if (spec->memo) spec->memo->settings_warned = 1;
    }
    if (now - staged >= ACME_JOB_SETTINGS_GRACE
        || store->mtime(store, ACME_SG_JOBS, spec->domain, ACME_JOB_RENEW_REQUEST, &mt, p)
               == APR_SUCCESS) {
        return types;
    }
    keep = apr_array_make(p, types->nelts, sizeof(acme_key_type_t));
    for (i = 0; i < types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(types, i, acme_key_type_t);
        apr_array_header_t *chain;

        if (acme_store_load_chain(store, ACME_SG_DOMAINS, spec->domain, acme_job_cert_file(p, t),
                                  &chain, p) != APR_SUCCESS) {
            continue; /* a type the others do not have: not added while theirs is young */
        }
        if (chain_due(chain, spec, now)) {
            APR_ARRAY_PUSH(keep, acme_key_type_t) = t;
        }
    }
    *puntil = staged + ACME_JOB_SETTINGS_GRACE;
    return keep;
}

/* Another process of this host (same "@host" as ours, another pid)? */
static int held_here(const char *holder, const char *owner)
{
    const char *h = strrchr(holder, '@'), *o = strrchr(owner, '@');

    return h && o && !strcmp(h, o) && strcmp(holder, owner);
}

/* Claims the domain for this process: no other job (an old child after a
 * graceful restart, another server, acmectl) works on it at the same time,
 * and every write carries the claim's token. A holder on this host that
 * stops (the old generation's child) releases it at once: it is looked at
 * again within ACME_JOB_HANDOVER_POLL, not ACME_JOB_BUSY_WAIT. */
static apr_status_t run_claim(acme_store_claim_t **pclaim, acme_store_t *store,
                              const acme_job_spec_t *spec, apr_pool_t *p, acme_result_t *r)
{
    const char *owner = claim_owner(p), *holder;
    acme_job_memo_t *memo = spec->memo;
    apr_time_t now = job_now(spec);
    apr_status_t rv;

    rv = store->claim(store, pclaim, spec->domain, owner, ACME_JOB_LEASE, p);
    if (rv == APR_EBUSY) {
        holder = *pclaim ? (*pclaim)->owner : "another process";
        if (memo) {
            if (!memo->busy_since) memo->busy_since = now;
            memo->busy_looks++;
            memo->handover = held_here(holder, owner)
                             && now - memo->busy_since < ACME_JOB_HANDOVER_WINDOW;
        }
        acme_result_set(r, rv, ACME_PROBLEM_BUSY, "%s is being worked on by %s; waiting for it "
                        "(looking again %s)", spec->domain, holder,
                        memo && memo->handover ? "every 0.2 s while it stops" : "in 10 s");
        return rv;
    }
    if (memo && memo->busy_since) {
        if (rv == APR_SUCCESS) {
            acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(1951) "%s: claim taken over after "
                     "waiting %d ms for its previous holder", spec->domain,
                     (int)apr_time_as_msec(now - memo->busy_since));
        }
        memo->busy_since = 0;
        memo->busy_looks = 0;
        memo->handover = 0;
    }
    if (rv != APR_SUCCESS) {
        acme_result_set(r, rv, ACME_PROBLEM_STORE_UNWRITABLE, "cannot claim %s in the store: it "
                        "cannot be written", spec->domain);
    }
    return rv;
}

apr_status_t acme_job_run(acme_store_t *store, const acme_job_spec_t *spec,
                          const apr_array_header_t *types, apr_pool_t *p, acme_result_t *r)
{
    acme_store_claim_t *claim = NULL;
    acme_client_t *client;
    job_ctx_t jc;
    apr_array_header_t *done;
    apr_status_t rv;
    int i;

    memset(&jc, 0, sizeof(jc));
    jc.domain = spec->domain;
    jc.pool = p;
    rv = run_claim(&claim, store, spec, p, r);
    if (rv != APR_SUCCESS) {
        if (spec->memo) {
            spec->memo->next_attempt =
                rv != APR_EBUSY        ? wait_next(spec, spec->retry_delay, ACME_JOB_STORE_WAIT_MAX)
                : spec->memo->handover ? job_now(spec) + ACME_JOB_HANDOVER_POLL
                                       : wait_next(spec, ACME_JOB_BUSY_WAIT, ACME_JOB_BUSY_WAIT_MAX);
        }
        return rv;
    }
    if (spec->memo) spec->memo->claim = claim;
    jc.store = acme_store_fenced(p, store, claim);
    jc.claim = claim;
    {
        /* The decision to run was made before the claim: in a cluster,
         * another server may have renewed and activated it meanwhile. */
        acme_status_t *now_st;
        if (spec->recheck
            && acme_status_get(&now_st, jc.store, spec, NULL, job_now(spec), p) == APR_SUCCESS
            && now_st->due->nelts == 0) {
            rv = acme_result_set(r, APR_EBUSY, ACME_PROBLEM_BUSY, "%s: renewed by another "
                                 "process or server meanwhile; nothing to do", spec->domain);
            goto leave;
        }
    }
    {
        /* Another server may have hit the CA's rate limit since the decision. */
        acme_jobrec_t *rec;
        const char *ca;
        apr_time_t paused;

        acme_jobrec_read(&rec, store, spec->domain, p, NULL);
        ca = acme_job_current_ca(spec, rec ? rec->json : NULL);
        paused = acme_job_ca_pause_until(store, ca, p);
        if (paused > job_now(spec)) {
            rv = acme_result_set(r, APR_EBUSY, ACME_PROBLEM_BUSY, "%s: the CA %s asked to wait "
                                 "until %s", spec->domain, ca, acme_time_rfc3339(p, paused));
            if (spec->memo) spec->memo->next_attempt = paused;
            goto leave;
        }
    }
    {
        apr_time_t until;
        types = settings_filter(store, spec, types, &until, p);
        if (types->nelts == 0) {
            rv = acme_result_set(r, APR_EBUSY, ACME_PROBLEM_BUSY, "%s: not replacing the "
                                 "certificates another server made with other settings before "
                                 "%s (or 'acmectl renew')", spec->domain,
                                 acme_time_rfc3339(p, until));
            if (spec->memo) spec->memo->next_attempt = until;
            goto leave;
        }
    }
    /* Read after claiming: whoever held it before may have finished. */
    rv = run_begin(&jc, spec, types, r);
    if (rv != APR_SUCCESS) {
        if (spec->memo) {
            spec->memo->next_attempt = wait_next(spec, spec->retry_delay,
                                                 ACME_JOB_STORE_WAIT_MAX);
        }
        goto leave;
    }
    if (spec->memo) spec->memo->waits = 0;
    /* Held back by a failing pre-flight (APR_EAGAIN): not the CA's failure, no
     * backoff of its; or stopped during it (APR_EINTR). */
    rv = acme_preflight_run(jc.json, jc.store, spec, job_now(spec), p, r);
    if (rv != APR_SUCCESS) {
        job_save(&jc);
        goto leave;
    }
    rv = make_client(&client, NULL, spec, jc.ca_url, p, r);
    if (rv == APR_SUCCESS) {
        jc.client = client;
        rv = ensure_account(client, jc.store, spec, jc.ca_url, p, r);
    }
    done = apr_array_make(p, 2, sizeof(acme_key_type_t));
    for (i = 0; rv == APR_SUCCESS && i < types->nelts; ++i) {
        rv = run_type(&jc, client, spec, APR_ARRAY_IDX(types, i, acme_key_type_t), r);
        if (rv == APR_SUCCESS) {
            APR_ARRAY_PUSH(done, acme_key_type_t) = APR_ARRAY_IDX(types, i, acme_key_type_t);
        }
    }
    if (rv == APR_SUCCESS) {
        rv = run_stage(&jc, spec, done, r);
    }
    run_record(&jc, spec, rv, r);
    if (rv == APR_SUCCESS) {
        run_forget_keys(&jc, done);
    }
    if (rv != APR_SUCCESS && acme_result_classify(r) == ACME_ERRCLASS_RATELIMIT
        && r->retry_after > job_now(spec)) {
        /* Not only this domain and this server: every job for this CA. */
        acme_job_ca_pause_set(store, jc.ca_url, r->retry_after, acme_result_describe(r, p), p);
    }
leave:
    if (spec->memo) spec->memo->claim = NULL;
    store->release(store, claim, p);
    return rv;
}
