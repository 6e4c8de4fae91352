/* fuzz_etcd.c: libFuzzer target: etcd's JSON gateway answers as the etcd
 * client (acme_etcd.c) and the cluster store over it (acme_store_etcd.c, with
 * its item envelope and sealed values) read them.
 * Input: a command line, "\n", then the answers to the client's requests in
 * turn, each "STATUS\nBODY", separated by NUL bytes. An answer without a
 * status line, and every request after the last answer, fail as a network
 * error (the client then tries its second endpoint). The command is one of
 * test/tools/etcdtool's with fixed keys, so that the seeds capture_etcd.py
 * records from a real etcd through etcdtool fit; "auth " before it makes
 * the client log in first. "store-verify-sealed" is different: the rest
 * of the input is the plaintext of the store's schema item, which the
 * target seals with the seeds' key into etcd's answer, so that what
 * follows a successful unseal gets fuzzed too. "watch" and "store-watch"
 * read the answer as a stream, handed over in pieces of 1 to 16 bytes (the
 * body's first byte says how big). Seeds in corpus/etcd/. */
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>

#include <apr_strings.h>

#include "fuzz.h"
#include "acme_http.h"
#include "acme_etcd.h"
#include "acme_store.h"
#include "acme_store_etcd.h"
#include "acme_crypto.h"
#include "acme_json.h"

/* The same as capture_etcd.py's: the seeds' sealed values open with it. */
static const unsigned char fuzz_seal_key[ACME_SEAL_KEY_LEN] = "mod_acme fuzz etcd seal key 0001";
#define FUZZ_PREFIX "fz/"
#define FUZZ_KEY "fz/k"
#define FUZZ_NAME "example.org"
#define FUZZ_OWNER "host-a"
#define FUZZ_MAX_ANSWERS 64

static int fuzz_verbose;
static char fuzz_pw_file[] = "/dev/shm/acme-fuzz-etcd-pw-XXXXXX";

typedef struct {
    const uint8_t *at;      /* the rest of the input */
    size_t left;
    char *bodies[FUZZ_MAX_ANSWERS];   /* each in its own malloc block */
    int n;
    int more;               /* answers remain */
} fake_t;

static apr_status_t fake_perform(acme_http_t *http, acme_http_response_t **presp,
                                 const acme_http_request_t *req, apr_pool_t *p,
                                 acme_result_t *result)
{
    fake_t *f = http->baton;
    const uint8_t *end, *nl, *c;
    acme_http_response_t *resp;
    size_t len;
    int status = 0;

    *presp = NULL;
    if (!f->more || f->n >= FUZZ_MAX_ANSWERS) {
        return acme_result_set(result, APR_EGENERAL, "acme:network", "%s %s: no answer",
                               req->method, req->url);
    }
    end = memchr(f->at, 0, f->left);
    len = end ? (size_t)(end - f->at) : f->left;
    nl = memchr(f->at, '\n', len);
    for (c = f->at; nl && c < nl && status >= 0; ++c) {
        status = (*c >= '0' && *c <= '9' && status < 1000) ? status * 10 + (*c - '0') : -1;
    }
    resp = apr_pcalloc(p, sizeof(*resp));
    if (nl && status > 0) {
        resp->body_len = len - (size_t)(nl + 1 - f->at);
        f->bodies[f->n] = fuzz_cstr(nl + 1, resp->body_len);
        resp->body = f->bodies[f->n++];
    }
    f->more = end != NULL;
    f->left -= end ? len + 1 : len;
    f->at += end ? len + 1 : len;
    if (!resp->body) {
        return acme_result_set(result, APR_ECONNREFUSED, "acme:network",
                               "%s %s: Couldn't connect", req->method, req->url);
    }
    resp->status = status;
    resp->headers = apr_table_make(p, 1);
    resp->effective_url = req->url;
    if (req->on_data) {
        size_t piece = resp->body_len ? (size_t)(resp->body[0] & 15) + 1 : 1, at, n;
        apr_status_t rv;
        for (at = 0; at < resp->body_len; at += n) {
            n = resp->body_len - at < piece ? resp->body_len - at : piece;
            if ((rv = req->on_data(req->on_data_baton, resp->body + at, n)) != APR_SUCCESS) {
                return rv;
            }
        }
    }
    *presp = resp;
    return APR_SUCCESS;
}

