/* test_crypto.c: unit tests for acme_crypto: keys, PEM handling, certificate
 * parsing, CSRs, the tls-alpn-01 certificate, ARI ids and chain checks. */

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_file_info.h>

/* The tests build a small CA with OpenSSL directly so that the code under
 * test is checked against certificates it did not make itself. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme_util.h"
#include "acme_crypto.h"
#include "acme_test.h"

static apr_pool_t *pool;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    pool = NULL;
}

static apr_array_header_t *names_of(const char *first, ...)
{
    apr_array_header_t *a = apr_array_make(pool, 4, sizeof(const char *));
    const char *s;
    va_list ap;

    va_start(ap, first);
    for (s = first; s; s = va_arg(ap, const char *)) {
        APR_ARRAY_PUSH(a, const char *) = s;
    }
    va_end(ap);
    return a;
}

static const char *name_at(const apr_array_header_t *a, int i)
{
    return APR_ARRAY_IDX(a, i, const char *);
}

static const char *mkdtemp_dir(void)
{
    const char *tmp;
    char *tpl;

    ck_assert_int_eq(apr_temp_dir_get(&tmp, pool), APR_SUCCESS);
    tpl = apr_pstrcat(pool, tmp, "/acme-crypto-XXXXXX", NULL);
    ck_assert_ptr_nonnull(mkdtemp(tpl));
    return tpl;
}

static void rm_rf(const char *dir)
{
    apr_dir_t *d;
    apr_finfo_t fi;

    if (apr_dir_open(&d, dir, pool) == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
            if (strcmp(fi.name, ".") && strcmp(fi.name, "..")) {
                apr_file_remove(apr_pstrcat(pool, dir, "/", fi.name, NULL), pool);
            }
        }
        apr_dir_close(d);
    }
    apr_dir_remove(dir, pool);
}

static int dir_entries(const char *dir)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    int n = 0;

    ck_assert_int_eq(apr_dir_open(&d, dir, pool), APR_SUCCESS);
    while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
        if (strcmp(fi.name, ".") && strcmp(fi.name, "..")) {
            ++n;
        }
    }
    apr_dir_close(d);
    return n;
}

static void write_file(const char *path, const char *data)
{
    apr_file_t *f;
    apr_size_t n;

    ck_assert_int_eq(apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_TRUNCATE,
                                   APR_FPROT_OS_DEFAULT, pool), APR_SUCCESS);
    ck_assert_int_eq(apr_file_write_full(f, data, strlen(data), &n), APR_SUCCESS);
    apr_file_close(f);
}

/* ---- key types --------------------------------------------------------------- */

START_TEST(key_type_names_parse_both_ways)
{
    ck_assert_int_eq(acme_key_type_parse("P-256"), ACME_KEY_P256);
    ck_assert_int_eq(acme_key_type_parse("p-384"), ACME_KEY_P384);
    ck_assert_int_eq(acme_key_type_parse("rsa-2048"), ACME_KEY_RSA2048);
    ck_assert_int_eq(acme_key_type_parse("RSA-3072"), ACME_KEY_RSA3072);
    ck_assert_int_eq(acme_key_type_parse("RSA-4096"), ACME_KEY_RSA4096);
    ck_assert_int_eq(acme_key_type_parse("rsa"), ACME_KEY_RSA2048);
    ck_assert_int_eq(acme_key_type_parse("EC"), ACME_KEY_P256);
    ck_assert_int_eq(acme_key_type_parse("ecdsa"), ACME_KEY_P256);
    ck_assert_int_eq(acme_key_type_parse("P-521"), ACME_KEY_NONE);
    ck_assert_int_eq(acme_key_type_parse("RSA-1024"), ACME_KEY_NONE);
    ck_assert_int_eq(acme_key_type_parse(""), ACME_KEY_NONE);
    ck_assert_int_eq(acme_key_type_parse(NULL), ACME_KEY_NONE);
    ck_assert_str_eq(acme_key_type_name(ACME_KEY_P384), "P-384");
    ck_assert_str_eq(acme_key_type_name(ACME_KEY_RSA4096), "RSA-4096");
    ck_assert_str_eq(acme_key_type_file_tag(ACME_KEY_P256), "p256");
    ck_assert_str_eq(acme_key_type_file_tag(ACME_KEY_RSA3072), "rsa3072");
    ck_assert_int_eq(acme_key_type_parse(acme_key_type_file_tag(ACME_KEY_RSA2048)), ACME_KEY_RSA2048);
}
END_TEST

static const acme_key_type_t all_types[] = {
    ACME_KEY_P256, ACME_KEY_P384, ACME_KEY_RSA2048, ACME_KEY_RSA3072, ACME_KEY_RSA4096
};

START_TEST(key_gen_every_type_survives_pem_round_trip)
{
    acme_key_type_t t = all_types[_i];
    acme_pkey_t *key, *back;
    const char *pem, *pem2;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, t), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_type(key), t);
    ck_assert(acme_pkey_is_private(key));
    ck_assert_int_eq(acme_pkey_to_pem(&pem, pool, key), APR_SUCCESS);
    ck_assert_msg(!strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28), "not PKCS#8: %.40s", pem);
    ck_assert_int_eq(acme_pkey_from_pem(&back, pool, pem, strlen(pem)), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_type(back), t);
    ck_assert_int_eq(acme_pkey_to_pem(&pem2, pool, back), APR_SUCCESS);
    ck_assert_str_eq(pem, pem2);
}
END_TEST

START_TEST(key_gen_rejects_none)
{
    acme_pkey_t *key = (acme_pkey_t *)1;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_NONE), APR_EINVAL);
    ck_assert_ptr_null(key);
}
END_TEST

static const char *evp_to_pem(EVP_PKEY *k, const EVP_CIPHER *enc)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    const char *pem;

    ck_assert(PEM_write_bio_PrivateKey(bio, k, enc, (unsigned char *)"secret", enc ? 6 : 0,
                                       NULL, NULL));
    n = BIO_get_mem_data(bio, &data);
    pem = apr_pstrmemdup(pool, data, (apr_size_t)n);
    BIO_free(bio);
    return pem;
}

