/* test_dns.c: the dns-01 engine without a server: TSIG key files (good and
 * malformed), server specs, record names, zone/CNAME/TXT decisions, errors. */
#include <check.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "acme_util.h"
#include "acme_result.h"
#include "acme_dns.h"
#include "acme_test.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

#define SECRET "kTA1SbPcADN2MzNX2dXLxLvfaiLg/OBn7LYrXlXUNPs="

static acme_dns_tsig_t *parse_ok(const char *text)
{
    acme_dns_tsig_t *key;
    const char *err;
    apr_status_t rv = acme_dns_tsig_parse(&key, pool, text, strlen(text), &err);

    ck_assert_msg(rv == APR_SUCCESS, "refused %s: %s", text, err ? err : "(no message)");
    ck_assert_ptr_nonnull(key);
    return key;
}

START_TEST(tsig_bind_format)
{
    /* as tsig-keygen prints it */
    acme_dns_tsig_t *key = parse_ok("key \"tsig-acme\" {\n\talgorithm hmac-sha256;\n"
                                    "\tsecret \"" SECRET "\";\n};\n");

    ck_assert_str_eq(key->name, "tsig-acme");
    ck_assert_str_eq(key->algorithm, "hmac-sha256");
    ck_assert_str_eq(key->secret, SECRET);
}
END_TEST

START_TEST(tsig_knot_format)
{
    /* as keymgr -t prints it, with its comment line */
    acme_dns_tsig_t *key = parse_ok("# hmac-sha512:acme.key:" SECRET "\nkey:\n  - id: acme.key\n"
                                    "    algorithm: hmac-sha512\n    secret: " SECRET "\n");

    ck_assert_str_eq(key->name, "acme.key");
    ck_assert_str_eq(key->algorithm, "hmac-sha512");
    ck_assert_str_eq(key->secret, SECRET);
    key = parse_ok("key:\n- id: \"k\"\n  secret: '" SECRET "'   # comment\n"
                   "  algorithm: hmac-sha1\n");
    ck_assert_str_eq(key->name, "k");
    ck_assert_str_eq(key->algorithm, "hmac-sha1");
}
END_TEST

START_TEST(tsig_variants)
{
    acme_dns_tsig_t *key;

    key = parse_ok("key acme. {algorithm HMAC-SHA384;secret \"" SECRET "\";};");
    ck_assert_str_eq(key->name, "acme");
    ck_assert_str_eq(key->algorithm, "hmac-sha384");
    key = parse_ok("// made by hand\n# another comment\n/* a\n block */ key \"Upper.Example\"\n"
                   "{ secret " SECRET " ; algorithm \"hmac-sha1\" ; } ;  // trailing\n\n");
    ck_assert_str_eq(key->name, "upper.example");
    ck_assert_str_eq(key->algorithm, "hmac-sha1");
    ck_assert_str_eq(key->secret, SECRET);
    key = parse_ok("\r\nkey \"k\" {\r\n algorithm hmac-sha512;\r\n secret \"YWJj\";\r\n};\r\n");
    ck_assert_str_eq(key->secret, "YWJj");
}
END_TEST

static const struct {
    const char *text;
    const char *err;  /* a part of the message */
} bad_keys[] = {
    {"", "empty"},
    {"   \n# only a comment\n", "empty"},
    {"key", "expected the key name"},
    {"key \"k\"", "expected '{'"},
    {"key \"k\" algorithm hmac-sha256;", "expected '{'"},
    {"key \"k\" { algorithm hmac-sha256; };", "has no secret"},
    {"key \"k\" { secret \"" SECRET "\"; };", "has no algorithm"},
    {"key \"k\" { algorithm hmac-md5; secret \"" SECRET "\"; };", "'hmac-md5' is not supported"},
    {"key \"k\" { algorithm hmac-sha256; secret \"not base64!\"; };", "not valid base64"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YWJ\"; };", "not valid base64"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YW=j\"; };", "not valid base64"},
    {"key \"k\" { algorithm hmac-sha256; secret \"\"; };", "not valid base64"},
    {"key \"k\" { algorithm hmac-sha256; algorithm hmac-sha1; secret \"YWJj\"; };", "twice"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YWJj\"; secret \"YWJj\"; };", "twice"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YWJj\"; owner x; };",
     "unknown statement 'owner'"},
    {"key \"k\" { algorithm hmac-sha256 secret \"YWJj\"; };", "expected ';' after algorithm"},
    {"key \"k\" { algorithm; secret \"YWJj\"; };", "algorithm has no value"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YWJj; };", "not closed"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YWJj\"; }", "expected ';' after '}'"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YWJj\";", "not closed"},
    {"/* key \"k\" { algorithm hmac-sha256; secret \"YWJj\"; };", "comment is not closed"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YWJj\"; };\nkey \"j\" { };", "more than one key"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YWJj\"; }; extra", "unexpected text"},
    {"key \"bad name\" { algorithm hmac-sha256; secret \"YWJj\"; };", "not a valid DNS name"},
    {"key \"a..b\" { algorithm hmac-sha256; secret \"YWJj\"; };", "not a valid DNS name"},
    {"key \"\" { algorithm hmac-sha256; secret \"YWJj\"; };", "not a valid DNS name"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YW\\Jj\"; };", "without '\\'"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YW\nJj\"; };", "one line"},
    {"key \"k\" { algorithm hmac-sha256; secret @; };", "unexpected character '@'"},
    {"key \"k\" { algorithm hmac-sha256; secret \"YWJj\"; }; \x01", "unexpected character '\\x01'"},
    {"zone \"k\" { };", "expected 'key'"},
    {"{ };", "expected 'key'"},
    {"key:\n", "no '- id: NAME' item"},
    {"key: x\n", "expected 'key:'"},
    {"key:\n  algorithm: hmac-sha256\n", "before '- id: NAME'"},
    {"key:\n  - id: k\n    algorithm: hmac-sha256\n", "has no secret"},
    {"key:\n  - id: k\n    secret: YWJj\n", "has no algorithm"},
    {"key:\n  - id: k\n    algorithm: hmac-sha256\n    secret:\n", "secret has no value"},
    {"key:\n  - id: k\n    algorithm: hmac-sha256\n    secret: YWJj\n  - id: j\n",
     "more than one key"},
    {"key:\n  - algorithm: hmac-sha256\n", "starts with '- id: NAME'"},
    {"key:\n  - id: k\n    id: j\n", "twice"},
    {"key:\n  - id: k\n    storage: /x\n", "unknown statement 'storage'"},
    {"key:\n  - id: k\n    no colon here\n", "expected 'name: value'"},
    {"key:\n  - id: k\n    algorithm: hmac-sha256\n    secret: YW Jj\n", "not valid base64"},
};

