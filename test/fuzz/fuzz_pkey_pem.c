/* fuzz_pkey_pem.c: libFuzzer target: private keys in PEM as the store keeps
 * them (acme_pkey_from_pem), then what the module does with a loaded key.
 * Seeds in corpus/pkey_pem/. */
#include "fuzz.h"
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
    acme_pkey_t *key;
    const char *out;
    char *s = fuzz_cstr(data, size);

    if (s && acme_pkey_from_pem(&key, p, s, size) == APR_SUCCESS) {
        acme_pkey_type(key);
        acme_pkey_is_private(key);
        acme_jwk_thumbprint(&out, p, key);
        acme_pkey_to_pem(&out, p, key);
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
