/* acme_job.c: drives one managed domain from "certificate due" to "result
 * staged", persisting each step so that restarts resume instead of repeat. */
#include <string.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_hash.h>
#include <apr_lib.h>

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
#include "acme_proc.h"

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

/* The CA in use: failover moves through spec->ca_urls. */
static const char *current_ca(const acme_job_spec_t *spec, const acme_json_t *job)
{
    long long idx;

    if (!spec->ca_urls || spec->ca_urls->nelts == 0) {
        return spec->ca_url;
    }
    idx = job ? acme_json_getl(job, "ca-index", NULL) : 0;
    if (idx < 0 || idx >= spec->ca_urls->nelts) {
        idx = 0;
    }
    return APR_ARRAY_IDX(spec->ca_urls, (int)idx, const char *);
}

static int stopping(const acme_job_spec_t *spec)
{
    return spec->stop && apr_atomic_read32(spec->stop);
}

void acme_job_event(acme_json_t *job, apr_pool_t *p, const char *type, const char *detail)
{
    acme_json_t *old = acme_json_getj(job, p, "events", NULL);
    acme_json_t *events = acme_json_new_array(p), *ev;
    apr_size_t n = acme_json_array_len(old), i;

    for (i = n >= ACME_JOB_EVENTS_MAX ? n - ACME_JOB_EVENTS_MAX + 1 : 0; i < n; ++i) {
        acme_json_array_append(events, acme_json_array_at(old, p, i));
    }
    ev = acme_json_new_object(p);
    acme_json_sets(ev, acme_time_rfc3339(p, apr_time_now()), "time", NULL);
    acme_json_sets(ev, type, "type", NULL);
    if (detail) acme_json_sets(ev, detail, "detail", NULL);
    acme_json_array_append(events, ev);
    acme_json_setj(job, events, "events", NULL);
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
    hconf.abort = spec->stop;
    rv = acme_http_curl_create(&http, p, &hconf);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:internal", "cannot set up the HTTP client");
    }
    rv = acme_client_create(pclient, p, ca_url, http);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:config", "cannot use the CA URL %s", ca_url);
    }
    acme_client_set_abort(*pclient, spec->stop);
    if (phttp) *phttp = http;
    return APR_SUCCESS;
}

static apr_status_t ari_ask(acme_json_t *job, acme_http_t *http, const char *base,
                            const acme_job_spec_t *spec, acme_key_type_t t,
                            const acme_cert_t *leaf, apr_pool_t *p, acme_result_t *r)
{
    const char *tag = acme_key_type_file_tag(t), *certid, *url, *s, *e, *jerr;
    acme_http_response_t *resp;
    acme_json_t *answer;
    acme_renew_input_t in;
    acme_renew_decision_t dec;
    acme_ari_window_t w;
    apr_time_t now = apr_time_now(), retry = 0;
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
    if (resp->status != 200) {
        return acme_result_set(r, APR_EGENERAL, "acme:malformed-response",
                               "renewalInfo %s answered HTTP %d", url, resp->status);
    }
    if (acme_json_parse(&answer, p, resp->body, resp->body_len, &jerr) != APR_SUCCESS
        || !(s = acme_json_gets(answer, "suggestedWindow", "start", NULL))
        || !(e = acme_json_gets(answer, "suggestedWindow", "end", NULL))
        || acme_time_parse_rfc3339(&w.start, s) != APR_SUCCESS
        || acme_time_parse_rfc3339(&w.end, e) != APR_SUCCESS || w.end < w.start) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "renewalInfo %s: the answer has no valid suggestedWindow", url);
    }
    w.explanation_url = acme_json_gets(answer, "explanationURL", NULL);
    if (apr_table_get(resp->headers, "Retry-After")) {
        acme_retry_after_parse(&retry, apr_table_get(resp->headers, "Retry-After"), now);
    }
    memset(&in, 0, sizeof(in));
    in.not_before = acme_cert_not_before(leaf);
    in.not_after = acme_cert_not_after(leaf);
    in.window = &spec->window;
    in.ari = &w;
    if (!strcmp(acme_json_gets(job, "ari", tag, "cert-id", NULL) ? acme_json_gets(job, "ari", tag, "cert-id", NULL) : "", certid)) {
        in.prev_ari_start = acme_json_gett(job, "ari", tag, "start", NULL);
        in.prev_ari_end = acme_json_gett(job, "ari", tag, "end", NULL);
        in.prev_chosen = acme_json_gett(job, "ari", tag, "chosen", NULL);
    }
    in.rand_fraction = (double)acme_random_below(1000000) / 1000000.0;
    in.now = now;
    if (acme_renew_decide(&dec, &in) != APR_SUCCESS) {
        return acme_result_set(r, APR_EINVAL, "acme:malformed-response",
                               "renewalInfo %s: unusable window", url);
    }
    acme_json_sets(job, certid, "ari", tag, "cert-id", NULL);
    acme_json_setl(job, apr_time_sec(w.start), "ari", tag, "start", NULL);
    acme_json_setl(job, apr_time_sec(w.end), "ari", tag, "end", NULL);
    acme_json_setl(job, apr_time_sec(dec.chosen ? dec.chosen : dec.renew_at), "ari", tag,
                   "chosen", NULL);
    acme_json_setl(job, apr_time_sec(acme_ari_next_poll(now, retry > now ? retry - now : 0)),
                   "ari", tag, "next-poll", NULL);
    if (w.explanation_url) {
        acme_json_sets(job, w.explanation_url, "ari", tag, "explanation", NULL);
    }
    if (dec.chosen_changed) {
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, "ACME0401: %s: the CA suggests renewing %s between %s "
                 "and %s; chosen: %s", spec->domain, acme_key_type_name(t),
                 acme_time_rfc3339(p, w.start), acme_time_rfc3339(p, w.end),
                 acme_time_rfc3339(p, dec.renew_at));
    }
    return APR_SUCCESS;
}