static apr_status_t watch_kv(void *baton, const acme_etcd_kv_t *kv, int deleted, apr_pool_t *p)
{
    (void)baton; (void)deleted; (void)p;
    if (kv && (!kv->key || (!deleted && (!kv->value || kv->value[kv->value_len] != '\0')))) {
        __builtin_trap();   /* a put has a NUL-terminated value */
    }
    return APR_SUCCESS;
}

static apr_status_t watch_item(void *baton, const char *name, const char *aspect,
                               const char *data, apr_size_t len, apr_pool_t *p)
{
    (void)baton; (void)len; (void)data; (void)p;
    if (name && (!acme_store_name_is_valid(name) || !acme_store_name_is_valid(aspect))) {
        __builtin_trap();   /* only item names reach the store's readers */
    }
    return APR_SUCCESS;
}

static apr_int64_t arg_num(const char *args)
{
    char *end;

    return args ? apr_strtoi64(args, &end, 10) : 0;
}

/* The client's own commands, as etcdtool runs them. */
static void run_client(acme_etcd_t *e, const char *cmd, const char *args, apr_pool_t *p,
                       acme_result_t *r)
{
    acme_etcd_kv_t *kv;
    apr_array_header_t *kvs;
    acme_etcd_txn_t *t;
    acme_etcd_txn_result_t *res;
    apr_int64_t v;
    int more;

    if (!strcmp(cmd, "get")) {
        acme_etcd_get(&kv, e, FUZZ_KEY, p, r);
    }
    else if (!strcmp(cmd, "put")) {
        acme_etcd_put(&v, e, FUZZ_KEY, "v", 1, arg_num(args), p, r);
    }
    else if (!strcmp(cmd, "del") || !strcmp(cmd, "del-prefix")) {
        acme_etcd_delete(&v, e, strcmp(cmd, "del") ? FUZZ_PREFIX : FUZZ_KEY,
                         strcmp(cmd, "del") != 0, p, r);
    }
    else if (!strcmp(cmd, "list") || !strcmp(cmd, "keys")) {
        acme_etcd_get_prefix(&kvs, &more, e, FUZZ_PREFIX, !strcmp(cmd, "keys"), arg_num(args),
                             p, r);
    }
    else if (!strcmp(cmd, "revision")) {
        acme_etcd_revision(&v, e, p, r);
    }
    else if (!strcmp(cmd, "create") || !strcmp(cmd, "cas")) {
        t = acme_etcd_txn_make(p);
        if (!strcmp(cmd, "cas")) {
            acme_etcd_txn_if_mod(t, FUZZ_KEY, arg_num(args));
        }
        else {
            acme_etcd_txn_if_absent(t, FUZZ_KEY);
        }
        acme_etcd_txn_put(t, ACME_ETCD_THEN, FUZZ_KEY, "v", 1, 0);
        acme_etcd_txn_get(t, ACME_ETCD_THEN, FUZZ_KEY, 0);
        acme_etcd_txn_get(t, ACME_ETCD_ELSE, FUZZ_KEY, 0);
        acme_etcd_txn_commit(&res, e, t, p, r);
    }
    else if (!strcmp(cmd, "lease-grant")) {
        acme_etcd_lease_grant(&v, e, 60, p, r);
    }
    else if (!strcmp(cmd, "lease-keepalive")) {
        acme_etcd_lease_keepalive(&v, e, arg_num(args), p, r);
    }
    else if (!strcmp(cmd, "lease-revoke")) {
        acme_etcd_lease_revoke(e, arg_num(args), p, r);
    }
    else if (!strcmp(cmd, "watch")) {
        acme_etcd_watch(e, FUZZ_PREFIX, 0, apr_time_from_sec(1), watch_kv, NULL, p, r);
    }
}

/* The store's commands; "-fenced TOKEN" writes through a view fenced by
 * the claim of FUZZ_NAME with that token. */