START_TEST(key_from_malformed_pem_fails_cleanly)
{
    acme_pkey_t *key, *k2;
    acme_cert_t *cert;
    apr_array_header_t *names = names_of("example.org", NULL);
    const char *pem, *cert_pem, *enc_pem, *rsa1024_pem, *ed_pem, *bad_body;
    EVP_PKEY *evp;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_to_pem(&pem, pool, key), APR_SUCCESS);

    ck_assert_int_eq(acme_pkey_from_pem(&k2, pool, "", 0), APR_EINVAL);
    ck_assert_ptr_null(k2);
    ck_assert_int_eq(acme_pkey_from_pem(&k2, pool, NULL, 0), APR_EINVAL);
    /* truncated in the middle of the base64 body */
    ck_assert_int_eq(acme_pkey_from_pem(&k2, pool, pem, strlen(pem) / 2), APR_EINVAL);
    /* without the END line */
    ck_assert_int_eq(acme_pkey_from_pem(&k2, pool, pem, strlen(pem) - 26), APR_EINVAL);
    ck_assert_int_eq(acme_pkey_from_pem(&k2, pool, "garbage\x01\x02", 9), APR_EINVAL);
    bad_body = "-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n";
    ck_assert_int_eq(acme_pkey_from_pem(&k2, pool, bad_body, strlen(bad_body)), APR_EINVAL);

    /* a certificate where a key is expected */
    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names, NULL, apr_time_from_sec(86400)),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_cert_to_pem(&cert_pem, pool, cert), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_from_pem(&k2, pool, cert_pem, strlen(cert_pem)), APR_EINVAL);

    /* encrypted: must fail, not prompt on the terminal */
    evp = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    enc_pem = evp_to_pem(evp, EVP_aes_128_cbc());
    EVP_PKEY_free(evp);
    ck_assert_ptr_nonnull(strstr(enc_pem, "ENCRYPTED"));
    ck_assert_int_eq(acme_pkey_from_pem(&k2, pool, enc_pem, strlen(enc_pem)), APR_EINVAL);

    /* valid keys of unsupported types */
    evp = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    rsa1024_pem = evp_to_pem(evp, NULL);
    EVP_PKEY_free(evp);
    ck_assert_int_eq(acme_pkey_from_pem(&k2, pool, rsa1024_pem, strlen(rsa1024_pem)), APR_EINVAL);
    evp = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ed_pem = evp_to_pem(evp, NULL);
    EVP_PKEY_free(evp);
    ck_assert_int_eq(acme_pkey_from_pem(&k2, pool, ed_pem, strlen(ed_pem)), APR_EINVAL);
    ck_assert_ptr_null(k2);
}
END_TEST

START_TEST(key_save_is_0600_atomic_and_loads_back)
{
    const char *dir = mkdtemp_dir();
    const char *path = apr_pstrcat(pool, dir, "/privkey.pem", NULL);
    const char *pem, *pem2;
    acme_pkey_t *key, *key2, *back;
    apr_finfo_t fi;
    mode_t old;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P384), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_gen(&key2, pool, ACME_KEY_P256), APR_SUCCESS);
    /* With umask 0 a file created 0644 and chmod-ed later would show it. */
    old = umask(0);
    ck_assert_int_eq(acme_pkey_save(key, pool, path), APR_SUCCESS);
    umask(old);
    ck_assert_int_eq(apr_stat(&fi, path, APR_FINFO_PROT | APR_FINFO_TYPE, pool), APR_SUCCESS);
    ck_assert_int_eq(fi.filetype, APR_REG);
    ck_assert_int_eq(fi.protection, APR_FPROT_UREAD | APR_FPROT_UWRITE);
    ck_assert_int_eq(dir_entries(dir), 1); /* no temp file left behind */

    ck_assert_int_eq(acme_pkey_load(&back, pool, path), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_type(back), ACME_KEY_P384);
    ck_assert_int_eq(acme_pkey_to_pem(&pem, pool, key), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_to_pem(&pem2, pool, back), APR_SUCCESS);
    ck_assert_str_eq(pem, pem2);

    /* replacing an existing key */
    ck_assert_int_eq(acme_pkey_save(key2, pool, path), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_load(&back, pool, path), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_type(back), ACME_KEY_P256);
    ck_assert_int_eq(dir_entries(dir), 1);

    /* into a directory that does not exist: an error, nothing created */
    ck_assert_int_ne(acme_pkey_save(key, pool, apr_pstrcat(pool, dir, "/nope/k.pem", NULL)),
                     APR_SUCCESS);
    rm_rf(dir);
}
END_TEST

START_TEST(key_load_errors)
{
    const char *dir = mkdtemp_dir();
    const char *path = apr_pstrcat(pool, dir, "/bad.pem", NULL);
    acme_pkey_t *key;
    apr_status_t rv;

    rv = acme_pkey_load(&key, pool, apr_pstrcat(pool, dir, "/missing.pem", NULL));
    ck_assert(APR_STATUS_IS_ENOENT(rv));
    ck_assert_ptr_null(key);
    write_file(path, "this is not a key\n");
    ck_assert_int_eq(acme_pkey_load(&key, pool, path), APR_EINVAL);
    write_file(path, "");
    ck_assert_int_eq(acme_pkey_load(&key, pool, path), APR_EINVAL);
    /* a directory is not a key file */
    ck_assert_int_ne(acme_pkey_load(&key, pool, dir), APR_SUCCESS);
    ck_assert_ptr_null(key);
    rm_rf(dir);
}
END_TEST

/* ---- certificates -------------------------------------------------------------- */

static const char *fp_of_der(const unsigned char *der, apr_size_t len)
{
    unsigned char md[32];
    char *s = apr_palloc(pool, 32 * 3);
    int i;

    acme_sha256(md, der, len);
    for (i = 0; i < 32; ++i) {
        apr_snprintf(s + i * 3, 4, i < 31 ? "%02X:" : "%02X", md[i]);
    }
    return s;
}

