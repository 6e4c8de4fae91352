/* fuzz_job_json.c: libFuzzer target: jobs/<domain>/job.json as a disk may
 * leave it, read by its one reader (acme_jobrec_read) through the status
 * (acme_status_get: orders, backoff, last error through
 * acme_result_from_json, ARI state against a real certificate), then
 * rewritten by its one read-modify-write (acme_jobrec_update: the typed
 * members written back, the unknown ones kept). Seeds in corpus/job_json/. */
#include "fuzz.h"
#include "fuzz_store.h"
#include "acme_result.h"
#include "acme_jobrec.h"

/* What the writers do: count, mark a notice, note the time. */
static apr_status_t touch(acme_jobrec_t *rec, void *baton, apr_pool_t *p)
{
    (void)baton; (void)p;
    rec->errors++;
    rec->renewals_failed++;
    rec->next_attempt += apr_time_from_sec(60);
    rec->state = rec->state ? NULL : "error";
    rec->installed_notified = rec->installed_notified ? NULL : "2026-01-01T00:00:00Z";
    return APR_SUCCESS;
}

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
    if (acme_jobrec_update(fuzz_store, NULL, FUZZ_DOMAIN, touch, NULL, p, NULL) == APR_SUCCESS) {
        acme_jobrec_t *rec;
        /* what was written reads back */
        if (acme_jobrec_read(&rec, fuzz_store, FUZZ_DOMAIN, p, NULL) != APR_SUCCESS) {
            abort();
        }
    }
    apr_pool_destroy(p);
    return 0;
}
