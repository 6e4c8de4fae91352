/* test_renew.c: unit tests for the renewal policy and retry backoff
 * (acme_renew.c). Every "now" is a fixed, made-up instant. */

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_renew.h"
#include "acme_test.h"

#define SEC(n) apr_time_from_sec(n)
#define MINUTES(n) SEC((apr_int64_t)(n) * 60)
#define HOURS(n) SEC((apr_int64_t)(n) * 3600)
#define DAYS(n) SEC((apr_int64_t)(n) * 86400)

/* 2030-01-01T00:00:00Z, an arbitrary fixed "now" base */
#define T0 SEC(1893456000LL)

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static acme_renew_window_t win(const char *s)
{
    acme_renew_window_t w;
    ck_assert_int_eq(acme_renew_window_parse(&w, s), APR_SUCCESS);
    return w;
}

/* ---- window parser -------------------------------------------------------- */

START_TEST(window_parse_percent_and_duration)
{
    acme_renew_window_t w;

    w = win("33%");
    ck_assert(w.is_percent);
    ck_assert(fabs(w.percent - 33.0) < 1e-9);
    w = win("12.5%");
    ck_assert(w.is_percent);
    ck_assert(fabs(w.percent - 12.5) < 1e-9);
    w = win("99.9%");
    ck_assert(fabs(w.percent - 99.9) < 1e-9);
    w = win("30d");
    ck_assert(!w.is_percent);
    ck_assert_int_eq(w.duration, DAYS(30));
    w = win("12h");
    ck_assert_int_eq(w.duration, HOURS(12));
    /* a plain number means days, like the directive documents */
    w = win("21");
    ck_assert(!w.is_percent);
    ck_assert_int_eq(w.duration, DAYS(21));
}
END_TEST

START_TEST(window_parse_rejects_malformed)
{
    static const char *bad[] = {
        "", "%", "0%", "0.0%", "100%", "100.0%", "150%", "-5%", "+5%", "33%%", "3.%",
        ".5%", "1e2%", " 33%", "33% ", "33 %", "nan%", "inf%", "1.2.3%", "0x10%",
        "99.99999999%", "0d", "0", "-30d", "30x", "d", "30 d", "abc", "1.5d", NULL
    };
    acme_renew_window_t w = {1, 42.0, 7};
    int i;

    for (i = 0; bad[i]; ++i) {
        ck_assert_msg(acme_renew_window_parse(&w, bad[i]) == APR_EINVAL,
                      "accepted \"%s\"", bad[i]);
    }
    ck_assert_int_eq(acme_renew_window_parse(&w, NULL), APR_EINVAL);
    /* a failed parse leaves the old value alone */
    ck_assert(w.is_percent && w.percent == 42.0 && w.duration == 7);
}
END_TEST

START_TEST(window_format_round_trips)
{
    acme_renew_window_t w = win("33%");

    ck_assert_str_eq(acme_renew_window_format(pool, &w), "33%");
    w = win("30d");
    ck_assert_str_eq(acme_renew_window_format(pool, &w), "30d");
}
END_TEST

/* ---- window arithmetic ---------------------------------------------------- */

START_TEST(window_90_day_cert)
{
    apr_time_t nb = T0, na = T0 + DAYS(90);
    acme_renew_window_t w = win("33%");

    /* 33% of 90 days = 29.7 days before expiry */
    ck_assert_int_eq(acme_renew_at_window(nb, na, &w), na - DAYS(29) - HOURS(16) - MINUTES(48));
    w = win("30d");
    ck_assert_int_eq(acme_renew_at_window(nb, na, &w), na - DAYS(30));
    w = win("1%");
    ck_assert_int_eq(acme_renew_at_window(nb, na, &w), na - (DAYS(90) / 100));
}
END_TEST

