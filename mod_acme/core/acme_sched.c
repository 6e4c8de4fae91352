/* acme_sched.c: the renewal scheduler's decision for one domain (see
 * acme_sched.h). Pure: unit-tested under a fake clock (test_sched.c). */
#include <string.h>

#include "acme_util.h"
#include "acme_result.h"
#include "acme_status.h"
#include "acme_sched.h"

void acme_sched_decide(acme_sched_t *out, const acme_sched_in_t *in)
{
    const acme_status_t *st = in->st;
    apr_time_t now = in->now, next_attempt = st->next_attempt, next;
    int due = st->due && st->due->nelts > 0;

    memset(out, 0, sizeof(*out));
    if (in->first_look && !in->self_restart && st->errors && st->last_error
        && acme_result_classify(st->last_error) == ACME_ERRCLASS_CONFIG) {
        /* Not the module's own activation restarts: a domain that cannot
         * work would be ordered again with every other domain's renewal. */
        next_attempt = 0;
    }
    if (in->ca_pause > now) {
        out->next = in->ca_pause;
        out->why = "paused";
        return;
    }
    out->expiring = st->expiring;
    out->ari = st->ari_due;
    out->order = due && next_attempt <= now;
    if (out->order && in->slot_free && in->guard_fits) {
        /* Only a look: the job counts its newOrder requests itself (a run
         * that fails before one, at its claim or the store, costs none). */
        out->order = 0;
        if (!out->ari) {
            out->next = in->guard_fits;
            out->why = "guard";
            return;
        }
    }
    if (out->order || out->ari) {
        out->action = in->slot_free ? ACME_SCHED_START : ACME_SCHED_NO_SLOT;
        out->next = now;
        out->why = !in->slot_free ? "no-slot" : out->order ? "order" : "ari";
        return;
    }
    next = now + in->check_interval + in->jitter;
    out->why = "interval";
    if (due && next_attempt > now && next_attempt < next) {
        next = next_attempt;
        out->why = "retry";
    }
    if (st->renew_at > now && st->renew_at < next) {
        next = st->renew_at;
        out->why = "renew";
    }
    out->next = next;
}

int acme_sched_flight_cap(int parallel)
{
    int cap = parallel * ACME_SCHED_FLIGHT_FACTOR;

    if (cap > ACME_SCHED_FLIGHT_MAX) cap = ACME_SCHED_FLIGHT_MAX;
    return cap > parallel ? cap : parallel;
}

int acme_sched_slot_free(int in_flight, int waiting, int parallel)
{
    int working = in_flight - (waiting < in_flight ? waiting : in_flight);

    return working < parallel && in_flight < acme_sched_flight_cap(parallel);
}

apr_interval_time_t acme_sched_jitter(apr_interval_time_t interval)
{
    apr_interval_time_t j = interval / 10;

    return -j + (apr_interval_time_t)acme_random_below((apr_uint64_t)(2 * j + 1));
}
