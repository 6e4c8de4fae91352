/* test_restart.c: unit tests for the restart decision and the child's
 * messages (acme_restart.c). The clock is a made-up "now" that the tests
 * move by hand. */
#include <check.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_tables.h>

#include "acme_restart.h"
#include "acme_test.h"

#define SEC(n) apr_time_from_sec(n)
#define MSEC(n) apr_time_from_msec(n)
#define T0 SEC(1893456000LL) /* 2030-01-01T00:00:00Z */

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static apr_array_header_t *items(void)
{
    return apr_array_make(pool, 4, sizeof(acme_restart_item_t));
}

static void add(apr_array_header_t *a, int first, apr_time_t at)
{
    acme_restart_item_t *it = apr_array_push(a);
    it->first = first;
    it->at = at;
}

/* A batch of jobs run through `slots` slots, job i taking dur[i]; a result
 * is staged as each one ends. The parent decides every 100 ms; a restart
 * activates everything staged (the jobs in flight go on, as the claim
 * hand-over lets them). Returns the number of restarts. */
static int simulate(int n, int slots, const int *dur_ms, int first, int informed)
{
    apr_time_t start[64], now, last = 0;
    int i, next = 0, done = 0, restarts = 0, ended[64];
    apr_array_header_t *staged = items();

    ck_assert_int_le(n, 64);
    memset(ended, 0, sizeof(ended));
    for (i = 0; i < n; ++i) start[i] = 0;
    for (now = T0; done < n || staged->nelts > 0; now += MSEC(100)) {
        apr_array_header_t *running = items();
        apr_time_t due;
        int busy = 0;

        for (i = 0; i < next; ++i) {
            if (!ended[i] && now >= start[i] + MSEC(dur_ms[i])) {
                ended[i] = 1;
                done++;
                add(staged, first, now);
            }
        }
        for (i = 0; i < next; ++i) busy += !ended[i];
        while (next < n && busy < slots) { /* a freed slot is refilled at once */
            start[next++] = now;
            busy++;
        }
        for (i = 0; i < next; ++i) {
            if (!ended[i]) add(running, first, start[i]);
        }
        due = acme_restart_due(running, staged, informed, last, now);
        if (due && due <= now) {
            restarts++;
            last = now;
            apr_array_clear(staged);
        }
        ck_assert_int_lt(now, T0 + SEC(3600));
    }
    return restarts;
}

START_TEST(nothing_staged_no_restart)
{
    apr_array_header_t *running = items();

    add(running, 1, T0);
    ck_assert_int_eq(acme_restart_due(running, items(), 1, 0, T0), 0);
    ck_assert_int_eq(acme_restart_due(NULL, NULL, 0, 0, T0), 0);
}
END_TEST

START_TEST(batch_of_slow_first_certificates_one_restart)
{
    /* 12 new domains, 4 slots, validations of 1 to 4.3 s (a real CA):
     * results come in waves, with gaps longer than the old 2 s quiet period */
    int dur[12] = {1000, 1100, 1200, 1300, 4000, 4200, 4100, 4300, 3000, 3100, 3200, 3300};

    ck_assert_int_eq(simulate(12, 4, dur, 1, 1), 1);
    /* the quiet period alone (no word of the jobs) restarted several times */
    ck_assert_int_gt(simulate(12, 4, dur, 1, 0), 1);
}
END_TEST

START_TEST(batch_of_slow_renewals_one_restart)
{
    /* 30 renewals, 8 slots, some jobs of 20 s: one restart at the end */
    int dur[30], i;

    for (i = 0; i < 30; ++i) dur[i] = (i % 7 == 3) ? 20000 : 1000 + 300 * (i % 5);
    ck_assert_int_eq(simulate(30, 8, dur, 0, 1), 1);
    ck_assert_int_gt(simulate(30, 8, dur, 0, 0), 1);
}
END_TEST

START_TEST(long_batch_of_first_certificates_two_restarts)
{
    /* 30 new domains, 8 slots, 8 to 12 s each: about 40 s. The sites ready
     * first are served after 10 s; the rest at the end, not every 10 s. */
    int dur[30], i;

    for (i = 0; i < 30; ++i) dur[i] = 8000 + 1000 * (i % 5);
    ck_assert_int_eq(simulate(30, 8, dur, 1, 1), 2);
}
END_TEST