START_TEST(window_short_cert_half_life)
{
    apr_time_t nb = T0, na = T0 + DAYS(6);
    acme_renew_window_t w = win("33%");

    /* 33% would be ~1.98 days before expiry: half life (3 days) is earlier */
    ck_assert_int_eq(acme_renew_at_window(nb, na, &w), nb + DAYS(3));
    /* a larger percentage is earlier than half life and wins */
    w = win("75%");
    ck_assert_int_eq(acme_renew_at_window(nb, na, &w), nb + DAYS(6) / 4);
    /* 30d on a 6-day cert must not mean "renew every fresh cert at once" */
    w = win("30d");
    ck_assert_int_eq(acme_renew_at_window(nb, na, &w), nb + DAYS(3));
    w = win("1d");
    ck_assert_int_eq(acme_renew_at_window(nb, na, &w), nb + DAYS(3));
}
END_TEST

START_TEST(window_short_lifetime_boundary)
{
    acme_renew_window_t w = win("10%");

    /* exactly 10 days still counts as short */
    ck_assert_int_eq(acme_renew_at_window(T0, T0 + DAYS(10), &w), T0 + DAYS(5));
    /* 11 days does not: plain 10% */
    ck_assert_int_eq(acme_renew_at_window(T0, T0 + DAYS(11), &w),
                     T0 + DAYS(11) - DAYS(11) / 10);
}
END_TEST

START_TEST(window_longer_than_lifetime)
{
    acme_renew_window_t w = win("100d");

    ck_assert_int_eq(acme_renew_at_window(T0, T0 + DAYS(90), &w), T0 + DAYS(45));
    /* no lifetime at all: renew at (already past) not_after */
    ck_assert_int_eq(acme_renew_at_window(T0, T0, &w), T0);
    ck_assert_int_eq(acme_renew_at_window(T0, T0 - 5, &w), T0 - 5);
    ck_assert_int_eq(acme_renew_at_window(T0, T0 + DAYS(90), NULL), T0 + DAYS(90));
}
END_TEST

/* ---- ARI -------------------------------------------------------------------- */

START_TEST(ari_choose_uniform_in_window)
{
    apr_time_t s = T0, e = T0 + DAYS(2);

    ck_assert_int_eq(acme_ari_choose(s, e, 0.0), s);
    ck_assert_int_eq(acme_ari_choose(s, e, 0.5), s + DAYS(1));
    ck_assert_int_eq(acme_ari_choose(s, e, 0.25), s + HOURS(12));
    ck_assert(acme_ari_choose(s, e, 0.9999999999999) < e);
    /* out-of-range randoms are clamped into the window, never outside */
    ck_assert_int_eq(acme_ari_choose(s, e, 1.0), e - 1);
    ck_assert_int_eq(acme_ari_choose(s, e, 7.0), e - 1);
    ck_assert_int_eq(acme_ari_choose(s, e, -1.0), s);
    ck_assert_int_eq(acme_ari_choose(s, e, NAN), s);
    /* degenerate windows */
    ck_assert_int_eq(acme_ari_choose(s, s, 0.7), s);
    ck_assert_int_eq(acme_ari_choose(e, s, 0.7), e);
}
END_TEST

static acme_renew_input_t ari_input(const acme_renew_window_t *w, const acme_ari_window_t *ari,
                                    apr_time_t now)
{
    acme_renew_input_t in;

    memset(&in, 0, sizeof(in));
    in.not_before = T0;
    in.not_after = T0 + DAYS(90);
    in.window = w;
    in.ari = ari;
    in.rand_fraction = 0.5;
    in.now = now;
    return in;
}

START_TEST(decide_without_ari_uses_window)
{
    acme_renew_window_t w = win("30d");
    acme_renew_input_t in = ari_input(&w, NULL, T0 + DAYS(10));
    acme_renew_decision_t d;

    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    ck_assert_int_eq(d.renew_at, T0 + DAYS(60));
    ck_assert(!d.due);
    ck_assert_int_eq(d.source, ACME_RENEW_BY_WINDOW);
    ck_assert_int_eq(d.chosen, 0);
    ck_assert(!d.chosen_changed);
    in.now = T0 + DAYS(60);
    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    ck_assert(d.due);
    ck_assert_int_eq(acme_renew_decide(&d, NULL), APR_EINVAL);
    in.window = NULL;
    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_EINVAL);
}
END_TEST