START_TEST(tsig_malformed)
{
    acme_dns_tsig_t *key;
    const char *err;
    const char *text = bad_keys[_i].text;
    apr_status_t rv = acme_dns_tsig_parse(&key, pool, text, strlen(text), &err);

    ck_assert_msg(rv == APR_EINVAL, "accepted: %s", text);
    ck_assert_ptr_null(key);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, bad_keys[_i].err) != NULL, "'%s': message '%s' lacks '%s'", text,
                  err, bad_keys[_i].err);
}
END_TEST

START_TEST(tsig_error_names_line)
{
    acme_dns_tsig_t *key;
    const char *err;
    const char *text = "key \"k\" {\n  algorithm hmac-sha256;\n  secret \"YWJj\";\n"
                       "  foo bar;\n};\n";
    const char nul[] = "key \"k\" { algorithm hmac-sha256;\0 secret \"YWJj\"; };";

    ck_assert_int_eq(acme_dns_tsig_parse(&key, pool, text, strlen(text), &err), APR_EINVAL);
    ck_assert_str_eq(err, "line 4: unknown statement 'foo' (a key has only algorithm and secret)");
    /* the length counts, not a NUL */
    ck_assert_int_eq(acme_dns_tsig_parse(&key, pool, nul, sizeof(nul) - 1, &err), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "NUL byte"));
}
END_TEST

static const char *write_tmp(const char *text)
{
    char *path = apr_psprintf(pool, "/tmp/test_dns_key.%ld", (long)getpid());
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, 0600), 0);
    return path;
}

START_TEST(tsig_load)
{
    acme_dns_tsig_t *key;
    const char *err, *path;
    const int any = ACME_KEYFILE_ANY_OWNER;

    ck_assert_int_ne(acme_dns_tsig_load(&key, pool, "/nonexistent/acme.key", any, &err),
                     APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(err, "cannot read the TSIG key file /nonexistent/acme.key"));
    ck_assert_int_eq(acme_dns_tsig_load(&key, pool, "/tmp", any, &err), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "the TSIG key file /tmp is not a regular file"));

    path = write_tmp("key \"k\" { algorithm hmac-sha256; };\n");
    ck_assert_int_eq(acme_dns_tsig_load(&key, pool, path, any, &err), APR_EINVAL);
    ck_assert_str_eq(err, apr_pstrcat(pool, path, ": line 1: key 'k' has no secret", NULL));

    path = write_tmp("key \"k\" { algorithm hmac-sha256; secret \"" SECRET "\"; };\n");
    ck_assert_int_eq(acme_dns_tsig_load(&key, pool, path, any, &err), APR_SUCCESS);
    ck_assert_str_eq(key->name, "k");
    ck_assert_str_eq(key->secret, SECRET);
    unlink(path);
}
END_TEST

START_TEST(tsig_load_checks_owner_and_mode)
{
    /* the check of ManagedStoreEncryptionKey (acme_secret_file_read): others
     * who read the key could sign changes to the zone */
    const char *path = write_tmp("key \"k\" { algorithm hmac-sha256; secret \"" SECRET
                                 "\"; };\n");
    acme_dns_tsig_t *key;
    const char *err;

    ck_assert_int_eq(chmod(path, 0640), 0);
    ck_assert_int_eq(acme_dns_tsig_load(&key, pool, path, ACME_KEYFILE_ANY_OWNER, &err),
                     APR_EINVAL);
    ck_assert_ptr_null(key);
    ck_assert_msg(strstr(err, "the TSIG key file") && strstr(err, path)
                  && strstr(err, "group or others") && strstr(err, "chmod 0400"), "%s", err);
    ck_assert_ptr_null(strstr(err, SECRET));
    ck_assert_int_eq(chmod(path, 0604), 0);
    ck_assert_int_eq(acme_dns_tsig_load(&key, pool, path, ACME_KEYFILE_ANY_OWNER, &err),
                     APR_EINVAL);
    ck_assert_int_eq(chmod(path, 0400), 0);
    ck_assert_int_eq(acme_dns_tsig_load(&key, pool, path, ACME_KEYFILE_ANY_OWNER, &err),
                     APR_SUCCESS);
    /* a file root does not own: as root, give it away first */
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(path, 65534, 65534), 0);
    }
    ck_assert_int_eq(acme_dns_tsig_load(&key, pool, path, 0, &err), APR_EINVAL);
    ck_assert_msg(strstr(err, "is not owned by root") && strstr(err, "chown root"), "%s", err);
    unlink(path);
}
END_TEST

