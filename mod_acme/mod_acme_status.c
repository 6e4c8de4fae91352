/* mod_acme_status.c: renders the managed domains' status records (acme_status.c)
 * as a server-status section, JSON (acme-status) and Prometheus text. */
#include <string.h>
#include <apr_strings.h>
#include <apr_optional.h>
#include <apr_optional_hooks.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_status.h>
#include <scoreboard.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "acme_renew.h"
#include "acme_job.h"
#include "acme_status.h"
#include "mod_acme.h"
#include "mod_acme_store.h"
#include "mod_acme_config.h"
#include "mod_acme_install.h"

#define STATUS_HANDLER "acme-status"
#define METRICS_HANDLER "acme-metrics"
#define STATUS_SCHEMA 1

/* A domain and its status record (acme_status.h), the one thing rendered here. */
typedef struct {
    acme_domain_t *d;
    acme_status_t *st;
} dom_status_t;

static const char *state_of(const dom_status_t *ds)
{
    return acme_status_state_name(ds->st->state);
}

/* ---- collecting: config + store --------------------------------------------- */

/* Why the settings keep the domain's renewal from running, or NULL. */
static const char *config_problem(const acme_domain_t *d)
{
    if (d->settings->renew_mode == ACME_RENEW_MANUAL) {
        return "ManagedRenewMode manual: the module orders no certificate for it";
    }
    if (!acme_config_renews(d)) {
        return "no SSL virtual host uses one of its names as ServerName or ServerAlias";
    }
    if (!d->eff_challenges || d->eff_challenges->nelts == 0) {
        return "no challenge type can work (see ManagedChallenges, ManagedPortMap, Listen)";
    }
    return NULL;
}

/* Which certificate mod_ssl has for the domain's vhosts: "vhost-file" (a
 * vhost's own SSLCertificateFile, kept until the module's can replace it:
 * a takeover), "managed" (an issued one), "temporary" (self-signed, with
 * 503) or "none" (no SSL vhost uses the domain). */
static const char *served_of(const acme_domain_t *d)
{
    if (d->vhost_cert) return "vhost-file";
    if (d->has_cert) return "managed";
    return d->driven ? "temporary" : "none";
}

static int status_of(dom_status_t *ds, acme_domain_t *d, apr_time_t now, apr_pool_t *p)
{
    acme_job_spec_t spec;

    ds->d = d;
    acme_config_job_spec(&spec, d);
    return acme_status_get(&ds->st, acme_mod_store, &spec, config_problem(d), now, p)
           == APR_SUCCESS;
}

/* Calls fn with each managed domain's status record, made in a pool that
 * is cleared after each: an answer for 10,000 domains is written as it is
 * made and holds one domain's record at a time. Returns how many. */
typedef void each_fn(request_rec *r, const dom_status_t *ds, apr_time_t now, void *baton,
                     apr_pool_t *p);

static int each_status(request_rec *r, apr_time_t now, each_fn *fn, void *baton)
{
    acme_global_t *g = acme_config_global(r->server);
    dom_status_t ds;
    apr_pool_t *p;
    int i, n = 0;

    apr_pool_create(&p, r->pool);
    for (i = 0; g && acme_mod_store && i < g->domains->nelts; ++i, apr_pool_clear(p)) {
        if (status_of(&ds, APR_ARRAY_IDX(g->domains, i, acme_domain_t *), now, p)) {
            fn(r, &ds, now, baton, p);
            ++n;
        }
    }
    apr_pool_destroy(p);
    return n;
}

/* What the metrics and the short status print of a domain, kept for all
 * domains: a metric's lines must come together, one metric after another. */
typedef struct {
    acme_key_type_t type;
    apr_time_t not_before, not_after;
} facts_cert_t;

typedef struct {
    const char *name;            /* the configuration's: lives as long as it */
    acme_domain_state_t state;
    const char *problem;         /* the last error's type, or NULL */
    apr_time_t next, first_not_after;
    apr_int64_t ok, failed;
    int errors, in_flight, retry_after, preflight_holding, expiring, has_first, ncerts;
    facts_cert_t *certs;         /* the covering ones */
} facts_t;

