/* fuzz_restart_msg.c: libFuzzer target: the renewal child's messages to the
 * parent (acme_restart_msg_parse); the child is not trusted. Seeds in
 * corpus/restart_msg/. */
#include "fuzz.h"
#include "acme_restart.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    acme_restart_msg_t m, again;
    char buf[ACME_RESTART_MSG_MAX];
    apr_size_t len;

    if (acme_restart_msg_parse(&m, (const char *)data, size) != APR_SUCCESS) {
        return 0;
    }
    /* the contract: what parses formats back to the same bytes */
    if (acme_restart_msg_format(buf, &len, m.event, m.first, m.domain) != APR_SUCCESS
        || len != size || memcmp(buf, data, size)
        || acme_restart_msg_parse(&again, buf, len) != APR_SUCCESS
        || strcmp(again.domain, m.domain)) {
        abort();
    }
    return 0;
}
