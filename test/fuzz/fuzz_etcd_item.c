/* fuzz_etcd_item.c: libFuzzer target: the etcd store's item envelope
 * (acme_store_etcd_item_open), which reads values that anyone with write
 * access to etcd may have written.
 * Input: a mode byte, two bytes of a position, a mask byte, then
 * "KEY\nREST". Even mode: REST is a value read at KEY, opened. Odd mode:
 * REST is data, written at KEY by the store (sealed when mode & 2) and read
 * back, which must give the data; then the byte at the position (modulo the
 * value's length) is changed by the mask, and the value must not open: the
 * envelope lets nothing altered through. Seeds in corpus/etcd_item/. */
#include <apr_strings.h>

#include "fuzz.h"
#include "acme_http.h"
#include "acme_etcd.h"
#include "acme_store.h"
#include "acme_store_etcd.h"
#include "acme_crypto.h"

static const unsigned char fuzz_item_key[ACME_SEAL_KEY_LEN] = "mod_acme fuzz etcd item key 0001";
static acme_store_t *fuzz_store;

/* The envelope never asks etcd; anything that did would get this. */
static apr_status_t no_etcd(acme_http_t *http, acme_http_response_t **presp,
                            const acme_http_request_t *req, apr_pool_t *p, acme_result_t *r)
{
    (void)http; (void)p;
    *presp = NULL;
    return acme_result_set(r, APR_ECONNREFUSED, "acme:network", "%s %s: no etcd here",
                           req->method, req->url);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static acme_http_t http = {NULL, no_etcd};
    acme_etcd_config_t conf;
    apr_array_header_t *eps;
    acme_etcd_t *e;
    const char *err;

    (void)argc; (void)argv;
    fuzz_init();
    eps = apr_array_make(fuzz_root, 1, sizeof(const char *));
    APR_ARRAY_PUSH(eps, const char *) = "http://127.0.0.1:1";
    acme_etcd_config_init(&conf);
    conf.endpoints = eps;
    if (acme_etcd_create(&e, fuzz_root, &conf, &http, acme_result_make(fuzz_root))
        != APR_SUCCESS
        || acme_store_etcd_create(&fuzz_store, fuzz_root, e, "fz/", fuzz_item_key, &err)
        != APR_SUCCESS) {
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const char *key, *out, *value;
    const uint8_t *nl;
    apr_size_t olen, vlen, pos;
    char *in, *altered;
    uint8_t mode, mask;

    if (size < 5 || !(nl = memchr(data + 4, '\n', size - 4))) {
        return 0;
    }
    mode = data[0];
    pos = (apr_size_t)data[1] << 8 | data[2];
    mask = data[3] ? data[3] : 1;
    p = fuzz_pool();
    key = apr_pstrmemdup(p, (const char *)data + 4, (apr_size_t)(nl - data - 4));
    in = fuzz_cstr(nl + 1, size - (size_t)(nl + 1 - data));
    if (!in) {
        apr_pool_destroy(p);
        return 0;
    }
    size -= (size_t)(nl + 1 - data);
    if (!(mode & 1)) {
        acme_store_etcd_item_open(&out, &olen, NULL, fuzz_store, key, in, size, p);
    }
    else if (strlen(key) == (size_t)(nl - data - 4)
             && acme_store_etcd_item_encode(&value, &vlen, fuzz_store, key, in, size, mode & 2,
                                            1234567, p) == APR_SUCCESS) {
        if (acme_store_etcd_item_open(&out, &olen, NULL, fuzz_store, key, value, vlen, p)
            != APR_SUCCESS || olen != size || memcmp(out, in, size)) {
            __builtin_trap();   /* what the store writes, it reads back */
        }
        altered = apr_pmemdup(p, value, vlen + 1);
        altered[pos % vlen] ^= (char)mask;
        if (acme_store_etcd_item_open(&out, &olen, NULL, fuzz_store, key, altered, vlen, p)
            == APR_SUCCESS) {
            __builtin_trap();   /* an altered value opened */
        }
    }
    free(in);
    apr_pool_destroy(p);
    return 0;
}