static void keep_facts(request_rec *r, const dom_status_t *ds, apr_time_t now, void *baton,
                       apr_pool_t *p)
{
    apr_array_header_t *all = baton;
    facts_t *f = &APR_ARRAY_PUSH(all, facts_t);
    int i;

    (void)now; (void)p;
    memset(f, 0, sizeof(*f));
    f->name = ds->d->name;
    f->state = ds->st->state;
    f->problem = ds->st->last_error && ds->st->last_error->problem
                 ? apr_pstrdup(r->pool, ds->st->last_error->problem) : NULL;
    f->next = ds->st->next;
    f->ok = ds->st->renewals_ok;
    f->failed = ds->st->renewals_failed;
    f->errors = ds->st->errors;
    f->in_flight = ds->st->in_flight;
    f->retry_after = ds->st->retry_after_active;
    f->preflight_holding = ds->st->preflight && ds->st->preflight_holding;
    f->expiring = ds->st->expiring;
    f->has_first = ds->st->first != NULL;
    f->first_not_after = ds->st->first ? ds->st->first->not_after : 0;
    f->certs = apr_palloc(r->pool, sizeof(facts_cert_t) * (apr_size_t)(ds->st->certs->nelts + 1));
    for (i = 0; i < ds->st->certs->nelts; ++i) {
        const acme_status_cert_t *ci = APR_ARRAY_IDX(ds->st->certs, i, const acme_status_cert_t *);
        if (!ci->covers) continue;
        f->certs[f->ncerts].type = ci->type;
        f->certs[f->ncerts].not_before = ci->not_before;
        f->certs[f->ncerts++].not_after = ci->not_after;
    }
}

static apr_array_header_t *all_facts(request_rec *r, apr_time_t now)
{
    acme_global_t *g = acme_config_global(r->server);
    apr_array_header_t *all = apr_array_make(r->pool, g ? g->domains->nelts : 1, sizeof(facts_t));

    each_status(r, now, keep_facts, all);
    return all;
}

/* ---- JSON ------------------------------------------------------------------- */

static void set_time(acme_json_t *j, apr_pool_t *p, apr_time_t t, const char *key)
{
    if (t > 0) {
        acme_json_sets(j, acme_time_rfc3339(p, t), key, NULL);
    }
}

static apr_array_header_t *key_type_names(const apr_array_header_t *types, apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, types->nelts, sizeof(const char *));
    int i;

    for (i = 0; i < types->nelts; ++i) {
        APR_ARRAY_PUSH(a, const char *) =
            acme_key_type_name(APR_ARRAY_IDX(types, i, acme_key_type_t));
    }
    return a;
}

/* Only the three known string fields: the job may keep more in an event.
 * An entry without a time and a type (a damaged job.json) is left out. */
static acme_json_t *events_json(const acme_json_t *events, apr_pool_t *p)
{
    acme_json_t *out = acme_json_new_array(p);
    apr_size_t i, n = acme_json_array_len(events);
    const char *when, *type, *detail;

    for (i = 0; i < n; ++i) {
        acme_json_t *ev = acme_json_array_at(events, p, i), *o;

        when = acme_json_gets(ev, ACME_JK_EV_TIME, NULL);
        type = acme_json_gets(ev, ACME_JK_EV_TYPE, NULL);
        detail = acme_json_gets(ev, ACME_JK_EV_DETAIL, NULL);
        if (!when || !type) continue;
        o = acme_json_new_object(p);
        acme_json_sets(o, when, "time", NULL);
        acme_json_sets(o, type, "type", NULL);
        if (detail) acme_json_sets(o, detail, "detail", NULL);
        acme_json_array_append(out, o);
    }
    return out;
}

/* Private keys, EAB values and key file paths are never read here, so they
 * cannot leak: only the settings named below are copied. */
