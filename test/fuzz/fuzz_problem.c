/* fuzz_problem.c: libFuzzer target: RFC 7807 problem documents (acme_result_from_problem),
 * and the result they make through describe, classify and job.json.
 * Seeds in test/fuzz/corpus/problem/; run by build/fuzz.sh. */
#include "fuzz.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_acme.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    acme_result_t *r = acme_result_make(p);
    acme_json_t *j;
    const char *jerr;
    char *s = fuzz_cstr(data, size);

    if (s && acme_json_parse(&j, p, s, size, &jerr) == APR_SUCCESS) {
        acme_result_t *back = acme_result_make(p);

        acme_result_from_problem(r, j, 400);
        acme_result_classify(r);
        acme_problem_short(r->problem);
        acme_result_from_json(back, acme_result_to_json(r, p));
        acme_result_describe(back, p);
        acme_result_describe(r, p);
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
