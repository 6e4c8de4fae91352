/* test_conf.c: the configuration text parsers of acme_conf.c: ManagedPortMap,
 * ManagedEAB and ManagedHttpProxy values, and the httpd.conf scan acmectl uses. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "acme_conf.h"
#include "acme_crypto.h"
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

START_TEST(port_map_values)
{
    const char *err = NULL;
    int from, port;

    ck_assert_int_eq(acme_conf_port_map(&from, &port, &err, pool, "80:8080"), APR_SUCCESS);
    ck_assert_int_eq(from, 80);
    ck_assert_int_eq(port, 8080);
    ck_assert_int_eq(acme_conf_port_map(&from, &port, &err, pool, "443:-"), APR_SUCCESS);
    ck_assert_int_eq(from, 443);
    ck_assert_int_eq(port, 0);
    ck_assert_int_eq(acme_conf_port_map(&from, &port, &err, pool, "80"), APR_EINVAL);
    ck_assert_str_eq(err, "ManagedPortMap: '80' is not of the form 80:PORT or 443:PORT");
    ck_assert_int_eq(acme_conf_port_map(&from, &port, &err, pool, "8080:80"), APR_EINVAL);
    ck_assert_str_eq(err, "ManagedPortMap: '8080:80' maps port 8080, but only the CA's ports "
                          "80 and 443 can be mapped");
    ck_assert_int_eq(acme_conf_port_map(&from, &port, &err, pool, "80:65536"), APR_EINVAL);
    ck_assert_str_eq(err, "ManagedPortMap: '65536' is not a port number or '-'");
    ck_assert_int_eq(acme_conf_port_map(&from, &port, &err, pool, "80:+1"), APR_EINVAL);
    ck_assert_int_eq(acme_conf_port_map(&from, &port, &err, pool, "80:0"), APR_EINVAL);
    ck_assert_int_eq(acme_conf_port_map(&from, &port, &err, pool, "80:"), APR_EINVAL);
}
END_TEST

START_TEST(eab_values)
{
    const char *err = NULL;
    const char *key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    int none;

    ck_assert_int_eq(acme_conf_eab(&none, &err, pool, "kid-1", key), APR_SUCCESS);
    ck_assert_int_eq(none, 0);
    ck_assert_int_eq(acme_conf_eab(&none, &err, pool, "None", NULL), APR_SUCCESS);
    ck_assert_int_eq(none, 1);
    ck_assert_int_eq(acme_conf_eab(&none, &err, pool, "kid-1", NULL), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "the HMAC key is missing"));
    ck_assert_int_eq(acme_conf_eab(&none, &err, pool, "kid-1", "YWJj"), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "shorter than 16 bytes"));
    ck_assert_int_eq(acme_conf_eab(&none, &err, pool, "kid-1", "zWNDZM6eQGHWpSRTPal5eIUY+Tu7"),
                     APR_EINVAL);
    /* the secret never reaches the message */
    ck_assert_ptr_null(strstr(err, "zWNDZM6eQGHWpSRTPal5eIUY"));
    ck_assert_ptr_nonnull(strstr(err, "kid-1"));
}
END_TEST

START_TEST(http_proxy_values)
{
    const char *err = NULL;

    ck_assert_int_eq(acme_conf_http_proxy(&err, pool, "http://proxy.example:3128"), APR_SUCCESS);
    ck_assert_int_eq(acme_conf_http_proxy(&err, pool, "https://proxy.example/"), APR_SUCCESS);
    ck_assert_int_eq(acme_conf_http_proxy(&err, pool, "http://u:p@[::1]:8080"), APR_SUCCESS);
    ck_assert_int_eq(acme_conf_http_proxy(&err, pool, "proxy.example:3128"), APR_EINVAL);
    ck_assert_str_eq(err, "ManagedHttpProxy: 'proxy.example:3128' is not a proxy URL: write "
                          "http://HOST:PORT or https://HOST:PORT");
    ck_assert_int_eq(acme_conf_http_proxy(&err, pool, "socks5://proxy.example:1080"), APR_EINVAL);
    ck_assert_int_eq(acme_conf_http_proxy(&err, pool, "http://proxy.example:3128/x"), APR_EINVAL);
    ck_assert_int_eq(acme_conf_http_proxy(&err, pool, "http://proxy.example:0"), APR_EINVAL);
    ck_assert_int_eq(acme_conf_http_proxy(&err, pool, "http://:3128"), APR_EINVAL);
    ck_assert_int_eq(acme_conf_http_proxy(&err, pool, "http://user:s3cret@proxy.example/p"),
                     APR_EINVAL);
    /* the password stays out of the message */
    ck_assert_ptr_null(strstr(err, "s3cret"));
    ck_assert_ptr_nonnull(strstr(err, "user"));
}
END_TEST