START_TEST(tsig_usable)
{
    acme_dns_tsig_t key = {"k", "hmac-sha256", SECRET};
    const char *err;
    apr_status_t rv;

    ck_assert_int_eq(acme_dns_tsig_usable(&key, pool, &err), APR_SUCCESS);
    key.algorithm = "hmac-sha512";
    ck_assert_int_eq(acme_dns_tsig_usable(&key, pool, &err), APR_SUCCESS);
    key.algorithm = "hmac-sha1";
    ck_assert_int_eq(acme_dns_tsig_usable(&key, pool, &err), APR_SUCCESS);
    /* ldns 1.8 cannot sign hmac-sha384: then the message says so */
    key.algorithm = "hmac-sha384";
    rv = acme_dns_tsig_usable(&key, pool, &err);
    if (rv != APR_SUCCESS) {
        ck_assert_int_eq(rv, APR_ENOTIMPL);
        ck_assert_ptr_nonnull(strstr(err, "cannot sign with hmac-sha384"));
    }
}
END_TEST

START_TEST(server_spec)
{
    acme_dns_server_t *s;
    const char *err;
    static const char *const bad[] = {
        "", "ns1:", "ns1:0", "ns1:65536", "ns1:53x", "[::1", "[]:53", "[::1]x", "bad name!",
        "ns1..example", ":53", NULL
    };
    int i;

    ck_assert_int_eq(acme_dns_server_parse(&s, pool, "ns1.example.org", 53, &err), APR_SUCCESS);
    ck_assert_str_eq(s->host, "ns1.example.org");
    ck_assert_uint_eq(s->port, 53);
    ck_assert_int_eq(acme_dns_server_parse(&s, pool, "192.0.2.1:5353", 53, &err), APR_SUCCESS);
    ck_assert_str_eq(s->host, "192.0.2.1");
    ck_assert_uint_eq(s->port, 5353);
    ck_assert_int_eq(acme_dns_server_parse(&s, pool, "[2001:db8::1]:5300", 53, &err),
                     APR_SUCCESS);
    ck_assert_str_eq(s->host, "2001:db8::1");
    ck_assert_uint_eq(s->port, 5300);
    ck_assert_int_eq(acme_dns_server_parse(&s, pool, "::1", 53, &err), APR_SUCCESS);
    ck_assert_str_eq(s->host, "::1");
    ck_assert_uint_eq(s->port, 53);
    for (i = 0; bad[i]; ++i) {
        ck_assert_msg(acme_dns_server_parse(&s, pool, bad[i], 53, &err) == APR_EINVAL,
                      "accepted '%s'", bad[i]);
        ck_assert_ptr_null(s);
        ck_assert_ptr_nonnull(err);
    }
}
END_TEST

START_TEST(check_args)
{
    const char *ok[] = {"192.0.2.53", "ns2.example.org:5353", "timeout=5m", "[2001:db8::53]"};
    const char *two_timeouts[] = {"ns2", "timeout=5", "timeout=6"};
    const char *only_timeout[] = {"timeout=30s"};
    const char *bad_timeout[] = {"ns2", "timeout=2d"};
    const char *zero_timeout[] = {"ns2", "timeout=0"};
    const char *bad_server[] = {"ns2", "ns3:99999"};
    apr_array_header_t *check;
    apr_interval_time_t t = 42;
    const char *err;

    ck_assert_int_eq(acme_dns_check_args(&check, &t, pool, 4, ok, &err), APR_SUCCESS);
    ck_assert_int_eq(check->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(check, 1, acme_dns_server_t *)->host, "ns2.example.org");
    ck_assert_uint_eq(APR_ARRAY_IDX(check, 1, acme_dns_server_t *)->port, 5353);
    ck_assert_str_eq(APR_ARRAY_IDX(check, 2, acme_dns_server_t *)->host, "2001:db8::53");
    ck_assert_int_eq(t, apr_time_from_sec(300));
    t = 42;
    ck_assert_int_eq(acme_dns_check_args(&check, &t, pool, 1, ok, &err), APR_SUCCESS);
    ck_assert_int_eq(t, 42); /* not given: untouched */
    ck_assert_int_eq(acme_dns_check_args(&check, &t, pool, 3, two_timeouts, &err), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "twice"));
    ck_assert_int_eq(acme_dns_check_args(&check, &t, pool, 1, only_timeout, &err), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "at least one"));
    ck_assert_int_eq(acme_dns_check_args(&check, &t, pool, 2, bad_timeout, &err), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "'timeout=2d'"));
    ck_assert_int_eq(acme_dns_check_args(&check, &t, pool, 2, zero_timeout, &err), APR_EINVAL);
    ck_assert_int_eq(acme_dns_check_args(&check, &t, pool, 2, bad_server, &err), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "'ns3:99999'"));
    ck_assert_ptr_null(check);
    ck_assert_int_eq(acme_dns_check_args(&check, &t, pool, 0, NULL, &err), APR_EINVAL);
}
END_TEST

START_TEST(config_defaults)
{
    acme_dns_config_t *c = acme_dns_config_make(pool);

    ck_assert_int_eq(c->check_timeout, apr_time_from_sec(120));
    ck_assert_int_eq(c->poll_interval, apr_time_from_sec(2));
    ck_assert_uint_eq(c->ttl, 60);
    ck_assert_uint_eq(c->update.port, 53);
    ck_assert_uint_eq(c->ns_port, 53);
    ck_assert(c->abort_flag == NULL);
}
END_TEST