START_TEST(decide_ari_inside_window_first_choice)
{
    acme_renew_window_t w = win("30d");
    acme_ari_window_t ari = {T0 + DAYS(50), T0 + DAYS(52), NULL};
    acme_renew_input_t in = ari_input(&w, &ari, T0 + DAYS(10));
    acme_renew_decision_t d;

    in.rand_fraction = 0.25;
    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    /* ARI replaces the window (day 60), even though it is earlier here */
    ck_assert_int_eq(d.chosen, T0 + DAYS(50) + HOURS(12));
    ck_assert_int_eq(d.renew_at, d.chosen);
    ck_assert_int_eq(d.source, ACME_RENEW_BY_ARI);
    ck_assert(d.chosen_changed);
    ck_assert(!d.due);
    /* the chosen instant arrives: due */
    in.now = d.chosen;
    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    ck_assert(d.due);
}
END_TEST

START_TEST(decide_ari_keeps_choice_for_same_window)
{
    acme_renew_window_t w = win("33%");
    acme_ari_window_t ari = {T0 + DAYS(50), T0 + DAYS(52), NULL};
    acme_renew_input_t in = ari_input(&w, &ari, T0 + DAYS(10));
    acme_renew_decision_t d;

    in.prev_ari_start = ari.start;
    in.prev_ari_end = ari.end;
    in.prev_chosen = T0 + DAYS(51) + HOURS(3);
    in.rand_fraction = 0.9; /* would pick something else if it re-chose */
    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    ck_assert_int_eq(d.chosen, T0 + DAYS(51) + HOURS(3));
    ck_assert_int_eq(d.renew_at, d.chosen);
    ck_assert(!d.chosen_changed);
}
END_TEST

START_TEST(decide_ari_rechooses_when_window_changes)
{
    acme_renew_window_t w = win("33%");
    acme_ari_window_t ari = {T0 + DAYS(20), T0 + DAYS(21), NULL};
    acme_renew_input_t in = ari_input(&w, &ari, T0 + DAYS(10));
    acme_renew_decision_t d;

    /* the CA moved the window earlier (e.g. a revocation is coming) */
    in.prev_ari_start = T0 + DAYS(50);
    in.prev_ari_end = T0 + DAYS(52);
    in.prev_chosen = T0 + DAYS(51);
    in.rand_fraction = 0.5;
    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    ck_assert_int_eq(d.chosen, T0 + DAYS(20) + HOURS(12));
    ck_assert_int_eq(d.renew_at, d.chosen);
    ck_assert(d.chosen_changed);
    /* only the end changing counts as a change too */
    in.prev_ari_start = ari.start;
    in.prev_ari_end = T0 + DAYS(22);
    in.prev_chosen = T0 + DAYS(21) + HOURS(1);
    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    ck_assert_int_eq(d.chosen, T0 + DAYS(20) + HOURS(12));
    ck_assert(d.chosen_changed);
}
END_TEST

START_TEST(decide_ari_window_in_past_renews_now)
{
    acme_renew_window_t w = win("33%");
    acme_ari_window_t ari = {T0 + DAYS(1), T0 + DAYS(2), "https://ca.example/why"};
    acme_renew_input_t in = ari_input(&w, &ari, T0 + DAYS(5));
    acme_renew_decision_t d;

    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    ck_assert_int_eq(d.renew_at, in.now);
    ck_assert(d.due);
    ck_assert_int_eq(d.source, ACME_RENEW_BY_ARI_PAST);
    /* end == now is past as well */
    in.now = ari.end;
    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    ck_assert_int_eq(d.source, ACME_RENEW_BY_ARI_PAST);
    ck_assert(d.due);
}
END_TEST

START_TEST(decide_ari_safety_net)
{
    acme_renew_window_t w = win("33%");
    /* the CA suggests the last day of a 90-day cert: later than 1/20 of
     * the lifetime (4.5 days) before expiry */
    acme_ari_window_t ari = {T0 + DAYS(89), T0 + DAYS(90), NULL};
    acme_renew_input_t in = ari_input(&w, &ari, T0 + DAYS(10));
    acme_renew_decision_t d;

    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    ck_assert_int_eq(d.renew_at, T0 + DAYS(90) - DAYS(90) / 20);
    ck_assert_int_eq(d.source, ACME_RENEW_BY_SAFETY_NET);
    ck_assert(!d.due);
    /* a window ending just before the safety net is followed as is */
    ari.start = T0 + DAYS(80);
    ari.end = T0 + DAYS(81);
    in.rand_fraction = 0.0;
    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_SUCCESS);
    ck_assert_int_eq(d.renew_at, T0 + DAYS(80));
    ck_assert_int_eq(d.source, ACME_RENEW_BY_ARI);
}
END_TEST