static acme_json_t *domain_json(const dom_status_t *ds, int with_events, apr_time_t now,
                                apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p), *certs = acme_json_new_array(p), *set;
    const acme_settings_t *s = ds->d->settings;
    acme_renew_window_t win;
    int i;

    acme_json_sets(j, ds->d->name, "name", NULL);
    acme_json_setsa(j, ds->d->names, "names", NULL);
    acme_json_sets(j, state_of(ds), "state", NULL);
    acme_json_sets(j, ds->st->reason, "state-reason", NULL);
    acme_json_setsa(j, key_type_names(s->key_types, p), "key-types", NULL);
    acme_json_sets(j, ds->st->ca_url, "ca", NULL);
    acme_json_setb(j, ds->d->driven, "driven", NULL);
    acme_json_setb(j, ds->st->has_cert, "has-certificate", NULL);
    acme_json_sets(j, served_of(ds->d), "served", NULL);
    if (ds->d->vhost_cert) {
        acme_json_sets(j, ds->d->vhost_cert, "served-file", NULL);
    }
    if (s->install_cmd && acme_mod_cache
        && acme_store_load_json(acme_mod_cache, ACME_SG_DOMAINS, ds->d->name, ACME_INSTALL_JSON,
                                &set, p) == APR_SUCCESS) {
        acme_json_setj(j, set, "install", NULL); /* how ManagedInstallCmd last ran */
    }

    set = acme_json_new_object(p);
    if (s->ca_urls) acme_json_setsa(set, s->ca_urls, "ca-urls", NULL);
    if (s->contact) acme_json_sets(set, s->contact, "contact", NULL);
    if (s->profile) acme_json_sets(set, s->profile, "profile", NULL);
    acme_json_setb(set, s->ari != 0, "ari", NULL);
    acme_json_setb(set, s->eab_kid != NULL, "eab", NULL);
    acme_json_setb(set, s->agree_tos == 1, "agree-tos", NULL);
    acme_json_setsa(set, s->challenges, "challenges", NULL);
    acme_json_setsa(set, ds->d->eff_challenges ? ds->d->eff_challenges
                                               : apr_array_make(p, 1, sizeof(const char *)),
                    "challenges-possible", NULL);
    win.is_percent = s->renew_is_percent;
    win.percent = s->renew_percent;
    win.duration = s->renew_duration;
    acme_json_sets(set, acme_renew_window_format(p, &win), "renew-window", NULL);
    acme_json_sets(set, acme_duration_format(p, s->retry_delay), "retry-delay", NULL);
    acme_json_setj(j, set, "settings", NULL);

    for (i = 0; i < ds->st->certs->nelts; ++i) {
        const acme_status_cert_t *ci = APR_ARRAY_IDX(ds->st->certs, i, acme_status_cert_t *);
        if (ci->present) acme_json_array_append(certs, acme_status_cert_json(ci, now, p));
    }
    acme_json_setj(j, certs, "certificates", NULL);
    if (ds->st->first) {
        set_time(j, p, ds->st->first->not_before, "valid-from");
        set_time(j, p, ds->st->first->not_after, "valid-until");
        acme_json_setl(j, acme_status_days_left(ds->st->first->not_after, now), "days-left", NULL);
        if (ds->st->first->issuer) acme_json_sets(j, ds->st->first->issuer, "issuer", NULL);
    }
    acme_json_setb(j, ds->st->expiring, "expiring", NULL);
    set_time(j, p, ds->st->renew_at, "renew-at");
    acme_json_sets(j, ds->st->next_kind, "next", NULL);
    set_time(j, p, ds->st->next, "next-attempt");
    acme_json_setl(j, ds->st->errors, "errors", NULL);
    if (ds->st->last_error) {
        acme_json_setj(j, acme_status_error_json(ds->st->last_error, p), "last-error", NULL);
    }
    if (ds->st->preflight) {
        acme_json_setj(j, acme_status_preflight_json(ds->st, p), "preflight", NULL);
    }
    acme_json_setb(j, ds->st->retry_after_active, "retry-after-active", NULL);
    acme_json_setb(j, ds->st->staged, "staged", NULL);
    acme_json_setb(j, ds->st->renew_requested, "renew-requested", NULL);
    acme_json_setl(j, ds->st->in_flight, "orders-in-flight", NULL);
    set_time(j, p, ds->st->last_success, "last-renewal");
    set_time(j, p, ds->st->last_run, "last-run");
    if (ds->st->job_state) acme_json_sets(j, ds->st->job_state, "job-state", NULL);
    if (ds->st->job_ca) acme_json_sets(j, ds->st->job_ca, "job-ca", NULL);
    acme_json_setl(j, ds->st->renewals_ok, "renewals", "success", NULL);
    acme_json_setl(j, ds->st->renewals_failed, "renewals", "error", NULL);
    if (with_events) {
        acme_json_setj(j, ds->st->events ? events_json(ds->st->events, p) : acme_json_new_array(p),
                       "events", NULL);
    }
    return j;
}

static void json_domain(request_rec *r, const dom_status_t *ds, apr_time_t now, void *baton,
                        apr_pool_t *p)
{
    int *n = baton;

    ap_rvputs(r, (*n)++ ? ",\n" : "\n", acme_json_dump(domain_json(ds, 0, now, p), p, 1), NULL);
}

/* A watched certificate file: its certificate's facts, never a key. */
static acme_json_t *watched_json(const acme_watched_t *w, apr_time_t now, apr_pool_t *p)
{
    acme_json_t *j = acme_json_new_object(p);

    acme_json_sets(j, w->file, "file", NULL);
    acme_json_setsa(j, w->vhosts, "vhosts", NULL);
    acme_json_setb(j, w->managed_by != NULL, "managed", NULL);
    if (w->managed_by) acme_json_sets(j, w->managed_by, "managed-by", NULL);
    acme_json_setb(j, w->served, "served", NULL);
    if (w->error) {
        acme_json_sets(j, w->error, "error", NULL);
        return j;
    }
    set_time(j, p, w->not_before, "valid-from");
    set_time(j, p, w->not_after, "valid-until");
    acme_json_setl(j, acme_status_days_left(w->not_after, now), "days-left", NULL);
    if (w->subject) acme_json_sets(j, w->subject, "subject", NULL);
    if (w->issuer) acme_json_sets(j, w->issuer, "issuer", NULL);
    if (w->fingerprint) acme_json_sets(j, w->fingerprint, "sha256-fingerprint", NULL);
    if (w->sans) acme_json_setsa(j, w->sans, "names", NULL);
    return j;
}

