/* fuzz_duration.c: libFuzzer target: durations as directives take them
 * (acme_duration_parse, with each default unit) and ManagedRenewWindow
 * (acme_renew_window_parse). Seeds in corpus/duration/. */
#include "fuzz.h"
#include "acme_renew.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    apr_interval_time_t d;
    acme_renew_window_t w;
    char *s = fuzz_cstr(data, size);

    if (s) {
        if (acme_duration_parse(&d, s, "s") == APR_SUCCESS) {
            if (d < 0) abort(); /* the contract: no negative durations */
            acme_duration_format(p, d);
        }
        acme_duration_parse(&d, s, "d");
        acme_duration_parse(&d, s, "m");
        if (acme_renew_window_parse(&w, s) == APR_SUCCESS) {
            if (w.is_percent ? !(w.percent > 0.0 && w.percent < 100.0) : w.duration <= 0) {
                abort();
            }
        }
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