START_TEST(first_certificates_after_a_restart_wait_for_the_spacing)
{
    apr_array_header_t *running = items(), *staged = items();
    apr_time_t last = T0 - SEC(20);

    add(running, 1, T0 - SEC(15));
    add(staged, 1, T0);
    ck_assert_int_eq(acme_restart_due(running, staged, 1, last, T0),
                     last + ACME_RESTART_FIRST_SPACING);
    /* the spacing is over: the 10 s bound again */
    last = T0 - SEC(300);
    ck_assert_int_eq(acme_restart_due(running, staged, 1, last, T0),
                     T0 + ACME_RESTART_FIRST_BOUND);
    /* no first job in flight: at once, spacing or not */
    ck_assert_int_eq(acme_restart_due(items(), staged, 1, T0 - SEC(1), T0), T0);
    /* a restart time "after now" (a clock step) is ignored, not waited for */
    ck_assert_int_eq(acme_restart_due(running, staged, 1, T0 + SEC(3600), T0),
                     T0 + ACME_RESTART_FIRST_BOUND);
}
END_TEST

START_TEST(first_certificate_not_held_back_by_renewals)
{
    apr_array_header_t *running = items(), *staged = items();

    add(running, 0, T0 - SEC(5));
    add(running, 0, T0 - SEC(1));
    add(staged, 1, T0 - MSEC(10));
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0), T0);
}
END_TEST

START_TEST(first_certificate_waits_for_first_jobs_within_bound)
{
    apr_array_header_t *running = items(), *staged = items();

    add(running, 1, T0 - SEC(2));
    add(staged, 1, T0 - SEC(3));
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0),
                     T0 - SEC(3) + ACME_RESTART_FIRST_BOUND);
    /* the bound is from the staging, however long the other job runs */
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0 + SEC(7)), T0 + SEC(7));
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0 + SEC(60)), T0 + SEC(60));
    /* the other job ends: at once */
    ck_assert_int_eq(acme_restart_due(items(), staged, 1, 0, T0 + SEC(1)), T0 + SEC(1));
}
END_TEST

START_TEST(renewal_waits_for_the_batch_within_bound)
{
    apr_array_header_t *running = items(), *staged = items();

    add(staged, 0, T0);
    add(running, 0, T0 - SEC(1));
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0), T0 + ACME_RESTART_RENEWAL_BOUND);
    apr_array_clear(running);
    add(running, 1, T0 - SEC(1)); /* a first certificate is part of the batch too */
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0 + SEC(10)),
                     T0 + ACME_RESTART_RENEWAL_BOUND);
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0 + ACME_RESTART_RENEWAL_BOUND),
                     T0 + ACME_RESTART_RENEWAL_BOUND);
    ck_assert_int_eq(acme_restart_due(items(), staged, 1, 0, T0 + SEC(10)), T0 + SEC(10));
    /* a first certificate staged beside it is activated at its own bound,
     * and takes the renewal with it */
    add(staged, 1, T0 + SEC(20));
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0 + SEC(21)),
                     T0 + SEC(20) + ACME_RESTART_FIRST_BOUND);
}
END_TEST

START_TEST(times_from_the_child_cannot_push_the_bounds)
{
    apr_array_header_t *running = items(), *staged = items();

    /* a staged time an hour ahead (an mtime the child set) counts as now */
    add(running, 1, T0);
    add(staged, 1, T0 + SEC(3600));
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0), T0 + ACME_RESTART_FIRST_BOUND);
    apr_array_clear(staged);
    add(staged, 0, T0 + SEC(3600));
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0), T0 + ACME_RESTART_RENEWAL_BOUND);
    ck_assert_int_eq(acme_restart_due(running, staged, 0, 0, T0), T0 + ACME_RESTART_QUIET);
    /* a staged time of 0 (the epoch) is long ago, not "nothing staged" */
    apr_array_clear(staged);
    add(staged, 0, 0);
    ck_assert_int_eq(acme_restart_due(running, staged, 1, 0, T0), T0);
}
END_TEST

START_TEST(uninformed_falls_back_to_quiet_period)
{
    apr_array_header_t *staged = items();

    add(staged, 1, T0);
    ck_assert_int_eq(acme_restart_due(NULL, staged, 0, 0, T0 + SEC(1)), T0 + ACME_RESTART_QUIET);
    ck_assert_int_eq(acme_restart_due(NULL, staged, 0, 0, T0 + SEC(3)), T0 + SEC(3));
    /* results keep coming: at the latest MAX_WAIT after the oldest */
    add(staged, 0, T0 + SEC(29));
    ck_assert_int_eq(acme_restart_due(NULL, staged, 0, 0, T0 + SEC(29)),
                     T0 + ACME_RESTART_MAX_WAIT);
}
END_TEST

