/* acme_acme.h: the ACME protocol engine (RFC 8555, RFC 8738 IP identifiers,
 * RFC 8737 tls-alpn-01): directory, nonces, accounts, orders, certificates.
 *
 * Every call takes the caller's acme_result_t: on failure it holds the CA's
 * problem document (or a local "acme:..." problem) and a detail that names
 * the request. Objects returned live in the pool passed to the call. */
#ifndef ACME_ACME_H
#define ACME_ACME_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <apr_atomic.h>

#include "acme_crypto.h"

struct acme_json_t;
struct acme_result_t;
struct acme_http_t;
struct acme_http_response_t;

/* ---- parsed protocol objects ------------------------------------------ */

typedef enum {
    ACME_STATE_UNKNOWN = 0,
    ACME_STATE_PENDING,
    ACME_STATE_READY,
    ACME_STATE_PROCESSING,
    ACME_STATE_VALID,
    ACME_STATE_INVALID,
    ACME_STATE_DEACTIVATED,
    ACME_STATE_EXPIRED,
    ACME_STATE_REVOKED
} acme_state_t;

/* "pending" -> ACME_STATE_PENDING ...; NULL or unknown -> ACME_STATE_UNKNOWN */
acme_state_t acme_state_parse(const char *s);
const char *acme_state_name(acme_state_t st);

typedef struct acme_directory_t {
    const char *url;
    const char *new_nonce;
    const char *new_account;
    const char *new_order;
    const char *new_authz;       /* optional, unused */
    const char *revoke_cert;
    const char *key_change;
    const char *renewal_info;    /* RFC 9773 ARI, NULL if absent */
    const char *terms_of_service;
    const char *website;
    int eab_required;
    apr_table_t *profiles;       /* name -> description, empty if none */
} acme_directory_t;

typedef struct acme_identifier_t {
    const char *type;  /* "dns" or "ip" */
    const char *value;
} acme_identifier_t;

typedef struct acme_challenge_t {
    const char *type;
    const char *url;
    const char *token;        /* NULL for types without a token */
    acme_state_t status;
    struct acme_json_t *error; /* problem document of a failed validation, or NULL */
} acme_challenge_t;

typedef struct acme_authz_t {
    const char *url;
    acme_identifier_t identifier;
    acme_state_t status;
    int wildcard;
    apr_time_t expires;          /* 0 if absent */
    apr_array_header_t *challenges; /* acme_challenge_t* */
    apr_time_t retry_after;      /* from the response, 0 if none */
} acme_authz_t;

typedef struct acme_order_t {
    const char *url;
    acme_state_t status;
    apr_time_t expires;
    apr_array_header_t *identifiers; /* acme_identifier_t* */
    apr_array_header_t *authorizations; /* const char* URLs */
    const char *finalize;
    const char *certificate;     /* once valid */
    const char *profile;
    const char *replaces;
    struct acme_json_t *error;   /* problem document, or NULL */
    apr_time_t retry_after;      /* from the response, 0 if none */
} acme_order_t;

typedef struct acme_account_t {
    const char *url;             /* the kid */
    acme_state_t status;
    apr_array_header_t *contact; /* const char* */
    const char *orders;
} acme_account_t;

/* ---- parsers (no network; exposed for unit tests) ---------------------- */

/* Each parser validates types: a required member that is missing or of the
 * wrong type fails with APR_EINVAL and a result naming what and where
 * ("what" is the request, e.g. "newOrder"). */
apr_status_t acme_directory_parse(acme_directory_t **pdir, apr_pool_t *p,
                                  const struct acme_json_t *j, const char *url,
                                  struct acme_result_t *r);
apr_status_t acme_order_parse(acme_order_t **porder, apr_pool_t *p, const struct acme_json_t *j,
                              const char *url, const char *what, struct acme_result_t *r);
apr_status_t acme_authz_parse(acme_authz_t **pauthz, apr_pool_t *p, const struct acme_json_t *j,
                              const char *url, const char *what, struct acme_result_t *r);
apr_status_t acme_challenge_parse(acme_challenge_t **pch, apr_pool_t *p,
                                  const struct acme_json_t *j, const char *what,
                                  struct acme_result_t *r);
apr_status_t acme_account_parse(acme_account_t **pacct, apr_pool_t *p,
                                const struct acme_json_t *j, const char *url, const char *what,
                                struct acme_result_t *r);

/* Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP-date. Returns
 * the absolute time; APR_EINVAL for anything else. Negative or absurd
 * delays are rejected; a date in the past yields 'now'. */
apr_status_t acme_retry_after_parse(apr_time_t *pt, const char *value, apr_time_t now);
/* The Retry-After of a response as an absolute time, 0 when it has none
 * (or a malformed one). The one reader of the header. */
struct acme_http_response_t;
apr_time_t acme_response_retry_after(const struct acme_http_response_t *resp, apr_time_t now);

/* A renewalInfo answer (RFC 9773 4.2): the suggested window, the optional
 * explanation URL and the Retry-After; APR_EINVAL (r says why, naming url)
 * for anything but HTTP 200 with a valid window. */
struct acme_ari_window_t;
apr_status_t acme_renewal_info_parse(struct acme_ari_window_t *pw, apr_time_t *pretry,
                                     const struct acme_http_response_t *resp, const char *url,
                                     apr_time_t now, apr_pool_t *p, struct acme_result_t *r);

/* Link headers (RFC 8288) with the given rel, from all Link values in
 * headers. Relative targets are resolved against base_url (absolute path
 * references only). Malformed entries are skipped. */
apr_status_t acme_links_get(apr_array_header_t **purls, apr_pool_t *p, apr_table_t *headers,
                            const char *rel, const char *base_url);
/* One Link header value (may hold several comma-separated links). The
 * URLs are appended to *purls, which must be NULL (a new array) or an array. */
apr_status_t acme_link_parse(apr_array_header_t **purls, apr_pool_t *p, const char *value,
                             const char *rel, const char *base_url);

/* Picks the first type of 'allowed' (preference order) that the authz
 * offers; a wildcard authz only accepts dns-01. APR_ENOENT (with a result
 * listing what the CA offered) when none fits. */
apr_status_t acme_challenge_select(const acme_challenge_t **pch, const acme_authz_t *authz,
                                   const apr_array_header_t *allowed, struct acme_result_t *r);

/* Checks a response of request 'what': a 2xx with a JSON body is parsed
 * into *pjson; an error status becomes the problem document in r (with
 * Retry-After); anything else (HTML page, truncated JSON, wrong content
 * type) is an "acme:malformed-response" failure naming 'what'. */
apr_status_t acme_response_json(struct acme_json_t **pjson, apr_pool_t *p,
                                const struct acme_http_response_t *resp, const char *what,
                                struct acme_result_t *r);
/* The error part of the above for any response (status >= 400 or wrong
 * content type); APR_SUCCESS for a 2xx. */
apr_status_t acme_response_check(const struct acme_http_response_t *resp, apr_pool_t *p,
                                 const char *what, struct acme_result_t *r);

/* The response's media type without parameters, lower-cased ("" if none). */
const char *acme_response_media_type(apr_pool_t *p, const struct acme_http_response_t *resp);

/* ---- the client --------------------------------------------------------- */

typedef struct acme_client_t acme_client_t;

/* A client for one CA directory. http is used for every exchange. */
apr_status_t acme_client_create(acme_client_t **pclient, apr_pool_t *p, const char *dir_url,
                                struct acme_http_t *http);
/* Account key and (once known) account URL. kid may be NULL before
 * newAccount / acme_account_find. kid is copied; the key is referenced and
 * must live as long as the client. */
void acme_client_set_account(acme_client_t *c, const acme_pkey_t *key, const char *kid);
const char *acme_client_account_url(const acme_client_t *c);
const acme_pkey_t *acme_client_account_key(const acme_client_t *c);
const char *acme_client_dir_url(const acme_client_t *c);
/* A flag that, once non-zero, ends waiting between polls (APR_EINTR), so a
 * stopping server does not wait for a slow CA. May be NULL. */
void acme_client_set_abort(acme_client_t *c, volatile apr_uint32_t *abort_flag);
volatile apr_uint32_t *acme_client_abort(const acme_client_t *c);
/* Told when a wait for the CA between polls begins (waiting 1) and when it
 * ends (0), on every path, stop included; waits shorter than
 * ACME_CLIENT_IDLE_MIN are not told. The renewal scheduler counts a job
 * that waits as in flight but not working (acme_sched_slot_free). */
