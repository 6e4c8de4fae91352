/* test_sched.c: the scheduler's decision for one domain (acme_sched.c)
 * under a fake clock: due, backoff, renewal time, a CA's pause, the order
 * guard, the slots (working jobs, waiting ones, the cap on jobs in flight),
 * ARI, and a configuration problem at a restart. */
#include <stdlib.h>
#include <string.h>

#include "acme_test.h"
#include "acme_result.h"
#include "acme_status.h"
#include "acme_sched.h"

#define NOW apr_time_from_sec(1800000000)
#define SEC(n) apr_time_from_sec(n)
#define HOUR SEC(3600)

static apr_pool_t *pool;
static acme_status_t st;
static acme_sched_in_t in;
static acme_sched_t out;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    memset(&st, 0, sizeof(st));
    st.due = apr_array_make(pool, 1, sizeof(acme_key_type_t));
    memset(&in, 0, sizeof(in));
    in.st = &st;
    in.slot_free = 1;
    in.check_interval = HOUR;
    in.now = NOW;
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static void make_due(void)
{
    APR_ARRAY_PUSH(st.due, acme_key_type_t) = ACME_KEY_P256;
}

static const acme_sched_t *decide(void)
{
    acme_sched_decide(&out, &in);
    return &out;
}

START_TEST(nothing_due_looks_again_after_the_interval_with_jitter)
{
    in.jitter = -SEC(5);
    ck_assert_int_eq(decide()->action, ACME_SCHED_WAIT);
    ck_assert_int_eq(out.next, NOW + HOUR - SEC(5));
    ck_assert_str_eq(out.why, "interval");
}
END_TEST

START_TEST(renewal_time_within_the_interval_is_the_next_look)
{
    st.renew_at = NOW + SEC(600);
    ck_assert_int_eq(decide()->action, ACME_SCHED_WAIT);
    ck_assert_int_eq(out.next, NOW + SEC(600));
    ck_assert_str_eq(out.why, "renew");
    st.renew_at = NOW + 2 * HOUR;   /* beyond the interval: the interval */
    ck_assert_int_eq(decide()->next, NOW + HOUR);
}
END_TEST

START_TEST(due_starts_an_order)
{
    make_due();
    ck_assert_int_eq(decide()->action, ACME_SCHED_START);
    ck_assert_int_eq(out.order, 1);
    ck_assert_int_eq(out.ari, 0);
    ck_assert_str_eq(out.why, "order");
}
END_TEST

START_TEST(backoff_holds_a_due_domain_until_its_next_attempt)
{
    make_due();
    st.next_attempt = NOW + SEC(300);
    ck_assert_int_eq(decide()->action, ACME_SCHED_WAIT);
    ck_assert_int_eq(out.next, NOW + SEC(300));
    ck_assert_str_eq(out.why, "retry");
    in.now = NOW + SEC(300);        /* the fake clock reaches it */
    ck_assert_int_eq(decide()->action, ACME_SCHED_START);
}
END_TEST

START_TEST(a_cas_pause_holds_everything_even_expiring_notices)
{
    make_due();
    st.expiring = 1;
    st.ari_due = 1;
    in.ca_pause = NOW + SEC(120);
    ck_assert_int_eq(decide()->action, ACME_SCHED_WAIT);
    ck_assert_int_eq(out.next, NOW + SEC(120));
    ck_assert_int_eq(out.expiring, 0);
    ck_assert_str_eq(out.why, "paused");
    in.ca_pause = NOW;              /* over */
    ck_assert_int_eq(decide()->action, ACME_SCHED_START);
    ck_assert_int_eq(out.expiring, 1);
}
END_TEST

START_TEST(a_full_order_guard_waits_until_an_order_fits)
{
    make_due();
    in.guard_fits = NOW + SEC(900);
    ck_assert_int_eq(decide()->action, ACME_SCHED_WAIT);
    ck_assert_int_eq(out.next, NOW + SEC(900));
    ck_assert_str_eq(out.why, "guard");
    /* the renewal information is still asked: it orders nothing */
    st.ari_due = 1;
    ck_assert_int_eq(decide()->action, ACME_SCHED_START);
    ck_assert_int_eq(out.order, 0);
    ck_assert_int_eq(out.ari, 1);
}
END_TEST

START_TEST(no_free_slot_looks_again_when_one_frees_up)
{
    make_due();
    in.slot_free = 0;
    in.guard_fits = NOW + SEC(900); /* not looked at without a slot */
    ck_assert_int_eq(decide()->action, ACME_SCHED_NO_SLOT);
    ck_assert_int_eq(out.next, NOW);
    ck_assert_str_eq(out.why, "no-slot");
}
END_TEST

START_TEST(ari_alone_starts_a_job_without_an_order)
{
    st.ari_due = 1;
    st.renew_at = NOW + 30 * 24 * HOUR;
    ck_assert_int_eq(decide()->action, ACME_SCHED_START);
    ck_assert_int_eq(out.order, 0);
    ck_assert_str_eq(out.why, "ari");
}
END_TEST