/* ---- when the parent looks at the store ------------------------------------ */

START_TEST(look_at_once_unless_held)
{
    /* nothing held (or never looked): every wake-up looks */
    ck_assert_int_eq(acme_restart_look_at(0, T0 + SEC(10), T0 + SEC(10), 1, T0), T0);
    ck_assert_int_eq(acme_restart_look_at(T0 - MSEC(10), 0, 0, 1, T0), T0);
    /* held, and nothing known makes it sooner: not before the bound */
    ck_assert_int_eq(acme_restart_look_at(T0 - MSEC(10), T0 + SEC(10), T0 + SEC(10), 0, T0),
                     T0 + SEC(10));
    /* a job in flight began since: still at the bound the look found */
    ck_assert_int_eq(acme_restart_look_at(T0 - MSEC(10), T0 + SEC(10), T0 + SEC(20), 0, T0),
                     T0 + SEC(10));
    /* the bound came */
    ck_assert_int_eq(acme_restart_look_at(T0 - SEC(10), T0, T0 + SEC(20), 0, T0), T0);
}
END_TEST

START_TEST(look_at_once_when_what_is_known_is_due)
{
    apr_array_header_t *running = items(), *staged = items();
    apr_time_t held;

    /* renewals staged while renewals run: held for the renewal bound */
    add(running, 0, T0 - SEC(2));
    add(staged, 0, T0 - SEC(1));
    held = acme_restart_due(running, staged, 1, 0, T0 - SEC(1));
    ck_assert_int_eq(held, T0 - SEC(1) + ACME_RESTART_RENEWAL_BOUND);
    /* the child says a first certificate is staged: due at once, looked at now */
    add(staged, 1, T0);
    ck_assert_int_eq(acme_restart_look_at(T0 - MSEC(100), held,
                                          acme_restart_due(running, staged, 1, 0, T0), 1, T0),
                     T0);
    /* or the last job ends */
    apr_array_clear(staged);
    add(staged, 0, T0 - SEC(1));
    ck_assert_int_eq(acme_restart_look_at(T0 - MSEC(100), held,
                                          acme_restart_due(items(), staged, 1, 0, T0), 0, T0),
                     T0);
}
END_TEST

START_TEST(look_at_what_nobody_told_of_within_the_spacing)
{
    /* the batch marker moved (acmectl's or another server's result, or
     * one the child told of): looked at within the spacing, not at once */
    ck_assert_int_eq(acme_restart_look_at(T0 - MSEC(100), T0 + SEC(10), T0 + SEC(10), 1, T0),
                     T0 - MSEC(100) + ACME_RESTART_LOOK_SPACING);
    ck_assert_int_eq(acme_restart_look_at(T0 - SEC(1), T0 + SEC(10), T0 + SEC(10), 1, T0), T0);
}
END_TEST

/* The parent's thread against a batch: n jobs through `slots` slots, job i
 * taking dur_ms[i], each first (a new domain) by first[i]; every start and
 * end is a message that wakes the thread (10 ms steps). coalesce 0: a
 * look at every wake-up (the old thread). Returns the number of looks;
 * the restart times go to restarts[] (*nrestarts of them). */