START_TEST(self_signed_cert_parses_back)
{
    acme_pkey_t *key, *other;
    acme_cert_t *cert, *again;
    apr_array_header_t *sans;
    const char *pem, *serial, *fp;
    const unsigned char *der;
    apr_size_t der_len, i;
    apr_time_t now = apr_time_now(), nb, na;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_gen(&other, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key,
                                           names_of("www.example.org", "example.org", "192.0.2.1",
                                                    "2001:db8:0:0::1", NULL),
                                           NULL, apr_time_from_sec(30 * 86400)), APR_SUCCESS);
    nb = acme_cert_not_before(cert);
    na = acme_cert_not_after(cert);
    ck_assert(nb > now - apr_time_from_sec(3600 + 120) && nb < now - apr_time_from_sec(3600 - 120));
    ck_assert_int_eq(apr_time_sec(na - nb), 30 * 86400);

    ck_assert_int_eq(acme_cert_sans(&sans, pool, cert), APR_SUCCESS);
    ck_assert_int_eq(sans->nelts, 4);
    ck_assert_str_eq(name_at(sans, 0), "www.example.org");
    ck_assert_str_eq(name_at(sans, 1), "example.org");
    ck_assert_str_eq(name_at(sans, 2), "192.0.2.1");
    ck_assert_str_eq(name_at(sans, 3), "2001:db8::1"); /* canonical text */

    ck_assert_str_eq(acme_cert_subject_cn(cert, pool), "www.example.org");
    ck_assert_str_eq(acme_cert_issuer_cn(cert, pool), "www.example.org");

    serial = acme_cert_serial_hex(cert, pool);
    ck_assert_ptr_nonnull(serial);
    ck_assert_uint_ge(strlen(serial), 30);
    for (i = 0; serial[i]; ++i) {
        ck_assert_msg(strchr("0123456789ABCDEF", serial[i]), "serial %s", serial);
    }

    ck_assert_int_eq(acme_cert_to_der(&der, &der_len, pool, cert), APR_SUCCESS);
    fp = acme_cert_fingerprint(cert, pool);
    ck_assert_uint_eq(strlen(fp), 95);
    ck_assert_str_eq(fp, fp_of_der(der, der_len));

    ck_assert(acme_cert_matches_key(cert, key));
    ck_assert(!acme_cert_matches_key(cert, other));

    ck_assert_int_eq(acme_cert_to_pem(&pem, pool, cert), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_from_pem(&again, pool, pem, strlen(pem)), APR_SUCCESS);
    ck_assert_str_eq(acme_cert_fingerprint(again, pool), fp);
    ck_assert_str_eq(acme_cert_serial_hex(again, pool), serial);

    ck_assert(acme_cert_covers(cert, names_of("example.org", "www.example.org", NULL)));
    ck_assert(acme_cert_covers(cert, names_of("192.0.2.1", "2001:0db8::0001", NULL)));
    ck_assert(acme_cert_covers(cert, names_of("EXAMPLE.org", NULL)));
    ck_assert(!acme_cert_covers(cert, names_of("example.org", "other.org", NULL)));
    ck_assert(!acme_cert_covers(cert, names_of("a.example.org", NULL)));
    ck_assert(!acme_cert_covers(cert, names_of("192.0.2.2", NULL)));

    /* no AKI in a self-signed certificate of ours */
    ck_assert_int_eq(acme_cert_ari_id(&pem, pool, cert), APR_ENOENT);
    /* no acmeIdentifier either */
    {
        const unsigned char *digest;
        int crit;
        ck_assert_int_eq(acme_cert_get_acme_id(&digest, &crit, pool, cert), APR_ENOENT);
    }
}
END_TEST

START_TEST(self_signed_cn_rules)
{
    acme_pkey_t *key;
    acme_cert_t *cert;
    /* 70 bytes: a valid DNS name but longer than a CN may be */
    const char *long_name = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.org";
    apr_array_header_t *sans;

    ck_assert_uint_eq(strlen(long_name), 70);
    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_RSA2048), APR_SUCCESS);
    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names_of(long_name, "b.example.org", NULL),
                                           NULL, apr_time_from_sec(3600)), APR_SUCCESS);
    ck_assert_ptr_null(acme_cert_subject_cn(cert, pool));
    ck_assert_int_eq(acme_cert_sans(&sans, pool, cert), APR_SUCCESS);
    ck_assert_str_eq(name_at(sans, 0), long_name);

    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names_of("10.1.2.3", NULL), NULL,
                                           apr_time_from_sec(3600)), APR_SUCCESS);
    ck_assert_ptr_null(acme_cert_subject_cn(cert, pool));

    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names_of("a.example.org", NULL),
                                           "Fallback", apr_time_from_sec(3600)), APR_SUCCESS);
    ck_assert_str_eq(acme_cert_subject_cn(cert, pool), "Fallback");

    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names_of(NULL), NULL,
                                           apr_time_from_sec(3600)), APR_EINVAL);
    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names_of("a.example.org", NULL),
                                           NULL, 0), APR_EINVAL);
}
END_TEST

START_TEST(wildcard_coverage)
{
    acme_pkey_t *key;
    acme_cert_t *cert;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names_of("*.example.org", NULL), NULL,
                                           apr_time_from_sec(3600)), APR_SUCCESS);
    ck_assert(acme_cert_covers(cert, names_of("a.example.org", "*.example.org", NULL)));
    ck_assert(!acme_cert_covers(cert, names_of("example.org", NULL)));
    ck_assert(!acme_cert_covers(cert, names_of("a.b.example.org", NULL)));
}
END_TEST

