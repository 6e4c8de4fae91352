/* fuzz_key_type.c: libFuzzer target: ManagedKeys values
 * (acme_key_type_parse) and the names made back from the type. Seeds in
 * corpus/key_type/. */
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
    char *s = fuzz_cstr(data, size);

    if (s) {
        acme_key_type_t t = acme_key_type_parse(s);
        if (t != ACME_KEY_NONE) {
            /* a type's own name must parse back to it */
            if (acme_key_type_parse(acme_key_type_name(t)) != t) abort();
            acme_key_type_file_tag(t);
        }
    }
    free(s);
    return 0;
}