static int simulate_looks(int n, int slots, const int *dur_ms, const int *first, int coalesce,
                          apr_time_t *restarts, int *nrestarts)
{
    apr_time_t start[128], now, last = 0, looked = 0, held = 0, check_at = 0;
    int i, next = 0, done = 0, looks = 0, ended[128], changed = 0;
    apr_array_header_t *store = items(), *known = items(), *told = items();

    ck_assert_int_le(n, 128);
    memset(ended, 0, sizeof(ended));
    *nrestarts = 0;
    for (now = T0; done < n || store->nelts > 0; now += MSEC(10)) {
        apr_array_header_t *running = items(), *k;
        int woken = 0, busy = 0;

        for (i = 0; i < next; ++i) {
            if (!ended[i] && now >= start[i] + MSEC(dur_ms[i])) {
                ended[i] = 1;
                done++;
                add(store, first[i], now);
                add(told, first[i], now);
                changed = woken = 1;
            }
        }
        for (i = 0; i < next; ++i) busy += !ended[i];
        while (next < n && busy < slots) {
            start[next++] = now;
            busy++;
            woken = 1;
        }
        for (i = 0; i < next; ++i) {
            if (!ended[i]) add(running, first[i], start[i]);
        }
        if (!woken && !(check_at && check_at <= now)) continue;
        check_at = 0;
        if (!held && !changed) continue;    /* nothing staged since the last look */
        if (coalesce && held) {
            apr_time_t at;
            k = apr_array_copy(pool, known);
            apr_array_cat(k, told);
            at = acme_restart_look_at(looked, held, acme_restart_due(running, k, 1, last, now),
                                      changed, now);
            if (at > now) {
                check_at = at;
                continue;
            }
        }
        looks++;
        looked = now;
        changed = 0;
        apr_array_clear(told);
        apr_array_clear(known);
        apr_array_cat(known, store);
        held = acme_restart_due(running, store, 1, last, now);
        if (held && held <= now) {
            ck_assert_int_lt(*nrestarts, 8);
            restarts[(*nrestarts)++] = now;
            last = now;
            held = 0;
            apr_array_clear(store);
        }
        else if (held) {
            check_at = held;
        }
        ck_assert_int_lt(now, T0 + SEC(3600));
    }
    return looks;
}

START_TEST(a_batch_costs_a_look_per_spacing_and_restarts_as_before)
{
    int dur[100], first[100], i, looks, old_looks, n, old_n;
    apr_time_t at[8], old_at[8];

    /* 100 new domains, 32 slots, 0.3 to 1.2 s each (an instant CA) */
    for (i = 0; i < 100; ++i) {
        dur[i] = 300 + 90 * (i % 11);
        first[i] = 1;
    }
    old_looks = simulate_looks(100, 32, dur, first, 0, old_at, &old_n);
    looks = simulate_looks(100, 32, dur, first, 1, at, &n);
    ck_assert_int_eq(n, old_n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(at[0], old_at[0]);
    ck_assert_int_gt(old_looks, 3 * looks);
    ck_assert_int_le(looks, 2 + (int)((at[0] - T0) / ACME_RESTART_LOOK_SPACING));
    /* renewals with a few new domains among them, some jobs of 12 s: the
     * same restarts at the same moments, a look per spacing at most */
    for (i = 0; i < 100; ++i) first[i] = i % 17 == 5;
    for (i = 0; i < 100; ++i) dur[i] = (i % 13 == 4) ? 12000 : 300 + 90 * (i % 11);
    old_looks = simulate_looks(100, 8, dur, first, 0, old_at, &old_n);
    looks = simulate_looks(100, 8, dur, first, 1, at, &n);
    ck_assert_int_eq(n, old_n);
    for (i = 0; i < n; ++i) ck_assert_int_eq(at[i], old_at[i]);
    ck_assert_int_le(looks, 2 * n + (int)((at[n - 1] - T0) / ACME_RESTART_LOOK_SPACING));
}
END_TEST

/* ---- messages ------------------------------------------------------------- */

START_TEST(msg_round_trip)
{
    char buf[ACME_RESTART_MSG_MAX];
    acme_restart_msg_t m;
    apr_size_t len;

    ck_assert_int_eq(acme_restart_msg_format(buf, &len, ACME_RESTART_BEGIN, 1, "a.example.org"),
                     APR_SUCCESS);
    ck_assert_int_eq(len, strlen("acme-job begin first a.example.org"));
    ck_assert(!memcmp(buf, "acme-job begin first a.example.org", len));
    ck_assert_int_eq(acme_restart_msg_parse(&m, buf, len), APR_SUCCESS);
    ck_assert_int_eq(m.event, ACME_RESTART_BEGIN);
    ck_assert_int_eq(m.first, 1);
    ck_assert_str_eq(m.domain, "a.example.org");
    ck_assert_int_eq(acme_restart_msg_format(buf, &len, ACME_RESTART_END, 0, "192.0.2.1"),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_restart_msg_parse(&m, buf, len), APR_SUCCESS);
    ck_assert_int_eq(m.event, ACME_RESTART_END);
    ck_assert_int_eq(m.first, 0);
    ck_assert_str_eq(m.domain, "192.0.2.1");
    ck_assert_int_eq(acme_restart_msg_format(buf, &len, ACME_RESTART_STAGED, 0, "x.test"),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_restart_msg_parse(&m, buf, len), APR_SUCCESS);
    ck_assert_int_eq(m.event, ACME_RESTART_STAGED);
    ck_assert_int_eq(acme_restart_msg_format(buf, &len, ACME_RESTART_READY, 1, "x.test"),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_restart_msg_parse(&m, buf, len), APR_SUCCESS);
    ck_assert_int_eq(m.event, ACME_RESTART_READY);
    ck_assert_int_eq(acme_restart_msg_format(buf, &len, ACME_RESTART_BEGIN, 1, "bad name"),
                     APR_EINVAL);
    ck_assert_int_eq(acme_restart_msg_format(buf, &len, ACME_RESTART_BEGIN, 1, "../etc"),
                     APR_EINVAL);
}
END_TEST

START_TEST(msg_parse_rejects_malformed)
{
    static const char *bad[] = {
        "", "w", "q", "acme-job", "acme-job ", "acme-job begin first",
        "acme-job begin first ", "acme-job  begin first a.test", "acme-job begin  first a.test",
        "acme-job begin first a.test ", "acme-job begin first a.test b.test",
        "acme-job start first a.test", "acme-job begin new a.test", "acme-job begin first a_b",
        "acme-job begin first a.test\n", "acme-job begin first a.\x01test",
        "acme-job begin first a.\xc3\xa9.test", "ACME-JOB begin first a.test",
        "acme-job begin first ../../etc", "acme-job end renewal -a.test",
    };
    char longer[ACME_RESTART_MSG_MAX + 20], nul[] = "acme-job end first a.test\0x";
    acme_restart_msg_t m;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(acme_restart_msg_parse(&m, bad[i], strlen(bad[i])) == APR_EINVAL,
                      "accepted: %s", bad[i]);
    }
    ck_assert_int_eq(acme_restart_msg_parse(&m, nul, sizeof(nul) - 1), APR_EINVAL);
    ck_assert_int_eq(acme_restart_msg_parse(&m, NULL, 10), APR_EINVAL);
    memcpy(longer, "acme-job end first ", 19);
    memset(longer + 19, 'a', sizeof(longer) - 19);
    for (i = 19 + 60; i < sizeof(longer); i += 61) longer[i] = '.';
    ck_assert_int_eq(acme_restart_msg_parse(&m, longer, sizeof(longer)), APR_EINVAL);
    /* a name of 254 characters is not a name */
    memset(longer + 19, 'a', 254);
    for (i = 19 + 60; i < 19 + 254; i += 61) longer[i] = '.';
    ck_assert_int_eq(acme_restart_msg_parse(&m, longer, 19 + 254), APR_EINVAL);
    ck_assert_int_eq(acme_restart_msg_parse(&m, longer, 19 + 253), APR_SUCCESS);
}
END_TEST