static void run_store(acme_etcd_t *e, const char *cmd, const char *args, apr_pool_t *p)
{
    acme_store_t *st;
    acme_store_claim_t *c, held;
    apr_array_header_t *names;
    const char *data, *err;
    apr_size_t len;
    apr_time_t mtime;

    if (acme_store_etcd_create(&st, p, e, FUZZ_PREFIX, fuzz_seal_key, &err) != APR_SUCCESS) {
        fprintf(stderr, "fuzz setup: %s\n", err);
        abort();
    }
    memset(&held, 0, sizeof(held));
    held.name = FUZZ_NAME;
    held.owner = FUZZ_OWNER;
    held.token = (apr_uint64_t)arg_num(args);
    held.lease = apr_time_from_sec(60);
    if (strstr(cmd, "-fenced")) {
        st = acme_store_fenced(p, st, &held);
    }
    if (!strcmp(cmd, "store-load")) {
        if (st->load(st, ACME_SG_DOMAINS, FUZZ_NAME, "privkey.pem", &data, &len, p)
            == APR_SUCCESS && data[len] != '\0') {
            __builtin_trap();   /* loads are NUL-terminated */
        }
    }
    else if (!strncmp(cmd, "store-save", 10)) {
        st->save(st, ACME_SG_JOBS, FUZZ_NAME, "job.json", "{}", 2,
                 args && !strcmp(args, "secret") ? ACME_STORE_SECRET : 0, p);
    }
    else if (!strcmp(cmd, "store-list")) {
        st->list(st, ACME_SG_DOMAINS, args ? FUZZ_NAME : NULL, &names, p);
    }
    else if (!strcmp(cmd, "store-mtime")) {
        st->mtime(st, ACME_SG_DOMAINS, FUZZ_NAME, args ? "privkey.pem" : NULL, &mtime, p);
    }
    else if (!strncmp(cmd, "store-remove", 12)) {
        st->remove(st, ACME_SG_DOMAINS, FUZZ_NAME, strstr(cmd, "-fenced") ? NULL : args, p);
    }
    else if (!strncmp(cmd, "store-move", 10)) {
        st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, FUZZ_NAME,
                 strstr(cmd, "-fenced") ? 2 : (int)arg_num(args), p);
    }
    else if (!strcmp(cmd, "store-claim")) {
        st->claim(st, &c, FUZZ_NAME, args ? args : FUZZ_OWNER, apr_time_from_sec(60), p);
    }
    else if (!strcmp(cmd, "store-renew")) {
        st->renew(st, &held, p);
    }
    else if (!strcmp(cmd, "store-release")) {
        st->release(st, &held, p);
    }
    else if (!strcmp(cmd, "store-watch")) {
        st->watch(st, ACME_SG_CHALLENGES, apr_time_from_sec(1), watch_item, NULL, p);
    }
    else if (!strcmp(cmd, "store-sweep")) {
        st->sweep(st, ACME_STORE_STALE_AGE, p);
    }
    else if (!strcmp(cmd, "store-verify")) {
        acme_store_etcd_verify(st, p, &err);
        if (fuzz_verbose) {
            fprintf(stderr, "verify: %s\n", err ? err : "ok");
        }
    }
}

/* FUZZ_LOG=1 prints the messages: does a seed get where it should? */
static void fuzz_log_print(void *baton, const char *file, int line, int level, apr_status_t rv,
                           const char *msg)
{
    (void)baton; (void)file; (void)line; (void)rv;
    fprintf(stderr, "[%d] %s\n", level, msg);
}

static void fuzz_pw_cleanup(void)
{
    unlink(fuzz_pw_file);
}

/* etcd's answer to the get of <prefix>store, holding plain sealed as the
 * store writes it (with a store whose etcd never answers: sealing asks
 * nothing). */