apr_status_t acme_job_ari_refresh(acme_store_t *store, const acme_job_spec_t *spec,
                                  apr_pool_t *p, acme_result_t *r)
{
    acme_json_t *job;
    acme_client_t *client;
    acme_http_t *http;
    const acme_directory_t *dir;
    const char *ca;
    apr_status_t rv = APR_SUCCESS;
    int i;

    if (acme_store_load_json(store, ACME_SG_JOBS, spec->domain, ACME_JOB_STATE, &job, p)
        != APR_SUCCESS) {
        job = acme_json_new_object(p);
    }
    ca = current_ca(spec, job);
    rv = make_client(&client, &http, spec, ca, p, r);
    if (rv == APR_SUCCESS) {
        rv = acme_client_directory(&dir, client, r);
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (!dir->renewal_info) {
        acme_json_setl(job, apr_time_sec(apr_time_now()) + 86400, "ari", "unsupported-until",
                       NULL);
        goto save;
    }
    acme_json_del(job, "ari", "unsupported-until", NULL);
    for (i = 0; i < spec->key_types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(spec->key_types, i, acme_key_type_t);
        const char *path = store->path(store, ACME_SG_DOMAINS, spec->domain,
                                       acme_job_cert_file(p, t), p);
        apr_array_header_t *chain;
        apr_status_t rv2;

        if (!path || acme_chain_load(&chain, p, path) != APR_SUCCESS || chain->nelts < 1) {
            continue;
        }
        rv2 = ari_ask(job, http, dir->renewal_info, spec, t,
                      APR_ARRAY_IDX(chain, 0, acme_cert_t *), p, r);
        if (rv2 != APR_SUCCESS) {
            /* Ask again later; the window rule stays in force meanwhile. */
            acme_json_setl(job, apr_time_sec(apr_time_now()) + 3600, "ari",
                           acme_key_type_file_tag(t), "next-poll", NULL);
            rv = rv2;
        }
    }
save:
    {
        /* The job thread may have written job.json meanwhile: merge ours in. */
        acme_json_t *cur;
        if (acme_store_load_json(store, ACME_SG_JOBS, spec->domain, ACME_JOB_STATE, &cur, p)
            != APR_SUCCESS) {
            cur = acme_json_new_object(p);
        }
        acme_json_setj(cur, acme_json_getj(job, p, "ari", NULL), "ari", NULL);
        acme_store_save_json(store, ACME_SG_JOBS, spec->domain, ACME_JOB_STATE, cur, p);
    }
leave:
    return rv;
}

/* ---- status: what is due, from the store alone ---------------------------- */

static int staged_complete(acme_store_t *store, const acme_job_spec_t *spec, apr_pool_t *p)
{
    acme_json_t *meta;
    apr_array_header_t *names;
    int i, j;

    if (acme_store_load_json(store, ACME_SG_STAGING, spec->domain, ACME_JOB_META, &meta, p)
        != APR_SUCCESS) {
        return 0;
    }
    if (acme_json_getsa(&names, meta, p, "names", NULL) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < spec->names->nelts; ++i) {
        const char *n = APR_ARRAY_IDX(spec->names, i, const char *);
        int found = 0;
        for (j = 0; j < names->nelts && !found; ++j) {
            found = !strcmp(n, APR_ARRAY_IDX(names, j, const char *));
        }
        if (!found) return 0;
    }
    return 1;
}

static int count_one(void *baton, const char *key, acme_json_t *value)
{
    (void)key;
    (void)value;
    ++*(int *)baton;
    return 0;
}

static int count_keys(const acme_json_t *obj, apr_pool_t *p)
{
    int n = 0;

    if (obj) {
        acme_json_iter(obj, p, count_one, &n);
    }
    return n;
}

/* The renewal time under ARI for one certificate, from what job.json
 * remembers of the CA's last answer; falls back to the window time. Marks
 * st->ari_due when the CA should be asked (again). */
static apr_time_t ari_renew_at(acme_job_status_t *st, const acme_json_t *job,
                               const acme_cert_t *leaf, const char *tag, apr_time_t window_at,
                               apr_time_t now, apr_pool_t *p)
{
    acme_renew_input_t in;
    acme_renew_decision_t dec;
    acme_ari_window_t w;
    acme_renew_window_t win;
    const char *certid = NULL, *known;
    apr_time_t next_poll;

    if (acme_json_getl(job, "ari", "unsupported-until", NULL) > apr_time_sec(now)) {
        return window_at;
    }
    if (acme_cert_ari_id(&certid, p, leaf) != APR_SUCCESS) {
        return window_at; /* no AKI: ARI cannot name this certificate */
    }
    known = acme_json_gets(job, "ari", tag, "cert-id", NULL);
    next_poll = acme_json_gett(job, "ari", tag, "next-poll", NULL);
    if (!known || strcmp(known, certid) || next_poll <= now) {
        st->ari_due = 1;
    }
    if (!known || strcmp(known, certid) || !acme_json_has(job, "ari", tag, "start", NULL)) {
        return window_at;
    }
    memset(&in, 0, sizeof(in));
    w.start = acme_json_gett(job, "ari", tag, "start", NULL);
    w.end = acme_json_gett(job, "ari", tag, "end", NULL);
    w.explanation_url = NULL;
    win.is_percent = 1;
    win.percent = 33.0;
    win.duration = 0;
    in.not_before = acme_cert_not_before(leaf);
    in.not_after = acme_cert_not_after(leaf);
    in.window = &win;
    in.ari = &w;
    in.prev_ari_start = w.start;
    in.prev_ari_end = w.end;
    in.prev_chosen = acme_json_gett(job, "ari", tag, "chosen", NULL);
    in.rand_fraction = 0.5;
    in.now = now;
    if (acme_renew_decide(&dec, &in) != APR_SUCCESS) {
        return window_at;
    }
    return dec.renew_at;
}

apr_status_t acme_job_status(acme_job_status_t **pst, acme_store_t *store,
                             const acme_job_spec_t *spec, apr_time_t now, apr_pool_t *p)
{
    acme_job_status_t *st = apr_pcalloc(p, sizeof(*st));
    acme_json_t *job;
    const char *req;
    apr_size_t reqlen;
    int i;

    st->due = apr_array_make(p, 2, sizeof(acme_key_type_t));
    st->staged = staged_complete(store, spec, p);
    if (acme_store_load_json(store, ACME_SG_JOBS, spec->domain, ACME_JOB_STATE, &job, p)
        != APR_SUCCESS) {
        job = NULL;
    }
    st->ca_url = current_ca(spec, job);
    if (job) {
        acme_json_t *orders = acme_json_getj(job, p, "orders", NULL);
        st->in_flight = count_keys(orders, p);
    }
    if (spec->ari && (!job || acme_json_getl(job, "ari", "unsupported-until", NULL)
                                  <= apr_time_sec(now))) {
        /* Decided per certificate below; no certificate, no question. */
        st->ari_due = 0;
    }
    for (i = 0; i < spec->key_types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(spec->key_types, i, acme_key_type_t);
        const char *path = store->path(store, ACME_SG_DOMAINS, spec->domain,
                                       acme_job_cert_file(p, t), p);
        apr_array_header_t *chain = NULL;
        const acme_cert_t *leaf;
        apr_time_t at;

        if (!path || acme_chain_load(&chain, p, path) != APR_SUCCESS || chain->nelts < 1) {
            APR_ARRAY_PUSH(st->due, acme_key_type_t) = t;
            continue;
        }
        leaf = APR_ARRAY_IDX(chain, 0, const acme_cert_t *);
        if (!acme_cert_covers(leaf, spec->names)) {
            APR_ARRAY_PUSH(st->due, acme_key_type_t) = t;
            continue;
        }
        at = acme_renew_at_window(acme_cert_not_before(leaf), acme_cert_not_after(leaf),
                                  &spec->window);
        if (spec->ari && job) {
            at = ari_renew_at(st, job, leaf, acme_key_type_file_tag(t), at, now, p);
        }
        if (!st->renew_at || at < st->renew_at) st->renew_at = at;
        if (!st->not_after || acme_cert_not_after(leaf) < st->not_after) {
            st->not_after = acme_cert_not_after(leaf);
            st->not_before = acme_cert_not_before(leaf);
        }
        if (at <= now) {
            APR_ARRAY_PUSH(st->due, acme_key_type_t) = t;
        }
    }
    if (job) {
        st->errors = (int)acme_json_getl(job, "errors", NULL);
        st->next_attempt = acme_json_gett(job, "next-attempt", NULL);
        if (st->errors && acme_json_has(job, "last-error", NULL)) {
            st->last_error = acme_result_make(p);
            acme_result_from_json(st->last_error, acme_json_getj(job, p, "last-error", NULL));
        }
    }
    if (!st->staged && store->load(store, ACME_SG_JOBS, spec->domain, ACME_JOB_RENEW_REQUEST,
                                   &req, &reqlen, p) == APR_SUCCESS) {
        /* An operator asked for it (acmectl renew): every type, now. */
        apr_array_clear(st->due);
        for (i = 0; i < spec->key_types->nelts; ++i) {
            APR_ARRAY_PUSH(st->due, acme_key_type_t) =
                APR_ARRAY_IDX(spec->key_types, i, acme_key_type_t);
        }
        st->next_attempt = 0;
        st->renew_requested = 1;
    }
    if (st->staged) {
        /* Waiting for activation: nothing is due until the restart. */
        apr_array_clear(st->due);
    }
    *pst = st;
    return APR_SUCCESS;
}

/* ---- challenge publication through the store ------------------------------ */

typedef struct {
    acme_store_t *store;
    const acme_job_spec_t *spec;
    apr_hash_t *dns_values;   /* name -> TXT value published, for the unset */
} publish_ctx_t;

#define ACME_DNS_HOOK_TIMEOUT apr_time_from_sec(300)

/* ManagedDNSHook program [args] set|unset <name> <txt value>: the program
 * returns once the record is (or is no longer) visible to the CA. */
static apr_status_t run_dns_hook(const acme_job_spec_t *spec, const char *op, const char *name,
                                 const char *value, apr_pool_t *p)
{
    const apr_array_header_t *hook = spec->dns_hook;
    const char **args, *env[5];
    acme_proc_result_t res;
    apr_status_t rv;
    int i;

    if (!hook || hook->nelts < 1) {
        return APR_ENOTIMPL;
    }
    args = apr_palloc(p, sizeof(const char *) * (apr_size_t)(hook->nelts + 4));
    for (i = 0; i < hook->nelts; ++i) {
        args[i] = APR_ARRAY_IDX(hook, i, const char *);
    }
    args[i++] = op;
    args[i++] = name;
    args[i++] = value;
    args[i] = NULL;
    env[0] = "PATH=/usr/local/bin:/usr/bin:/bin";
    env[1] = apr_pstrcat(p, "MOD_ACME_DOMAIN=", spec->domain, NULL);
    env[2] = apr_pstrcat(p, "MOD_ACME_RECORD=_acme-challenge.", name, NULL);
    env[3] = apr_pstrcat(p, "MOD_ACME_TXT=", value, NULL);
    env[4] = NULL;
    rv = acme_proc_run(&res, p, args, env, ACME_DNS_HOOK_TIMEOUT);
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, "ACME0421: %s: cannot run ManagedDNSHook %s",
                 spec->domain, args[0]);
        return rv;
    }
    if (res.signalled || res.exit_code != 0) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, 0, "ACME0422: %s: ManagedDNSHook %s %s %s %s %d%s%s",
                 spec->domain, op, name, res.timed_out ? "timed out," : "",
                 res.signalled ? "died of signal" : "exited with", res.exit_code,
                 *res.output ? ", output: " : "", res.output);
        return APR_EGENERAL;
    }
    acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, "ACME0423: %s: ManagedDNSHook %s %s done%s%s",
             spec->domain, op, name, *res.output ? ", output: " : "", res.output);
    return APR_SUCCESS;
}

