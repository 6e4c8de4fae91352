/* fuzz_retry_after.c: libFuzzer target: Retry-After header values
 * (acme_retry_after_parse: delay-seconds or an HTTP-date). Seeds in
 * corpus/retry_after/. */
#include "fuzz.h"
#include "acme_acme.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A fixed "now" keeps runs reproducible: 2026-01-01T00:00:00Z. */
    const apr_time_t now = apr_time_from_sec(1767225600);
    apr_time_t t;
    char *s = fuzz_cstr(data, size);

    if (s && acme_retry_after_parse(&t, s, now) == APR_SUCCESS && t < now) {
        abort(); /* the contract: never a time before now */
    }
    free(s);
    return 0;
}
