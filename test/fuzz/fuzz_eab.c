/* fuzz_eab.c: libFuzzer target: ManagedEAB arguments (acme_conf_eab).
 * Input: the key id, a NUL byte, the HMAC key (no NUL: no HMAC argument).
 * Seeds in corpus/eab/. */
#include "fuzz.h"
#include "acme_conf.h"

#define B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *err = NULL, *hmac = NULL;
    int none;
    char *s = fuzz_cstr(data, size);
    size_t kidlen;

    if (s) {
        kidlen = strlen(s);
        if (kidlen < size) hmac = s + kidlen + 1;
        if (acme_conf_eab(&none, &err, p, s, hmac) != APR_SUCCESS && !err) {
            abort(); /* every refusal says why */
        }
        /* ... and never shows the secret: with a neutral key id, a key of
         * 22+ base64url characters (16 bytes) cannot be in the fixed text. */
        if (hmac && strlen(hmac) >= 22 && strspn(hmac, B64URL) == strlen(hmac)
            && acme_conf_eab(&none, &err, p, "K", hmac) != APR_SUCCESS && strstr(err, hmac)) {
            abort();
        }
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
