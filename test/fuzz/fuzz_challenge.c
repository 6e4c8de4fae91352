/* fuzz_challenge.c: libFuzzer target: challenge objects (acme_challenge_parse).
 * Seeds in test/fuzz/corpus/challenge/; run by build/fuzz.sh. */
#include "fuzz.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_acme.h"

static void run(acme_json_t *j, apr_pool_t *p, acme_result_t *r)
{
    acme_challenge_t *ch;
    acme_challenge_parse(&ch, p, j, "challenge", r);
}

FUZZ_JSON_TARGET(run)
