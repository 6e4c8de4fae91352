/* fuzz_jws.c: libFuzzer target: flattened JWS documents checked against
 * fixed public keys, P-256, P-384 and RSA-2048 (acme_jws_verify). Seeds in
 * corpus/jws/ are signed with the matching private keys, which are not kept. */
#include "fuzz.h"
#include "acme_json.h"
#include "acme_crypto.h"
#include "acme_jws.h"

static const char *const jwks[] = {
    "{\"crv\": \"P-256\", \"kty\": \"EC\", \"x\": \"AMHPTtuFNgXHahuicjnKoWut6ni0H6Jv9"
    "A6whpXagE4\", \"y\": \"59Ni8C0qjgb5PTgIEw8GflWoV1N_DS5c8oNXlxlCYsQ\"}",
    "{\"crv\": \"P-384\", \"kty\": \"EC\", \"x\": \"YoSB7WMo1wxmrHZDzj8TmVgAoYyhNqijt"
    "kL5yfelUrQWlLLCV9pyKt-mOfQ8jpvM\", \"y\": \"KT0sRJ5-XMuIE2BQ9avQ4LuZOtbGBOnuMHBl"
    "ig2At_fYVxcuSdVhsoir5j5tYkFv\"}",
    "{\"e\": \"AQAB\", \"kty\": \"RSA\", \"n\": \"0jrCzLENljvUdzSCsxQ2UAyvziJdsFZR3-g"
    "Iy5iPa7wisIry3apUecYRklhjKNIwG4Q7S_TZgXKTEYDH8oNZRfsbqrIlbCojDL51Otyo_hS5tuOmL_y"
    "Dc91eEM9YY2jNQNsIZ7ZkqFqYamWdrZ7FJpw7e8HHWKn_hh7hXGTUrofjHEJvfZzoM4fTHDDQRkYp_DY"
    "6_KQ47OHpPkO54-mI6WTxCM1dF8yPEr9HRLwe7vRfDPySg1WRNnrWbXFce7b6MBhkKV_uOSjlDzNuAjo"
    "09njZefQ8tPFU5aMOY86kaZ_b35pPQkm9-sr92wc-aub7DLLFBHMMWlqjiphH2OY_0w\"}",
};
static acme_pkey_t *keys[3];
static void *keys_evp[3]; /* keeps the keys visible to LeakSanitizer (fuzz.h) */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *jerr;
    acme_json_t *j;
    apr_pool_t *tmp;
    int i;

    (void)argc; (void)argv;
    fuzz_init();
    apr_pool_create(&tmp, fuzz_root);
    for (i = 0; i < 3; ++i) {
        if (acme_json_parse(&j, tmp, jwks[i], strlen(jwks[i]), &jerr) != APR_SUCCESS
            || acme_pkey_from_jwk(&keys[i], fuzz_root, j) != APR_SUCCESS) {
            abort();
        }
        keys_evp[i] = acme_pkey_evp(keys[i]);
    }
    apr_pool_destroy(tmp);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *s = fuzz_cstr(data, size);
    int i;

    for (i = 0; s && i < 3; ++i) {
        acme_jws_verify(s, keys[i], p);
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