START_TEST(record_names)
{
    ck_assert_str_eq(acme_dns_record_name(pool, "example.org"), "_acme-challenge.example.org.");
    /* a wildcard and its base name share the record */
    ck_assert_str_eq(acme_dns_record_name(pool, "*.Example.ORG"), "_acme-challenge.example.org.");
    ck_assert_str_eq(acme_dns_record_name(pool, "www.example.org."),
                     "_acme-challenge.www.example.org.");
    ck_assert_ptr_null(acme_dns_record_name(pool, ""));
    ck_assert_ptr_null(acme_dns_record_name(pool, "*."));
    ck_assert_ptr_null(acme_dns_record_name(pool, "."));
    ck_assert_ptr_null(acme_dns_record_name(pool, "192.0.2.1"));
    ck_assert_ptr_null(acme_dns_record_name(pool, NULL));
    ck_assert_str_eq(acme_dns_fqdn(pool, "A.b"), "a.b.");
    ck_assert_str_eq(acme_dns_fqdn(pool, "."), ".");
}
END_TEST

/* ---- answers built by hand ---- */

static acme_dns_msg_t *msg(int rcode)
{
    acme_dns_msg_t *m = apr_pcalloc(pool, sizeof(*m));

    m->rcode = rcode;
    m->rrs = apr_array_make(pool, 4, sizeof(acme_dns_rr_t *));
    return m;
}

static void rr(acme_dns_msg_t *m, int section, const char *owner, int type, const char *data)
{
    acme_dns_rr_t *r = apr_pcalloc(pool, sizeof(*r));

    r->section = section;
    r->owner = owner;
    r->type = type;
    r->data = data;
    APR_ARRAY_PUSH(m->rrs, acme_dns_rr_t *) = r;
}

START_TEST(zone_from_soa)
{
    const char *q = "_acme-challenge.www.example.org.", *zone;
    acme_dns_msg_t *m;

    /* NXDOMAIN/NODATA: the SOA of the zone in the authority section */
    m = msg(3);
    rr(m, ACME_DNS_SEC_AUTHORITY, "example.org.", ACME_DNS_T_SOA, "ns1.example.org.");
    ck_assert_int_eq(acme_dns_msg_zone(&zone, m, q), APR_SUCCESS);
    ck_assert_str_eq(zone, "example.org.");
    /* the name is a zone apex itself */
    m = msg(0);
    rr(m, ACME_DNS_SEC_ANSWER, q, ACME_DNS_T_SOA, "ns1.example.org.");
    ck_assert_int_eq(acme_dns_msg_zone(&zone, m, q), APR_SUCCESS);
    ck_assert_str_eq(zone, q);
    /* a child zone: the deepest SOA given wins as it is the one sent */
    m = msg(0);
    rr(m, ACME_DNS_SEC_AUTHORITY, "www.example.org.", ACME_DNS_T_SOA, "ns1.example.org.");
    ck_assert_int_eq(acme_dns_msg_zone(&zone, m, q), APR_SUCCESS);
    ck_assert_str_eq(zone, "www.example.org.");
    /* the root zone contains every name */
    m = msg(3);
    rr(m, ACME_DNS_SEC_AUTHORITY, ".", ACME_DNS_T_SOA, "a.root-servers.net.");
    ck_assert_int_eq(acme_dns_msg_zone(&zone, m, q), APR_SUCCESS);
    ck_assert_str_eq(zone, ".");
}
END_TEST

START_TEST(zone_not_found)
{
    const char *q = "_acme-challenge.www.example.org.", *zone;
    acme_dns_msg_t *m;

    ck_assert_int_eq(acme_dns_msg_zone(&zone, msg(5), q), APR_ENOENT); /* REFUSED */
    ck_assert_ptr_null(zone);
    /* an SOA of an unrelated zone, and one that only ends like a parent */
    m = msg(3);
    rr(m, ACME_DNS_SEC_AUTHORITY, "example.net.", ACME_DNS_T_SOA, "ns.example.net.");
    rr(m, ACME_DNS_SEC_AUTHORITY, "ample.org.", ACME_DNS_T_SOA, "ns.ample.org.");
    ck_assert_int_eq(acme_dns_msg_zone(&zone, m, q), APR_ENOENT);
    /* a referral: NS but no SOA */
    m = msg(0);
    rr(m, ACME_DNS_SEC_AUTHORITY, "www.example.org.", ACME_DNS_T_NS, "ns.elsewhere.net.");
    ck_assert_int_eq(acme_dns_msg_zone(&zone, m, q), APR_ENOENT);
    /* an SOA in the answer for another owner (a chased CNAME) is no answer for q */
    m = msg(0);
    rr(m, ACME_DNS_SEC_ANSWER, "target.example.net.", ACME_DNS_T_SOA, "ns.example.net.");
    ck_assert_int_eq(acme_dns_msg_zone(&zone, m, q), APR_ENOENT);
    /* a SERVFAIL with an SOA is not trusted */
    m = msg(2);
    rr(m, ACME_DNS_SEC_AUTHORITY, "example.org.", ACME_DNS_T_SOA, "ns1.example.org.");
    ck_assert_int_eq(acme_dns_msg_zone(&zone, m, q), APR_ENOENT);
}
END_TEST