START_TEST(cert_and_chain_malformed_input)
{
    acme_pkey_t *key;
    acme_cert_t *cert, *c2;
    apr_array_header_t *chain;
    const char *pem, *pem2, *two, *broken, *dir, *path;
    apr_status_t rv;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names_of("one.example", NULL), NULL,
                                           apr_time_from_sec(3600)), APR_SUCCESS);
    ck_assert_int_eq(acme_test_self_signed(&c2, pool, key, names_of("two.example", NULL), NULL,
                                           apr_time_from_sec(3600)), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_to_pem(&pem, pool, cert), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_to_pem(&pem2, pool, c2), APR_SUCCESS);

    ck_assert_int_eq(acme_cert_from_pem(&c2, pool, "", 0), APR_EINVAL);
    ck_assert_int_eq(acme_cert_from_pem(&c2, pool, "garbage", 7), APR_EINVAL);
    ck_assert_int_eq(acme_cert_from_pem(&c2, pool, pem, strlen(pem) / 2), APR_EINVAL);
    ck_assert_ptr_null(c2);

    two = apr_pstrcat(pool, pem, pem2, NULL);
    ck_assert_int_eq(acme_chain_from_pem(&chain, pool, two, strlen(two)), APR_SUCCESS);
    ck_assert_int_eq(chain->nelts, 2);
    ck_assert_str_eq(acme_cert_subject_cn(APR_ARRAY_IDX(chain, 0, acme_cert_t *), pool), "one.example");
    ck_assert_str_eq(acme_cert_subject_cn(APR_ARRAY_IDX(chain, 1, acme_cert_t *), pool), "two.example");

    ck_assert_int_eq(acme_chain_from_pem(&chain, pool, "", 0), APR_ENOENT);
    ck_assert_int_eq(acme_chain_from_pem(&chain, pool, "no pem here\n", 12), APR_ENOENT);
    ck_assert_ptr_null(chain);
    /* a good leaf followed by a damaged certificate is not a chain */
    broken = apr_pstrcat(pool, pem, apr_pstrndup(pool, pem2, strlen(pem2) / 2), NULL);
    ck_assert_int_eq(acme_chain_from_pem(&chain, pool, broken, strlen(broken)), APR_EINVAL);
    broken = apr_pstrcat(pool, pem, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", NULL);
    ck_assert_int_eq(acme_chain_from_pem(&chain, pool, broken, strlen(broken)), APR_EINVAL);

    dir = mkdtemp_dir();
    path = apr_pstrcat(pool, dir, "/chain.pem", NULL);
    rv = acme_chain_load(&chain, pool, path);
    ck_assert(APR_STATUS_IS_ENOENT(rv));
    write_file(path, two);
    ck_assert_int_eq(acme_chain_load(&chain, pool, path), APR_SUCCESS);
    ck_assert_int_eq(chain->nelts, 2);
    rm_rf(dir);
}
END_TEST

/* ---- CSR ------------------------------------------------------------------------------ */

START_TEST(csr_round_trip_names_and_cn)
{
    acme_pkey_t *key;
    const unsigned char *der;
    unsigned char *bad;
    apr_size_t len;
    apr_array_header_t *names;
    const char *cn;
    const char *long_name = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.example.org";
    int t;

    for (t = 0; t < 2; ++t) {
        ck_assert_int_eq(acme_pkey_gen(&key, pool, t ? ACME_KEY_RSA2048 : ACME_KEY_P256), APR_SUCCESS);
        ck_assert_int_eq(acme_csr_make(&der, &len, pool, key,
                                       names_of("example.org", "www.example.org", "192.0.2.7",
                                                "2001:db8::7", NULL)), APR_SUCCESS);
        ck_assert_int_eq(acme_csr_names(&names, &cn, pool, der, len), APR_SUCCESS);
        ck_assert_str_eq(cn, "example.org");
        ck_assert_int_eq(names->nelts, 4);
        ck_assert_str_eq(name_at(names, 0), "example.org");
        ck_assert_str_eq(name_at(names, 1), "www.example.org");
        ck_assert_str_eq(name_at(names, 2), "192.0.2.7");
        ck_assert_str_eq(name_at(names, 3), "2001:db8::7");
    }

    ck_assert_uint_eq(strlen(long_name), 70);
    ck_assert_int_eq(acme_csr_make(&der, &len, pool, key, names_of(long_name, "c.example.org", NULL)),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_csr_names(&names, &cn, pool, der, len), APR_SUCCESS);
    ck_assert_ptr_null(cn);
    ck_assert_int_eq(names->nelts, 2);
    ck_assert_str_eq(name_at(names, 0), long_name);

    ck_assert_int_eq(acme_csr_make(&der, &len, pool, key, names_of("::1", "d.example.org", NULL)),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_csr_names(&names, &cn, pool, der, len), APR_SUCCESS);
    ck_assert_ptr_null(cn);
    ck_assert_str_eq(name_at(names, 0), "::1");

    /* 64 bytes is still allowed in the CN */
    ck_assert_int_eq(acme_csr_make(&der, &len, pool, key, names_of(long_name + 6, NULL)), APR_SUCCESS);
    ck_assert_int_eq(acme_csr_names(&names, &cn, pool, der, len), APR_SUCCESS);
    ck_assert_str_eq(cn, long_name + 6);

    {
        const unsigned char *none;
        apr_size_t none_len;
        ck_assert_int_eq(acme_csr_make(&none, &none_len, pool, key, names_of(NULL)), APR_EINVAL);
        ck_assert_ptr_null(none);
        ck_assert_int_eq(acme_csr_make(&none, &none_len, pool, key, names_of("ok.example", "bad name!", NULL)),
                         APR_EINVAL);
        ck_assert_int_eq(acme_csr_make(&none, &none_len, pool, key, names_of("", NULL)), APR_EINVAL);
    }

    /* malformed CSRs */
    ck_assert_int_eq(acme_csr_names(&names, &cn, pool, (const unsigned char *)"\x30\x03\x02\x01", 4),
                     APR_EINVAL);
    ck_assert_int_eq(acme_csr_names(&names, &cn, pool, der, len - 1), APR_EINVAL);
    ck_assert_int_eq(acme_csr_names(&names, &cn, pool, der, 0), APR_EINVAL);
    bad = apr_pmemdup(pool, der, len);
    bad[len - 1] ^= 0x01; /* inside the signature */
    ck_assert_int_eq(acme_csr_names(&names, &cn, pool, bad, len), APR_EINVAL);
}
END_TEST

/* ---- tls-alpn-01 ---------------------------------------------------------------------- */