static apr_status_t publish_cb(void *baton, const char *type, const char *name,
                               const char *token, const char *key_authz, apr_pool_t *p)
{
    publish_ctx_t *ctx = baton;
    acme_store_t *s = ctx->store;
    apr_status_t rv;

    if (!strcmp(type, "http-01")) {
        if (!acme_b64url_is_token(token, 256)) {
            acme_log(ACME_LOG_MARK, ACME_LOG_ERR, APR_EINVAL,
                     "ACME0402: %s: the CA sent an http-01 token that is not base64url; ignoring it", name);
            return APR_EINVAL;
        }
        return s->save(s, ACME_SG_CHALLENGES, "http-01", token, key_authz, strlen(key_authz),
                       0, p);
    }
    if (!strcmp(type, "dns-01")) {
        const char *value = acme_dns01_value(p, key_authz);
        if (ctx->dns_values) {
            apr_pool_t *hp = apr_hash_pool_get(ctx->dns_values);
            apr_hash_set(ctx->dns_values, apr_pstrdup(hp, name), APR_HASH_KEY_STRING,
                         apr_pstrdup(hp, value));
        }
        return run_dns_hook(ctx->spec, "set", name, value, p);
    }
    if (!strcmp(type, "tls-alpn-01")) {
        const char *cert_pem, *key_pem;

        rv = acme_tls_alpn01_make(&cert_pem, &key_pem, p, name, key_authz);
        if (rv == APR_SUCCESS) {
            rv = s->save(s, ACME_SG_CHALLENGES, "tls-alpn-01", apr_pstrcat(p, name, ".key", NULL),
                         key_pem, strlen(key_pem), 1, p);
        }
        if (rv == APR_SUCCESS) {
            rv = s->save(s, ACME_SG_CHALLENGES, "tls-alpn-01", apr_pstrcat(p, name, ".crt", NULL),
                         cert_pem, strlen(cert_pem), 0, p);
        }
        return rv;
    }
    return APR_ENOTIMPL;
}