START_TEST(decide_ari_invalid_window_rejected)
{
    acme_renew_window_t w = win("33%");
    acme_ari_window_t ari = {T0 + DAYS(52), T0 + DAYS(50), NULL};
    acme_renew_input_t in = ari_input(&w, &ari, T0 + DAYS(10));
    acme_renew_decision_t d;

    ck_assert_int_eq(acme_renew_decide(&d, &in), APR_EINVAL);
}
END_TEST

START_TEST(ari_poll_schedule)
{
    ck_assert_int_eq(acme_ari_next_poll(T0, 0), T0 + HOURS(6));
    ck_assert_int_eq(acme_ari_next_poll(T0, -5), T0 + HOURS(6));
    ck_assert_int_eq(acme_ari_next_poll(T0, SEC(1)), T0 + MINUTES(1));
    ck_assert_int_eq(acme_ari_next_poll(T0, SEC(59)), T0 + MINUTES(1));
    ck_assert_int_eq(acme_ari_next_poll(T0, HOURS(2)), T0 + HOURS(2));
    ck_assert_int_eq(acme_ari_next_poll(T0, HOURS(24)), T0 + HOURS(24));
    ck_assert_int_eq(acme_ari_next_poll(T0, DAYS(3)), T0 + HOURS(24));
}
END_TEST

/* ---- backoff ----------------------------------------------------------------- */

START_TEST(backoff_doubles)
{
    apr_interval_time_t base = MINUTES(5);

    /* rand 0.5 = no jitter */
    ck_assert_int_eq(acme_backoff_next(T0, 1, base, 0.5, 0, 0), T0 + MINUTES(5));
    ck_assert_int_eq(acme_backoff_next(T0, 2, base, 0.5, 0, 0), T0 + MINUTES(10));
    ck_assert_int_eq(acme_backoff_next(T0, 3, base, 0.5, 0, 0), T0 + MINUTES(20));
    ck_assert_int_eq(acme_backoff_next(T0, 4, base, 0.5, 0, 0), T0 + MINUTES(40));
    ck_assert_int_eq(acme_backoff_next(T0, 8, base, 0.5, 0, 0), T0 + MINUTES(5 * 128));
    /* a count of 0 (or less) is the first error */
    ck_assert_int_eq(acme_backoff_next(T0, 0, base, 0.5, 0, 0), T0 + MINUTES(5));
    /* no base configured: the default */
    ck_assert_int_eq(acme_backoff_next(T0, 1, 0, 0.5, 0, 0), T0 + ACME_BACKOFF_DEFAULT_BASE);
}
END_TEST

START_TEST(backoff_capped)
{
    ck_assert_int_eq(acme_backoff_next(T0, 10, MINUTES(5), 0.5, 0, 0), T0 + HOURS(24));
    ck_assert_int_eq(acme_backoff_next(T0, 1000, MINUTES(5), 0.5, 0, 0), T0 + HOURS(24));
    ck_assert_int_eq(acme_backoff_next(T0, 2147483647, MINUTES(5), 0.99, 0, 0),
                     T0 + HOURS(24));
    ck_assert_int_eq(acme_backoff_next(T0, 1, DAYS(7), 0.5, 0, 0), T0 + HOURS(24));
}
END_TEST

