/* test_conf.c: the configuration text parsers of acme_conf.c: ManagedPortMap,
 * ManagedEAB and ManagedHttpProxy values, and the httpd.conf scan acmectl uses. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "acme_conf.h"
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
              "ManagedHttpProxy https://proxy.test:3128 proxy-ca.pem\n");
    ck_assert_str_eq(cs.store_dir, "/var/lib/acme");
    ck_assert_str_eq(cs.ca_url, "https://ca.test/dir");
    ck_assert_str_eq(cs.ca_file, "/etc/apache2/ca.pem");
    ck_assert_str_eq(cs.window, "40%");
    ck_assert_str_eq(cs.http_proxy, "https://proxy.test:3128");
    ck_assert_str_eq(cs.http_proxy_ca, "/etc/apache2/proxy-ca.pem");
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
    cs = scan("ManagedHttpProxy http://p.test:3128\nManagedHttpProxy none\n");
    ck_assert_ptr_null(cs.http_proxy);
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

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("values");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, port_map_values);
    tcase_add_test(tc, eab_values);
    tcase_add_test(tc, http_proxy_values);
    tcase_add_test(tc, scan_text_values);
    tcase_add_test(tc, scan_file_includes_itself);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(conf_suite)