static void withdraw_cb(void *baton, const char *type, const char *name, const char *token,
                        apr_pool_t *p)
{
    publish_ctx_t *ctx = baton;
    acme_store_t *s = ctx->store;

    if (!strcmp(type, "http-01") && acme_b64url_is_token(token, 256)) {
        s->remove(s, ACME_SG_CHALLENGES, "http-01", token, p);
    }
    else if (!strcmp(type, "dns-01")) {
        const char *value = ctx->dns_values
                                ? apr_hash_get(ctx->dns_values, name, APR_HASH_KEY_STRING) : NULL;
        (void)token;
        run_dns_hook(ctx->spec, "unset", name, value ? value : "", p);
    }
    else if (!strcmp(type, "tls-alpn-01")) {
        s->remove(s, ACME_SG_CHALLENGES, "tls-alpn-01", apr_pstrcat(p, name, ".crt", NULL), p);
        s->remove(s, ACME_SG_CHALLENGES, "tls-alpn-01", apr_pstrcat(p, name, ".key", NULL), p);
    }
}

/* ---- persisted job state ---------------------------------------------------- */

typedef struct {
    acme_store_t *store;
    const char *domain;
    acme_json_t *json;
    const char *tag;   /* key type tag of the order in flight */
    apr_pool_t *pool;
} job_ctx_t;

