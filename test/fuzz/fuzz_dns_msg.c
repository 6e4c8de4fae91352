/* fuzz_dns_msg.c: libFuzzer target for DNS answers from the network, as the
 * dns-01 engine reads them (ldns parsing, the answer check against a
 * question, then the zone/CNAME/TXT choices). */
#include <stddef.h>
#include <stdint.h>
#include <apr_general.h>
#include <apr_pools.h>

#include "acme_dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static apr_pool_t *root;
    apr_pool_t *p;
    acme_dns_msg_t *m, q = {0};
    const char *zone, *target, *why;
    int i;

    if (!root) {
        apr_initialize();
        apr_pool_create(&root, NULL);
    }
    apr_pool_create(&p, root);
    if (acme_dns_msg_from_wire(&m, p, data, size) == APR_SUCCESS) {
        /* the question it claims to answer, and one it does not */
        q = *m;
        q.qr = 0;
        acme_dns_msg_answers(&q, m, &why);
        q.qname = "_acme-challenge.example.org.";
        q.qdcount = 1;
        acme_dns_msg_answers(&q, m, &why);
        if (m->qname) {
            acme_dns_msg_txt_view(m, m->qname, "value");
        }
        for (i = 0; i < m->rrs->nelts; ++i) {
            const acme_dns_rr_t *rr = APR_ARRAY_IDX(m->rrs, i, const acme_dns_rr_t *);

            /* every question the engine asks, about every owner in the answer */
            acme_dns_msg_zone(&zone, m, rr->owner);
            acme_dns_msg_cname(&target, m, rr->owner);
            acme_dns_msg_has_txt(m, rr->owner, "value");
            acme_dns_msg_txt_view(m, rr->owner, "value");
            acme_dns_msg_data(p, m, rr->owner, rr->type);
        }
    }
    apr_pool_destroy(p);
    return 0;
}
