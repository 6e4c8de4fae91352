/* acme_renew.c: the renewal policy (window, ARI, safety net) and the retry
 * backoff. Pure: no clock, no randomness, no I/O; callers pass them in. */

#include <apr_strings.h>

#include <stdlib.h>
#include <string.h>

#include "acme_renew.h"
#include "acme_util.h"

#define PERCENT_MAX_DIGITS 9

static double clamp_fraction(double f)
{
    if (!(f >= 0.0)) { /* also NaN */
        return 0.0;
    }
    return f >= 1.0 ? 1.0 : f;
}

/* "<digits>[.<digits>]%": hand-written because strtod accepts "inf",
 * "nan", hex and leading blanks, and follows the locale. */
static apr_status_t parse_percent(double *pval, const char *s)
{
    double v = 0.0, scale = 1.0;
    int digits = 0, frac = 0;
    const char *c;

    for (c = s; *c && *c != '%'; ++c) {
        if (*c == '.') {
            if (frac || !digits) {
                return APR_EINVAL;
            }
            frac = 1;
            continue;
        }
        if (*c < '0' || *c > '9' || ++digits > PERCENT_MAX_DIGITS) {
            return APR_EINVAL;
        }
        if (frac) {
            scale /= 10.0;
            v += (*c - '0') * scale;
        }
        else {
            v = v * 10.0 + (*c - '0');
        }
    }
    if (*c != '%' || c[1] || !digits || c[-1] == '.') {
        return APR_EINVAL;
    }
    *pval = v;
    return APR_SUCCESS;
}

apr_status_t acme_renew_window_parse(acme_renew_window_t *pwin, const char *s)
{
    acme_renew_window_t w = {0, 0.0, 0};
    apr_status_t rv;

    if (!s || !*s) {
        return APR_EINVAL;
    }
    if (s[strlen(s) - 1] == '%') {
        rv = parse_percent(&w.percent, s);
        if (rv != APR_SUCCESS || !(w.percent > 0.0 && w.percent < 100.0)) {
            return APR_EINVAL;
        }
        w.is_percent = 1;
    }
    else {
        rv = acme_duration_parse(&w.duration, s, "d");
        if (rv != APR_SUCCESS || w.duration <= 0) {
            return APR_EINVAL;
        }
    }
    *pwin = w;
    return APR_SUCCESS;
}

const char *acme_renew_window_format(apr_pool_t *p, const acme_renew_window_t *win)
{
    if (!win) {
        return "-";
    }
    if (win->is_percent) {
        return apr_psprintf(p, "%g%%", win->percent);
    }
    return acme_duration_format(p, win->duration);
}

apr_time_t acme_renew_at_window(apr_time_t not_before, apr_time_t not_after,
                                const acme_renew_window_t *win)
{
    apr_interval_time_t lifetime = not_after - not_before, remaining;

    if (lifetime <= 0 || !win) {
        return not_after;
    }
    if (win->is_percent) {
        remaining = (apr_interval_time_t)((double)lifetime * win->percent / 100.0 + 0.5);
    }
    else {
        remaining = win->duration;
    }
    if (remaining < 0) {
        remaining = 0;
    }
    if (remaining >= lifetime) {
        remaining = lifetime / 2;
    }
    if (lifetime <= ACME_RENEW_SHORT_LIFETIME && remaining < lifetime / 2) {
        remaining = lifetime / 2;
    }
    return not_after - remaining;
}

apr_time_t acme_ari_choose(apr_time_t start, apr_time_t end, double rand_fraction)
{
    apr_time_t t;

    if (end <= start) {
        return start;
    }
    t = start + (apr_time_t)((double)(end - start) * clamp_fraction(rand_fraction));
    /* [start, end): rounding must not reach end */
    return t >= end ? end - 1 : t;
}

apr_time_t acme_ari_next_poll(apr_time_t now, apr_interval_time_t retry_after)
{
    apr_interval_time_t wait = retry_after;

    if (wait <= 0) {
        wait = ACME_ARI_POLL_DEFAULT;
    }
    else if (wait < ACME_ARI_POLL_MIN) {
        wait = ACME_ARI_POLL_MIN;
    }
    else if (wait > ACME_ARI_POLL_MAX) {
        wait = ACME_ARI_POLL_MAX;
    }
    return now + wait;
}

