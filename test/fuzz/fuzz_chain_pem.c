/* fuzz_chain_pem.c: libFuzzer target: PEM certificate chains as the CA
 * sends them and the store keeps them (acme_chain_from_pem), and every
 * reader the module applies to a certificate. Seeds in corpus/chain_pem/. */
#include "fuzz.h"
#include "acme_crypto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    apr_array_header_t *chain, *names, *want;
    const unsigned char *digest;
    const char *id;
    char *s = fuzz_cstr(data, size);
    int i, critical;

    want = apr_array_make(p, 2, sizeof(const char *));
    APR_ARRAY_PUSH(want, const char *) = "example.org";
    APR_ARRAY_PUSH(want, const char *) = "*.example.org";
    if (s && acme_chain_from_pem(&chain, p, s, size) == APR_SUCCESS) {
        for (i = 0; i < chain->nelts; ++i) {
            const acme_cert_t *c = APR_ARRAY_IDX(chain, i, const acme_cert_t *);
            acme_cert_not_before(c);
            acme_cert_not_after(c);
            acme_cert_sans(&names, p, c);
            acme_cert_issuer_cn(c, p);
            acme_cert_subject_cn(c, p);
            acme_cert_serial_hex(c, p);
            acme_cert_fingerprint(c, p);
            acme_cert_ari_id(&id, p, c);
            acme_cert_covers(c, want);
            acme_cert_get_acme_id(&digest, &critical, p, c);
        }
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