static Suite *restart_suite(void)
{
    Suite *s = suite_create("restart");
    TCase *tc;

    tc = tcase_create("decide");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, nothing_staged_no_restart);
    tcase_add_test(tc, batch_of_slow_first_certificates_one_restart);
    tcase_add_test(tc, batch_of_slow_renewals_one_restart);
    tcase_add_test(tc, long_batch_of_first_certificates_two_restarts);
    tcase_add_test(tc, first_certificates_after_a_restart_wait_for_the_spacing);
    tcase_add_test(tc, first_certificate_not_held_back_by_renewals);
    tcase_add_test(tc, first_certificate_waits_for_first_jobs_within_bound);
    tcase_add_test(tc, renewal_waits_for_the_batch_within_bound);
    tcase_add_test(tc, times_from_the_child_cannot_push_the_bounds);
    tcase_add_test(tc, uninformed_falls_back_to_quiet_period);
    suite_add_tcase(s, tc);

    tc = tcase_create("look");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, look_at_once_unless_held);
    tcase_add_test(tc, look_at_once_when_what_is_known_is_due);
    tcase_add_test(tc, look_at_what_nobody_told_of_within_the_spacing);
    tcase_add_test(tc, a_batch_costs_a_look_per_spacing_and_restarts_as_before);
    suite_add_tcase(s, tc);

    tc = tcase_create("messages");
    tcase_add_test(tc, msg_round_trip);
    tcase_add_test(tc, msg_parse_rejects_malformed);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(restart_suite)
