/* fuzz_port_map.c: libFuzzer target: ManagedPortMap mappings
 * (acme_conf_port_map). Seeds in corpus/port_map/. */
#include "fuzz.h"
#include "acme_conf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *err = NULL;
    int from = -1, port = -1;
    char *s = fuzz_cstr(data, size);

    if (s) {
        if (acme_conf_port_map(&from, &port, &err, p, s) == APR_SUCCESS) {
            if ((from != 80 && from != 443) || port < 0 || port > 65535) abort();
        }
        else if (!err) {
            abort(); /* every refusal says why */
        }
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
