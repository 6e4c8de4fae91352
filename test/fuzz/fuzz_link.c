/* fuzz_link.c: libFuzzer target: Link header values (RFC 8288) as the CA
 * sends them for "up" and "alternate" (acme_link_parse). Seeds in
 * corpus/link/. */
#include "fuzz.h"
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
    apr_array_header_t *urls = NULL;
    char *s = fuzz_cstr(data, size);

    if (s) {
        acme_link_parse(&urls, p, s, "up", "https://ca.test/acme/cert/1");
        urls = NULL;
        acme_link_parse(&urls, p, s, "alternate", "https://ca.test:14000/a/b?c");
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
