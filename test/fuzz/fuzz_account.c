/* fuzz_account.c: libFuzzer target: account objects (acme_account_parse).
 * Seeds in test/fuzz/corpus/account/; run by build/fuzz.sh. */
#include "fuzz.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_acme.h"

static void run(acme_json_t *j, apr_pool_t *p, acme_result_t *r)
{
    acme_account_t *acct;
    acme_account_parse(&acct, p, j, "https://ca.test/acct/1", "newAccount", r);
}

FUZZ_JSON_TARGET(run)
