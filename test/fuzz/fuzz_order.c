/* fuzz_order.c: libFuzzer target: order objects (acme_order_parse).
 * Seeds in test/fuzz/corpus/order/; run by build/fuzz.sh. */
#include "fuzz.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_acme.h"

static void run(acme_json_t *j, apr_pool_t *p, acme_result_t *r)
{
    acme_order_t *order;
    acme_order_parse(&order, p, j, "https://ca.test/order/1", "newOrder", r);
}

FUZZ_JSON_TARGET(run)