static acme_conf_scan_t scan(const char *text)
{
    acme_conf_scan_t cs;

    acme_conf_scan_init(&cs, pool, "/etc/apache2");
    cs.no_includes = 1;
    ck_assert_int_eq(acme_conf_scan_text(&cs, text, strlen(text), "t.conf"), APR_SUCCESS);
    return cs;
}

START_TEST(scan_text_values)
{
    acme_conf_scan_t cs;

    cs = scan("Define D /var/lib\n"
              "ManagedStoreDir ${D}/acme\n"
              "ManagedCA \"https://ca.test/dir\"\n"
              "ManagedCACertificateFile ca.pem\n"
              "<VirtualHost *:443>\n"
              "  ManagedCA https://inner.test/dir\n"
              "  ManagedRenewWindow 10d\n"
              "</VirtualHost>\n"
              "ManagedRenewWindow \\\n"
              "   40%\n"
              "ManagedHttpProxy https://proxy.test:3128 proxy-ca.pem\n"
              "ManagedEAB kid-1 c2VjcmV0LXNlY3JldC1zZWNyZXQ\n");
    ck_assert_str_eq(cs.store_dir, "/var/lib/acme");
    ck_assert_str_eq(cs.ca_url, "https://ca.test/dir");
    ck_assert_str_eq(cs.ca_file, "/etc/apache2/ca.pem");
    ck_assert_str_eq(cs.window, "40%");
    ck_assert_str_eq(cs.http_proxy, "https://proxy.test:3128");
    ck_assert_str_eq(cs.http_proxy_ca, "/etc/apache2/proxy-ca.pem");
    ck_assert_str_eq(cs.eab_kid, "kid-1");
    ck_assert_ptr_null(cs.eab_file);
    cs = scan("ServerRoot /srv/httpd\n"
              "<IfModule x>\n<ManagedDomain a.test>\nManagedCACertificateFile 'in ca'\n"
              "</ManagedDomain>\n</IfModule>\n"
              "ManagedStoreDir store\n# ManagedCA https://commented.test/\n");
    ck_assert_str_eq(cs.server_root, "/srv/httpd");
    ck_assert_str_eq(cs.store_dir, "/srv/httpd/store");
    ck_assert_ptr_null(cs.ca_file);
    ck_assert_str_eq(cs.ca_file_any, "/srv/httpd/in ca");
    ck_assert_ptr_null(cs.ca_url);
    ck_assert_ptr_null(cs.http_proxy);
    ck_assert_str_eq(acme_conf_root_relative(&cs, "acme"), "/srv/httpd/acme");
    cs = scan("ManagedHttpProxy http://p.test:3128\nManagedHttpProxy none\n"
              "ManagedEAB kid-1 c2VjcmV0LXNlY3JldC1zZWNyZXQ\nManagedEAB file:eab.json\n"
              "<ManagedDomain b.test>\nManagedEAB kid-2 c2VjcmV0LXNlY3JldC1zZWNyZXQ\n"
              "</ManagedDomain>\n");
    ck_assert_ptr_null(cs.http_proxy);
    ck_assert_ptr_null(cs.eab_kid);
    ck_assert_str_eq(cs.eab_file, "/etc/apache2/eab.json");
}
END_TEST

/* acmectl import matches lineages to the ManagedDomain names of both forms */
START_TEST(scan_domains)
{
    acme_conf_scan_t cs;
    apr_array_header_t *d;

    cs = scan("Define W www.b.test\n"
              "ManagedDomain A.test www.a.test\n"
              "<ManagedDomain b.test ${W}>\nManagedKeys RSA-2048\n</ManagedDomain>\n"
              "# ManagedDomain commented.test\n"
              "<ManagedDomain \"c.test\">\n</ManagedDomain>\nManagedDomain\n");
    ck_assert_int_eq(cs.domains->nelts, 3);
    d = APR_ARRAY_IDX(cs.domains, 0, apr_array_header_t *);
    ck_assert_int_eq(d->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(d, 0, const char *), "a.test");
    ck_assert_str_eq(APR_ARRAY_IDX(d, 1, const char *), "www.a.test");
    d = APR_ARRAY_IDX(cs.domains, 1, apr_array_header_t *);
    ck_assert_int_eq(d->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(d, 1, const char *), "www.b.test");
    d = APR_ARRAY_IDX(cs.domains, 2, apr_array_header_t *);
    ck_assert_int_eq(d->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(d, 0, const char *), "c.test");
}
END_TEST