static void job_save(job_ctx_t *jc)
{
    apr_status_t rv = acme_store_save_json(jc->store, ACME_SG_JOBS, jc->domain, ACME_JOB_STATE,
                                           jc->json, jc->pool);
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, "ACME0403: %s: cannot save the job state", jc->domain);
    }
}

static void order_created_cb(void *baton, const char *order_url)
{
    job_ctx_t *jc = baton;

    acme_json_sets(jc->json, order_url, "orders", jc->tag, NULL);
    job_save(jc);
    acme_job_event(jc->json, jc->pool, "order-created", order_url);
    acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, "ACME0404: %s: order %s created", jc->domain, order_url);
}

/* Publishing goes through both contexts: the store for challenges, the
 * job for persistence. */
typedef struct {
    publish_ctx_t pub;
    job_ctx_t *job;
} run_baton_t;

static apr_status_t run_publish(void *baton, const char *type, const char *name,
                                const char *token, const char *key_authz, apr_pool_t *p)
{
    return publish_cb(&((run_baton_t *)baton)->pub, type, name, token, key_authz, p);
}

static void run_withdraw(void *baton, const char *type, const char *name, const char *token,
                         apr_pool_t *p)
{
    withdraw_cb(&((run_baton_t *)baton)->pub, type, name, token, p);
}

