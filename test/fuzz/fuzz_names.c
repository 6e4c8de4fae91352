/* fuzz_names.c: libFuzzer target: names from the config (ManagedDomain) and
 * from the CA (identifiers, tokens) as the module checks them: DNS/IP names
 * (acme_name_is_valid) and the store's path-traversal defence
 * (acme_store_name_is_valid), with what each promises. Seeds in corpus/names/. */
#include "fuzz.h"
#include "acme_store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    size_t i, len;

    if (!s) return 0;
    len = strlen(s);
    if (acme_store_name_is_valid(s)) {
        /* a store name never leaves its directory */
        if (!len || len > 255 || s[0] == '.' || strchr(s, '/') || strstr(s, "..")) abort();
        for (i = 0; i < len; ++i) {
            if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) abort();
        }
    }
    if (acme_name_is_valid(s)) {
        if (!len || strchr(s, '/') || strstr(s, "..")) abort();
        /* ManagedDomain names are used as store names */
        if (!acme_store_name_is_valid(s)) abort();
        acme_name_is_ip(s);
        acme_name_is_wildcard(s);
    }
    free(s);
    return 0;
}
