/* fuzz_authz.c: libFuzzer target: authorization objects (acme_authz_parse) and the challenge
 * choice made from them (acme_challenge_select).
 * Seeds in test/fuzz/corpus/authz/; run by build/fuzz.sh. */
#include "fuzz.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_acme.h"

static void run(acme_json_t *j, apr_pool_t *p, acme_result_t *r)
{
    apr_array_header_t *allowed = apr_array_make(p, 3, sizeof(const char *));
    const acme_challenge_t *ch;
    acme_authz_t *authz;

    APR_ARRAY_PUSH(allowed, const char *) = "tls-alpn-01";
    APR_ARRAY_PUSH(allowed, const char *) = "http-01";
    APR_ARRAY_PUSH(allowed, const char *) = "dns-01";
    if (acme_authz_parse(&authz, p, j, "https://ca.test/authz/1", "authz", r) == APR_SUCCESS) {
        acme_challenge_select(&ch, authz, allowed, r);
    }
}

FUZZ_JSON_TARGET(run)