START_TEST(scan_file_includes_itself)
{
    char dir[] = "/tmp/acme-conf-test-XXXXXX";
    acme_conf_scan_t cs;
    const char *path;
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    path = apr_pstrcat(pool, dir, "/httpd.conf", NULL);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "ManagedStoreDir /x\nInclude httpd.conf\n");
    fclose(f);
    acme_conf_scan_init(&cs, pool, dir);
    ck_assert_int_eq(acme_conf_scan_file(&cs, path), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(cs.err, "includes nest too deep"));
    ck_assert_str_eq(cs.store_dir, "/x");
    unlink(path);
    rmdir(dir);
}
END_TEST

static const char *eab_file(const char *dir, const char *name, const char *text, int mode)
{
    const char *path = apr_pstrcat(pool, dir, "/", name, NULL);
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, (mode_t)mode), 0);
    return path;
}

START_TEST(eab_file_values)
{
    char dir[] = "/tmp/acme-conf-eab-XXXXXX";
    const char *secret = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    const char *kid, *hmac, *err = NULL, *path;
    struct {
        const char *name, *text, *message;
        int mode;
    } bad[] = {
        {"world", "{\"kid\": \"kid-1\", \"hmac\": \"%s\"}", "group or others: chmod 0400",
         0644},
        {"group", "{\"kid\": \"kid-1\", \"hmac\": \"%s\"}", "group or others", 0640},
        {"text", "kid-1 %s", "is not a JSON object", 0600},
        {"array", "[\"kid-1\", \"%s\"]", "is not a JSON object", 0600},
        {"nohmac", "{\"kid\": \"kid-1\", \"mac\": \"%s\"}", "needs a \"kid\"", 0600},
        {"nokid", "{\"hmac\": \"%s\"}", "needs a \"kid\"", 0600},
        {"short", "{\"kid\": \"kid-1\", \"hmac\": \"%.8s\"}", "shorter than 16 bytes", 0600},
        {"b64", "{\"kid\": \"kid-1\", \"hmac\": \"%s+/\"}", "not base64url", 0600},
    };
    apr_size_t i;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    path = eab_file(dir, "good", apr_psprintf(pool, "{\"kid\": \"kid-1\", \"hmac\": \"%s\"}\n",
                                              secret), 0600);
    ck_assert_int_eq(acme_conf_eab_file(&kid, &hmac, &err, pool, path, ACME_KEYFILE_ANY_OWNER),
                     APR_SUCCESS);
    ck_assert_str_eq(kid, "kid-1");
    ck_assert_str_eq(hmac, secret);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        path = eab_file(dir, bad[i].name, apr_psprintf(pool, bad[i].text, secret), bad[i].mode);
        ck_assert_int_eq(acme_conf_eab_file(&kid, &hmac, &err, pool, path,
                                            ACME_KEYFILE_ANY_OWNER), APR_EINVAL);
        ck_assert_ptr_null(kid);
        ck_assert_msg(err && strstr(err, bad[i].message) && strstr(err, path), "%s: %s",
                      bad[i].name, err);
        /* not even the first bytes of the secret */
        ck_assert_msg(!strstr(err, "zWNDZM6e"), "%s: %s", bad[i].name, err);
        unlink(path);
    }
    ck_assert_int_ne(acme_conf_eab_file(&kid, &hmac, &err, pool, dir, ACME_KEYFILE_ANY_OWNER),
                     APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    ck_assert_int_ne(acme_conf_eab_file(&kid, &hmac, &err, pool, "/nonexistent/eab.json",
                                        ACME_KEYFILE_ANY_OWNER), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(err, "cannot read the EAB file /nonexistent/eab.json"));
    /* the owner: root's only, unless the caller skips the check */
    path = eab_file(dir, "owner", apr_psprintf(pool, "{\"kid\": \"k\", \"hmac\": \"%s\"}",
                                               secret), 0600);
    if (getuid() == 0) {
        ck_assert_int_eq(chown(path, 65534, 65534), 0);
    }
    ck_assert_int_eq(acme_conf_eab_file(&kid, &hmac, &err, pool, path, 0), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "is not owned by root: chown root"));
    unlink(path);
    unlink(apr_pstrcat(pool, dir, "/good", NULL));
    rmdir(dir);
}
END_TEST

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("values");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, port_map_values);
    tcase_add_test(tc, eab_values);
    tcase_add_test(tc, http_proxy_values);
    tcase_add_test(tc, eab_file_values);
    tcase_add_test(tc, scan_text_values);
    tcase_add_test(tc, scan_domains);
    tcase_add_test(tc, scan_file_includes_itself);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(conf_suite)
