/* acme_test.h: what every Check unit test shares: main() running one
 * suite with APR initialised, exiting non-zero when a test failed. */
#ifndef ACME_TEST_H
#define ACME_TEST_H

#include <check.h>
#include <stdlib.h>
#include <apr_general.h>

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