typedef void acme_client_wait_cb(void *baton, int waiting);
#define ACME_CLIENT_IDLE_MIN apr_time_from_msec(200)
void acme_client_set_wait_cb(acme_client_t *c, acme_client_wait_cb *cb, void *baton);
/* Calls the client's wait callback, if any (for the poll loops). */
void acme_client_waiting(acme_client_t *c, int waiting);
/* How often a badNonce rejection is retried (default 10). */
void acme_client_set_nonce_retries(acme_client_t *c, int retries);

/* What the clients of one process share about each CA, so that a batch of
 * jobs does not ask for the same things again: the directory (for 10
 * minutes), unused nonces (for a minute), and how long the CA takes to
 * validate and to issue (the first poll waits about that long). Thread-safe;
 * lives as long as p. */
typedef struct acme_ca_shared_t acme_ca_shared_t;
apr_status_t acme_ca_shared_create(acme_ca_shared_t **pshared, apr_pool_t *p);
/* From now on c uses and feeds what is shared about its CA. */
void acme_client_share(acme_client_t *c, acme_ca_shared_t *shared);

typedef enum { ACME_POLL_AUTHZ, ACME_POLL_CERT, ACME_POLL_KINDS } acme_poll_kind_t;
/* How long to wait before the first poll of an order being authorized or
 * being issued: about as long as it took last time. */
apr_interval_time_t acme_client_poll_guess(const acme_client_t *c, acme_poll_kind_t kind);
/* The order was done after 'took', found by poll number 'attempt'. */
void acme_client_poll_learn(acme_client_t *c, acme_poll_kind_t kind, int attempt,
                            apr_interval_time_t took);
/* The wait before poll number 'attempt' (0: the first) when the CA gave no
 * Retry-After: the guess, then a quarter of it (at least 50 ms) growing by
 * half per poll, within [10 ms, 10 s]. */
apr_interval_time_t acme_poll_interval(apr_interval_time_t guess, int attempt);

/* Fetches the directory once and caches it for the client's lifetime. */
apr_status_t acme_client_directory(const acme_directory_t **pdir, acme_client_t *c,
                                   struct acme_result_t *r);

/* A JWS-signed POST to url. payload NULL = POST-as-GET (empty payload).
 * use_jwk: sign with the key's jwk instead of the kid (newAccount,
 * revocation by certificate key); key NULL = the account key. accept may be
 * NULL. badNonce answers are retried with the fresh nonce. The response is
 * returned whatever its status; use acme_response_json/_check on it. */
apr_status_t acme_client_post(struct acme_http_response_t **presp, acme_client_t *c,
                              const char *url, const char *payload, int use_jwk,
                              const acme_pkey_t *key, const char *accept, const char *what,
                              apr_pool_t *p, struct acme_result_t *r);

/* acme_client_post asking for JSON, then acme_response_json. presp may be NULL. */
apr_status_t acme_client_post_json(struct acme_json_t **pjson,
                                   struct acme_http_response_t **presp, acme_client_t *c,
                                   const char *url, const char *payload, int use_jwk,
                                   const char *what, apr_pool_t *p, struct acme_result_t *r);

/* ---- accounts ------------------------------------------------------------ */

/* newAccount with the client's key. contact: const char* "mailto:..." (may
 * be NULL). eab_kid/eab_hmac (base64url) may be NULL. On success the client
 * uses the returned account URL as kid. An existing account for the key is
 * returned as well (the CA answers 200). */
apr_status_t acme_account_new(acme_account_t **pacct, acme_client_t *c,
                              const apr_array_header_t *contact, int tos_agreed,
                              const char *eab_kid, const char *eab_hmac, apr_pool_t *p,
                              struct acme_result_t *r);
/* newAccount with onlyReturnExisting: APR_ENOENT (problem
 * accountDoesNotExist) when the CA does not know the key. */
apr_status_t acme_account_find(acme_account_t **pacct, acme_client_t *c, apr_pool_t *p,
                               struct acme_result_t *r);
/* POST to the account URL: contact NULL = just read it. */
apr_status_t acme_account_update(acme_account_t **pacct, acme_client_t *c,
                                 const apr_array_header_t *contact, apr_pool_t *p,
                                 struct acme_result_t *r);
