/* acme_names.h: the names of the store's items and of the JSON members in
 * them, in one place, so every reader and writer spells them the same way. */
#ifndef ACME_NAMES_H
#define ACME_NAMES_H

/* Items; certificates and keys are cert.<tag>.pem and privkey.<tag>.pem
 * in domains/<d>/ and staging/<d>/ (acme_job_cert_file). */
#define ACME_JOB_META "meta.json"          /* domains/<d>/, staging/<d>/ */
#define ACME_JOB_STATE "job.json"          /* jobs/<d>/: the renewal job's state */
/* domains/_fallback/: the temporary (self-signed) certificates of domains
 * that have none yet, <d>.cert.pem, all signed with fallback.key.pem. One
 * directory, not one per domain: creating them is most of a first start.
 * (domains/<d>/fallback.cert.pem and .key.pem: an older store's.) */
#define ACME_FALLBACK_NAME "_fallback"
#define ACME_FALLBACK_KEY "fallback.key.pem"
#define ACME_FALLBACK_CERT_SUFFIX ".cert.pem"
#define ACME_FALLBACK_OLD_CERT "fallback.cert.pem"
/* jobs/<d>/renew.json: an operator's request (acmectl renew, or the parent
 * after a refused activation): the next check renews every key type
 * regardless of the window, then removes it. */
#define ACME_JOB_RENEW_REQUEST "renew.json"
/* jobs/_requests/renew: touched with every renew.json, so the server looks
 * for requests only when it changed (one stat, not one per domain). */
#define ACME_REQUESTS_NAME "_requests"
#define ACME_REQUESTS_MARKER "renew"
/* jobs/_ca/<ca-id>.json: a CA's pause after a rate limit with Retry-After,
 * honoured by every server of the store (acme_job_ca_pause_set) */
#define ACME_CA_PAUSE_NAME "_ca"
#define ACME_PK_CA "ca"                    /* the CA's directory URL */
#define ACME_PK_UNTIL "until"              /* no order before (unix seconds) */
#define ACME_PK_DETAIL "detail"            /* what the CA said */
/* jobs/_guard/<server>.json: one server's new orders of the last hour per
 * CA (acme_job_guard_t), {"orders": {CA URL: [unix seconds, ...]}} */
#define ACME_GUARD_NAME "_guard"
#define ACME_GK_ORDERS "orders"
#define ACME_ACCOUNT_JSON "account.json"   /* accounts/<ca-id>/ */
#define ACME_ACCOUNT_KEY "account.key.pem"
#define ACME_ACCOUNT_KEY_OLD "account.key.pem.old" /* an unfinished key rollover */

/* account.json */
#define ACME_AK_URL "url"                  /* the account URL */
#define ACME_AK_CA "ca"                    /* the CA's directory URL */
#define ACME_AK_CONTACT "contact"
#define ACME_AK_CREATED "created"          /* RFC 3339, as all times named so */
#define ACME_AK_KEY_CHANGED "key-changed"
#define ACME_AK_EAB_KID "eab-kid"          /* the EAB key id it is bound to */

/* meta.json */
#define ACME_MK_NAMES "names"              /* the names the certificates cover */
#define ACME_MK_CA "ca"                    /* the CA that issued them */
#define ACME_MK_STAGED "staged"            /* when the result was staged */

/* job.json, read and written only through acme_jobrec.h; times
 * are unix seconds unless said otherwise. */
#define ACME_JK_STATE "state"              /* "staged" | "error" | "config-error" */
#define ACME_JK_CA "ca"                    /* CA directory URL of the last run */
#define ACME_JK_ERRORS "errors"            /* consecutive failures (0 after a success) */
#define ACME_JK_NEXT_ATTEMPT "next-attempt" /* no attempt before (0: none) */
#define ACME_JK_LAST_RUN "last-run"
#define ACME_JK_LAST_SUCCESS "last-success"
#define ACME_JK_LAST_ERROR "last-error"    /* acme_result_to_json() of the last failure */
#define ACME_JK_ORDERS "orders"            /* {key-type tag: order URL} in flight */
#define ACME_JK_FAILED_CHALLENGES "failed-challenges" /* types to avoid next time */
/* [{type, name, token, key-authz, authz, since}]: answers a run left
 * published because the CA may still validate them; withdrawn once their
 * authorization is final (or gone, or older than a day) */
#define ACME_JK_KEPT_ANSWERS "kept-answers"
#define ACME_JK_KA_AUTHZ "authz"          /*   the authorization's URL */
#define ACME_JK_KA_SINCE "since"          /*   when it was kept */
/* {challenge URL: when}: challenges POSTed (written before the POST); a
 * run that resumes the order does not POST them again */
#define ACME_JK_POSTED "posted-challenges"
#define ACME_JK_CA_INDEX "ca-index"        /* the configured CA in use (failover) */
#define ACME_JK_CA_ERRORS "ca-errors"      /* consecutive failures with it */
#define ACME_JK_RENEWALS_OK "renewals-ok"  /* counted over the job's life */
#define ACME_JK_RENEWALS_FAILED "renewals-failed"
#define ACME_JK_ARI "ari"                  /* {key-type tag: {the ARI_ members}} */
#define ACME_JK_ARI_UNSUPPORTED "unsupported-until" /* in "ari": the CA has no ARI */
#define ACME_JK_ARI_CERT_ID "cert-id"
#define ACME_JK_ARI_START "start"
#define ACME_JK_ARI_END "end"
#define ACME_JK_ARI_CHOSEN "chosen"
#define ACME_JK_ARI_NEXT_POLL "next-poll"
#define ACME_JK_ARI_EXPLANATION "explanation"
#define ACME_JK_INSTALLED_NOTIFIED "installed-notified" /* what the notifier announced */
#define ACME_JK_EXPIRING_NOTIFIED "expiring-notified"
#define ACME_JK_PREFLIGHT "preflight"    /* the last pre-flight (acme_preflight.h): */
#define ACME_JK_PF_TIME "time"             /*   when it ran */
#define ACME_JK_PF_PASSED "passed"         /*   the challenge types that passed */
#define ACME_JK_PF_DIAGNOSIS "diagnosis"   /*   why the others failed, for a user */
#define ACME_JK_PF_BLOCKS "blocks"         /*   attempts held back in a row */
#define ACME_JK_PF_HOLDING "holding"       /*   true: the CA is not asked until it passes */
#define ACME_JK_EVENTS "events"            /* [{time (RFC 3339), type, detail}], newest last */
#define ACME_JK_EV_TIME "time"
#define ACME_JK_EV_TYPE "type"
#define ACME_JK_EV_DETAIL "detail"

#endif /* ACME_NAMES_H */