START_TEST(backoff_jitter_range)
{
    apr_interval_time_t base = MINUTES(10);
    apr_time_t lo = T0 + MINUTES(8), hi = T0 + MINUTES(12);
    apr_time_t seen_min = hi, seen_max = lo;
    int i;

    ck_assert_int_eq(acme_backoff_next(T0, 1, base, 0.0, 0, 0), lo);
    for (i = 0; i < 1000; ++i) {
        apr_time_t t = acme_backoff_next(T0, 1, base, i / 1000.0, 0, 0);
        ck_assert(t >= lo && t < hi);
        seen_min = t < seen_min ? t : seen_min;
        seen_max = t > seen_max ? t : seen_max;
    }
    /* the spread actually uses the range */
    ck_assert(seen_min == lo);
    ck_assert(seen_max > T0 + MINUTES(11) + SEC(55));
    /* junk randoms stay in range */
    ck_assert_int_eq(acme_backoff_next(T0, 1, base, -3.0, 0, 0), lo);
    ck_assert_int_eq(acme_backoff_next(T0, 1, base, NAN, 0, 0), lo);
    ck_assert_int_eq(acme_backoff_next(T0, 1, base, 9.0, 0, 0), hi);
    /* at the cap, jitter may only shorten */
    ck_assert(acme_backoff_next(T0, 50, base, 0.99, 0, 0) == T0 + HOURS(24));
    ck_assert(acme_backoff_next(T0, 50, base, 0.0, 0, 0) == T0 + HOURS(24) * 8 / 10);
}
END_TEST

START_TEST(backoff_honours_retry_after)
{
    apr_interval_time_t base = MINUTES(5);

    /* the CA asks for later than our backoff */
    ck_assert_int_eq(acme_backoff_next(T0, 1, base, 0.5, T0 + HOURS(1), 0), T0 + HOURS(1));
    /* beyond our cap too: a rate limit that lasts days is respected */
    ck_assert_int_eq(acme_backoff_next(T0, 1, base, 0.5, T0 + DAYS(3), 0), T0 + DAYS(3));
    /* earlier than our backoff: ours stands */
    ck_assert_int_eq(acme_backoff_next(T0, 3, base, 0.5, T0 + MINUTES(1), 0), T0 + MINUTES(20));
    /* a Retry-After already in the past changes nothing */
    ck_assert_int_eq(acme_backoff_next(T0, 1, base, 0.5, T0 - HOURS(1), 0), T0 + MINUTES(5));
}
END_TEST

START_TEST(backoff_config_error_waits_a_day)
{
    ck_assert_int_eq(acme_backoff_next(T0, 1, MINUTES(5), 0.0, 0, 1), T0 + HOURS(24));
    ck_assert_int_eq(acme_backoff_next(T0, 7, MINUTES(5), 0.99, 0, 1), T0 + HOURS(24));
    ck_assert_int_eq(acme_backoff_next(T0, 1, MINUTES(5), 0.5, T0 + DAYS(2), 1), T0 + DAYS(2));
}
END_TEST

/* ---- rate guard ---------------------------------------------------------- */

START_TEST(rate_guard_bounds_orders_per_hour)
{
    acme_rate_guard_t g;
    apr_time_t t0 = apr_time_from_sec(1700000000), next;
    int i;

    acme_rate_guard_init(&g, pool, 5);
    for (i = 0; i < 5; ++i) {
        ck_assert_int_eq(acme_rate_guard_take(&g, t0 + apr_time_from_sec(i), 1), 0);
    }
    /* The sixth within the hour is refused until the first leaves the window. */
    next = acme_rate_guard_take(&g, t0 + apr_time_from_sec(10), 1);
    ck_assert_int_eq(next, t0 + ACME_RATE_GUARD_WINDOW);
    ck_assert_int_eq(g.n, 5);
    ck_assert_int_eq(acme_rate_guard_take(&g, next, 1), 0);
    /* Two at once need two free places. */
    next = acme_rate_guard_take(&g, next, 2);
    ck_assert_int_eq(next, t0 + apr_time_from_sec(2) + ACME_RATE_GUARD_WINDOW);
}
END_TEST

/* A record read back (or written by the previous child) adds what it holds
 * that memory lacks, and counts no order twice. */
