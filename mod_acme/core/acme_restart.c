/* acme_restart.c: when the parent restarts to activate what is staged (a
 * pure decision), and the child's messages that tell it what is in flight. */
#include <string.h>

#include <apr_strings.h>

#include "acme_util.h"
#include "acme_restart.h"

#define MSG_PREFIX "acme-job "

/* When one staged result stops waiting: at once, or at its bound while a
 * job it waits for is in flight. */
static apr_time_t item_due(const acme_restart_item_t *s, int first_running, int any_running,
                           apr_time_t last, apr_time_t now)
{
    apr_time_t at = s->at < now ? s->at : now;
    int blocked = s->first ? first_running : any_running;

    if (!blocked) {
        return now;
    }
    if (s->first) {
        at += ACME_RESTART_FIRST_BOUND;
        if (last && last <= now && last + ACME_RESTART_FIRST_SPACING > at) {
            at = last + ACME_RESTART_FIRST_SPACING;
        }
    }
    else {
        at += ACME_RESTART_RENEWAL_BOUND;
    }
    return at > now ? at : now;
}

apr_time_t acme_restart_due(const apr_array_header_t *running, const apr_array_header_t *staged,
                            int informed, apr_time_t last, apr_time_t now)
{
    apr_time_t due = 0, newest = 0, oldest = 0, t;
    int i, first_running = 0, any_running = 0;

    if (!staged || staged->nelts == 0) {
        return 0;
    }
    for (i = 0; running && i < running->nelts; ++i) {
        any_running = 1;
        first_running |= APR_ARRAY_IDX(running, i, acme_restart_item_t).first;
    }
    for (i = 0; i < staged->nelts; ++i) {
        const acme_restart_item_t *s = &APR_ARRAY_IDX(staged, i, acme_restart_item_t);

        if (!informed) {
            t = s->at < now ? s->at : now;
            if (!newest || t > newest) newest = t;
            if (!oldest || t < oldest) oldest = t;
            continue;
        }
        t = item_due(s, first_running, any_running, last, now);
        if (!due || t < due) due = t;
    }
    if (!informed) {
        /* Nothing is known of the jobs: the batch is over when nothing new
         * came for a while. */
        due = newest + ACME_RESTART_QUIET;
        if (due > oldest + ACME_RESTART_MAX_WAIT) due = oldest + ACME_RESTART_MAX_WAIT;
        if (due < now) due = now;
    }
    return due;
}

apr_time_t acme_restart_look_at(apr_time_t looked, apr_time_t held_until, apr_time_t known_due,
                                int changed, apr_time_t now)
{
    apr_time_t at = held_until;

    if (!looked || !held_until) {
        return now; /* nothing held: every change is looked at */
    }
    if (known_due && known_due < at) {
        at = known_due;
    }
    if (changed && looked + ACME_RESTART_LOOK_SPACING < at) {
        at = looked + ACME_RESTART_LOOK_SPACING;
    }
    return at > now ? at : now;
}

static const char *event_word(acme_restart_event_t event)
{
    switch (event) {
    case ACME_RESTART_BEGIN:
        return "begin";
    case ACME_RESTART_END:
        return "end";
    case ACME_RESTART_STAGED:
        return "staged";
    case ACME_RESTART_READY:
        return "ready";
    }
    return NULL;
}

static int domain_ok(const char *name)
{
    return strlen(name) < sizeof(((acme_restart_msg_t *)0)->domain) && acme_name_is_valid(name);
}

apr_status_t acme_restart_msg_format(char *buf, apr_size_t *plen, acme_restart_event_t event,
                                     int first, const char *domain)
{
    const char *word = event_word(event);
    int n;

    *plen = 0;
    if (!word || !domain || !domain_ok(domain)) {
        return APR_EINVAL;
    }
    n = apr_snprintf(buf, ACME_RESTART_MSG_MAX, MSG_PREFIX "%s %s %s", word,
                     first ? "first" : "renewal", domain);
    if (n <= 0 || n >= ACME_RESTART_MSG_MAX) {
        return APR_EINVAL;
    }
    *plen = (apr_size_t)n;
    return APR_SUCCESS;
}

apr_status_t acme_restart_msg_parse(acme_restart_msg_t *msg, const char *buf, apr_size_t len)
{
    char text[ACME_RESTART_MSG_MAX + 1];
    char *event, *kind, *domain, *last = NULL;
    apr_size_t i;

    memset(msg, 0, sizeof(*msg));
    if (!buf || len <= sizeof(MSG_PREFIX) - 1 || len >= ACME_RESTART_MSG_MAX
        || memcmp(buf, MSG_PREFIX, sizeof(MSG_PREFIX) - 1)) {
        return APR_EINVAL;
    }
    for (i = 0; i < len; ++i) {
        /* printable ASCII words, one space apart: a NUL or a newline
         * would make one message read as another */
        unsigned char c = (unsigned char)buf[i];
        if (c == ' ' ? (i + 1 == len || buf[i + 1] == ' ') : (c < 0x21 || c > 0x7e)) {
            return APR_EINVAL;
        }
    }
    memcpy(text, buf + sizeof(MSG_PREFIX) - 1, len - (sizeof(MSG_PREFIX) - 1));
    text[len - (sizeof(MSG_PREFIX) - 1)] = '\0';
    event = apr_strtok(text, " ", &last);
    kind = apr_strtok(NULL, " ", &last);
    domain = apr_strtok(NULL, " ", &last);
    if (!event || !kind || !domain || apr_strtok(NULL, " ", &last) || !domain_ok(domain)) {
        return APR_EINVAL;
    }
    if (!strcmp(event, "begin")) msg->event = ACME_RESTART_BEGIN;
    else if (!strcmp(event, "end")) msg->event = ACME_RESTART_END;
    else if (!strcmp(event, "staged")) msg->event = ACME_RESTART_STAGED;
    else if (!strcmp(event, "ready")) msg->event = ACME_RESTART_READY;
    else return APR_EINVAL;
    if (!strcmp(kind, "first")) msg->first = 1;
    else if (strcmp(kind, "renewal")) return APR_EINVAL;
    apr_cpystrn(msg->domain, domain, sizeof(msg->domain));
    return APR_SUCCESS;
}