START_TEST(cname_follow)
{
    const char *q = "_acme-challenge.example.org.", *target;
    acme_dns_msg_t *m;

    m = msg(0);
    rr(m, ACME_DNS_SEC_ANSWER, q, ACME_DNS_T_CNAME, "d420c923.auth.acme-dns.io.");
    ck_assert_int_eq(acme_dns_msg_cname(&target, m, q), APR_SUCCESS);
    ck_assert_str_eq(target, "d420c923.auth.acme-dns.io.");
    /* no CNAME: NODATA with an SOA */
    m = msg(0);
    rr(m, ACME_DNS_SEC_AUTHORITY, "example.org.", ACME_DNS_T_SOA, "ns1.example.org.");
    ck_assert_int_eq(acme_dns_msg_cname(&target, m, q), APR_ENOENT);
    ck_assert_ptr_null(target);
    /* a CNAME of another name, or outside the answer, does not count */
    m = msg(0);
    rr(m, ACME_DNS_SEC_ANSWER, "other.example.org.", ACME_DNS_T_CNAME, "x.example.net.");
    rr(m, ACME_DNS_SEC_AUTHORITY, q, ACME_DNS_T_CNAME, "y.example.net.");
    ck_assert_int_eq(acme_dns_msg_cname(&target, m, q), APR_ENOENT);
    ck_assert_int_eq(acme_dns_msg_cname(&target, msg(3), q), APR_ENOENT);
    m = msg(5);
    rr(m, ACME_DNS_SEC_ANSWER, q, ACME_DNS_T_CNAME, "z.example.net.");
    ck_assert_int_eq(acme_dns_msg_cname(&target, m, q), APR_ENOENT);
}
END_TEST

START_TEST(txt_present)
{
    const char *q = "_acme-challenge.example.org.";
    acme_dns_msg_t *m = msg(0);
    apr_array_header_t *a;

    /* base name and wildcard: two values at one name */
    rr(m, ACME_DNS_SEC_ANSWER, q, ACME_DNS_T_TXT, "value-for-base");
    rr(m, ACME_DNS_SEC_ANSWER, q, ACME_DNS_T_TXT, "value-for-wildcard");
    rr(m, ACME_DNS_SEC_ADDITIONAL, q, ACME_DNS_T_TXT, "only-additional");
    rr(m, ACME_DNS_SEC_ANSWER, "other.example.org.", ACME_DNS_T_TXT, "other-owner");
    ck_assert(acme_dns_msg_has_txt(m, q, "value-for-base"));
    ck_assert(acme_dns_msg_has_txt(m, q, "value-for-wildcard"));
    ck_assert(!acme_dns_msg_has_txt(m, q, "only-additional"));
    ck_assert(!acme_dns_msg_has_txt(m, q, "other-owner"));
    ck_assert(!acme_dns_msg_has_txt(m, q, "value-for"));
    m->rcode = 3;
    ck_assert(!acme_dns_msg_has_txt(m, q, "value-for-base"));

    m = msg(0);
    rr(m, ACME_DNS_SEC_ANSWER, "ex.", ACME_DNS_T_NS, "ns1.ex.");
    rr(m, ACME_DNS_SEC_ANSWER, "ex.", ACME_DNS_T_NS, "ns2.ex.");
    rr(m, ACME_DNS_SEC_AUTHORITY, "ex.", ACME_DNS_T_NS, "ns1.ex.");
    rr(m, ACME_DNS_SEC_ADDITIONAL, "ns1.ex.", ACME_DNS_T_A, "192.0.2.1");
    a = acme_dns_msg_data(pool, m, "ex.", ACME_DNS_T_NS);
    ck_assert_int_eq(a->nelts, 2); /* duplicates once */
    ck_assert_str_eq(APR_ARRAY_IDX(a, 1, const char *), "ns2.ex.");
    a = acme_dns_msg_data(pool, m, "ns1.ex.", ACME_DNS_T_A);
    ck_assert_int_eq(a->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(a, 0, const char *), "192.0.2.1");
}
END_TEST

START_TEST(update_errors)
{
    acme_result_t *r = acme_result_make(pool);
    acme_dns_msg_t *m;

    /* a refusal signed with our key and verified: the configuration is wrong */
    m = msg(5);
    m->tsig_verified = 1;
    acme_dns_update_failed(r, m, "acme-key", "ns1:53", "example.org.",
                           "_acme-challenge.example.org.");
    ck_assert_int_eq(r->status, APR_EACCES);
    ck_assert_str_eq(r->problem, ACME_DNS_PROBLEM_CONFIG);
    ck_assert_ptr_nonnull(strstr(r->detail, "REFUSED"));
    ck_assert_ptr_nonnull(strstr(r->detail, "'acme-key'"));
    ck_assert_ptr_nonnull(strstr(r->detail, "ns1:53"));
    ck_assert_ptr_nonnull(strstr(r->detail, "example.org."));
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_CONFIG);
    m->rcode = 9;
    acme_dns_update_failed(r, m, "acme-key", "ns1:53", "example.org.", "x.");
    ck_assert_ptr_nonnull(strstr(r->detail, "NOTAUTH"));
    ck_assert_ptr_nonnull(strstr(r->detail, "'acme-key'"));
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_CONFIG);
    m->tsig_error = 18; /* BADTIME answers are signed */
    acme_dns_update_failed(r, m, "acme-key", "ns1:53", "example.org.", "x.");
    ck_assert_ptr_nonnull(strstr(r->detail, "NOTAUTH/BADTIME"));
    ck_assert_ptr_nonnull(strstr(r->detail, "clock"));
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_CONFIG);
    /* a server that failed is worth another try later, signed or not */
    m = msg(2);
    m->tsig_verified = 1;
    acme_dns_update_failed(r, m, "acme-key", "ns1:53", "example.org.", "x.");
    ck_assert_ptr_nonnull(strstr(r->detail, "SERVFAIL"));
    ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_TRANSIENT);

    ck_assert_str_eq(acme_dns_rcode_name(pool, 10), "NOTZONE");
    ck_assert_str_eq(acme_dns_rcode_name(pool, 23), "RCODE 23");
    ck_assert_str_eq(acme_dns_tsig_error_name(pool, 99), "TSIG error 99");
}
END_TEST