/* The SSL vhosts' certificate files (acme_watched_t*), or NULL. */
static const apr_array_header_t *watched_of(request_rec *r)
{
    acme_global_t *g = acme_config_global(r->server);

    return g ? g->watched : NULL;
}

/* {"schema", "version", "now", "store", "watched-certificates", "domains":
 * [...]}: jansson writes
 * every object; the domains go out one by one as they are made. */
static void all_json(request_rec *r, apr_time_t now)
{
    acme_json_t *j = acme_json_new_object(r->pool), *watched;
    const apr_array_header_t *all_watched = watched_of(r);
    const char *head;
    int i, n = 0;

    acme_json_setl(j, STATUS_SCHEMA, "schema", NULL);
    acme_json_sets(j, ACME_VERSION, "version", NULL);
    acme_json_sets(j, acme_time_rfc3339(r->pool, now), "now", NULL);
    if (acme_mod_store) {
        int up;
        apr_uint32_t errors;
        acme_mod_store_state(&up, &errors, ap_server_conf, r->pool);
        acme_json_sets(j, acme_mod_store->kind, "store", "kind", NULL);
        acme_json_setb(j, up, "store", "up", NULL);
        acme_json_setl(j, (long long)errors, "store", "errors", NULL);
    }
    watched = acme_json_new_array(r->pool);
    for (i = 0; all_watched && i < all_watched->nelts; ++i) {
        acme_json_array_append(watched, watched_json(APR_ARRAY_IDX(all_watched, i,
                                                                   const acme_watched_t *),
                                                     now, r->pool));
    }
    acme_json_setj(j, watched, "watched-certificates", NULL);
    head = acme_json_dump(j, r->pool, 1);
    ap_rwrite(head, (int)strlen(head) - 1, r);     /* all but its closing brace */
    ap_rputs(",\"domains\":[", r);
    each_status(r, now, json_domain, &n);
    ap_rputs("]}\n", r);
}

/* ---- server-status section -------------------------------------------------- */

static const char *esc(apr_pool_t *p, const char *s)
{
    return ap_escape_html2(p, s ? s : "", 0);
}

static const char *html_time(apr_pool_t *p, apr_time_t t)
{
    return t > 0 ? acme_time_rfc3339(p, t) : "-";
}

static const char *next_text(const dom_status_t *ds, apr_pool_t *p)
{
    if (!strcmp(ds->st->next_kind, "retry")) {
        return apr_pstrcat(p, "retry at ", html_time(p, ds->st->next), NULL);
    }
    if (!strcmp(ds->st->next_kind, "renew")) {
        return apr_pstrcat(p, "renew at ", html_time(p, ds->st->next), NULL);
    }
    if (!strcmp(ds->st->next_kind, "due")) return "due now";
    if (!strcmp(ds->st->next_kind, "activation")) return "activation at the next restart";
    return "-";
}

static void html_names(request_rec *r, const apr_array_header_t *names, apr_pool_t *p)
{
    int i;

    for (i = 0; i < names->nelts; ++i) {
        ap_rvputs(r, i ? "<br>" : "", esc(p, APR_ARRAY_IDX(names, i, const char *)), NULL);
    }
}

static void html_row(request_rec *r, const dom_status_t *ds, apr_time_t now, void *baton,
                     apr_pool_t *p)
{
    (void)baton;

    ap_rvputs(r, "<tr><td>", esc(p, ds->d->name), "</td><td>", NULL);
    html_names(r, ds->d->names, p);
    ap_rvputs(r, "</td><td title=\"", esc(p, ds->st->reason), "\">", esc(p, state_of(ds)),
              "</td><td>",
              esc(p, apr_array_pstrcat(p, key_type_names(ds->d->settings->key_types, p), ' ')),
              "</td>", NULL);
    if (ds->st->first) {
        ap_rvputs(r, "<td>", esc(p, html_time(p, ds->st->first->not_before)), " &ndash; ",
                  esc(p, html_time(p, ds->st->first->not_after)), "</td>", NULL);
        ap_rprintf(r, "<td>%" APR_INT64_T_FMT "</td>",
                   acme_status_days_left(ds->st->first->not_after, now));
        ap_rvputs(r, "<td>", esc(p, ds->st->first->issuer), "</td>", NULL);
    }
    else {
        ap_rputs("<td>-</td><td>-</td><td>-</td>", r);
    }
    ap_rvputs(r, "<td>", esc(p, html_time(p, ds->st->last_success)), "</td><td>",
              esc(p, next_text(ds, p)), "</td><td>", NULL);
    if (ds->st->last_error) {
        const acme_result_t *e = ds->st->last_error;
        ap_rvputs(r, "<span title=\"", esc(p, e->problem), "\">",
                  esc(p, e->problem ? acme_problem_short(e->problem) : "error"), "</span>: ",
                  esc(p, e->detail), NULL);
    }
    else {
        ap_rputs("-", r);
    }
    if (ds->st->preflight) {
        ap_rvputs(r, "<br>pre-flight", ds->st->preflight_holding ? " (holds back the CA)" : "",
                  ": ", esc(p, ds->st->preflight), NULL);
    }
    ap_rvputs(r, "</td><td>", esc(p, served_of(ds->d)), NULL);
    if (ds->d->vhost_cert) {
        ap_rvputs(r, " ", esc(p, ds->d->vhost_cert), NULL);
    }
    ap_rputs("</td></tr>\n", r);
}

