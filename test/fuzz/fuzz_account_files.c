/* fuzz_account_files.c: libFuzzer target: an account's files as a disk may
 * leave them, read as the job (ensure_account) and acmectl read them:
 * account.json (url, ca, eab-kid, contact, created) and account.key.pem.
 * Input: account.json, a NUL byte, account.key.pem. Seeds in
 * corpus/account_files/. */
#include "fuzz.h"
#include "fuzz_store.h"
#include "acme_json.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_store_init(0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    apr_array_header_t *contact;
    acme_json_t *acct;
    acme_pkey_t *key;
    const char *pem;
    apr_size_t len;
    apr_time_t t;

    /* The domain's job directory stands in for accounts/<ca-id>/. */
    fuzz_store_put(ACME_SG_JOBS, "account.json", data, jlen, p);
    fuzz_store_put(ACME_SG_JOBS, "account.key.pem", nul ? nul + 1 : data,
                   nul ? size - jlen - 1 : 0, p);
    if (fuzz_store->load(fuzz_store, ACME_SG_JOBS, FUZZ_DOMAIN, "account.key.pem", &pem, &len, p)
        == APR_SUCCESS) {
        acme_pkey_from_pem(&key, p, pem, len);
    }
    if (acme_store_load_json(fuzz_store, ACME_SG_JOBS, FUZZ_DOMAIN, "account.json", &acct, p)
        == APR_SUCCESS) {
        acme_json_gets(acct, "url", NULL);
        acme_json_gets(acct, "ca", NULL);
        acme_json_gets(acct, "eab-kid", NULL);
        acme_json_getsa(&contact, acct, p, "contact", NULL);
        if (acme_json_gets(acct, "created", NULL)) {
            acme_time_parse_rfc3339(&t, acme_json_gets(acct, "created", NULL));
        }
        /* acmectl rewrites it after a key change */
        acme_json_sets(acct, "2026-01-01T00:00:00Z", "key-changed", NULL);
        acme_json_dump(acct, p, 0);
    }
    apr_pool_destroy(p);
    return 0;
}
