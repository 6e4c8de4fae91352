/* fuzz_response.c: libFuzzer target: a whole CA response as the client
 * checks it (acme_response_json: status, Content-Type, problem document,
 * Retry-After; acme_links_get). Input: "STATUS\nName: value\n...\n\nbody".
 * Seeds in corpus/response/. */
#include "fuzz.h"
#include <apr_strings.h>
#include "acme_json.h"
#include "acme_result.h"
#include "acme_http.h"
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
    acme_result_t *r = acme_result_make(p);
    acme_http_response_t resp;
    apr_array_header_t *urls = NULL;
    acme_json_t *j;
    char *s = fuzz_cstr(data, size), *line, *next, *body;

    if (!s) goto leave;
    memset(&resp, 0, sizeof(resp));
    resp.headers = apr_table_make(p, 4);
    resp.effective_url = "https://ca.test/acme/order/1";
    body = strstr(s, "\n\n");
    if (body) {
        *body = '\0';
        body += 2;
    }
    else {
        body = s + size;
    }
    line = s;
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    resp.status = (int)(apr_strtoi64(line, NULL, 10) % 1000);
    for (line = next; line; line = next) {
        char *colon;
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        colon = strchr(line, ':');
        if (colon) {
            *colon++ = '\0';
            while (*colon == ' ') ++colon;
            apr_table_add(resp.headers, line, colon);
        }
    }
    /* The body in its own block, as the transport delivers it. */
    resp.body_len = (apr_size_t)(s + size - body);
    resp.body = fuzz_cstr((const uint8_t *)body, resp.body_len);
    if (resp.body) {
        acme_response_json(&j, p, &resp, "newOrder", r);
        acme_result_describe(r, p);
        acme_response_media_type(p, &resp);
        acme_links_get(&urls, p, resp.headers, "up", resp.effective_url);
        free((void *)resp.body);
    }
leave:
    free(s);
    apr_pool_destroy(p);
    return 0;
}
