/* fuzz_guard_json.c: libFuzzer target: jobs/_guard/<server>.json, the order
 * guard's record, as a disk or a damaged store may leave it, read when the
 * guard is made (acme_job_guard_create) and merged again at every take.
 * Seeds in corpus/guard_json/. */
#include "fuzz.h"
#include "fuzz_store.h"
#include "acme_names.h"

#define FUZZ_CA "https://ca.test/dir"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_store_init(0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    acme_job_guard_t *g;

    if (fuzz_store->save(fuzz_store, ACME_SG_JOBS, ACME_GUARD_NAME, "fuzz.json",
                         (const char *)data, size, 0, p) == APR_SUCCESS
        && acme_job_guard_create(&g, p, fuzz_store, "fuzz", 5) == APR_SUCCESS) {
        acme_job_guard_fits(g, FUZZ_CA, fuzz_now, 1);
        acme_job_guard_take(g, FUZZ_CA, fuzz_now, p, acme_result_make(p));
    }
    apr_pool_destroy(p);
    return 0;
}