static void status_auto(request_rec *r, apr_time_t now)
{
    const apr_array_header_t *all = all_facts(r, now);
    int i, ok = 0, renewing = 0, errored = 0, expiring = 0;

    for (i = 0; i < all->nelts; ++i) {
        const facts_t *f = &APR_ARRAY_IDX(all, i, facts_t);
        ok += f->state == ACME_DS_OK;
        renewing += f->state == ACME_DS_RENEWING;
        errored += f->state == ACME_DS_ERROR;
        expiring += f->expiring;
    }
    ap_rprintf(r, "ManagedDomains: %d\nManagedOK: %d\nManagedRenewing: %d\n"
               "ManagedErrored: %d\nManagedExpiring: %d\n", all->nelts, ok, renewing, errored,
               expiring);
    for (i = 0; i < all->nelts; ++i) {
        const facts_t *f = &APR_ARRAY_IDX(all, i, facts_t);
        /* Names passed acme_name_is_valid at config time: no spaces, no newlines. */
        if (f->has_first) {
            ap_rprintf(r, "ManagedDomain%d: %s %s %" APR_INT64_T_FMT "\n", i, f->name,
                       acme_status_state_name(f->state),
                       acme_status_days_left(f->first_not_after, now));
        }
        else {
            ap_rprintf(r, "ManagedDomain%d: %s %s -\n", i, f->name,
                       acme_status_state_name(f->state));
        }
    }
}

static void html_line(request_rec *r, const dom_status_t *ds, apr_time_t now, void *baton,
                      apr_pool_t *p)
{
    (void)now; (void)baton;
    ap_rvputs(r, "<p>", esc(p, ds->d->name), ": ", esc(p, state_of(ds)), NULL);
    if (ds->st->last_error) {
        ap_rvputs(r, " (", esc(p, ds->st->last_error->detail), ")", NULL);
    }
    if (ds->st->preflight) {
        ap_rvputs(r, " (pre-flight: ", esc(p, ds->st->preflight), ")", NULL);
    }
    ap_rputs("</p>\n", r);
}

/* The certificate files of SSL vhosts, a table after the domains'. */
static void html_watched(request_rec *r, apr_time_t now)
{
    const apr_array_header_t *all = watched_of(r);
    apr_pool_t *p = r->pool;
    int i;

    if (!all || all->nelts == 0) {
        return;
    }
    ap_rputs("<h2>Certificates from SSLCertificateFile</h2>\n<table class=\"watched-certificates\" "
             "border=\"1\">\n<tr><th>File</th><th>Virtual hosts</th><th>Managed by</th>"
             "<th>Served</th><th>Valid</th><th>Days left</th><th>Issuer CA</th></tr>\n", r);
    for (i = 0; i < all->nelts; ++i) {
        const acme_watched_t *w = APR_ARRAY_IDX(all, i, const acme_watched_t *);
        ap_rvputs(r, "<tr><td>", esc(p, w->file), "</td><td>", NULL);
        html_names(r, w->vhosts, p);
        ap_rvputs(r, "</td><td>", w->managed_by ? esc(p, w->managed_by) : "-", "</td><td>",
                  w->served ? "yes" : "no (replaced by the managed certificate)", "</td>", NULL);
        if (w->error) {
            ap_rvputs(r, "<td colspan=\"3\">", esc(p, w->error), "</td></tr>\n", NULL);
            continue;
        }
        ap_rvputs(r, "<td>", esc(p, html_time(p, w->not_before)), " &ndash; ",
                  esc(p, html_time(p, w->not_after)), "</td>", NULL);
        ap_rprintf(r, "<td>%" APR_INT64_T_FMT "</td>", acme_status_days_left(w->not_after, now));
        ap_rvputs(r, "<td>", esc(p, w->issuer), "</td></tr>\n", NULL);
    }
    ap_rputs("</table>\n", r);
}

/* ?auto: "WatchedCertificate<n>: <vhost> <days-left|-> <served|replaced> <file>". */
static void auto_watched(request_rec *r, apr_time_t now)
{
    const apr_array_header_t *all = watched_of(r);
    int i;

    ap_rprintf(r, "WatchedCertificates: %d\n", all ? all->nelts : 0);
    for (i = 0; all && i < all->nelts; ++i) {
        const acme_watched_t *w = APR_ARRAY_IDX(all, i, const acme_watched_t *);
        const char *days = w->error ? "-" : apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                                         acme_status_days_left(w->not_after, now));
        /* a path has no newline: httpd's configuration is read line by line */
        ap_rprintf(r, "WatchedCertificate%d: %s %s %s %s\n", i, w->name, days,
                   w->served ? "served" : "replaced", w->file);
    }
}