static char *sealed_answer(apr_pool_t *p, const uint8_t *plain, size_t len)
{
    const char *key = FUZZ_PREFIX "store", *err;
    acme_json_t *ans = acme_json_new_object(p), *kv = acme_json_new_object(p);
    acme_json_t *kvs = acme_json_new_array(p);
    const char *value, *body;
    apr_size_t vlen;
    fake_t none;
    acme_http_t http = {&none, fake_perform};
    acme_etcd_config_t conf;
    apr_array_header_t *eps = apr_array_make(p, 1, sizeof(const char *));
    acme_etcd_t *e;
    acme_store_t *st;

    memset(&none, 0, sizeof(none));
    APR_ARRAY_PUSH(eps, const char *) = "http://127.0.0.1:2379";
    acme_etcd_config_init(&conf);
    conf.endpoints = eps;
    if (acme_etcd_create(&e, p, &conf, &http, acme_result_make(p)) != APR_SUCCESS
        || acme_store_etcd_create(&st, p, e, FUZZ_PREFIX, fuzz_seal_key, &err) != APR_SUCCESS
        || acme_store_etcd_item_encode(&value, &vlen, st, key, (const char *)plain, len, 1,
                                       1796215524450833, p) != APR_SUCCESS) {
        return NULL;
    }
    acme_json_sets(ans, "5", "header", "revision", NULL);
    acme_json_sets(kv, acme_etcd_b64_encode(p, key, strlen(key)), "key", NULL);
    acme_json_sets(kv, "2", "create_revision", NULL);
    acme_json_sets(kv, "2", "mod_revision", NULL);
    acme_json_sets(kv, "1", "version", NULL);
    acme_json_sets(kv, acme_etcd_b64_encode(p, value, vlen), "value", NULL);
    acme_json_array_append(kvs, kv);
    acme_json_setj(ans, kvs, "kvs", NULL);
    body = acme_json_dump(ans, p, 1);
    return apr_pstrcat(p, "200\n", body, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int fd;

    (void)argc; (void)argv;
    fuzz_init();
    fuzz_verbose = getenv("FUZZ_LOG") != NULL;
    if (fuzz_verbose) {
        acme_log_set(fuzz_log_print, NULL, ACME_LOG_TRACE2);
    }
    fd = mkstemp(fuzz_pw_file);
    if (fd < 0 || write(fd, "fuzz-password\n", 14) != 14) {
        fprintf(stderr, "fuzz setup: cannot write %s\n", fuzz_pw_file);
        abort();
    }
    close(fd);
    atexit(fuzz_pw_cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    acme_result_t *r = acme_result_make(p);
    acme_http_t http;
    acme_etcd_config_t conf;
    apr_array_header_t *eps;
    acme_etcd_t *e;
    fake_t f;
    const uint8_t *nl = memchr(data, '\n', size < 128 ? size : 128);
    char *line, *cmd, *args;
    int i;

    if (!nl) {
        apr_pool_destroy(p);
        return 0;
    }
    line = apr_pstrmemdup(p, (const char *)data, (apr_size_t)(nl - data));
    memset(&f, 0, sizeof(f));
    f.at = nl + 1;
    f.left = size - (size_t)(nl + 1 - data);
    f.more = 1;
    if (!strcmp(line, "store-verify-sealed")) {
        char *ans = sealed_answer(p, f.at, f.left);

        if (!ans) {
            apr_pool_destroy(p);
            return 0;
        }
        line = apr_pstrdup(p, "store-verify");
        f.at = (const uint8_t *)ans;
        f.left = strlen(ans);
    }
    http.baton = &f;
    http.perform = fake_perform;
    eps = apr_array_make(p, 2, sizeof(const char *));
    APR_ARRAY_PUSH(eps, const char *) = "http://127.0.0.1:2379";
    APR_ARRAY_PUSH(eps, const char *) = "http://127.0.0.2:2379/";
    acme_etcd_config_init(&conf);
    conf.endpoints = eps;
    /* small, so that inputs can cross it */
    conf.max_value = 2048;
    cmd = line;
    if (!strncmp(cmd, "auth ", 5)) {
        conf.user = "fuzz";
        conf.password_file = fuzz_pw_file;
        conf.password_flags = ACME_KEYFILE_ANY_OWNER;
        cmd += 5;
    }
    args = strchr(cmd, ' ');
    if (args) {
        *args++ = '\0';
    }
    if (acme_etcd_create(&e, p, &conf, &http, r) != APR_SUCCESS) {
        fprintf(stderr, "fuzz setup: %s\n", acme_result_describe(r, p));
        abort();
    }
    if (!strncmp(cmd, "store-", 6)) {
        run_store(e, cmd, args, p);
    }
    else {
        run_client(e, cmd, args, p, r);
    }
    acme_result_describe(r, p);
    for (i = 0; i < f.n; ++i) {
        free(f.bodies[i]);
    }
    apr_pool_destroy(p);
    return 0;
}
