/* fuzz_directory.c: libFuzzer target: the CA's directory document (acme_directory_parse).
 * Seeds in test/fuzz/corpus/directory/; run by build/fuzz.sh. */
#include "fuzz.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_acme.h"

static void run(acme_json_t *j, apr_pool_t *p, acme_result_t *r)
{
    acme_directory_t *dir;
    acme_directory_parse(&dir, p, j, "https://ca.test/dir", r);
}

FUZZ_JSON_TARGET(run)