static int status_hook(request_rec *r, int flags)
{
    acme_global_t *g = acme_config_global(r->server);
    const apr_array_header_t *watched = watched_of(r);
    apr_time_t now = apr_time_now();

    if (!g || !g->domains || g->domains->nelts == 0 || !acme_mod_store) {
        /* no managed domain: the vhosts' own certificates still are watched */
        if (!watched || watched->nelts == 0) {
            return OK;
        }
        if (flags & AP_STATUS_SHORT) {
            auto_watched(r, now);
        }
        else {
            ap_rputs("<hr>\n", r);
            html_watched(r, now);
        }
        return OK;
    }
    if (flags & AP_STATUS_SHORT) {
        status_auto(r, now);
        auto_watched(r, now);
        return OK;
    }
    ap_rputs("<hr>\n<h2>Managed domains</h2>\n", r);
    {
        int up;
        apr_uint32_t errors;
        acme_mod_store_state(&up, &errors, r->server, r->pool);
        ap_rprintf(r, "<p>Store: %s, %s, %u failed request(s)</p>\n",
                   esc(r->pool, acme_mod_store->kind), up ? "up" : "DOWN (serving the cache)",
                   (unsigned)errors);
    }
    if (flags & AP_STATUS_NOTABLE) {
        each_status(r, now, html_line, NULL);
        html_watched(r, now);
        return OK;
    }
    ap_rputs("<table class=\"managed-domains\" border=\"1\">\n<tr><th>Domain</th><th>Names</th>"
             "<th>State</th><th>Key types</th><th>Valid</th><th>Days left</th><th>Issuer CA</th>"
             "<th>Last renewal</th><th>Next check or retry</th><th>Last error</th>"
             "<th>Served</th></tr>\n", r);
    each_status(r, now, html_row, NULL);
    ap_rputs("</table>\n", r);
    html_watched(r, now);
    return OK;
}

/* ---- Prometheus text exposition (format 0.0.4) ------------------------------- */

