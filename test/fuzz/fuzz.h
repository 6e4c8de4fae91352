/* fuzz.h: what every libFuzzer target of test/fuzz shares: APR set up once,
 * a fresh pool per input, and the input as an exactly sized C string.
 * APR may take pool memory from mmap, which LeakSanitizer does not scan:
 * a malloc'd object that must outlive an input needs a plain global. */
#ifndef ACME_FUZZ_H
#define ACME_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "acme_json.h"
#include "acme_result.h"
#include "acme_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static apr_pool_t *fuzz_root;

/* Every message is formatted (a bad format argument shows) and dropped. */
static void fuzz_log(void *baton, const char *file, int line, int level, apr_status_t rv,
                     const char *msg)
{
    (void)baton; (void)file; (void)line; (void)level; (void)rv; (void)msg;
}

static inline void fuzz_init(void)
{
    if (fuzz_root) return;
    apr_initialize();
    apr_pool_create(&fuzz_root, NULL);
    acme_log_set(fuzz_log, NULL, ACME_LOG_TRACE2);
}

/* The input in its own malloc block, NUL-terminated: a parser reading one
 * byte too far hits ASan's redzone, not pool memory next to it. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

static inline apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *p;
    apr_pool_create(&p, fuzz_root);
    return p;
}

/* A target for a parser of JSON documents: the input is parsed as JSON,
 * and fn gets it (with a pool and a result record it may fill). */
typedef void fuzz_json_fn(acme_json_t *j, apr_pool_t *p, acme_result_t *r);

static inline int fuzz_json_run(const uint8_t *data, size_t size, fuzz_json_fn *fn)
{
    apr_pool_t *p = fuzz_pool();
    acme_result_t *r = acme_result_make(p);
    acme_json_t *j;
    const char *jerr;
    char *s = fuzz_cstr(data, size);

    if (s && acme_json_parse(&j, p, s, size, &jerr) == APR_SUCCESS) {
        fn(j, p, r);
        acme_result_describe(r, p);
    }
    free(s);
    apr_pool_destroy(p);
    return 0;
}

#define FUZZ_JSON_TARGET(fn)                                                  \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                         \
    {                                                                         \
        (void)argc; (void)argv;                                               \
        fuzz_init();                                                          \
        return 0;                                                             \
    }                                                                         \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)              \
    {                                                                         \
        return fuzz_json_run(data, size, fn);                                 \
    }

#endif /* ACME_FUZZ_H */