START_TEST(tls_alpn01_cert_has_critical_acme_id)
{
    acme_pkey_t *key;
    acme_cert_t *cert;
    apr_array_header_t *sans;
    const unsigned char *digest;
    unsigned char expect[32];
    const char *authz = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    const char *pem;
    apr_time_t now = apr_time_now();
    int crit = 0, idx;
    BIO *bio;
    X509 *x;
    ASN1_OBJECT *oid;
    const ASN1_OCTET_STRING *raw;
    const unsigned char *rd;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_tls_alpn01(&cert, pool, key, "example.org", authz), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_get_acme_id(&digest, &crit, pool, cert), APR_SUCCESS);
    ck_assert_int_eq(crit, 1);
    acme_sha256(expect, authz, strlen(authz));
    ck_assert_mem_eq(digest, expect, 32);
    ck_assert_int_eq(acme_cert_sans(&sans, pool, cert), APR_SUCCESS);
    ck_assert_int_eq(sans->nelts, 1);
    ck_assert_str_eq(name_at(sans, 0), "example.org");
    ck_assert(acme_cert_matches_key(cert, key));
    ck_assert(acme_cert_not_before(cert) < now && acme_cert_not_after(cert) > now);
    ck_assert(acme_cert_not_after(cert) - acme_cert_not_before(cert) < apr_time_from_sec(30 * 86400));

    /* RFC 8737 section 3: extnValue is the DER of OCTET STRING(32 bytes) */
    ck_assert_int_eq(acme_cert_to_pem(&pem, pool, cert), APR_SUCCESS);
    bio = BIO_new_mem_buf(pem, -1);
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ck_assert_ptr_nonnull(x);
    oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    idx = X509_get_ext_by_OBJ(x, oid, -1);
    ck_assert_int_ge(idx, 0);
    raw = X509_EXTENSION_get_data(X509_get_ext(x, idx));
    ck_assert_int_eq(ASN1_STRING_length(raw), 34);
    rd = ASN1_STRING_get0_data(raw);
    ck_assert_int_eq(rd[0], 0x04);
    ck_assert_int_eq(rd[1], 0x20);
    ck_assert_mem_eq(rd + 2, expect, 32);
    ASN1_OBJECT_free(oid);
    X509_free(x);

    /* IP identifiers (RFC 8738) go into an iPAddress SAN */
    ck_assert_int_eq(acme_cert_tls_alpn01(&cert, pool, key, "192.0.2.9", authz), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_sans(&sans, pool, cert), APR_SUCCESS);
    ck_assert_str_eq(name_at(sans, 0), "192.0.2.9");
    ck_assert(acme_cert_covers(cert, names_of("192.0.2.9", NULL)));
    ck_assert_int_eq(acme_cert_get_acme_id(&digest, &crit, pool, cert), APR_SUCCESS);

    ck_assert_int_eq(acme_cert_tls_alpn01(&cert, pool, key, "", authz), APR_EINVAL);
    ck_assert_int_eq(acme_cert_tls_alpn01(&cert, pool, key, "example.org", NULL), APR_EINVAL);
}
END_TEST

/* ---- RFC 9773 ------------------------------------------------------------------------------- */

/* The example certificate of RFC 9773 section 4.1 (AKI 69:88:5B:..., serial
 * 0x87654321, whose DER INTEGER needs a leading 0x00). */
static const char *rfc9773_cert =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBQzCB66ADAgECAgUAh2VDITAKBggqhkjOPQQDAjAVMRMwEQYDVQQDEwpFeGFt\n"
    "cGxlIENBMCIYDzAwMDEwMTAxMDAwMDAwWhgPMDAwMTAxMDEwMDAwMDBaMBYxFDAS\n"
    "BgNVBAMTC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeBZu\n"
    "7cbpAYNXZLbbh8rNIzuOoqOOtmxA1v7cRm//AwyMwWxyHz4zfwmBhcSrf47NUAFf\n"
    "qzLQ2PPQxdTXREYEnKMjMCEwHwYDVR0jBBgwFoAUaYhba4dGQEHhs3uEe6CuLN4B\n"
    "yNQwCgYIKoZIzj0EAwIDRwAwRAIge09+S5TZAlw5tgtiVvuERV6cT4mfutXIlwTb\n"
    "+FYN/8oCIClDsqBklhB9KAelFiYt9+6FDj3z4KGVelYM5MdsO3pK\n"
    "-----END CERTIFICATE-----\n";

START_TEST(ari_id_matches_rfc9773_example)
{
    acme_cert_t *cert;
    const char *id;

    ck_assert_int_eq(acme_cert_from_pem(&cert, pool, rfc9773_cert, strlen(rfc9773_cert)), APR_SUCCESS);
    ck_assert_int_eq(acme_cert_ari_id(&id, pool, cert), APR_SUCCESS);
    ck_assert_str_eq(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    ck_assert_str_eq(acme_cert_serial_hex(cert, pool), "87654321");
    ck_assert_str_eq(acme_cert_issuer_cn(cert, pool), "Example CA");
    ck_assert_str_eq(acme_cert_subject_cn(cert, pool), "example.com");
    /* 0001-01-01T00:00:00Z: far before the epoch, must not wrap */
    ck_assert(acme_cert_not_before(cert) < 0);
    ck_assert_int_eq(acme_cert_not_before(cert), acme_cert_not_after(cert));
    ck_assert(apr_time_sec(acme_cert_not_before(cert)) == -62135596800LL);
}
END_TEST

/* ---- chain verification against a CA built here ----------------------------------------------- */

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ck_assert_ptr_nonnull(ext);
    ck_assert(X509_add_ext(x, ext, -1));
    X509_EXTENSION_free(ext);
}

