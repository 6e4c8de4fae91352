/* acme_publish.h: how a challenge's answer gets to where the CA looks. One
 * publisher per challenge type; the job picks one by type and knows no more.
 * A new way to publish (a DNS provider, say) is one more table, in its own file. */
#ifndef ACME_PUBLISH_H
#define ACME_PUBLISH_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_atomic.h>

struct acme_store_t;
struct acme_result_t;

/* One answer: for dns-01 the TXT value is acme_dns01_value(key_authz). */
typedef struct acme_answer_t {
    const char *domain;        /* the managed domain, for messages */
    const char *name;          /* the identifier, without "*." */
    const char *token;
    const char *key_authz;
    volatile apr_uint32_t *stop;   /* non-zero: the server stops, give up waiting */
} acme_answer_t;

typedef struct acme_publisher_t acme_publisher_t;
struct acme_publisher_t {
    const char *type;          /* "http-01", "tls-alpn-01", "dns-01" */
    void *baton;
    /* Returns once the CA can see the answer; fills r when it cannot. The
     * store is where the server's own hooks read answers (a fenced view). */
    apr_status_t (*publish)(const acme_publisher_t *pub, struct acme_store_t *store,
                            const acme_answer_t *a, apr_pool_t *p, struct acme_result_t *r);
    /* Removes exactly that answer (others at the same name stay). */
    void (*withdraw)(const acme_publisher_t *pub, struct acme_store_t *store,
                     const acme_answer_t *a, apr_pool_t *p);
};

/* http-01 and tls-alpn-01: answered by every server from the store. */
extern const acme_publisher_t acme_publisher_http01;
extern const acme_publisher_t acme_publisher_tlsalpn01;

/* dns-01 through ManagedDNSHook: argv is the program and its arguments;
 * it is run as "argv... set|unset NAME VALUE" with MOD_ACME_DOMAIN,
 * MOD_ACME_RECORD and MOD_ACME_TXT in an otherwise empty environment. */
acme_publisher_t *acme_publisher_dns_hook(apr_pool_t *p, const apr_array_header_t *argv);

/* The publisher for type among pubs (acme_publisher_t*), or NULL. */
const acme_publisher_t *acme_publisher_find(const apr_array_header_t *pubs, const char *type);

#define ACME_DNS_HOOK_TIMEOUT apr_time_from_sec(300)

#endif /* ACME_PUBLISH_H */
