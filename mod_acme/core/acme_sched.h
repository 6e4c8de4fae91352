/* acme_sched.h: pure policy: what the renewal scheduler does with one
 * domain at one look, from the domain's status, the scheduler's state and
 * the clock. No store, no thread, no clock of its own: the glue
 * (mod_acme_sched.c) gathers the inputs and acts on the answer. */
#ifndef ACME_SCHED_H
#define ACME_SCHED_H

#include <apr_time.h>

struct acme_status_t;

typedef struct acme_sched_in_t {
    const struct acme_status_t *st; /* the domain's status now (acme_status_get) */
    int first_look;                 /* the first look in this server generation */
    int self_restart;               /* the generation comes from the module's own
                                     * activation restart (no new configuration) */
    apr_time_t ca_pause;            /* the CA's Retry-After in force until then (0: none) */
    apr_time_t guard_fits;          /* the order guard: 0 an order fits now, else when */
    int slot_free;                  /* acme_sched_slot_free() */
    apr_interval_time_t check_interval; /* the look when nothing is due */
    apr_interval_time_t jitter;     /* added to it: acme_sched_jitter() */
    apr_time_t now;
} acme_sched_in_t;

typedef enum {
    ACME_SCHED_WAIT = 0,   /* look again at 'next' */
    ACME_SCHED_START,      /* start the job now: 'order' and/or 'ari' */
    ACME_SCHED_NO_SLOT     /* a job is due but every slot is taken: a freed one looks again */
} acme_sched_action_t;

typedef struct acme_sched_t {
    acme_sched_action_t action;
    int order;          /* the job orders the status's due key types */
    int ari;            /* the job asks the CA's renewal information first */
    int expiring;       /* say "expiring" (once per certificate: the glue keeps that) */
    apr_time_t next;    /* WAIT: when to look again; NO_SLOT: now */
    const char *why;    /* "paused", "guard", "no-slot", "order", "ari", "renew",
                         * "retry", "interval" */
} acme_sched_t;

/* The decision. A configuration problem waits a day, or for the restart
 * that brings the corrected configuration: at the first look of a
 * generation that is not the module's own activation restart, its backoff
 * is not held against it. */
void acme_sched_decide(acme_sched_t *out, const acme_sched_in_t *in);

/* The slots. ManagedParallelRenewals ('parallel') bounds the jobs that
 * work (keys, requests, finalize, store writes); a job that waits for the
 * CA between polls (seconds at a real CA) holds no slot, so a batch does
 * not run in waves of sleepers. The jobs in flight, waiting or not, stay
 * bounded (threads; a CA's limit on pending authorizations):
 * acme_sched_flight_cap(). A waiting job that wakes works at once, even
 * with every slot taken: no new job starts until the working ones are
 * fewer than 'parallel' again. */
#define ACME_SCHED_FLIGHT_FACTOR 4
#define ACME_SCHED_FLIGHT_MAX 256
/* The jobs in flight at most: ACME_SCHED_FLIGHT_FACTOR times parallel, at
 * most ACME_SCHED_FLIGHT_MAX, never fewer than parallel. */
int acme_sched_flight_cap(int parallel);
/* Whether a new job may start with 'in_flight' jobs running, 'waiting' of
 * them waiting for the CA. */
int acme_sched_slot_free(int in_flight, int waiting, int parallel);

/* A random offset within +-10% of interval, so that many servers do not ask
 * the CA at the same second. */
apr_interval_time_t acme_sched_jitter(apr_interval_time_t interval);

#endif /* ACME_SCHED_H */
