/* fuzz_conf_scan.c: libFuzzer target: acmectl's httpd.conf scanner
 * (acme_conf_scan_text): sections, Define, ${VAR}, quoting, continuations.
 * Include lines are skipped so no file is read. Seeds in corpus/conf_scan/. */
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
    acme_conf_scan_t cs;
    char *s = fuzz_cstr(data, size);

    if (s) {
        acme_conf_scan_init(&cs, p, "/etc/apache2");
        cs.no_includes = 1;
        acme_conf_scan_text(&cs, s, size, "httpd.conf");
        acme_conf_root_relative(&cs, "acme");
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}