START_TEST(unsigned_refusals_are_transient)
{
    /* anyone who can send this host a packet can send these: one must not
     * stop renewals for 24 hours. BADSIG and BADKEY answers are unsigned by
     * design (RFC 8945 5.3.2). */
    static const int rcodes[] = {5, 9, 10, 4, 1, 6};
    static const int tsig_errors[] = {16, 17, 18, 22};
    acme_result_t *r = acme_result_make(pool);
    acme_dns_msg_t *m;
    size_t i;

    for (i = 0; i < sizeof(rcodes) / sizeof(rcodes[0]); ++i) {
        m = msg(rcodes[i]);
        ck_assert_int_ne(acme_dns_update_failed(r, m, "acme-key", "ns1:53", "example.org.",
                                                "x."), APR_SUCCESS);
        ck_assert_str_eq(r->problem, ACME_DNS_PROBLEM);
        ck_assert_msg(acme_result_classify(r) == ACME_ERRCLASS_TRANSIENT, "rcode %d: %s",
                      rcodes[i], r->detail);
        ck_assert_ptr_nonnull(strstr(r->detail, "unsigned answer"));
    }
    for (i = 0; i < sizeof(tsig_errors) / sizeof(tsig_errors[0]); ++i) {
        m = msg(9);
        m->tsig_error = tsig_errors[i];
        acme_dns_update_failed(r, m, "acme-key", "ns1:53", "example.org.", "x.");
        ck_assert_int_eq(acme_result_classify(r), ACME_ERRCLASS_TRANSIENT);
        ck_assert_ptr_nonnull(strstr(r->detail, "'acme-key'"));
    }
    /* PowerDNS answers a badly signed update with a plain REFUSED */
    acme_dns_update_failed(r, msg(5), "acme-key", "ns1:53", "example.org.", "x.");
    ck_assert_ptr_nonnull(strstr(r->detail, "ACL or update-policy"));
    ck_assert_ptr_nonnull(strstr(r->detail, "secret"));
}
END_TEST

/* ---- does an answer answer the question? ---- */

static acme_dns_msg_t *question(int id, int opcode, const char *qname, int qtype)
{
    acme_dns_msg_t *m = msg(0);

    m->id = id;
    m->opcode = opcode;
    m->qdcount = 1;
    m->qname = qname;
    m->qtype = qtype;
    m->qclass = 1;
    return m;
}

static acme_dns_msg_t *answer_to(const acme_dns_msg_t *q)
{
    acme_dns_msg_t *a = apr_pmemdup(pool, q, sizeof(*q));

    a->qr = 1;
    return a;
}

START_TEST(answer_must_match_id_and_question)
{
    const char *name = "_acme-challenge.example.org.", *why;
    acme_dns_msg_t *q = question(0x4d2, 0, name, ACME_DNS_T_TXT), *a;

    a = answer_to(q);
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_SUCCESS);
    ck_assert_ptr_null(why);

    a = answer_to(q);
    a->id = 0x4d3;
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);
    ck_assert_str_eq(why, "an answer with another message id");
    a = answer_to(q);
    a->id = 0;                                      /* what every query had before */
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);

    a = answer_to(q);
    a->qname = "_acme-challenge.example.net.";
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);
    ck_assert_str_eq(why, "an answer to another question");
    a = answer_to(q);
    a->qtype = ACME_DNS_T_CNAME;
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);
    a = answer_to(q);
    a->qclass = 3;
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);
    a = answer_to(q);
    a->qdcount = 2;
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);
    /* a query's answer that leaves the question out */
    a = answer_to(q);
    a->qdcount = 0;
    a->qname = NULL;
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);
    /* the query itself, echoed back */
    a = answer_to(q);
    a->qr = 0;
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);
    ck_assert_str_eq(why, "a message that is not an answer");
    a = answer_to(q);
    a->opcode = 5;
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);
}
END_TEST

START_TEST(update_answer_may_omit_the_zone)
{
    const char *why;
    acme_dns_msg_t *q = question(0xbeef, 5, "example.org.", ACME_DNS_T_SOA), *a;

    a = answer_to(q);
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_SUCCESS);
    a->qdcount = 0;     /* RFC 2136 3.8 */
    a->qname = NULL;
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_SUCCESS);
    a = answer_to(q);
    a->qname = "example.net.";
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);
    a = answer_to(q);
    a->id = 0xbeee;
    a->qdcount = 0;
    ck_assert_int_eq(acme_dns_msg_answers(q, a, &why), APR_EGENERAL);
}
END_TEST

/* ---- what the CA's question shows ---- */

