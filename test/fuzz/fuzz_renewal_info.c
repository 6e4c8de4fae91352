/* fuzz_renewal_info.c: libFuzzer target: the CA's renewalInfo answer
 * (acme_renewal_info_parse). Seeds in test/fuzz/corpus/renewal_info/; run by build/fuzz.sh. */
#include "fuzz.h"
#include "acme_acme.h"
#include "acme_http.h"
#include "acme_renew.h"
#include "acme_result.h"

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
    acme_http_response_t resp;
    acme_ari_window_t w;
    apr_time_t retry;
    char *s = fuzz_cstr(data, size);

    if (s) {
        /* the first line is the Retry-After header, the rest the body */
        char *nl = strchr(s, '\n');
        memset(&resp, 0, sizeof(resp));
        resp.status = 200;
        resp.headers = apr_table_make(p, 2);
        if (nl) {
            *nl = '\0';
            apr_table_set(resp.headers, "Retry-After", s);
        }
        resp.body = nl ? nl + 1 : s;
        resp.body_len = strlen(resp.body);
        acme_renewal_info_parse(&w, &retry, &resp, "https://ca.test/ari/x", apr_time_now(), p, r);
        acme_result_describe(r, p);
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
