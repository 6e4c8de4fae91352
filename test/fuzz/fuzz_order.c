/* fuzz_order.c: libFuzzer target: order objects (acme_order_parse).
 * Seeds in test/fuzz/corpus/order/; run by build/fuzz.sh. */
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
        acme_order_t *order;
        acme_order_parse(&order, p, j, "https://ca.test/order/1", "newOrder", r);
        acme_result_describe(r, p);
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
