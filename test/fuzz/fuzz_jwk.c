/* fuzz_jwk.c: libFuzzer target: JSON Web Keys (acme_pkey_from_jwk), as
 * they arrive in a JWS header, private ones (acme_pkey_from_private_jwk) as
 * acmectl import reads certbot's account key, and the thumbprint and JWK
 * made back from the key. Seeds in corpus/jwk/. */
#include "fuzz.h"
#include "acme_json.h"
#include "acme_crypto.h"
#include "acme_jws.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    acme_json_t *j, *back;
    acme_pkey_t *key;
    const char *jerr, *thumb;
    char *s = fuzz_cstr(data, size);

    if (s && acme_json_parse(&j, p, s, size, &jerr) == APR_SUCCESS
        && acme_pkey_from_jwk(&key, p, j) == APR_SUCCESS) {
        acme_jwk_thumbprint(&thumb, p, key);
        acme_jwk_make(&back, p, key);
        acme_jws_alg(key);
    }
    if (s && acme_json_parse(&j, p, s, size, &jerr) == APR_SUCCESS
        && acme_pkey_from_private_jwk(&key, p, j) == APR_SUCCESS) {
        const char *pem;
        acme_pkey_to_pem(&pem, p, key);
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
