/* fuzz_authz.c: libFuzzer target: authorization objects (acme_authz_parse) and the challenge
 * choice made from them (acme_challenge_select).
 * Seeds in test/fuzz/corpus/authz/; run by build/fuzz.sh. */
#include "fuzz.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_acme.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    acme_result_t *r = acme_result_make(p);
    acme_json_t *j;
    const char *jerr;
    char *s = fuzz_cstr(data, size);

    if (s && acme_json_parse(&j, p, s, size, &jerr) == APR_SUCCESS) {
        acme_authz_t *authz;
        const acme_challenge_t *ch;
        apr_array_header_t *allowed = apr_array_make(p, 3, sizeof(const char *));

        APR_ARRAY_PUSH(allowed, const char *) = "tls-alpn-01";
        APR_ARRAY_PUSH(allowed, const char *) = "http-01";
        APR_ARRAY_PUSH(allowed, const char *) = "dns-01";
        if (acme_authz_parse(&authz, p, j, "https://ca.test/authz/1", "authz", r)
            == APR_SUCCESS) {
            acme_challenge_select(&ch, authz, allowed, r);
        }
        acme_result_describe(r, p);
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