static void run_created(void *baton, const char *order_url)
{
    order_created_cb(((run_baton_t *)baton)->job, order_url);
}

/* ---- account ---------------------------------------------------------------- */

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
    apr_status_t rv;

    apr_thread_mutex_lock(account_mutex);
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
    acme_json_sets(acct, ca_url, "ca", NULL);
    if (spec->eab_kid) acme_json_sets(acct, spec->eab_kid, "eab-kid", NULL);
    acme_json_setsa(acct, contacts, "contact", NULL);
    acme_json_sets(acct, acme_time_rfc3339(p, apr_time_now()), "created", NULL);
    rv = acme_store_save_json(store, ACME_SG_ACCOUNTS, caid, "account.json", acct, p);
    if (rv != APR_SUCCESS) {
        acme_result_set(r, rv, "acme:store", "cannot save accounts/%s/account.json", caid);
        goto leave;
    }
    acme_log(ACME_LOG_MARK, ACME_LOG_NOTICE, 0, "ACME0405: created ACME account %s at %s", account->url,
             ca_url);
leave:
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

    acme_json_getsa(&failed, jc->json, p, "failed-challenges", NULL);
    out = apr_array_make(p, spec->challenges->nelts, sizeof(const char *));
    for (i = 0; i < spec->challenges->nelts; ++i) {
        const char *t = APR_ARRAY_IDX(spec->challenges, i, const char *);
        int bad = 0;
        for (j = 0; failed && j < failed->nelts; ++j) {
            bad |= !strcmp(t, APR_ARRAY_IDX(failed, j, const char *));
        }
        if (!bad) APR_ARRAY_PUSH(out, const char *) = t;
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
    rb.pub.store = store;
    rb.pub.spec = spec;
    rb.pub.dns_values = apr_hash_make(p);
    rb.job = jc;
    jc->tag = acme_key_type_file_tag(t);
    params.names = spec->names;
    params.challenges = usable_challenges(jc, spec, p);
    params.publish = run_publish;
    params.withdraw = run_withdraw;
    params.created = run_created;
    params.baton = &rb;
    params.cert_key = key;
    params.order_url = acme_json_gets(jc->json, "orders", jc->tag, NULL);
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
                acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, "ACME0406: %s: the CA does not offer the profile "
                         "'%s'; ordering with its default", spec->domain, spec->profile);
            }
        }
        if (spec->ari && dir->renewal_info) {
            /* Tell the CA which certificate this one replaces (RFC 9773 5). */
            const char *path = store->path(store, ACME_SG_DOMAINS, spec->domain,
                                           acme_job_cert_file(p, t), p);
            apr_array_header_t *chain;
            const char *certid;
            if (path && acme_chain_load(&chain, p, path) == APR_SUCCESS && chain->nelts > 0
                && acme_cert_ari_id(&certid, p, APR_ARRAY_IDX(chain, 0, acme_cert_t *))
                       == APR_SUCCESS) {
                params.replaces = certid;
            }
        }
    }
    if (params.order_url) {
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, "ACME0407: %s: resuming order %s", spec->domain,
                 params.order_url);
    }
    acme_result_activity(r, "ordering a %s certificate for %s", acme_key_type_name(t),
                         spec->domain);
    rv = acme_order_run(ppem, &order_url, client, &params, p, r);
    if (rv != APR_SUCCESS && rv != APR_EINTR) {
        /* Resume the order next time unless the CA says it is over. */
        const char *url = acme_json_gets(jc->json, "orders", jc->tag, NULL);
        if (url) {
            acme_order_t *o;
            acme_result_t *r2 = acme_result_make(p);
            acme_state_t st = ACME_STATE_UNKNOWN;

            if (acme_order_get(&o, client, url, p, r2) == APR_SUCCESS) st = o->status;
            else if (r2->http_status == 404) st = ACME_STATE_INVALID;
            if (st == ACME_STATE_INVALID || st == ACME_STATE_EXPIRED
                || st == ACME_STATE_DEACTIVATED) {
                acme_json_del(jc->json, "orders", jc->tag, NULL);
            }
        }
        if (acme_result_classify(r) == ACME_ERRCLASS_VALIDATION && params.challenges->nelts > 1) {
            /* Next attempt: the next allowed type first. */
            acme_json_t *failed = acme_json_new_array(p);
            acme_json_array_appends(failed, APR_ARRAY_IDX(params.challenges, 0, const char *));
            acme_json_setj(jc->json, failed, "failed-challenges", NULL);
        }
    }
    return rv;
}

