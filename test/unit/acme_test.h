/* acme_test.h: what every Check unit test shares: main() running one
 * suite with APR initialised, exiting non-zero when a test failed. */
#ifndef ACME_TEST_H
#define ACME_TEST_H

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include "acme_crypto.h"

/* A self-signed certificate as an object (the module makes them in PEM). */
static inline apr_status_t acme_test_self_signed(acme_cert_t **pcert, apr_pool_t *p,
                                                 const acme_pkey_t *key,
                                                 const apr_array_header_t *names,
                                                 const char *cn, apr_interval_time_t valid_for)
{
    const char *pem;
    apr_status_t rv = acme_cert_self_signed_pem(&pem, p, key, names, cn, valid_for);

    *pcert = NULL;
    return rv == APR_SUCCESS ? acme_cert_from_pem(pcert, p, pem, strlen(pem)) : rv;
}

#define ACME_TEST_MAIN(suite_fn)                                  \
    int main(void)                                                \
    {                                                             \
        SRunner *sr_;                                             \
        int failed_;                                              \
                                                                  \
        apr_initialize();                                         \
        sr_ = srunner_create(suite_fn());                         \
        srunner_run_all(sr_, CK_NORMAL);                          \
        failed_ = srunner_ntests_failed(sr_);                     \
        srunner_free(sr_);                                        \
        apr_terminate();                                          \
        return failed_ ? EXIT_FAILURE : EXIT_SUCCESS;             \
    }

#endif /* ACME_TEST_H */
