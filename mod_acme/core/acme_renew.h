/* acme_renew.h: when to renew and when to retry, as pure functions of their
 * inputs. The clock and the randomness are parameters, so tests pick them. */
#ifndef ACME_RENEW_H
#define ACME_RENEW_H

#include <apr_pools.h>
#include <apr_time.h>

/* Certificates living at most this long renew at half their lifetime at
 * the latest: a 6-day certificate must not wait for a 33% window. */
#define ACME_RENEW_SHORT_LIFETIME apr_time_from_sec(10 * 24 * 3600)
/* ARI may move renewal later than the window, never later than this
 * fraction of the lifetime before expiry. */
#define ACME_RENEW_SAFETY_DIVISOR 20
/* ARI polling when the CA gives no Retry-After, and the bounds of one. */
#define ACME_ARI_POLL_DEFAULT apr_time_from_sec(6 * 3600)
#define ACME_ARI_POLL_MIN apr_time_from_sec(60)
#define ACME_ARI_POLL_MAX apr_time_from_sec(24 * 3600)
/* Retry backoff: the cap, and the delay after an error retrying cannot fix. */
#define ACME_BACKOFF_MAX apr_time_from_sec(24 * 3600)
#define ACME_BACKOFF_DEFAULT_BASE apr_time_from_sec(5 * 60)

/* ManagedRenewWindow: "33%" of the lifetime, or a duration like "30d":
 * renew when less than that remains. */
typedef struct {
    int is_percent;
    double percent;               /* 0 < percent < 100 when is_percent */
    apr_interval_time_t duration; /* > 0 when !is_percent */
} acme_renew_window_t;

/* Accepts "<digits>[.<digits>]%" with 0 < value < 100, or anything
 * acme_duration_parse accepts (plain number = days) that is > 0.
 * APR_EINVAL otherwise; *pwin is untouched then. */
apr_status_t acme_renew_window_parse(acme_renew_window_t *pwin, const char *s);
/* "33%" or "30d"-style, for status output. */
const char *acme_renew_window_format(apr_pool_t *p, const acme_renew_window_t *win);

/* The time to renew a certificate valid in [not_before, not_after] under
 * window. Short-lived certificates (<= ACME_RENEW_SHORT_LIFETIME) renew at
 * the earlier of the window and half the lifetime. A duration window as
 * long as the lifetime or longer would renew every fresh certificate at
 * once (a loop), so it is treated as half the lifetime. A certificate with
 * no lifetime (not_after <= not_before) renews at not_after. */
apr_time_t acme_renew_at_window(apr_time_t not_before, apr_time_t not_after,
                                const acme_renew_window_t *win);

/* An ARI (RFC 9773) answer for one certificate. */
typedef struct acme_ari_window_t {
    apr_time_t start;              /* suggestedWindow.start */
    apr_time_t end;                /* suggestedWindow.end */
    const char *explanation_url;   /* explanationURL or NULL */
} acme_ari_window_t;

/* A uniform point in [start, end): start + (end - start) * rand_fraction.
 * rand_fraction outside [0, 1) is clamped; end <= start gives start. */
apr_time_t acme_ari_choose(apr_time_t start, apr_time_t end, double rand_fraction);

/* When to ask the ARI endpoint again: now + retry_after clamped to
 * [ACME_ARI_POLL_MIN, ACME_ARI_POLL_MAX]; retry_after <= 0 (none sent)
 * gives now + ACME_ARI_POLL_DEFAULT. */
apr_time_t acme_ari_next_poll(apr_time_t now, apr_interval_time_t retry_after);

typedef enum {
    ACME_RENEW_BY_WINDOW = 0, /* the configured window (with the short-lifetime rule) */
    ACME_RENEW_BY_ARI,        /* the time chosen in the CA's suggested window */
    ACME_RENEW_BY_ARI_PAST,   /* the suggested window lies in the past: now */
    ACME_RENEW_BY_SAFETY_NET  /* ARI said later than 1/20 of the lifetime before expiry */
} acme_renew_source_t;

typedef struct {
    apr_time_t not_before;
    apr_time_t not_after;
    const acme_renew_window_t *window;
    const acme_ari_window_t *ari;  /* NULL: no (valid) ARI answer */
    /* What the last decision persisted; all 0 when none. The chosen time is
     * kept as long as the CA's window is the same. */
    apr_time_t prev_ari_start;
    apr_time_t prev_ari_end;
    apr_time_t prev_chosen;
    double rand_fraction;          /* in [0, 1), used when choosing anew */
    apr_time_t now;
} acme_renew_input_t;

typedef struct {
    apr_time_t renew_at;
    int due;                       /* renew_at <= now */
    acme_renew_source_t source;
    /* ARI only: the chosen time, and whether it differs from prev_chosen
     * (the caller persists chosen with the window's start/end then). */
    apr_time_t chosen;
    int chosen_changed;
} acme_renew_decision_t;

/* APR_EINVAL without a window or with an ARI window whose end lies before
 * its start (callers treat such an answer as absent and log it). */
apr_status_t acme_renew_decide(acme_renew_decision_t *pdec, const acme_renew_input_t *in);

/* When to retry after the error_count-th consecutive failure (>= 1):
 * base_delay * 2^(error_count - 1), jittered by +-20% with rand_fraction
 * in [0, 1) (0.5 = no jitter), capped at ACME_BACKOFF_MAX. An error that
 * retrying cannot fix (config_error) waits ACME_BACKOFF_MAX. Never earlier
 * than retry_after (absolute, 0 = none), which the CA may set beyond the
 * cap. base_delay <= 0 uses ACME_BACKOFF_DEFAULT_BASE. */
apr_time_t acme_backoff_next(apr_time_t now, int error_count, apr_interval_time_t base_delay,
                             double rand_fraction, apr_time_t retry_after, int config_error);

/* The last line of defence against flooding a CA: whatever else fails, no
 * more than 'limit' orders go to one CA in any hour. The caller keeps one
 * guard per CA; 'times' holds the start times of the orders counted. */
#define ACME_RATE_GUARD_WINDOW apr_time_from_sec(3600)
typedef struct {
    int limit;
    int n;                      /* entries in times */
    apr_time_t *times;          /* limit entries, oldest first */
} acme_rate_guard_t;

void acme_rate_guard_init(acme_rate_guard_t *g, apr_pool_t *p, int limit);
/* The bound for a server with 'orders' certificates (domains times key
 * types) at one CA: room for every one of them to fail and retry. */
int acme_rate_guard_limit(int orders);
/* Takes 'count' orders at now and returns 0, or takes none and returns the
 * time from which they fit. */
apr_time_t acme_rate_guard_take(acme_rate_guard_t *g, apr_time_t now, int count);
/* The same answer as take, counting nothing. */
apr_time_t acme_rate_guard_fits(acme_rate_guard_t *g, apr_time_t now, int count);
/* Adds the times another process (or an earlier generation) counted, in
 * any order: a time both hold is counted as often as the one that holds it
 * more often, so merging a record back in never counts an order twice.
 * Keeps the newest 'limit' entries; p is for scratch. */
void acme_rate_guard_merge(acme_rate_guard_t *g, const apr_time_t *times, int n, apr_pool_t *p);

#endif /* ACME_RENEW_H */
