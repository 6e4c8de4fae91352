/* fuzz_meta_json.c: libFuzzer target: staging/<domain>/meta.json as a disk
 * may leave it, read by the job status reader (acme_status_get decides from
 * it whether a complete result waits). Seeds in corpus/meta_json/. */
#include "fuzz.h"
#include "fuzz_store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_store_init(0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    acme_status_t *st;

    fuzz_store_put(ACME_SG_STAGING, ACME_JOB_META, data, size, p);
    acme_status_get(&st, fuzz_store, &fuzz_spec, NULL, fuzz_now, p);
    apr_pool_destroy(p);
    return 0;
}
