/* fuzz_job_json.c: libFuzzer target: jobs/<domain>/job.json as a disk may
 * leave it, read by the job status reader (acme_status_get: orders, backoff,
 * last error through acme_result_from_json, ARI state against a real
 * certificate). Seeds in corpus/job_json/. */
#include "fuzz.h"
#include "fuzz_store.h"
#include "acme_result.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_store_init(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    acme_status_t *st;

    fuzz_store_put(ACME_SG_JOBS, ACME_JOB_STATE, data, size, p);
    if (acme_status_get(&st, fuzz_store, &fuzz_spec, NULL, fuzz_now, p) == APR_SUCCESS
        && st->last_error) {
        acme_result_describe(st->last_error, p);
    }
    apr_pool_destroy(p);
    return 0;
}
