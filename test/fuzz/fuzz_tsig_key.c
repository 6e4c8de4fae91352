/* fuzz_tsig_key.c: libFuzzer target for the TSIG key-file parser
 * (acme_dns_tsig_parse), which reads operator-supplied files. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <apr_general.h>
#include <apr_pools.h>

#include "acme_dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static apr_pool_t *root;
    apr_pool_t *p;
    acme_dns_tsig_t *key;
    const char *err;

    if (!root) {
        apr_initialize();
        apr_pool_create(&root, NULL);
    }
    apr_pool_create(&p, root);
    if (acme_dns_tsig_parse(&key, p, (const char *)data, size, &err) == APR_SUCCESS) {
        /* what a parsed key promises */
        if (!key->name || !key->algorithm || !key->secret || !*key->secret) {
            __builtin_trap();
        }
    }
    else if (!err || !*err) {
        __builtin_trap(); /* every refusal says why */
    }
    apr_pool_destroy(p);
    return 0;
}