apr_status_t acme_account_deactivate(acme_client_t *c, apr_pool_t *p, struct acme_result_t *r);
/* keyChange (RFC 8555 7.3.5); afterwards the client signs with new_key. */
apr_status_t acme_account_key_change(acme_client_t *c, const acme_pkey_t *new_key, apr_pool_t *p,
                                     struct acme_result_t *r);

/* ---- orders --------------------------------------------------------------- */

/* Identifiers for names: IP literals become "ip" (RFC 8738), others "dns". */
apr_array_header_t *acme_identifiers_make(apr_pool_t *p, const apr_array_header_t *names);

/* newOrder. profile/replaces may be NULL. A profile the directory does not
 * list is refused locally ("acme:config"). */
apr_status_t acme_order_new(acme_order_t **porder, acme_client_t *c,
                            const apr_array_header_t *names, const char *profile,
                            const char *replaces, apr_pool_t *p, struct acme_result_t *r);
apr_status_t acme_order_get(acme_order_t **porder, acme_client_t *c, const char *url,
                            apr_pool_t *p, struct acme_result_t *r);
apr_status_t acme_authz_get(acme_authz_t **pauthz, acme_client_t *c, const char *url,
                            apr_pool_t *p, struct acme_result_t *r);
/* Tells the CA to validate (POST {}). */
apr_status_t acme_challenge_respond(acme_challenge_t **pch, acme_client_t *c,
                                    const acme_challenge_t *ch, apr_pool_t *p,
                                    struct acme_result_t *r);

/* Polls the order while it is "pending" (wait_pending != 0) or
 * "processing", the first time after about as long as this CA took before,
 * then backing off (Retry-After decides when the CA sends one); returns it
 * in any other state, or APR_TIMEUP at the deadline. An invalid order fails
 * with the problem of its failed challenge, else its own. */
apr_status_t acme_order_poll(acme_order_t **porder, acme_client_t *c, const char *url,
                             int wait_pending, apr_time_t deadline, apr_pool_t *p,
                             struct acme_result_t *r);

/* The key authorization and the challenge data a publisher needs. */
apr_status_t acme_challenge_key_authz(const char **pkey_authz, acme_client_t *c,
                                      const acme_challenge_t *ch, apr_pool_t *p,
                                      struct acme_result_t *r);

/* finalize with a CSR for the order's identifiers (names NULL) or names. */
apr_status_t acme_order_finalize(acme_order_t **porder, acme_client_t *c,
                                 const acme_order_t *order, const acme_pkey_t *cert_key,
                                 const apr_array_header_t *names, apr_pool_t *p,
                                 struct acme_result_t *r);
/* Downloads the chain (PEM, leaf first). With preferred_issuer, follows
 * Link rel="alternate" chains and returns the first whose topmost
 * certificate's issuer CN equals it; the default chain if none does. */
apr_status_t acme_cert_download(const char **ppem, acme_client_t *c, const char *cert_url,
                                const char *preferred_issuer, apr_pool_t *p,
                                struct acme_result_t *r);

/* revokeCert. reason < 0: none. cert_key NULL: signed by the account (kid),
 * else by the certificate's own key (jwk). */
apr_status_t acme_cert_revoke(acme_client_t *c, const acme_cert_t *cert, int reason,
                              const acme_pkey_t *cert_key, apr_pool_t *p,
                              struct acme_result_t *r);

/* ---- driving a whole order -------------------------------------------------- */

/* Challenge publication by the caller: publish must make key_authz
 * answerable for (type, name, token) before it returns, and may fill r
 * with what went wrong; withdraw removes it. name is the identifier value
 * (without "*." for wildcards): a name and its wildcard publish two
 * answers under the same name, told apart by token and key_authz. Every
 * challenge of an order is published before the first is answered. */
typedef apr_status_t acme_challenge_publish_cb(void *baton, const char *type, const char *name,
                                               const char *token, const char *key_authz,
                                               apr_pool_t *p, struct acme_result_t *r);
typedef void acme_challenge_withdraw_cb(void *baton, const char *type, const char *name,
                                        const char *token, const char *key_authz, apr_pool_t *p);
/* Called instead of withdraw for an answer the CA may still be checking
 * (its challenge was POSTed, its authorization at authz_url is not final):
 * it stays published, and whoever keeps it withdraws it once it is final. */