START_TEST(txt_view_follows_the_cname)
{
    const char *rec = "_acme-challenge.example.org.", *tgt = "example-org.acme.example.net.";
    acme_dns_msg_t *m;

    /* no CNAME: the value at the name, or not */
    m = msg(0);
    m->aa = 1;
    rr(m, ACME_DNS_SEC_ANSWER, rec, ACME_DNS_T_TXT, "v");
    ck_assert_int_eq(acme_dns_msg_txt_view(m, rec, "v"), ACME_DNS_TXT_SHOWN);
    ck_assert_int_eq(acme_dns_msg_txt_view(m, rec, "w"), ACME_DNS_TXT_MISSING);
    /* the server chased the CNAME into a zone it serves */
    m = msg(0);
    m->aa = 1;
    rr(m, ACME_DNS_SEC_ANSWER, rec, ACME_DNS_T_CNAME, tgt);
    rr(m, ACME_DNS_SEC_ANSWER, tgt, ACME_DNS_T_TXT, "v");
    ck_assert_int_eq(acme_dns_msg_txt_view(m, rec, "v"), ACME_DNS_TXT_SHOWN);
    /* ... and its cache still holds the older value: the CA would see that */
    ck_assert_int_eq(acme_dns_msg_txt_view(m, rec, "new"), ACME_DNS_TXT_MISSING);
    /* ... or the older "no TXT there" (NODATA with the target zone's SOA) */
    m = msg(0);
    m->aa = 1;
    rr(m, ACME_DNS_SEC_ANSWER, rec, ACME_DNS_T_CNAME, tgt);
    rr(m, ACME_DNS_SEC_AUTHORITY, "acme.example.net.", ACME_DNS_T_SOA, "ns.example.net.");
    ck_assert_int_eq(acme_dns_msg_txt_view(m, rec, "v"), ACME_DNS_TXT_MISSING);
    /* only the CNAME: the target's servers answer for it (checked on their own) */
    m = msg(0);
    m->aa = 1;
    rr(m, ACME_DNS_SEC_ANSWER, rec, ACME_DNS_T_CNAME, tgt);
    rr(m, ACME_DNS_SEC_AUTHORITY, "example.org.", ACME_DNS_T_NS, "ns1.example.org.");
    ck_assert_int_eq(acme_dns_msg_txt_view(m, rec, "v"), ACME_DNS_TXT_ELSEWHERE);
    /* the CNAME's own zone says the name does not exist: not there yet */
    m = msg(3);
    m->aa = 1;
    rr(m, ACME_DNS_SEC_AUTHORITY, "example.org.", ACME_DNS_T_SOA, "ns1.example.org.");
    ck_assert_int_eq(acme_dns_msg_txt_view(m, rec, "v"), ACME_DNS_TXT_MISSING);
    /* servers that do not serve the name */
    ck_assert_int_eq(acme_dns_msg_txt_view(msg(5), rec, "v"), ACME_DNS_TXT_ELSEWHERE);
    ck_assert_int_eq(acme_dns_msg_txt_view(msg(9), rec, "v"), ACME_DNS_TXT_ELSEWHERE);
    m = msg(0);
    rr(m, ACME_DNS_SEC_AUTHORITY, "org.", ACME_DNS_T_NS, "a.gtld.example.");
    ck_assert_int_eq(acme_dns_msg_txt_view(m, rec, "v"), ACME_DNS_TXT_ELSEWHERE);
    /* a server that fails is not yet showing it */
    ck_assert_int_eq(acme_dns_msg_txt_view(msg(2), rec, "v"), ACME_DNS_TXT_MISSING);
    /* a CNAME loop ends */
    m = msg(0);
    m->aa = 1;
    rr(m, ACME_DNS_SEC_ANSWER, rec, ACME_DNS_T_CNAME, tgt);
    rr(m, ACME_DNS_SEC_ANSWER, tgt, ACME_DNS_T_CNAME, rec);
    ck_assert_int_eq(acme_dns_msg_txt_view(m, rec, "v"), ACME_DNS_TXT_MISSING);
}
END_TEST

/* Answers of knotd to the engine's questions, captured with drill -w. */
static const unsigned char wire_soa_nx[] = {
    0x4b, 0x6d, 0x85, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x0f, 0x5f, 0x61, 0x63, 0x6d, 0x65, 0x2d, 0x63, 0x68, 0x61, 0x6c, 0x6c,
    0x65, 0x6e, 0x67, 0x65, 0x04, 0x6e, 0x6f, 0x70, 0x65, 0x07, 0x65, 0x78,
    0x61, 0x6d, 0x70, 0x6c, 0x65, 0x04, 0x74, 0x65, 0x73, 0x74, 0x00, 0x00,
    0x06, 0x00, 0x01, 0xc0, 0x21, 0x00, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x3c, 0x00, 0x27, 0x03, 0x6e, 0x73, 0x31, 0xc0, 0x21, 0x0a, 0x68, 0x6f,
    0x73, 0x74, 0x6d, 0x61, 0x73, 0x74, 0x65, 0x72, 0xc0, 0x21, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x03, 0x84, 0x00, 0x09,
    0x3a, 0x80, 0x00, 0x00, 0x00, 0x3c,
};
static const unsigned char wire_cname[] = {
    0xe7, 0xa2, 0x85, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x0f, 0x5f, 0x61, 0x63, 0x6d, 0x65, 0x2d, 0x63, 0x68, 0x61, 0x6c, 0x6c,
    0x65, 0x6e, 0x67, 0x65, 0x05, 0x63, 0x6e, 0x61, 0x6d, 0x65, 0x07, 0x65,
    0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x04, 0x74, 0x65, 0x73, 0x74, 0x00,
    0x00, 0x05, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00,
    0x01, 0x2c, 0x00, 0x17, 0x05, 0x63, 0x6e, 0x61, 0x6d, 0x65, 0x04, 0x61,
    0x63, 0x6d, 0x65, 0x09, 0x64, 0x65, 0x6c, 0x65, 0x67, 0x61, 0x74, 0x65,
    0x64, 0xc0, 0x2a,
};
static const unsigned char wire_ns[] = {
    0x75, 0x47, 0x85, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02,
    0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x04, 0x74, 0x65, 0x73,
    0x74, 0x00, 0x00, 0x02, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x02, 0x00, 0x01,
    0x00, 0x00, 0x01, 0x2c, 0x00, 0x06, 0x03, 0x6e, 0x73, 0x31, 0xc0, 0x0c,
    0xc0, 0x0c, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x06,
    0x03, 0x6e, 0x73, 0x32, 0xc0, 0x0c, 0xc0, 0x2a, 0x00, 0x01, 0x00, 0x01,
    0x00, 0x00, 0x01, 0x2c, 0x00, 0x04, 0x7f, 0x00, 0x00, 0x01, 0xc0, 0x3c,
    0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x04, 0x7f, 0x00,
    0x00, 0x02,
};