static X509 *mk_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, const char *cn, long serial,
                     int ca, long days)
{
    X509 *x = X509_new();

    ck_assert(X509_set_version(x, 2));
    ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), serial));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), days * 86400));
    ck_assert(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                         (const unsigned char *)cn, -1, -1, 0));
    ck_assert(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x)));
    ck_assert(X509_set_pubkey(x, key));
    add_ext(x, issuer ? issuer : x, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(x, issuer ? issuer : x, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
    if (issuer) {
        add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
    }
    if (!ca) {
        add_ext(x, issuer, NID_subject_alt_name, apr_pstrcat(pool, "DNS:", cn, NULL));
    }
    ck_assert(X509_sign(x, signer, EVP_sha256()) > 0);
    return x;
}

static const char *x509_pem(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    const char *pem;

    ck_assert(PEM_write_bio_X509(bio, x));
    n = BIO_get_mem_data(bio, &data);
    pem = apr_pstrmemdup(pool, data, (apr_size_t)n);
    BIO_free(bio);
    return pem;
}

START_TEST(chain_verify_with_intermediate)
{
    EVP_PKEY *root_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *int_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *root, *inter, *leaf;
    const char *dir = mkdtemp_dir();
    const char *ca_file = apr_pstrcat(pool, dir, "/roots.pem", NULL);
    const char *bad_ca = apr_pstrcat(pool, dir, "/bad.pem", NULL);
    const char *both, *err = NULL, *id, *expect_id;
    const ASN1_OCTET_STRING *ski;
    apr_array_header_t *chain, *leaf_only;
    acme_cert_t *leaf_cert;

    root = mk_cert(root_key, root_key, NULL, "Test Root", 1, 1, 3650);
    inter = mk_cert(int_key, root_key, root, "Test Intermediate", 2, 1, 1000);
    /* serial 0x8001: the DER INTEGER needs a leading zero byte */
    leaf = mk_cert(leaf_key, int_key, inter, "leaf.example.org", 0x8001, 0, 90);
    write_file(ca_file, x509_pem(root));
    write_file(bad_ca, "not a certificate\n");

    both = apr_pstrcat(pool, x509_pem(leaf), x509_pem(inter), NULL);
    ck_assert_int_eq(acme_chain_from_pem(&chain, pool, both, strlen(both)), APR_SUCCESS);
    ck_assert_int_eq(chain->nelts, 2);
    leaf_cert = APR_ARRAY_IDX(chain, 0, acme_cert_t *);
    ck_assert_str_eq(acme_cert_issuer_cn(leaf_cert, pool), "Test Intermediate");
    ck_assert_str_eq(acme_cert_subject_cn(leaf_cert, pool), "leaf.example.org");
    ck_assert_str_eq(acme_cert_serial_hex(leaf_cert, pool), "8001");

    ski = X509_get0_subject_key_id(inter);
    ck_assert_ptr_nonnull(ski);
    expect_id = apr_pstrcat(pool, acme_b64url_encode(pool, ASN1_STRING_get0_data(ski),
                                                     (apr_size_t)ASN1_STRING_length(ski)),
                            ".AIAB", NULL);
    ck_assert_int_eq(acme_cert_ari_id(&id, pool, leaf_cert), APR_SUCCESS);
    ck_assert_str_eq(id, expect_id);

    ck_assert_int_eq(acme_chain_verify(chain, ca_file, 0, &err, pool), APR_SUCCESS);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(acme_chain_verify(chain, ca_file, apr_time_now() + apr_time_from_sec(30 * 86400),
                                       &err, pool), APR_SUCCESS);

    /* after the leaf expired */
    ck_assert_int_eq(acme_chain_verify(chain, ca_file, apr_time_now() + apr_time_from_sec(200 * 86400),
                                       &err, pool), APR_EINVAL);
    ck_assert_str_eq(err, "certificate has expired");
    /* before it was valid */
    ck_assert_int_eq(acme_chain_verify(chain, ca_file, apr_time_now() - apr_time_from_sec(2 * 86400),
                                       &err, pool), APR_EINVAL);
    ck_assert_str_eq(err, "certificate is not yet valid");

    /* the intermediate is missing */
    leaf_only = apr_array_make(pool, 1, sizeof(acme_cert_t *));
    APR_ARRAY_PUSH(leaf_only, acme_cert_t *) = leaf_cert;
    ck_assert_int_eq(acme_chain_verify(leaf_only, ca_file, 0, &err, pool), APR_EINVAL);
    ck_assert_str_eq(err, "unable to get local issuer certificate");

    ck_assert_int_ne(acme_chain_verify(chain, bad_ca, 0, &err, pool), APR_SUCCESS);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_ne(acme_chain_verify(chain, apr_pstrcat(pool, dir, "/none.pem", NULL), 0, NULL, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_chain_verify(apr_array_make(pool, 1, sizeof(acme_cert_t *)), ca_file, 0,
                                       &err, pool), APR_EINVAL);

    X509_free(leaf);
    X509_free(inter);
    X509_free(root);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(int_key);
    EVP_PKEY_free(root_key);
    rm_rf(dir);
}
END_TEST

START_TEST(sha256_known_answer)
{
    unsigned char md[32];

    /* FIPS 180-2 example "abc" */
    acme_sha256(md, "abc", 3);
    ck_assert_str_eq(acme_b64url_encode(pool, md, 32), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}
END_TEST

/* ---- sealing (AES-256-GCM) ------------------------------------------------------ */

static const unsigned char seal_key[32] = "0123456789abcdef0123456789abcdef";

START_TEST(seal_round_trip_with_fresh_nonces)
{
    static const char secret[] = "-----BEGIN PRIVATE KEY-----\nAAAA\0binary";
    const char *s1, *s2, *out, *err;
    apr_size_t len;

    ck_assert_int_eq(acme_seal(&s1, pool, seal_key, "mod_acme/domains/a/key.pem", secret,
                               sizeof(secret)), APR_SUCCESS);
    ck_assert_int_eq(acme_seal(&s2, pool, seal_key, "mod_acme/domains/a/key.pem", secret,
                               sizeof(secret)), APR_SUCCESS);
    ck_assert(!strncmp(s1, ACME_SEAL_PREFIX, 3));
    ck_assert(acme_is_sealed(s1, strlen(s1)));
    ck_assert_str_ne(s1, s2);   /* a random nonce per seal */
    ck_assert_ptr_null(strstr(s1, "PRIVATE"));
    ck_assert_int_eq(acme_unseal(&out, &len, pool, seal_key, "mod_acme/domains/a/key.pem", s1,
                                 strlen(s1), &err), APR_SUCCESS);
    ck_assert_uint_eq(len, sizeof(secret));
    ck_assert(!memcmp(out, secret, len));
    ck_assert_int_eq(acme_seal(&s1, pool, seal_key, "k", "", 0), APR_SUCCESS);
    ck_assert_int_eq(acme_unseal(&out, &len, pool, seal_key, "k", s1, strlen(s1), &err),
                     APR_SUCCESS);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(unseal_refuses_wrong_key_moved_value_alteration_and_garbage)
{
    unsigned char other_key[32];
    const char *s, *out, *err;
    char *altered;
    apr_size_t len, n;

    memcpy(other_key, seal_key, 32);
    other_key[31] ^= 1;
    ck_assert_int_eq(acme_seal(&s, pool, seal_key, "p/domains/a/key", "secret", 6), APR_SUCCESS);
    n = strlen(s);
    ck_assert_int_eq(acme_unseal(&out, &len, pool, other_key, "p/domains/a/key", s, n, &err),
                     APR_EACCES);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(strstr(err, "does not authenticate"));
    ck_assert_int_eq(acme_unseal(&out, &len, pool, seal_key, "p/domains/b/key", s, n, &err),
                     APR_EACCES);
    altered = apr_pstrdup(pool, s);
    altered[10] = altered[10] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(acme_unseal(&out, &len, pool, seal_key, "p/domains/a/key", altered, n,
                                 &err), APR_EACCES);
    /* truncated: a shorter tag no longer authenticates, a stub is too short */
    ck_assert_int_ne(acme_unseal(&out, &len, pool, seal_key, "p/domains/a/key", s, n - 4, &err),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_unseal(&out, &len, pool, seal_key, "p/domains/a/key", s, 19, &err),
                     APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "too short"));
    ck_assert_int_eq(acme_unseal(&out, &len, pool, seal_key, "p/domains/a/key",
                                 "-----BEGIN PRIVATE KEY-----", 27, &err), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not a sealed value"));
    ck_assert_int_eq(acme_unseal(&out, &len, pool, seal_key, "k", "v1:!!!!", 7, &err),
                     APR_EINVAL);
    ck_assert_int_eq(acme_unseal(&out, &len, pool, seal_key, "k", "v1:AAAA\0AAAA", 12, &err),
                     APR_EINVAL);
    ck_assert_int_eq(acme_unseal(&out, &len, pool, seal_key, "k", "", 0, &err), APR_EINVAL);
    ck_assert_ptr_null(out);
}
END_TEST

static const char *write_key_file(const char *dir, const char *name, apr_size_t len,
                                  apr_fileperms_t perms)
{
    const char *path = apr_pstrcat(pool, dir, "/", name, NULL);
    apr_file_t *f;
    apr_size_t n;

    ck_assert_int_eq(apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                                   | APR_FOPEN_TRUNCATE | APR_FOPEN_BINARY, perms, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(apr_file_write_full(f, seal_key, len > 32 ? 32 : len, &n), APR_SUCCESS);
    if (len > 32) {
        ck_assert_int_eq(apr_file_write_full(f, "xxxxxxxx", len - 32, &n), APR_SUCCESS);
    }
    apr_file_close(f);
    ck_assert_int_eq(apr_file_perms_set(path, perms), APR_SUCCESS);
    return path;
}

START_TEST(store_key_load_accepts_only_a_private_32_byte_root_file)
{
    const char *dir = mkdtemp_dir(), *path, *err;
    const unsigned char *key;

    path = write_key_file(dir, "good", 32, APR_FPROT_UREAD | APR_FPROT_UWRITE);
    ck_assert_int_eq(acme_store_key_load(&key, pool, path, ACME_KEYFILE_ANY_OWNER, &err),
                     APR_SUCCESS);
    ck_assert(!memcmp(key, seal_key, 32));
    path = write_key_file(dir, "short", 31, APR_FPROT_UREAD);
    ck_assert_int_eq(acme_store_key_load(&key, pool, path, ACME_KEYFILE_ANY_OWNER, &err),
                     APR_EINVAL);
    ck_assert_ptr_null(key);
    ck_assert_msg(strstr(err, "has 31 bytes") && strstr(err, "openssl rand -out"), "%s", err);
    path = write_key_file(dir, "long", 33, APR_FPROT_UREAD);
    ck_assert_int_eq(acme_store_key_load(&key, pool, path, ACME_KEYFILE_ANY_OWNER, &err),
                     APR_EINVAL);
    ck_assert_msg(strstr(err, "has 33 bytes"), "%s", err);
    path = write_key_file(dir, "world", 32, APR_FPROT_UREAD | APR_FPROT_WREAD);
    ck_assert_int_eq(acme_store_key_load(&key, pool, path, ACME_KEYFILE_ANY_OWNER, &err),
                     APR_EINVAL);
    ck_assert_msg(strstr(err, "group or others") && strstr(err, "chmod 0400"), "%s", err);
    path = write_key_file(dir, "group", 32, APR_FPROT_UREAD | APR_FPROT_GWRITE);
    ck_assert_int_eq(acme_store_key_load(&key, pool, path, ACME_KEYFILE_ANY_OWNER, &err),
                     APR_EINVAL);
    ck_assert_int_eq(acme_store_key_load(&key, pool, dir, ACME_KEYFILE_ANY_OWNER, &err),
                     APR_EINVAL);
    ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
    ck_assert_int_ne(acme_store_key_load(&key, pool, apr_pstrcat(pool, dir, "/none", NULL),
                                         ACME_KEYFILE_ANY_OWNER, &err), APR_SUCCESS);
    ck_assert_msg(strstr(err, "cannot read"), "%s", err);
    /* the owner check: a file of another user is refused unless skipped */
    path = write_key_file(dir, "owner", 32, APR_FPROT_UREAD);
    if (getuid() == 0) {
        ck_assert_int_eq(chown(path, 65534, 65534), 0);
        ck_assert_int_eq(acme_store_key_load(&key, pool, path, 0, &err), APR_EINVAL);
        ck_assert_msg(strstr(err, "not owned by root") && strstr(err, "chown root"), "%s", err);
        ck_assert_int_eq(acme_store_key_load(&key, pool, path, ACME_KEYFILE_ANY_OWNER, &err),
                         APR_SUCCESS);
    }
    else {
        ck_assert_int_eq(acme_store_key_load(&key, pool, path, 0, &err), APR_EINVAL);
        ck_assert_msg(strstr(err, "not owned by root"), "%s", err);
    }
    rm_rf(dir);
}
END_TEST

/* The one rule for a usable pair: key match, names, validity. */
START_TEST(pair_check_on_crafted_pairs)
{
    acme_pkey_t *key, *other;
    acme_cert_t *cert;
    apr_array_header_t *chain = apr_array_make(pool, 1, sizeof(acme_cert_t *));
    apr_array_header_t *empty = apr_array_make(pool, 1, sizeof(acme_cert_t *));
    const char *why;
    apr_time_t nb, na;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_gen(&other, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names_of("a.example", "b.example",
                                                                      NULL),
                                           NULL, apr_time_from_sec(86400)), APR_SUCCESS);
    APR_ARRAY_PUSH(chain, acme_cert_t *) = cert;
    nb = acme_cert_not_before(cert);
    na = acme_cert_not_after(cert);
    ck_assert_int_eq(acme_pair_check(chain, key, names_of("b.example", NULL), nb + 60, &why,
                                     pool), APR_SUCCESS);
    ck_assert_ptr_null(why);
    /* only what is asked is checked: no names, no time */
    ck_assert_int_eq(acme_pair_check(chain, key, NULL, 0, &why, pool), APR_SUCCESS);
    ck_assert_int_eq(acme_pair_check(chain, other, NULL, 0, &why, pool), APR_EINVAL);
    ck_assert_str_eq(why, "the certificate does not match its key");
    ck_assert_int_eq(acme_pair_check(chain, NULL, NULL, 0, &why, pool), APR_EINVAL);
    ck_assert_int_eq(acme_pair_check(chain, key, names_of("c.example", NULL), 0, &why, pool),
                     APR_EINVAL);
    ck_assert_str_eq(why, "the certificate does not cover all names of the domain");
    ck_assert_int_eq(acme_pair_check(chain, key, NULL, na, &why, pool), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "expired"));
    /* an hour of clock skew before notBefore is fine, more is not */
    ck_assert_int_eq(acme_pair_check(chain, key, NULL, nb - apr_time_from_sec(3000), &why,
                                     pool), APR_SUCCESS);
    ck_assert_int_eq(acme_pair_check(chain, key, NULL, nb - apr_time_from_sec(7200), &why,
                                     pool), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "valid only from"));
    ck_assert_int_eq(acme_pair_check(empty, key, NULL, 0, &why, pool), APR_EINVAL);
    ck_assert_int_eq(acme_pair_check(NULL, key, NULL, 0, &why, pool), APR_EINVAL);
}
END_TEST

/* Every self-signed certificate of a key carries that key, the first
 * (which encodes it) and the later ones (which copy the encoding). */
START_TEST(self_signed_certificates_of_one_key_pair_with_it)
{
    static const acme_key_type_t types[] = {ACME_KEY_P256, ACME_KEY_P384, ACME_KEY_RSA2048};
    apr_array_header_t *chain = apr_array_make(pool, 1, sizeof(acme_cert_t *));
    acme_pkey_t *key, *other;
    acme_cert_t *cert;
    const char *why, *pem;
    size_t i;
    int n;

    ck_assert_int_eq(acme_pkey_gen(&other, pool, ACME_KEY_P256), APR_SUCCESS);
    for (i = 0; i < sizeof(types) / sizeof(types[0]); ++i) {
        ck_assert_int_eq(acme_pkey_gen(&key, pool, types[i]), APR_SUCCESS);
        for (n = 0; n < 3; ++n) {
            ck_assert_int_eq(acme_test_self_signed(&cert, pool, key, names_of("a.example", NULL),
                                                   NULL, apr_time_from_sec(86400)), APR_SUCCESS);
            apr_array_clear(chain);
            APR_ARRAY_PUSH(chain, acme_cert_t *) = cert;
            ck_assert_int_eq(acme_pair_check(chain, key, names_of("a.example", NULL), 0, &why,
                                             pool), APR_SUCCESS);
            ck_assert_int_eq(acme_pair_check(chain, other, NULL, 0, &why, pool), APR_EINVAL);
        }
    }
    /* no key, no certificate */
    ck_assert_int_ne(acme_cert_self_signed_pem(&pem, pool, NULL, names_of("a.example", NULL), NULL,
                                               apr_time_from_sec(86400)), APR_SUCCESS);
    ck_assert_ptr_null(pem);
}
END_TEST

static Suite *crypto_suite(void)
{
    Suite *s = suite_create("acme_crypto");
    TCase *tc;

    tc = tcase_create("keys");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, key_type_names_parse_both_ways);
    tcase_add_test(tc, pair_check_on_crafted_pairs);
    tcase_add_test(tc, self_signed_certificates_of_one_key_pair_with_it);
    tcase_add_loop_test(tc, key_gen_every_type_survives_pem_round_trip, 0,
                        (int)(sizeof(all_types) / sizeof(all_types[0])));
    tcase_add_test(tc, key_gen_rejects_none);
    tcase_add_test(tc, key_from_malformed_pem_fails_cleanly);
    tcase_add_test(tc, key_save_is_0600_atomic_and_loads_back);
    tcase_add_test(tc, key_load_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("certs");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, self_signed_cert_parses_back);
    tcase_add_test(tc, self_signed_cn_rules);
    tcase_add_test(tc, wildcard_coverage);
    tcase_add_test(tc, cert_and_chain_malformed_input);
    tcase_add_test(tc, csr_round_trip_names_and_cn);
    tcase_add_test(tc, tls_alpn01_cert_has_critical_acme_id);
    tcase_add_test(tc, ari_id_matches_rfc9773_example);
    tcase_add_test(tc, chain_verify_with_intermediate);
    tcase_add_test(tc, sha256_known_answer);
    suite_add_tcase(s, tc);

    tc = tcase_create("seal");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, seal_round_trip_with_fresh_nonces);
    tcase_add_test(tc, unseal_refuses_wrong_key_moved_value_alteration_and_garbage);
    tcase_add_test(tc, store_key_load_accepts_only_a_private_32_byte_root_file);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(crypto_suite)