typedef void acme_challenge_keep_cb(void *baton, const char *type, const char *name,
                                    const char *token, const char *key_authz,
                                    const char *authz_url, apr_pool_t *p);
/* Called right before a pending challenge is POSTed (a request to
 * validate): APR_SUCCESS once the POST of challenge_url is recorded where a
 * resumed run finds it; APR_EEXIST when a run of this order POSTed it
 * already (the CA may show it "pending" while it validates): it is not
 * POSTed again, only polled. Anything else (r filled) ends the run. */
typedef apr_status_t acme_challenge_posting_cb(void *baton, const char *challenge_url,
                                               apr_pool_t *p, struct acme_result_t *r);
/* The POST that posting announced did not get the CA's answer (not sent:
 * the run stopping; refused; cut off): the note goes, so that a resumed
 * run answers the challenge instead of waiting for a validation that the
 * CA most likely never started. */
typedef void acme_challenge_unposted_cb(void *baton, const char *challenge_url);
/* Called once the order URL is known (new order), so it can be persisted
 * and the order resumed with acme_order_params_t.order_url. */
typedef void acme_order_created_cb(void *baton, const char *order_url);
/* Called right before a newOrder is posted (never for a resumed order):
 * the place to count what reaches the CA. A failure (r filled) makes no
 * order and ends the run with it. */
typedef apr_status_t acme_order_new_cb(void *baton, apr_pool_t *p, struct acme_result_t *r);

typedef struct acme_order_params_t {
    const apr_array_header_t *names;       /* const char*; required */
    const apr_array_header_t *challenges;  /* allowed types, preference order */
    acme_challenge_publish_cb *publish;
    acme_challenge_withdraw_cb *withdraw;  /* may be NULL */
    acme_challenge_keep_cb *keep;          /* may be NULL: withdrawn anyway */
    acme_challenge_posting_cb *posting;    /* may be NULL: every pending one POSTed */
    acme_challenge_unposted_cb *unposted;  /* may be NULL */
    acme_order_created_cb *created;        /* may be NULL */
    acme_order_new_cb *before_new;         /* may be NULL */
    void *baton;
    const acme_pkey_t *cert_key;           /* required */
    const char *profile;                   /* may be NULL */
    const char *replaces;                  /* ARI cert id, may be NULL */
    const char *preferred_issuer;          /* may be NULL */
    const char *order_url;                 /* resume this order instead of a new one */
    apr_interval_time_t timeout;           /* for all polling; 0 = 5 minutes */
} acme_order_params_t;

/* Is the authorization at url final (valid, invalid, expired... or gone
 * from the CA)? Unknown (stopping, the CA not answering) counts as not. */
int acme_authz_final(acme_client_t *c, const char *url, apr_pool_t *p);

/* Answers every pending authorization of order (publish, respond unless
 * posting says it was), polls the order until it leaves "pending"
 * (*porder), and withdraws each answer whose authorization is final or
 * whose challenge was never POSTed; the others go to keep. */
apr_status_t acme_order_authorize(acme_order_t **porder, acme_client_t *c,
                                  const acme_order_t *order, const acme_order_params_t *params,
                                  apr_time_t deadline, apr_pool_t *p, struct acme_result_t *r);
/* From any order state to the PEM chain: pending -> authorize, ready ->
 * finalize, processing -> poll, valid -> download. invalid fails. */
apr_status_t acme_order_continue(const char **ppem, acme_client_t *c, acme_order_t *order,
                                 const acme_order_params_t *params, apr_time_t deadline,
                                 apr_pool_t *p, struct acme_result_t *r);
/* newOrder (or acme_order_get of params->order_url) + acme_order_continue.
 * A resumed order that is over (invalid, expired...) or is for other names
 * is left for a new one (created is called for it).
 * *porder_url (may be NULL) receives the order URL even on failure. */
apr_status_t acme_order_run(const char **ppem, const char **porder_url, acme_client_t *c,
                            const acme_order_params_t *params, apr_pool_t *p,
                            struct acme_result_t *r);

/* tls-alpn-01 material for a publisher: a fresh P-256 key and the RFC 8737
 * certificate for name, both as PEM. */
apr_status_t acme_tls_alpn01_make(const char **pcert_pem, const char **pkey_pem, apr_pool_t *p,
                                  const char *name, const char *key_authz);

#endif /* ACME_ACME_H */