START_TEST(a_config_problem_is_tried_again_at_a_restart_not_at_our_own)
{
    acme_result_t *r = acme_result_make(pool);

    acme_result_set(r, APR_EGENERAL, "acme:config", "no usable challenge type");
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_CONFIG);
    make_due();
    st.errors = 1;
    st.last_error = r;
    st.next_attempt = NOW + 24 * HOUR;
    in.first_look = 1;
    ck_assert_int_eq(decide()->action, ACME_SCHED_START);   /* the operator's restart */
    in.self_restart = 1;
    ck_assert_int_eq(decide()->action, ACME_SCHED_WAIT);    /* the module's own */
    ck_assert_int_eq(out.next, NOW + HOUR);
    in.self_restart = 0;
    in.first_look = 0;
    ck_assert_int_eq(decide()->action, ACME_SCHED_WAIT);    /* later looks: the backoff */
    /* another class of error keeps its backoff at the first look too */
    acme_result_set(r, APR_EGENERAL, "acme:network", "timeout");
    in.first_look = 1;
    ck_assert_int_eq(decide()->action, ACME_SCHED_WAIT);
}
END_TEST

/* A batch of jobs that start, work a little and then wait for the CA:
 * how many are in flight once the scheduler has filled every slot, and how
 * many of them work. Each started job waits at once when 'wait' is set. */
static int fill(int due, int parallel, int wait, int *pworking)
{
    int in_flight = 0, waiting = 0;

    while (in_flight < due && acme_sched_slot_free(in_flight, waiting, parallel)) {
        ++in_flight;
        if (wait) ++waiting;
    }
    *pworking = in_flight - waiting;
    return in_flight;
}

START_TEST(waiting_jobs_hold_no_slot_up_to_the_flight_cap)
{
    int working;

    /* 100 new domains at a CA that takes seconds to validate: one wave */
    ck_assert_int_eq(fill(100, 32, 1, &working), 100);
    ck_assert_int_eq(working, 0);
    /* a bigger batch stops at the cap, 4 x 32 */
    ck_assert_int_eq(fill(1000, 32, 1, &working), 128);
    /* jobs that work (no wait) are limited to the slots */
    ck_assert_int_eq(fill(100, 32, 0, &working), 32);
    ck_assert_int_eq(working, 32);
    ck_assert_int_eq(fill(100, 1, 1, &working), 4);
}
END_TEST

START_TEST(the_flight_cap_is_four_times_the_slots_within_bounds)
{
    ck_assert_int_eq(acme_sched_flight_cap(1), 4);
    ck_assert_int_eq(acme_sched_flight_cap(8), 32);
    ck_assert_int_eq(acme_sched_flight_cap(32), 128);
    ck_assert_int_eq(acme_sched_flight_cap(64), ACME_SCHED_FLIGHT_MAX);
    ck_assert_int_eq(acme_sched_flight_cap(256), 256);
}
END_TEST

START_TEST(jobs_that_wake_work_but_no_new_job_starts_until_slots_free)
{
    /* 128 in flight, 100 of them woke at once: over the 32 slots for a
     * while, and nothing new starts */
    ck_assert(!acme_sched_slot_free(128, 28, 32));
    ck_assert(!acme_sched_slot_free(100, 28, 32));  /* 72 work */
    ck_assert(!acme_sched_slot_free(60, 28, 32));   /* 32 work */
    ck_assert(acme_sched_slot_free(59, 28, 32));    /* 31 work */
    /* at the cap, even with every job waiting */
    ck_assert(!acme_sched_slot_free(128, 128, 32));
    ck_assert(acme_sched_slot_free(127, 127, 32));
    /* a count of waiters above the jobs (a race in the glue) frees no more */
    ck_assert(!acme_sched_slot_free(128, 200, 32));
    ck_assert(acme_sched_slot_free(0, 0, 32));
}
END_TEST

START_TEST(jitter_stays_within_a_tenth)
{
    int i, low = 0, high = 0;

    for (i = 0; i < 200; ++i) {
        apr_interval_time_t j = acme_sched_jitter(HOUR);
        ck_assert(j >= -HOUR / 10 && j <= HOUR / 10);
        low |= j < 0;
        high |= j > 0;
    }
    ck_assert(low && high);
}
END_TEST

static Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("sched");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, nothing_due_looks_again_after_the_interval_with_jitter);
    tcase_add_test(tc, renewal_time_within_the_interval_is_the_next_look);
    tcase_add_test(tc, due_starts_an_order);
    tcase_add_test(tc, backoff_holds_a_due_domain_until_its_next_attempt);
    tcase_add_test(tc, a_cas_pause_holds_everything_even_expiring_notices);
    tcase_add_test(tc, a_full_order_guard_waits_until_an_order_fits);
    tcase_add_test(tc, no_free_slot_looks_again_when_one_frees_up);
    tcase_add_test(tc, ari_alone_starts_a_job_without_an_order);
    tcase_add_test(tc, a_config_problem_is_tried_again_at_a_restart_not_at_our_own);
    tcase_add_test(tc, waiting_jobs_hold_no_slot_up_to_the_flight_cap);
    tcase_add_test(tc, the_flight_cap_is_four_times_the_slots_within_bounds);
    tcase_add_test(tc, jobs_that_wake_work_but_no_new_job_starts_until_slots_free);
    tcase_add_test(tc, jitter_stays_within_a_tenth);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(sched_suite)