static const char *label_esc(apr_pool_t *p, const char *s)
{
    apr_size_t n = 0;
    const char *c;
    char *out, *o;

    for (c = s; *c; ++c) {
        n += (*c == '\\' || *c == '"' || *c == '\n') ? 2 : 1;
    }
    o = out = apr_palloc(p, n + 1);
    for (c = s; *c; ++c) {
        if (*c == '\\' || *c == '"') {
            *o++ = '\\';
            *o++ = *c;
        }
        else if (*c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

static void metric_head(request_rec *r, const char *name, const char *type, const char *help)
{
    ap_rvputs(r, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", NULL);
}

/* notAfter or notBefore of every active certificate, one line each: the
 * managed domains' (managed="true"), then those that vhosts' own
 * SSLCertificateFile serve (managed="false", by file). */
static void cert_times(request_rec *r, const apr_array_header_t *all, const char *name,
                       const char *help, int after)
{
    const apr_array_header_t *watched = watched_of(r);
    int i, j;

    metric_head(r, name, "gauge", help);
    for (i = 0; i < all->nelts; ++i) {
        const facts_t *f = &APR_ARRAY_IDX(all, i, facts_t);
        for (j = 0; j < f->ncerts; ++j) {
            ap_rprintf(r, "%s{domain=\"%s\",key_type=\"%s\",managed=\"true\"} %" APR_TIME_T_FMT
                       "\n", name, label_esc(r->pool, f->name),
                       label_esc(r->pool, acme_key_type_name(f->certs[j].type)),
                       apr_time_sec(after ? f->certs[j].not_after : f->certs[j].not_before));
        }
    }
    for (i = 0; watched && i < watched->nelts; ++i) {
        const acme_watched_t *w = APR_ARRAY_IDX(watched, i, const acme_watched_t *);
        if (!w->served || w->error) continue;
        ap_rprintf(r, "%s{domain=\"%s\",file=\"%s\",managed=\"false\"} %" APR_TIME_T_FMT "\n",
                   name, label_esc(r->pool, w->name), label_esc(r->pool, w->file),
                   apr_time_sec(after ? w->not_after : w->not_before));
    }
}

/* One line per domain of a gauge read from its facts by field. */
typedef enum { F_ERRORS, F_IN_FLIGHT, F_RETRY_AFTER, F_PREFLIGHT_HOLDING } facts_field_t;

static void per_domain(request_rec *r, const apr_array_header_t *all, const char *name,
                       const char *help, facts_field_t field)
{
    int i;

    metric_head(r, name, "gauge", help);
    for (i = 0; i < all->nelts; ++i) {
        const facts_t *f = &APR_ARRAY_IDX(all, i, facts_t);
        ap_rprintf(r, "%s{domain=\"%s\"} %d\n", name, label_esc(r->pool, f->name),
                   field == F_ERRORS ? f->errors : field == F_IN_FLIGHT ? f->in_flight
                   : field == F_RETRY_AFTER ? f->retry_after : f->preflight_holding);
    }
}

static void metrics(request_rec *r, apr_time_t now)
{
    const apr_array_header_t *all = all_facts(r, now);
    apr_pool_t *p = r->pool;
    int i, j;

    cert_times(r, all, "acme_certificate_not_after_seconds",
               "Expiry (notAfter) of the active certificate as a unix time.", 1);
    cert_times(r, all, "acme_certificate_not_before_seconds",
               "Start of validity (notBefore) of the active certificate as a unix time.", 0);
    metric_head(r, "acme_domain_last_error_info", "gauge",
                "1 for a domain whose last attempt failed, with the problem type.");
    for (i = 0; i < all->nelts; ++i) {
        const facts_t *f = &APR_ARRAY_IDX(all, i, facts_t);
        const char *pt = f->problem;
        if (!pt) continue;
        if (!strncmp(pt, ACME_PROBLEM_NS, sizeof(ACME_PROBLEM_NS) - 1)) {
            pt += sizeof(ACME_PROBLEM_NS) - 1;
        }
        ap_rprintf(r, "acme_domain_last_error_info{domain=\"%s\",problem=\"%s\"} 1\n",
                   label_esc(p, f->name), label_esc(p, pt));
    }
    metric_head(r, "acme_server_restart_time_seconds", "gauge",
                "When httpd last (re)started, as a unix time: changes() counts restarts.");
    ap_rprintf(r, "acme_server_restart_time_seconds %" APR_TIME_T_FMT "\n",
               apr_time_sec(ap_scoreboard_image ? ap_scoreboard_image->global->restart_time
                                                : 0));
    metric_head(r, "acme_renewal_next_attempt_seconds", "gauge",
                "Seconds until the next renewal attempt or retry (0: due now).");
    for (i = 0; i < all->nelts; ++i) {
        const facts_t *f = &APR_ARRAY_IDX(all, i, facts_t);
        if (!f->next) continue;
        ap_rprintf(r, "acme_renewal_next_attempt_seconds{domain=\"%s\"} %" APR_TIME_T_FMT "\n",
                   label_esc(p, f->name), f->next > now ? apr_time_sec(f->next - now) : 0);
    }
    metric_head(r, "acme_renewals_total", "counter",
                "Renewal runs by result, as counted in the domain's job state.");
    for (i = 0; i < all->nelts; ++i) {
        const facts_t *f = &APR_ARRAY_IDX(all, i, facts_t);
        const char *dn = label_esc(p, f->name);
        ap_rprintf(r, "acme_renewals_total{domain=\"%s\",result=\"success\"} %" APR_INT64_T_FMT "\n"
                   "acme_renewals_total{domain=\"%s\",result=\"error\"} %" APR_INT64_T_FMT "\n",
                   dn, f->ok, dn, f->failed);
    }
    per_domain(r, all, "acme_domain_errors_consecutive",
               "Consecutive failed renewal attempts (0 after a success).", F_ERRORS);
    per_domain(r, all, "acme_orders_in_flight",
               "ACME orders created and not yet finished or abandoned.", F_IN_FLIGHT);
    per_domain(r, all, "acme_ca_retry_after_active",
               "1 while a Retry-After the CA sent with the last error lies in the future.",
               F_RETRY_AFTER);
    per_domain(r, all, "acme_preflight_holding",
               "1 while a failing pre-flight holds the CA back after a refused validation.",
               F_PREFLIGHT_HOLDING);
    {
        int up;
        apr_uint32_t errors;
        acme_mod_store_state(&up, &errors, r->server, p);
        metric_head(r, "acme_store_up", "gauge", "1 when the store answers (always for the "
                    "file store), 0 when the shared store (etcd) cannot be reached.");
        ap_rprintf(r, "acme_store_up %d\n", up);
        metric_head(r, "acme_store_errors_total", "counter", "Requests to the shared store "
                    "(etcd) that failed since httpd started.");
        ap_rprintf(r, "acme_store_errors_total %u\n", (unsigned)errors);
    }
    metric_head(r, "acme_domains", "gauge", "Managed domains by state.");
    for (j = 0; j < ACME_DS_COUNT; ++j) {
        int n = 0;
        for (i = 0; i < all->nelts; ++i) {
            n += APR_ARRAY_IDX(all, i, facts_t).state == (acme_domain_state_t)j;
        }
        ap_rprintf(r, "acme_domains{state=\"%s\"} %d\n",
                   acme_status_state_name((acme_domain_state_t)j), n);
    }
}

/* ---- the handlers ------------------------------------------------------------- */

/* Status changes with every renewal step: never serve it from a cache. */
static void no_cache(request_rec *r)
{
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
}

/* Answers anything but GET/HEAD itself, so that the Allow header is exactly
 * ours (httpd's own 405 would list TRACE and OPTIONS, which we refuse). */
static int not_allowed(request_rec *r, const char *ctype, const char *body)
{
    ap_discard_request_body(r);
    r->allowed = (AP_METHOD_BIT << M_GET);
    r->status = HTTP_METHOD_NOT_ALLOWED;
    apr_table_setn(r->headers_out, "Allow", "GET, HEAD");
    no_cache(r);
    ap_set_content_type(r, ctype);
    ap_rputs(body, r);
    return OK;
}

/* The part of the URI after the <Location> the handler was set for ("" for
 * the Location itself). The core's merged config names the last section
 * applied; when that is a regex or "/" (a <Location /> merged after ours),
 * the path info stands in: what follows the first path segment that is not
 * in the file system. */
static const char *sub_path(request_rec *r)
{
    core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);
    const char *rest = NULL;

    if (cd && cd->d && !cd->r && cd->d[0] == '/' && r->uri) {
        apr_size_t n = strlen(cd->d);
        while (n > 1 && cd->d[n - 1] == '/') --n;
        if (n > 1 && !strncmp(r->uri, cd->d, n) && (r->uri[n] == '/' || r->uri[n] == '\0')) {
            rest = r->uri + n;
        }
    }
    if (!rest) {
        rest = r->path_info ? r->path_info : "";
    }
    while (*rest == '/') ++rest;
    return rest;
}

static acme_domain_t *find_domain(acme_global_t *g, const char *name)
{
    int i, j;

    for (i = 0; g && i < g->domains->nelts; ++i) {
        acme_domain_t *d = APR_ARRAY_IDX(g->domains, i, acme_domain_t *);
        for (j = 0; j < d->names->nelts; ++j) {
            if (!strcasecmp(APR_ARRAY_IDX(d->names, j, const char *), name)) return d;
        }
    }
    return NULL;
}

static int send_json(request_rec *r, int status, const acme_json_t *j)
{
    r->status = status;
    no_cache(r);
    ap_set_content_type(r, "application/json");
    ap_rvputs(r, acme_json_dump(j, r->pool, 0), "\n", NULL);
    return OK;
}

static int status_handler(request_rec *r)
{
    acme_global_t *g = acme_config_global(r->server);
    apr_time_t now = apr_time_now();
    const char *name;
    char *trimmed;
    apr_size_t n;

    if (r->method_number != M_GET) {
        return not_allowed(r, "application/json",
                           "{\"error\": \"method-not-allowed\", \"allow\": [\"GET\", \"HEAD\"]}\n");
    }
    name = sub_path(r);
    trimmed = apr_pstrdup(r->pool, name);
    n = strlen(trimmed);
    while (n > 0 && trimmed[n - 1] == '/') trimmed[--n] = '\0';
    if (n == 0) {
        no_cache(r);
        ap_set_content_type(r, "application/json");
        all_json(r, now);
        return OK;
    }
    else {
        acme_domain_t *d = strchr(trimmed, '/') ? NULL : find_domain(g, trimmed);
        dom_status_t dsv, *ds = d && acme_mod_store && status_of(&dsv, d, now, r->pool) ? &dsv
                                                                                       : NULL;
        acme_json_t *j;

        if (!ds) {
            j = acme_json_new_object(r->pool);
            acme_json_sets(j, "not-found", "error", NULL);
            acme_json_sets(j, apr_psprintf(r->pool, "no managed domain has the name '%s'",
                                           trimmed), "detail", NULL);
            return send_json(r, HTTP_NOT_FOUND, j);
        }
        j = domain_json(ds, 1, now, r->pool);
        acme_json_setl(j, STATUS_SCHEMA, "schema", NULL);
        acme_json_sets(j, acme_time_rfc3339(r->pool, now), "now", NULL);
        return send_json(r, HTTP_OK, j);
    }
}

static int metrics_handler(request_rec *r)
{
    apr_time_t now = apr_time_now();

    if (r->method_number != M_GET) {
        return not_allowed(r, "text/plain; charset=utf-8", "method not allowed: use GET\n");
    }
    no_cache(r);
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    metrics(r, now);
    return OK;
}

static int hook_handler(request_rec *r)
{
    if (!r->handler) {
        return DECLINED;
    }
    if (!strcmp(r->handler, STATUS_HANDLER)) {
        return status_handler(r);
    }
    if (!strcmp(r->handler, METRICS_HANDLER)) {
        return metrics_handler(r);
    }
    return DECLINED;
}

void acme_status_register_hooks(void)
{
    ap_hook_handler(hook_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}
