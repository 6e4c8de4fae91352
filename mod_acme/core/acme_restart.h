/* acme_restart.h: when the parent restarts to activate staged certificates,
 * and the messages in which the renewal child tells it what is in flight.
 * The decision is a pure function of (jobs in flight, staged results, now). */
#ifndef ACME_RESTART_H
#define ACME_RESTART_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/* A first certificate (the site answers 503 until it is active) waits for
 * the other first-certificate jobs in flight, at most this long after it
 * was staged; but within FIRST_SPACING of the module's last restart, up to
 * the end of that spacing: a long batch gets a restart every 30 s for the
 * sites that are ready, and one at its end, not one every 10 s. (60 s made
 * a cluster's 300 new sites wait 29.5 s in the median, 30 s 11.2 s.) */
#define ACME_RESTART_FIRST_BOUND apr_time_from_sec(10)
#define ACME_RESTART_FIRST_SPACING apr_time_from_sec(30)
/* A renewal (the old certificate is valid for days) waits for every job in
 * flight, at most this long after it was staged. */
#define ACME_RESTART_RENEWAL_BOUND apr_time_from_sec(300)
/* Without word from the child (acmectl staged it, another server of a
 * cluster activated it, a child of an older module): restart once nothing
 * new was staged for QUIET, at the latest MAX_WAIT after the oldest. */
#define ACME_RESTART_QUIET apr_time_from_sec(2)
#define ACME_RESTART_MAX_WAIT apr_time_from_sec(30)

/* A job in flight (at: when it started) or a staged result (at: when it
 * was staged). */
typedef struct acme_restart_item_t {
    int first;          /* a first certificate, not a renewal */
    apr_time_t at;
} acme_restart_item_t;

/* The moment from which the restart is due: at or before now, restart now;
 * later, look again then (a job that ends makes the child say so, and the
 * caller decides again at once); 0, nothing is staged. running and staged
 * hold acme_restart_item_t. informed: the child reports its jobs (else
 * running is not known, and the quiet period applies). last: when the
 * module last restarted to activate (0: never). Times after now count as
 * now: whatever the child claims, it cannot push the bounds. */
apr_time_t acme_restart_due(const apr_array_header_t *running, const apr_array_header_t *staged,
                            int informed, apr_time_t last, apr_time_t now);

/* While a restart is held (the look at the store at 'looked' found it due
 * at held_until, later), the parent's thread wakes at every message of the
 * child: when must it look at the store again? known_due is
 * acme_restart_due() of what it knows without looking (what that look
 * found staged, what the child said it staged since, the jobs in flight
 * now). At once when known_due or held_until has come (a job ended, a
 * bound ran out); then at the earlier of the two; and when something was
 * staged since the look (changed: the batch marker moved; it may be a
 * result nobody told of: acmectl's, another server's), no later than
 * LOOK_SPACING after the look. So a batch costs a look per LOOK_SPACING,
 * not one per staged result. Returns the time of the next look (at or
 * before now: look now). */
#define ACME_RESTART_LOOK_SPACING apr_time_from_msec(250)
apr_time_t acme_restart_look_at(apr_time_t looked, apr_time_t held_until, apr_time_t known_due,
                                int changed, apr_time_t now);

/* ---- the child's messages (one datagram each) --------------------------------
 * "acme-job <event> <kind> <domain>": event is begin, end or staged, kind is
 * first or renewal; or "ready" (kind and domain then any of them), once per
 * generation, when the scheduler has looked at every domain: from then on
 * what is not said to be in flight is not (before, a job not started yet
 * may not have been said). The parent treats them as untrusted: a message that
 * does not parse is dropped, and one about a domain it does not manage is
 * ignored. */
#define ACME_RESTART_MSG_MAX 300

typedef enum {
    ACME_RESTART_BEGIN,
    ACME_RESTART_END,
    ACME_RESTART_STAGED,
    ACME_RESTART_READY
} acme_restart_event_t;

typedef struct acme_restart_msg_t {
    acme_restart_event_t event;
    int first;
    char domain[256];
} acme_restart_msg_t;

/* Formats a message into buf (ACME_RESTART_MSG_MAX bytes); *plen its length
 * (no NUL sent). APR_EINVAL when the domain is not a name. */
apr_status_t acme_restart_msg_format(char *buf, apr_size_t *plen, acme_restart_event_t event,
                                     int first, const char *domain);

/* Parses len bytes of a datagram. APR_EINVAL when it is not a message. */
apr_status_t acme_restart_msg_parse(acme_restart_msg_t *msg, const char *buf, apr_size_t len);

#endif /* ACME_RESTART_H */