apr_status_t acme_renew_decide(acme_renew_decision_t *pdec, const acme_renew_input_t *in)
{
    acme_renew_decision_t d = {0, 0, ACME_RENEW_BY_WINDOW, 0, 0};
    apr_status_t rv = APR_SUCCESS;
    apr_time_t safety;

    if (!in || !in->window || (in->ari && in->ari->end < in->ari->start)) {
        rv = APR_EINVAL;
        goto leave;
    }
    d.renew_at = acme_renew_at_window(in->not_before, in->not_after, in->window);
    if (in->ari) {
        const acme_ari_window_t *ari = in->ari;
        /* RFC 9773 4.2: pick once per window, so that repeated polls of the
         * same answer do not keep moving the renewal around */
        if (in->prev_chosen && in->prev_ari_start == ari->start
            && in->prev_ari_end == ari->end) {
            d.chosen = in->prev_chosen;
        }
        else {
            d.chosen = acme_ari_choose(ari->start, ari->end, in->rand_fraction);
        }
        d.chosen_changed = (d.chosen != in->prev_chosen);
        if (ari->end <= in->now) {
            d.renew_at = in->now;
            d.source = ACME_RENEW_BY_ARI_PAST;
        }
        else {
            d.renew_at = d.chosen;
            d.source = ACME_RENEW_BY_ARI;
        }
        if (in->not_after > in->not_before) {
            safety = in->not_after
                     - (in->not_after - in->not_before) / ACME_RENEW_SAFETY_DIVISOR;
            if (d.renew_at > safety) {
                d.renew_at = safety;
                d.source = ACME_RENEW_BY_SAFETY_NET;
            }
        }
    }
    d.due = (d.renew_at <= in->now);
leave:
    if (pdec) {
        *pdec = d;
    }
    return rv;
}

apr_time_t acme_backoff_next(apr_time_t now, int error_count, apr_interval_time_t base_delay,
                             double rand_fraction, apr_time_t retry_after, int config_error)
{
    apr_interval_time_t delay;
    apr_time_t at;
    int i;

    if (config_error) {
        delay = ACME_BACKOFF_MAX;
    }
    else {
        delay = base_delay > 0 ? base_delay : ACME_BACKOFF_DEFAULT_BASE;
        for (i = 1; i < error_count && delay < ACME_BACKOFF_MAX; ++i) {
            delay *= 2;
        }
        if (delay > ACME_BACKOFF_MAX) {
            delay = ACME_BACKOFF_MAX;
        }
        /* spread retries of many domains that failed together */
        delay = (apr_interval_time_t)((double)delay
                                      * (0.8 + 0.4 * clamp_fraction(rand_fraction))
                                      + 0.5);
        if (delay > ACME_BACKOFF_MAX) {
            delay = ACME_BACKOFF_MAX;
        }
    }
    at = now + delay;
    return (retry_after > at) ? retry_after : at;
}

void acme_rate_guard_init(acme_rate_guard_t *g, apr_pool_t *p, int limit)
{
    g->limit = limit > 0 ? limit : 1;
    g->n = 0;
    g->times = apr_pcalloc(p, sizeof(apr_time_t) * (apr_size_t)g->limit);
}

int acme_rate_guard_limit(int orders)
{
    /* A failing certificate retries about a dozen times in its first hour
     * (backoff doubling from a few seconds); twice the certificates, plus
     * that, leaves room for all of them and stops a loop. */
    return 2 * (orders > 0 ? orders : 1) + 12;
}

/* Drops what left the window and says when 'count' more fit (0: now). */
apr_time_t acme_rate_guard_fits(acme_rate_guard_t *g, apr_time_t now, int count)
{
    int old = 0;

    while (old < g->n && g->times[old] <= now - ACME_RATE_GUARD_WINDOW) {
        old++;
    }
    if (old > 0) {
        memmove(g->times, g->times + old, sizeof(apr_time_t) * (apr_size_t)(g->n - old));
        g->n -= old;
    }
    if (count > g->limit) {
        count = g->limit;
    }
    if (g->n + count > g->limit) {
        /* Fits once the oldest entries that are in the way leave the window. */
        return g->times[g->n + count - g->limit - 1] + ACME_RATE_GUARD_WINDOW;
    }
    return 0;
}

apr_time_t acme_rate_guard_take(acme_rate_guard_t *g, apr_time_t now, int count)
{
    apr_time_t fits = acme_rate_guard_fits(g, now, count);
    int i;

    if (fits) {
        return fits;
    }
    for (i = 0; i < count && g->n < g->limit; ++i) {
        g->times[g->n++] = now;
    }
    return 0;
}

static int time_cmp(const void *a, const void *b)
{
    apr_time_t x = *(const apr_time_t *)a, y = *(const apr_time_t *)b;

    return x < y ? -1 : x > y;
}

void acme_rate_guard_merge(acme_rate_guard_t *g, const apr_time_t *times, int n, apr_pool_t *p)
{
    apr_time_t *in, *out;
    int i = 0, j = 0, k = 0;

    if (n <= 0) {
        return;
    }
    in = apr_pmemdup(p, times, sizeof(apr_time_t) * (apr_size_t)n);
    qsort(in, (size_t)n, sizeof(apr_time_t), time_cmp);
    out = apr_palloc(p, sizeof(apr_time_t) * (apr_size_t)(g->n + n));
    /* A sorted union of multisets: an entry both lists hold is one entry. */
    while (i < g->n || j < n) {
        if (j >= n || (i < g->n && g->times[i] < in[j])) {
            out[k++] = g->times[i++];
        }
        else if (i >= g->n || in[j] < g->times[i]) {
            out[k++] = in[j++];
        }
        else {
            out[k++] = g->times[i++];
            j++;
        }
    }
    if (k > g->limit) {
        memmove(out, out + (k - g->limit), sizeof(apr_time_t) * (apr_size_t)g->limit);
        k = g->limit;
    }
    memcpy(g->times, out, sizeof(apr_time_t) * (apr_size_t)k);
    g->n = k;
}