START_TEST(wire_real_answers)
{
    acme_dns_msg_t *m;
    const char *zone, *target;
    apr_array_header_t *ns;

    /* _acme-challenge.nope.example.test SOA: NXDOMAIN, the zone's SOA in authority */
    ck_assert_int_eq(acme_dns_msg_from_wire(&m, pool, wire_soa_nx, sizeof(wire_soa_nx)),
                     APR_SUCCESS);
    ck_assert_int_eq(m->rcode, 3);
    ck_assert_int_eq(m->aa, 1);
    ck_assert_int_eq(acme_dns_msg_zone(&zone, m, "_acme-challenge.nope.example.test."),
                     APR_SUCCESS);
    ck_assert_str_eq(zone, "example.test.");
    /* _acme-challenge.cname.example.test CNAME */
    ck_assert_int_eq(acme_dns_msg_from_wire(&m, pool, wire_cname, sizeof(wire_cname)),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_dns_msg_cname(&target, m, "_acme-challenge.cname.example.test."),
                     APR_SUCCESS);
    ck_assert_str_eq(target, "cname.acme.delegated.test.");
    /* its header and question, as the answer check reads them */
    ck_assert_int_eq(m->id, 0xe7a2);
    ck_assert_int_eq(m->qr, 1);
    ck_assert_int_eq(m->opcode, 0);
    ck_assert_int_eq(m->qdcount, 1);
    ck_assert_str_eq(m->qname, "_acme-challenge.cname.example.test.");
    ck_assert_int_eq(m->qtype, ACME_DNS_T_CNAME);
    ck_assert_int_eq(m->qclass, 1);
    ck_assert_int_eq(m->tsig_verified, 0);
    /* example.test NS */
    ck_assert_int_eq(acme_dns_msg_from_wire(&m, pool, wire_ns, sizeof(wire_ns)), APR_SUCCESS);
    ns = acme_dns_msg_data(pool, m, "example.test.", ACME_DNS_T_NS);
    ck_assert_int_eq(ns->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(ns, 0, const char *), "ns1.example.test.");
    ck_assert_str_eq(APR_ARRAY_IDX(ns, 1, const char *), "ns2.example.test.");
}
END_TEST

START_TEST(wire_messages)
{
    /* header only: id 0x1234, QR AA, REFUSED, no records */
    static const unsigned char refused[] = {0x12, 0x34, 0x84, 0x05, 0, 0, 0, 0, 0, 0, 0, 0};
    /* claims one answer it does not hold */
    static const unsigned char short_an[] = {0x12, 0x34, 0x84, 0x00, 0, 0, 0, 1, 0, 0, 0, 0};
    acme_dns_msg_t *m;

    ck_assert_int_eq(acme_dns_msg_from_wire(&m, pool, refused, sizeof(refused)), APR_SUCCESS);
    ck_assert_int_eq(m->rcode, 5);
    ck_assert_int_eq(m->aa, 1);
    ck_assert_int_eq(m->rrs->nelts, 0);
    ck_assert_int_eq(acme_dns_msg_from_wire(&m, pool, short_an, sizeof(short_an)), APR_EINVAL);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(acme_dns_msg_from_wire(&m, pool, refused, 5), APR_EINVAL);
}
END_TEST

START_TEST(wait_stops_on_abort)
{
    /* a stopping server does not wait: nothing is even asked */
    acme_dns_config_t *c = acme_dns_config_make(pool);
    acme_dns_target_t t = {"_acme-challenge.a.test.", "_acme-challenge.a.test.", "a.test."};
    acme_result_t *r = acme_result_make(pool);
    acme_dns_server_t *cs;
    volatile apr_uint32_t stop = 1;
    const char *err;
    apr_time_t start = apr_time_now();

    c->update.host = "127.0.0.1";
    c->update.port = 9;
    c->check = apr_array_make(pool, 1, sizeof(acme_dns_server_t *));
    ck_assert_int_eq(acme_dns_server_parse(&cs, pool, "127.0.0.1:9", 53, &err), APR_SUCCESS);
    APR_ARRAY_PUSH(c->check, acme_dns_server_t *) = cs;
    c->abort_flag = &stop;
    ck_assert_int_eq(acme_dns_wait(c, &t, "v", pool, r), APR_EINTR);
    ck_assert_ptr_nonnull(strstr(r->detail, "stopped"));
    ck_assert(apr_time_now() - start < apr_time_from_sec(1));
}
END_TEST

static Suite *dns_suite(void)
{
    Suite *s = suite_create("dns");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, tsig_bind_format);
    tcase_add_test(tc, tsig_knot_format);
    tcase_add_test(tc, tsig_variants);
    tcase_add_loop_test(tc, tsig_malformed, 0, (int)(sizeof(bad_keys) / sizeof(bad_keys[0])));
    tcase_add_test(tc, tsig_error_names_line);
    tcase_add_test(tc, tsig_load);
    tcase_add_test(tc, tsig_load_checks_owner_and_mode);
    tcase_add_test(tc, tsig_usable);
    tcase_add_test(tc, server_spec);
    tcase_add_test(tc, check_args);
    tcase_add_test(tc, config_defaults);
    tcase_add_test(tc, record_names);
    tcase_add_test(tc, zone_from_soa);
    tcase_add_test(tc, zone_not_found);
    tcase_add_test(tc, cname_follow);
    tcase_add_test(tc, txt_present);
    tcase_add_test(tc, update_errors);
    tcase_add_test(tc, unsigned_refusals_are_transient);
    tcase_add_test(tc, answer_must_match_id_and_question);
    tcase_add_test(tc, update_answer_may_omit_the_zone);
    tcase_add_test(tc, txt_view_follows_the_cname);
    tcase_add_test(tc, wire_messages);
    tcase_add_test(tc, wire_real_answers);
    tcase_add_test(tc, wait_stops_on_abort);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(dns_suite)