apr_status_t acme_job_run(acme_store_t *store, const acme_job_spec_t *spec,
                          const apr_array_header_t *types, apr_pool_t *p, acme_result_t *r)
{
    const char *ca_url;
    acme_client_t *client;
    job_ctx_t jc;
    acme_json_t *meta;
    apr_array_header_t *done_types;
    apr_status_t rv;
    apr_time_t now = apr_time_now();
    int i;

    memset(&jc, 0, sizeof(jc));
    jc.store = store;
    jc.domain = spec->domain;
    jc.pool = p;
    if (acme_store_load_json(store, ACME_SG_JOBS, spec->domain, ACME_JOB_STATE, &jc.json, p)
        != APR_SUCCESS) {
        jc.json = acme_json_new_object(p);
    }
    ca_url = current_ca(spec, jc.json);
    acme_json_setl(jc.json, apr_time_sec(now), "last-run", NULL);
    acme_json_sets(jc.json, ca_url, "ca", NULL);
    {
        apr_array_header_t *tn = apr_array_make(p, 2, sizeof(const char *));
        for (i = 0; i < types->nelts; ++i) {
            APR_ARRAY_PUSH(tn, const char *) =
                acme_key_type_name(APR_ARRAY_IDX(types, i, acme_key_type_t));
        }
        acme_job_event(jc.json, p, "renewing", apr_array_pstrcat(p, tn, ' '));
    }
    job_save(&jc);

    rv = make_client(&client, NULL, spec, ca_url, p, r);
    if (rv != APR_SUCCESS) goto leave;
    rv = ensure_account(client, store, spec, ca_url, p, r);
    if (rv != APR_SUCCESS) goto leave;

    done_types = apr_array_make(p, 2, sizeof(acme_key_type_t));
    for (i = 0; i < types->nelts; ++i) {
        acme_key_type_t t = APR_ARRAY_IDX(types, i, acme_key_type_t);
        acme_pkey_t *key;
        const char *pem, *keypem;
        apr_array_header_t *chain;

        if (stopping(spec)) {
            rv = acme_result_set(r, APR_EINTR, "acme:stopped", "stopped by a server restart; "
                                 "the order is resumed after it");
            goto leave;
        }
        rv = load_or_make_key(&key, store, spec->domain, t, p);
        if (rv != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:store", "cannot create the %s key for %s",
                            acme_key_type_name(t), spec->domain);
            goto leave;
        }
        rv = get_cert(&pem, client, store, spec, &jc, t, key, p, r);
        if (rv != APR_SUCCESS) goto leave;
        rv = acme_chain_from_pem(&chain, p, pem, strlen(pem));
        if (rv == APR_SUCCESS && (!acme_cert_matches_key(APR_ARRAY_IDX(chain, 0, acme_cert_t *), key)
                                  || !acme_cert_covers(APR_ARRAY_IDX(chain, 0, acme_cert_t *),
                                                       spec->names))) {
            rv = APR_EINVAL;
        }
        if (rv != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:malformed-response",
                            "the CA's certificate for %s does not match the key or the names",
                            spec->domain);
            acme_json_del(jc.json, "orders", jc.tag, NULL);
            goto leave;
        }
        rv = acme_pkey_to_pem(&keypem, p, key);
        if (rv == APR_SUCCESS) {
            rv = store->save(store, ACME_SG_STAGING, spec->domain, acme_job_key_file(p, t),
                             keypem, strlen(keypem), 1, p);
        }
        if (rv == APR_SUCCESS) {
            rv = store->save(store, ACME_SG_STAGING, spec->domain, acme_job_cert_file(p, t),
                             pem, strlen(pem), 0, p);
        }
        if (rv != APR_SUCCESS) {
            acme_result_set(r, rv, "acme:store", "cannot stage the certificate for %s",
                            spec->domain);
            goto leave;
        }
        /* The order is done: never resume it again. */
        acme_json_del(jc.json, "orders", jc.tag, NULL);
        job_save(&jc);
        APR_ARRAY_PUSH(done_types, acme_key_type_t) = t;
    }

    /* meta.json last: its presence says the staged set is complete. */
    meta = acme_json_new_object(p);
    acme_json_setsa(meta, spec->names, "names", NULL);
    acme_json_sets(meta, ca_url, "ca", NULL);
    acme_json_sets(meta, acme_time_rfc3339(p, apr_time_now()), "staged", NULL);
    {
        apr_array_header_t *tn = apr_array_make(p, 2, sizeof(const char *));
        for (i = 0; i < done_types->nelts; ++i) {
            APR_ARRAY_PUSH(tn, const char *) =
                acme_key_type_name(APR_ARRAY_IDX(done_types, i, acme_key_type_t));
        }
        acme_json_setsa(meta, tn, "key-types", NULL);
    }
    rv = acme_store_save_json(store, ACME_SG_STAGING, spec->domain, ACME_JOB_META, meta, p);
    if (rv != APR_SUCCESS) {
        acme_result_set(r, rv, "acme:store", "cannot stage the certificate for %s", spec->domain);
        goto leave;
    }
    for (i = 0; i < done_types->nelts; ++i) {
        store->remove(store, ACME_SG_JOBS, spec->domain,
                      acme_job_key_file(p, APR_ARRAY_IDX(done_types, i, acme_key_type_t)), p);
    }