START_TEST(rate_guard_merge_counts_a_shared_order_once)
{
    acme_rate_guard_t g;
    apr_time_t t0 = apr_time_from_sec(1700000000);
    apr_time_t rec[] = {t0 + 30, t0 + 10, t0 + 20, t0 + 20};
    apr_time_t more[] = {t0 + 40, t0 + 50, t0 + 5};

    acme_rate_guard_init(&g, pool, 5);
    ck_assert_int_eq(acme_rate_guard_take(&g, t0 + 10, 1), 0);
    ck_assert_int_eq(acme_rate_guard_take(&g, t0 + 20, 1), 0);
    acme_rate_guard_merge(&g, rec, 4, pool);
    ck_assert_int_eq(g.n, 4);
    ck_assert_int_eq(g.times[0], t0 + 10);
    ck_assert_int_eq(g.times[1], t0 + 20);
    ck_assert_int_eq(g.times[2], t0 + 20);
    ck_assert_int_eq(g.times[3], t0 + 30);
    acme_rate_guard_merge(&g, rec, 4, pool); /* read again: nothing new */
    ck_assert_int_eq(g.n, 4);
    /* beyond the limit: the newest stay */
    acme_rate_guard_merge(&g, more, 3, pool);
    ck_assert_int_eq(g.n, 5);
    ck_assert_int_eq(g.times[0], t0 + 20);
    ck_assert_int_eq(g.times[4], t0 + 50);
    /* fits only looks */
    ck_assert_int_eq(acme_rate_guard_fits(&g, t0 + 60, 1), t0 + 20 + ACME_RATE_GUARD_WINDOW);
    ck_assert_int_eq(g.n, 5);
    ck_assert_int_eq(acme_rate_guard_fits(&g, t0 + 21 + ACME_RATE_GUARD_WINDOW, 1), 0);
    ck_assert_int_eq(g.n, 3); /* both of t0 + 20 left the hour */
}
END_TEST

START_TEST(rate_guard_limit_leaves_room_for_retries)
{
    /* One failing certificate retrying with a 2 s base backoff doubles its
     * delay: about 11 attempts in the first hour fit under the bound. */
    apr_time_t at = 0;
    int n = 0;

    while (at < ACME_RATE_GUARD_WINDOW) {
        n++;
        at += apr_time_from_sec(2) << (n - 1);
    }
    ck_assert_int_le(n, acme_rate_guard_limit(1));
    ck_assert_int_gt(acme_rate_guard_limit(1000), 2000);
}
END_TEST

static Suite *renew_suite(void)
{
    Suite *s = suite_create("renew");
    TCase *tc;

    tc = tcase_create("window");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, window_parse_percent_and_duration);
    tcase_add_test(tc, window_parse_rejects_malformed);
    tcase_add_test(tc, window_format_round_trips);
    tcase_add_test(tc, window_90_day_cert);
    tcase_add_test(tc, window_short_cert_half_life);
    tcase_add_test(tc, window_short_lifetime_boundary);
    tcase_add_test(tc, window_longer_than_lifetime);
    suite_add_tcase(s, tc);

    tc = tcase_create("ari");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, ari_choose_uniform_in_window);
    tcase_add_test(tc, decide_without_ari_uses_window);
    tcase_add_test(tc, decide_ari_inside_window_first_choice);
    tcase_add_test(tc, decide_ari_keeps_choice_for_same_window);
    tcase_add_test(tc, decide_ari_rechooses_when_window_changes);
    tcase_add_test(tc, decide_ari_window_in_past_renews_now);
    tcase_add_test(tc, decide_ari_safety_net);
    tcase_add_test(tc, decide_ari_invalid_window_rejected);
    tcase_add_test(tc, ari_poll_schedule);
    suite_add_tcase(s, tc);

    tc = tcase_create("backoff");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, backoff_doubles);
    tcase_add_test(tc, backoff_capped);
    tcase_add_test(tc, backoff_jitter_range);
    tcase_add_test(tc, backoff_honours_retry_after);
    tcase_add_test(tc, backoff_config_error_waits_a_day);
    tcase_add_test(tc, rate_guard_bounds_orders_per_hour);
    tcase_add_test(tc, rate_guard_limit_leaves_room_for_retries);
    tcase_add_test(tc, rate_guard_merge_counts_a_shared_order_once);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(renew_suite)