leave:
    if (rv == APR_SUCCESS) {
        acme_json_setl(jc.json, 0, "errors", NULL);
        acme_json_setl(jc.json, 0, "next-attempt", NULL);
        acme_json_del(jc.json, "last-error", NULL);
        acme_json_del(jc.json, "failed-challenges", NULL);
        acme_json_setl(jc.json, apr_time_sec(apr_time_now()), "last-success", NULL);
        acme_json_setl(jc.json, acme_json_getl(jc.json, "renewals-ok", NULL) + 1, "renewals-ok",
                       NULL);
        acme_json_setl(jc.json, 0, "ca-errors", NULL);
        acme_json_sets(jc.json, "staged", "state", NULL);
        acme_job_event(jc.json, p, "staged", NULL);
        store->remove(store, ACME_SG_JOBS, spec->domain, ACME_JOB_RENEW_REQUEST, p);
    }
    else if (rv != APR_EINTR) {
        int errors = (int)acme_json_getl(jc.json, "errors", NULL) + 1;
        double frac = (double)acme_random_below(1000000) / 1000000.0;
        acme_errclass_t cls = acme_result_classify(r);
        apr_time_t next = acme_backoff_next(apr_time_now(), errors, spec->retry_delay, frac,
                                            r->retry_after, cls == ACME_ERRCLASS_CONFIG);

        int ca_errors = (int)acme_json_getl(jc.json, "ca-errors", NULL) + 1;

        acme_json_setl(jc.json, errors, "errors", NULL);
        acme_json_setl(jc.json, acme_json_getl(jc.json, "renewals-failed", NULL) + 1,
                       "renewals-failed", NULL);
        if (spec->ca_urls && spec->ca_urls->nelts > 1 && ca_errors >= ACME_JOB_FAILOVER_AFTER) {
            long long idx = (acme_json_getl(jc.json, "ca-index", NULL) + 1) % spec->ca_urls->nelts;
            const char *next_ca = APR_ARRAY_IDX(spec->ca_urls, (int)idx, const char *);

            acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, 0, "ACME0408: %s: %d failures in a row with the CA "
                     "%s; switching to %s", spec->domain, ca_errors, ca_url, next_ca);
            acme_job_event(jc.json, p, "ca-switched", next_ca);
            acme_json_setl(jc.json, idx, "ca-index", NULL);
            acme_json_del(jc.json, "orders", NULL);
            ca_errors = 0;
            /* The next CA need not wait for this one's backoff. */
            next = apr_time_now() + spec->retry_delay;
        }
        acme_json_setl(jc.json, ca_errors, "ca-errors", NULL);
        acme_json_setl(jc.json, apr_time_sec(next) + 1, "next-attempt", NULL);
        acme_json_setj(jc.json, acme_result_to_json(r, p), "last-error", NULL);
        acme_json_sets(jc.json, cls == ACME_ERRCLASS_CONFIG ? "config-error" : "error", "state",
                       NULL);
        acme_job_event(jc.json, p, "errored", acme_result_describe(r, p));
    }
    job_save(&jc);
    return rv;
}
