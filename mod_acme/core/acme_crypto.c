/* acme_crypto.c: private keys, certificates, CSRs and the tls-alpn-01
 * challenge certificate on top of OpenSSL 3.0 (EVP/OSSL_PARAM only). */

#include <limits.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_portable.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme_util.h"
#include "acme_crypto.h"

/* Key and chain files are small; a cap keeps a wrong path (a log file, a
 * device) from being read into memory. */
#define ACME_MAX_KEY_FILE   (256 * 1024)
#define ACME_MAX_CHAIN_FILE (4 * 1024 * 1024)

#define ACME_ID_PE_ACME_IDENTIFIER "1.3.6.1.5.5.7.1.31"

struct acme_pkey_t {
    EVP_PKEY *pkey;
    acme_key_type_t type;
    int is_private;
    /* The public key as a certificate carries it, made on the first
     * certificate signed with this key: OpenSSL 3.0's X509_set_pubkey
     * encodes the key and decodes it again (most of the time of making a
     * self-signed certificate), and one key signs every temporary one. */
    void *spki;                   /* X509_PUBKEY, set with apr_atomic_casptr */
};

struct acme_cert_t {
    X509 *x509;
};

/* ---- helpers --------------------------------------------------------------- */

/* OpenSSL keeps a per-thread error queue shared with mod_ssl inside httpd:
 * leaving our failures on it would make mod_ssl report them later. */
static void ssl_errors_drain(const char *what)
{
    unsigned long e;
    char buf[256];

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        acme_log(ACME_LOG_MARK, ACME_LOG_TRACE1, 0, "%s: %s", what, buf);
    }
}

static apr_status_t pkey_cleanup(void *data)
{
    acme_pkey_t *key = data;

    if (key->pkey) {
        EVP_PKEY_free(key->pkey);
        key->pkey = NULL;
    }
    X509_PUBKEY_free(key->spki);
    key->spki = NULL;
    return APR_SUCCESS;
}

static apr_status_t cert_cleanup(void *data)
{
    acme_cert_t *cert = data;

    if (cert->x509) {
        X509_free(cert->x509);
        cert->x509 = NULL;
    }
    return APR_SUCCESS;
}

static acme_cert_t *cert_wrap(apr_pool_t *p, X509 *x)
{
    acme_cert_t *cert = apr_pcalloc(p, sizeof(*cert));

    cert->x509 = x;
    apr_pool_cleanup_register(p, cert, cert_cleanup, apr_pool_cleanup_null);
    return cert;
}

/* A memory BIO over caller data; NULL if len does not fit OpenSSL's int. */
static BIO *bio_from(const char *data, apr_size_t len)
{
    if (!data || len > (apr_size_t)INT_MAX) {
        return NULL;
    }
    return BIO_new_mem_buf(data, (int)len);
}

static const char *bio_to_str(apr_pool_t *p, BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);

    if (n <= 0 || !data) {
        return NULL;
    }
    return apr_pstrmemdup(p, data, (apr_size_t)n);
}

/* Refuses to prompt on a terminal when a PEM key turns out to be
 * encrypted: the module runs unattended. */
static int no_password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
 * civil-from-days inverse); valid far outside time_t's range, which the
 * year-1 dates of RFC 9773's example certificate need. */
static apr_int64_t days_from_civil(apr_int64_t y, unsigned m, unsigned d)
{
    apr_int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static apr_time_t asn1_time_to_apr(const ASN1_TIME *t)
{
    struct tm tm;
    apr_int64_t secs;

    if (!t || !ASN1_TIME_to_tm(t, &tm)) {
        ssl_errors_drain("ASN1_TIME_to_tm");
        return 0;
    }
    secs = days_from_civil((apr_int64_t)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1,
                           (unsigned)tm.tm_mday) * 86400
           + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    return apr_time_from_sec(secs);
}

/* ---- key types --------------------------------------------------------------- */

static const struct {
    acme_key_type_t type;
    const char *name;
    const char *tag;
} key_types[] = {
    { ACME_KEY_P256, "P-256", "p256" },
    { ACME_KEY_P384, "P-384", "p384" },
    { ACME_KEY_RSA2048, "RSA-2048", "rsa2048" },
    { ACME_KEY_RSA3072, "RSA-3072", "rsa3072" },
    { ACME_KEY_RSA4096, "RSA-4096", "rsa4096" },
};

acme_key_type_t acme_key_type_parse(const char *s)
{
    apr_size_t i;

    if (!s) {
        return ACME_KEY_NONE;
    }
    for (i = 0; i < sizeof(key_types) / sizeof(key_types[0]); ++i) {
        if (!strcasecmp(s, key_types[i].name) || !strcasecmp(s, key_types[i].tag)) {
            return key_types[i].type;
        }
    }
    if (!strcasecmp(s, "rsa")) {
        return ACME_KEY_RSA2048;
    }
    if (!strcasecmp(s, "ec") || !strcasecmp(s, "ecdsa")) {
        return ACME_KEY_P256;
    }
    return ACME_KEY_NONE;
}

const char *acme_key_type_name(acme_key_type_t t)
{
    apr_size_t i;

    for (i = 0; i < sizeof(key_types) / sizeof(key_types[0]); ++i) {
        if (key_types[i].type == t) {
            return key_types[i].name;
        }
    }
    return "none";
}

const char *acme_key_type_file_tag(acme_key_type_t t)
{
    apr_size_t i;

    for (i = 0; i < sizeof(key_types) / sizeof(key_types[0]); ++i) {
        if (key_types[i].type == t) {
            return key_types[i].tag;
        }
    }
    return "none";
}

static acme_key_type_t evp_key_type(EVP_PKEY *pkey)
{
    char group[64];
    size_t glen = 0;

    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_EC:
        if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen)) {
            ssl_errors_drain("EVP_PKEY_get_group_name");
            return ACME_KEY_NONE;
        }
        if (!strcasecmp(group, "prime256v1") || !strcasecmp(group, "P-256")
            || !strcasecmp(group, "secp256r1")) {
            return ACME_KEY_P256;
        }
        if (!strcasecmp(group, "secp384r1") || !strcasecmp(group, "P-384")) {
            return ACME_KEY_P384;
        }
        return ACME_KEY_NONE;
    case EVP_PKEY_RSA:
        switch (EVP_PKEY_get_bits(pkey)) {
        case 2048: return ACME_KEY_RSA2048;
        case 3072: return ACME_KEY_RSA3072;
        case 4096: return ACME_KEY_RSA4096;
        default: return ACME_KEY_NONE;
        }
    default:
        return ACME_KEY_NONE;
    }
}

apr_status_t acme_pkey_wrap(acme_pkey_t **pkey, apr_pool_t *p, void *evp_pkey, int is_private)
{
    EVP_PKEY *evp = evp_pkey;
    acme_pkey_t *key;
    acme_key_type_t type;

    *pkey = NULL;
    if (!evp) {
        return APR_EINVAL;
    }
    type = evp_key_type(evp);
    if (type == ACME_KEY_NONE) {
        EVP_PKEY_free(evp);
        return APR_EINVAL;
    }
    key = apr_pcalloc(p, sizeof(*key));
    key->pkey = evp;
    key->type = type;
    key->is_private = is_private;
    apr_pool_cleanup_register(p, key, pkey_cleanup, apr_pool_cleanup_null);
    *pkey = key;
    return APR_SUCCESS;
}

apr_status_t acme_pkey_gen(acme_pkey_t **pkey, apr_pool_t *p, acme_key_type_t type)
{
    EVP_PKEY *evp = NULL;
    apr_status_t rv = APR_SUCCESS;

    *pkey = NULL;
    switch (type) {
    case ACME_KEY_P256:
        evp = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case ACME_KEY_P384:
        evp = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        break;
    case ACME_KEY_RSA2048:
        evp = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        break;
    case ACME_KEY_RSA3072:
        evp = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
        break;
    case ACME_KEY_RSA4096:
        evp = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
        break;
    default:
        rv = APR_EINVAL;
        goto leave;
    }
    if (!evp) {
        ssl_errors_drain("key generation");
        rv = APR_EGENERAL;
        goto leave;
    }
    rv = acme_pkey_wrap(pkey, p, evp, 1);
leave:
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0501) "generating a %s key failed",
                 acme_key_type_name(type));
    }
    return rv;
}

acme_key_type_t acme_pkey_type(const acme_pkey_t *key)
{
    return key ? key->type : ACME_KEY_NONE;
}

int acme_pkey_is_private(const acme_pkey_t *key)
{
    return key && key->is_private;
}

void *acme_pkey_evp(const acme_pkey_t *key)
{
    return key ? key->pkey : NULL;
}

/* The PEM goes through a secure-memory BIO so that OpenSSL wipes its copy
 * of the key when the BIO is freed. */
static apr_status_t pkey_pem_bio(BIO **pbio, const acme_pkey_t *key)
{
    BIO *bio;

    *pbio = NULL;
    if (!key || !key->pkey || !key->is_private) {
        return APR_EINVAL;
    }
    bio = BIO_new(BIO_s_secmem());
    if (!bio) {
        return APR_ENOMEM;
    }
    if (!PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL)) {
        ssl_errors_drain("PEM_write_bio_PrivateKey");
        BIO_free(bio);
        return APR_EGENERAL;
    }
    *pbio = bio;
    return APR_SUCCESS;
}

apr_status_t acme_pkey_to_pem(const char **ppem, apr_pool_t *p, const acme_pkey_t *key)
{
    BIO *bio = NULL;
    apr_status_t rv;

    *ppem = NULL;
    rv = pkey_pem_bio(&bio, key);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    *ppem = bio_to_str(p, bio);
    if (!*ppem) {
        rv = APR_EGENERAL;
    }
leave:
    if (bio) {
        BIO_free(bio);
    }
    return rv;
}

apr_status_t acme_pkey_from_pem(acme_pkey_t **pkey, apr_pool_t *p, const char *pem, apr_size_t len)
{
    BIO *bio = NULL;
    EVP_PKEY *evp = NULL;
    apr_status_t rv = APR_SUCCESS;

    *pkey = NULL;
    if (!pem || len == 0) {
        rv = APR_EINVAL;
        goto leave;
    }
    bio = bio_from(pem, len);
    if (!bio) {
        rv = APR_EINVAL;
        goto leave;
    }
    evp = PEM_read_bio_PrivateKey(bio, NULL, no_password_cb, NULL);
    if (!evp) {
        ssl_errors_drain("PEM_read_bio_PrivateKey");
        rv = APR_EINVAL;
        goto leave;
    }
    rv = acme_pkey_wrap(pkey, p, evp, 1);
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, rv, "private key of an unsupported type");
    }
leave:
    if (bio) {
        BIO_free(bio);
    }
    return rv;
}

apr_status_t acme_pkey_load(acme_pkey_t **pkey, apr_pool_t *p, const char *path)
{
    const char *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    *pkey = NULL;
    rv = acme_file_read(&data, &len, path, ACME_MAX_KEY_FILE, p);
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, rv, "reading key file %s", path);
        goto leave;
    }
    rv = acme_pkey_from_pem(pkey, p, data, len);
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0502) "%s: not a usable PEM private key", path);
    }
leave:
    if (data) {
        OPENSSL_cleanse((void *)data, len);
    }
    return rv;
}

apr_status_t acme_pkey_save(const acme_pkey_t *key, apr_pool_t *p, const char *path)
{
    BIO *bio = NULL;
    apr_file_t *f = NULL;
    apr_file_t *dir = NULL;
    const char *tmp = NULL;
    char *data = NULL;
    const char *slash;
    unsigned char rnd[8];
    long n;
    apr_size_t written;
    apr_status_t rv;

    rv = pkey_pem_bio(&bio, key);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    n = BIO_get_mem_data(bio, &data);
    if (n <= 0 || !data) {
        rv = APR_EGENERAL;
        goto leave;
    }
    rv = acme_random_bytes(rnd, sizeof(rnd));
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    tmp = apr_psprintf(p, "%s.tmp-%02x%02x%02x%02x%02x%02x%02x%02x", path, rnd[0], rnd[1],
                       rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    /* 0600 from the first instant: a chmod after writing would leave a
     * window in which the key is readable. */
    rv = apr_file_open(&f, tmp,
                       APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_EXCL | APR_FOPEN_BINARY,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE, p);
    if (rv != APR_SUCCESS) {
        tmp = NULL;
        goto leave;
    }
    rv = apr_file_write_full(f, data, (apr_size_t)n, &written);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = apr_file_sync(f);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = apr_file_close(f);
    f = NULL;
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = apr_file_rename(tmp, path, p);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    tmp = NULL;
    /* Make the rename itself durable; failure here loses nothing already
     * written, so it is not an error. */
    slash = strrchr(path, '/');
    if (slash) {
        const char *dpath = (slash == path) ? "/" : apr_pstrmemdup(p, path, (apr_size_t)(slash - path));

        if (apr_file_open(&dir, dpath, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, p) == APR_SUCCESS) {
            apr_file_sync(dir);
            apr_file_close(dir);
        }
    }
leave:
    if (f) {
        apr_file_close(f);
    }
    if (tmp) {
        apr_file_remove(tmp, p);
    }
    if (bio) {
        BIO_free(bio);
    }
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0503) "saving private key to %s", path);
    }
    return rv;
}

/* ---- certificates ------------------------------------------------------------- */

apr_status_t acme_cert_from_pem(acme_cert_t **pcert, apr_pool_t *p, const char *pem, apr_size_t len)
{
    BIO *bio = NULL;
    X509 *x;
    apr_status_t rv = APR_SUCCESS;

    *pcert = NULL;
    bio = bio_from(pem, len);
    if (!bio || len == 0) {
        rv = APR_EINVAL;
        goto leave;
    }
    x = PEM_read_bio_X509(bio, NULL, no_password_cb, NULL);
    if (!x) {
        ssl_errors_drain("PEM_read_bio_X509");
        rv = APR_EINVAL;
        goto leave;
    }
    *pcert = cert_wrap(p, x);
leave:
    if (bio) {
        BIO_free(bio);
    }
    return rv;
}

apr_status_t acme_chain_from_pem(apr_array_header_t **pchain, apr_pool_t *p,
                                 const char *pem, apr_size_t len)
{
    apr_array_header_t *chain;
    BIO *bio = NULL;
    X509 *x;
    unsigned long err;
    apr_status_t rv = APR_SUCCESS;

    *pchain = NULL;
    chain = apr_array_make(p, 3, sizeof(acme_cert_t *));
    if (!pem || len == 0) {
        rv = APR_ENOENT;
        goto leave;
    }
    bio = bio_from(pem, len);
    if (!bio) {
        rv = APR_EINVAL;
        goto leave;
    }
    ERR_clear_error();
    while ((x = PEM_read_bio_X509(bio, NULL, no_password_cb, NULL)) != NULL) {
        APR_ARRAY_PUSH(chain, acme_cert_t *) = cert_wrap(p, x);
    }
    /* The loop always ends on an error; only "no more PEM blocks" is the
     * normal end, anything else is a damaged certificate. */
    err = ERR_peek_last_error();
    if (err && !(ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)) {
        ssl_errors_drain("PEM_read_bio_X509 (chain)");
        rv = APR_EINVAL;
        goto leave;
    }
    ERR_clear_error();
    if (chain->nelts == 0) {
        rv = APR_ENOENT;
        goto leave;
    }
    *pchain = chain;
leave:
    if (bio) {
        BIO_free(bio);
    }
    return rv;
}

apr_status_t acme_chain_load(apr_array_header_t **pchain, apr_pool_t *p, const char *path)
{
    const char *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    *pchain = NULL;
    rv = acme_file_read(&data, &len, path, ACME_MAX_CHAIN_FILE, p);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = acme_chain_from_pem(pchain, p, data, len);
leave:
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, rv, "loading certificate chain %s", path);
    }
    return rv;
}

static apr_status_t x509_to_pem(const char **ppem, apr_pool_t *p, X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    apr_status_t rv = APR_SUCCESS;

    *ppem = NULL;
    if (!bio) {
        return APR_ENOMEM;
    }
    if (!PEM_write_bio_X509(bio, x)) {
        ssl_errors_drain("PEM_write_bio_X509");
        rv = APR_EGENERAL;
    }
    else if (!(*ppem = bio_to_str(p, bio))) {
        rv = APR_EGENERAL;
    }
    BIO_free(bio);
    return rv;
}

apr_status_t acme_cert_to_pem(const char **ppem, apr_pool_t *p, const acme_cert_t *cert)
{
    *ppem = NULL;
    return cert && cert->x509 ? x509_to_pem(ppem, p, cert->x509) : APR_EINVAL;
}

apr_status_t acme_cert_to_der(const unsigned char **pder, apr_size_t *plen, apr_pool_t *p,
                              const acme_cert_t *cert)
{
    unsigned char *der = NULL, *q;
    int n;

    *pder = NULL;
    *plen = 0;
    if (!cert || !cert->x509) {
        return APR_EINVAL;
    }
    n = i2d_X509(cert->x509, NULL);
    if (n <= 0) {
        ssl_errors_drain("i2d_X509");
        return APR_EGENERAL;
    }
    der = apr_palloc(p, (apr_size_t)n);
    q = der;
    if (i2d_X509(cert->x509, &q) != n) {
        ssl_errors_drain("i2d_X509");
        return APR_EGENERAL;
    }
    *pder = der;
    *plen = (apr_size_t)n;
    return APR_SUCCESS;
}

apr_time_t acme_cert_not_before(const acme_cert_t *cert)
{
    return (cert && cert->x509) ? asn1_time_to_apr(X509_get0_notBefore(cert->x509)) : 0;
}

apr_time_t acme_cert_not_after(const acme_cert_t *cert)
{
    return (cert && cert->x509) ? asn1_time_to_apr(X509_get0_notAfter(cert->x509)) : 0;
}

/* dNSName / iPAddress entries as text; other kinds and names with
 * embedded NULs (a classic spoofing trick) are skipped. */
static void gen_names_collect(apr_array_header_t *out, apr_pool_t *p, const GENERAL_NAMES *gens)
{
    int i;

    for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); ++i) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        const unsigned char *d;
        int dlen;

        if (gn->type == GEN_DNS) {
            d = ASN1_STRING_get0_data(gn->d.dNSName);
            dlen = ASN1_STRING_length(gn->d.dNSName);
            if (d && dlen > 0 && memchr(d, '\0', (size_t)dlen) == NULL) {
                APR_ARRAY_PUSH(out, const char *) = apr_pstrmemdup(p, (const char *)d, (apr_size_t)dlen);
            }
        }
        else if (gn->type == GEN_IPADD) {
            char buf[INET6_ADDRSTRLEN];

            d = ASN1_STRING_get0_data(gn->d.iPAddress);
            dlen = ASN1_STRING_length(gn->d.iPAddress);
            if (dlen == 4 && inet_ntop(AF_INET, d, buf, sizeof(buf))) {
                APR_ARRAY_PUSH(out, const char *) = apr_pstrdup(p, buf);
            }
            else if (dlen == 16 && inet_ntop(AF_INET6, d, buf, sizeof(buf))) {
                APR_ARRAY_PUSH(out, const char *) = apr_pstrdup(p, buf);
            }
        }
    }
}

apr_status_t acme_cert_sans(apr_array_header_t **pnames, apr_pool_t *p, const acme_cert_t *cert)
{
    GENERAL_NAMES *gens;
    int crit = 0;

    *pnames = apr_array_make(p, 5, sizeof(const char *));
    if (!cert || !cert->x509) {
        return APR_EINVAL;
    }
    gens = X509_get_ext_d2i(cert->x509, NID_subject_alt_name, &crit, NULL);
    if (!gens) {
        /* crit -1: no extension; -2: more than one (malformed) */
        ssl_errors_drain("subjectAltName");
        return crit == -1 ? APR_SUCCESS : APR_EINVAL;
    }
    gen_names_collect(*pnames, p, gens);
    GENERAL_NAMES_free(gens);
    return APR_SUCCESS;
}

static const char *name_cn(const X509_NAME *name, apr_pool_t *p)
{
    const X509_NAME_ENTRY *e;
    unsigned char *utf8 = NULL;
    const char *cn = NULL;
    int idx, n;

    if (!name) {
        return NULL;
    }
    idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) {
        return NULL;
    }
    e = X509_NAME_get_entry(name, idx);
    n = e ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
    if (n < 0) {
        ssl_errors_drain("ASN1_STRING_to_UTF8");
        return NULL;
    }
    cn = apr_pstrmemdup(p, (const char *)utf8, (apr_size_t)n);
    OPENSSL_free(utf8);
    return cn;
}

const char *acme_cert_issuer_cn(const acme_cert_t *cert, apr_pool_t *p)
{
    return (cert && cert->x509) ? name_cn(X509_get_issuer_name(cert->x509), p) : NULL;
}

const char *acme_cert_subject_cn(const acme_cert_t *cert, apr_pool_t *p)
{
    return (cert && cert->x509) ? name_cn(X509_get_subject_name(cert->x509), p) : NULL;
}

const char *acme_cert_serial_hex(const acme_cert_t *cert, apr_pool_t *p)
{
    BIGNUM *bn = NULL;
    char *hex = NULL;
    const char *out = NULL;

    if (!cert || !cert->x509) {
        return NULL;
    }
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert->x509), NULL);
    if (!bn) {
        ssl_errors_drain("ASN1_INTEGER_to_BN");
        goto leave;
    }
    hex = BN_bn2hex(bn);
    if (!hex) {
        goto leave;
    }
    out = apr_pstrdup(p, hex);
leave:
    OPENSSL_free(hex);
    BN_free(bn);
    return out;
}

static const char *hex_colons(apr_pool_t *p, const unsigned char *d, apr_size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    char *s, *q;
    apr_size_t i;

    if (n == 0) {
        return "";
    }
    s = q = apr_palloc(p, n * 3);
    for (i = 0; i < n; ++i) {
        if (i) {
            *q++ = ':';
        }
        *q++ = digits[d[i] >> 4];
        *q++ = digits[d[i] & 0x0f];
    }
    *q = '\0';
    return s;
}

const char *acme_cert_fingerprint(const acme_cert_t *cert, apr_pool_t *p)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (!cert || !cert->x509 || !X509_digest(cert->x509, EVP_sha256(), md, &n)) {
        ssl_errors_drain("X509_digest");
        return NULL;
    }
    return hex_colons(p, md, n);
}

apr_status_t acme_cert_ari_id(const char **pid, apr_pool_t *p, const acme_cert_t *cert)
{
    AUTHORITY_KEYID *akid = NULL;
    unsigned char *der = NULL;
    const unsigned char *q;
    long clen = 0;
    int tag = 0, xclass = 0, n, ret, crit = 0;
    apr_status_t rv = APR_SUCCESS;

    *pid = NULL;
    if (!cert || !cert->x509) {
        rv = APR_EINVAL;
        goto leave;
    }
    akid = X509_get_ext_d2i(cert->x509, NID_authority_key_identifier, &crit, NULL);
    if (!akid || !akid->keyid || ASN1_STRING_length(akid->keyid) <= 0) {
        ssl_errors_drain("authorityKeyIdentifier");
        rv = APR_ENOENT;
        goto leave;
    }
    /* RFC 9773 wants the DER content octets of the serial, including a
     * leading 0x00 that DER adds for a positive number with the top bit set;
     * re-encoding and skipping the tag/length header gives exactly that. */
    n = i2d_ASN1_INTEGER(X509_get0_serialNumber(cert->x509), &der);
    if (n <= 0) {
        ssl_errors_drain("i2d_ASN1_INTEGER");
        rv = APR_EINVAL;
        goto leave;
    }
    q = der;
    ret = ASN1_get_object(&q, &clen, &tag, &xclass, n);
    if ((ret & 0x80) || tag != V_ASN1_INTEGER || clen <= 0 || (q - der) + clen != n) {
        ssl_errors_drain("ASN1_get_object");
        rv = APR_EINVAL;
        goto leave;
    }
    *pid = apr_pstrcat(p,
                       acme_b64url_encode(p, ASN1_STRING_get0_data(akid->keyid),
                                          (apr_size_t)ASN1_STRING_length(akid->keyid)),
                       ".", acme_b64url_encode(p, q, (apr_size_t)clen), NULL);
leave:
    OPENSSL_free(der);
    AUTHORITY_KEYID_free(akid);
    return rv;
}

int acme_cert_matches_key(const acme_cert_t *cert, const acme_pkey_t *key)
{
    EVP_PKEY *pub;

    if (!cert || !cert->x509 || !key || !key->pkey) {
        return 0;
    }
    pub = X509_get0_pubkey(cert->x509);
    if (pub && EVP_PKEY_eq(pub, key->pkey) == 1) {
        return 1;
    }
    ssl_errors_drain("EVP_PKEY_eq");
    return 0;
}

/* Text form of an IP literal as inet_ntop writes it, so that "::0001" and
 * "::1" compare equal; NULL for anything that is not an IP. */
static const char *ip_canonical(apr_pool_t *p, const char *name)
{
    unsigned char buf[16];
    char out[INET6_ADDRSTRLEN];

    if (inet_pton(AF_INET, name, buf) == 1) {
        return inet_ntop(AF_INET, buf, out, sizeof(out)) ? apr_pstrdup(p, out) : NULL;
    }
    if (inet_pton(AF_INET6, name, buf) == 1) {
        return inet_ntop(AF_INET6, buf, out, sizeof(out)) ? apr_pstrdup(p, out) : NULL;
    }
    return NULL;
}

apr_status_t acme_pair_check(const apr_array_header_t *chain, const acme_pkey_t *key,
                             const apr_array_header_t *names, apr_time_t now, const char **pwhy,
                             apr_pool_t *p)
{
    const acme_cert_t *leaf = chain && chain->nelts > 0 ? APR_ARRAY_IDX(chain, 0, acme_cert_t *)
                                                         : NULL;

    *pwhy = NULL;
    if (!leaf) {
        *pwhy = "there is no certificate";
    }
    else if (!key || !acme_cert_matches_key(leaf, key)) {
        *pwhy = "the certificate does not match its key";
    }
    else if (names && !acme_cert_covers(leaf, names)) {
        *pwhy = "the certificate does not cover all names of the domain";
    }
    else if (now && acme_cert_not_before(leaf) > now + apr_time_from_sec(3600)) {
        *pwhy = apr_psprintf(p, "the certificate is valid only from %s",
                             acme_time_rfc3339(p, acme_cert_not_before(leaf)));
    }
    else if (now && acme_cert_not_after(leaf) <= now) {
        *pwhy = apr_psprintf(p, "the certificate expired at %s",
                             acme_time_rfc3339(p, acme_cert_not_after(leaf)));
    }
    return *pwhy ? APR_EINVAL : APR_SUCCESS;
}

int acme_cert_covers(const acme_cert_t *cert, const apr_array_header_t *names)
{
    apr_pool_t *ptemp = NULL;
    apr_array_header_t *sans;
    int ok = 0;

    if (!cert || !cert->x509 || !names || apr_pool_create(&ptemp, NULL) != APR_SUCCESS) {
        return 0;
    }
    if (acme_cert_sans(&sans, ptemp, cert) == APR_SUCCESS) {
        ok = acme_sans_cover(sans, names, ptemp);
    }
    apr_pool_destroy(ptemp);
    return ok;
}

int acme_sans_cover(const apr_array_header_t *sans, const apr_array_header_t *names,
                    apr_pool_t *ptemp)
{
    int i, j, ok = 0;

    if (!sans || !names) {
        return 0;
    }
    for (i = 0; i < names->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        const char *ip = ip_canonical(ptemp, name);
        int found = 0;

        for (j = 0; j < sans->nelts && !found; ++j) {
            const char *san = APR_ARRAY_IDX(sans, j, const char *);

            if (ip) {
                found = !strcmp(ip, san);
            }
            else if (!acme_name_is_ip(san)) {
                found = acme_name_covers(san, name);
            }
        }
        if (!found) {
            goto leave;
        }
    }
    ok = 1;
leave:
    return ok;
}

apr_status_t acme_chain_verify(const apr_array_header_t *chain, const char *ca_file,
                               apr_time_t at, const char **perr, apr_pool_t *p)
{
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *untrusted = NULL;
    apr_finfo_t finfo;
    const char *err = NULL;
    apr_status_t rv = APR_SUCCESS;
    int i;

    if (!chain || chain->nelts < 1 || !ca_file) {
        err = "empty certificate chain";
        rv = APR_EINVAL;
        goto leave;
    }
    rv = apr_stat(&finfo, ca_file, APR_FINFO_TYPE, p);
    if (rv != APR_SUCCESS) {
        err = apr_psprintf(p, "cannot read CA file %s", ca_file);
        goto leave;
    }
    store = X509_STORE_new();
    untrusted = sk_X509_new_null();
    ctx = X509_STORE_CTX_new();
    if (!store || !untrusted || !ctx) {
        rv = APR_ENOMEM;
        goto leave;
    }
    if (!X509_STORE_load_file(store, ca_file)) {
        ssl_errors_drain("X509_STORE_load_file");
        err = apr_psprintf(p, "no usable CA certificate in %s", ca_file);
        rv = APR_EINVAL;
        goto leave;
    }
    for (i = 1; i < chain->nelts; ++i) {
        const acme_cert_t *c = APR_ARRAY_IDX(chain, i, const acme_cert_t *);

        if (!sk_X509_push(untrusted, c->x509)) {
            rv = APR_ENOMEM;
            goto leave;
        }
    }
    if (!X509_STORE_CTX_init(ctx, store, APR_ARRAY_IDX(chain, 0, const acme_cert_t *)->x509,
                             untrusted)) {
        ssl_errors_drain("X509_STORE_CTX_init");
        rv = APR_EGENERAL;
        goto leave;
    }
    if (at != 0) {
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)apr_time_sec(at));
    }
    if (X509_verify_cert(ctx) != 1) {
        err = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
        ssl_errors_drain("X509_verify_cert");
        rv = APR_EINVAL;
        goto leave;
    }
leave:
    if (perr) {
        *perr = err;
    }
    X509_STORE_CTX_free(ctx);
    /* The stack only borrows the certificates: they belong to their pool. */
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    return rv;
}

/* ---- building certificates and CSRs ------------------------------------------------- */

static apr_status_t gen_names_make(GENERAL_NAMES **pgens, const apr_array_header_t *names)
{
    GENERAL_NAMES *gens;
    apr_status_t rv = APR_SUCCESS;
    int i;

    *pgens = NULL;
    if (!names || names->nelts < 1) {
        return APR_EINVAL;
    }
    gens = sk_GENERAL_NAME_new_null();
    if (!gens) {
        return APR_ENOMEM;
    }
    for (i = 0; i < names->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        GENERAL_NAME *gn = NULL;

        /* Names end up in IA5Strings and in front of a CA: anything but an
         * LDH name (optionally "*.") or an IP literal is a caller bug. */
        if (!acme_name_is_valid(name)) {
            rv = APR_EINVAL;
            goto leave;
        }
        if (acme_name_is_ip(name)) {
            ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);

            if (!ip) {
                ssl_errors_drain("a2i_IPADDRESS");
                rv = APR_EINVAL;
                goto leave;
            }
            gn = GENERAL_NAME_new();
            if (!gn) {
                ASN1_OCTET_STRING_free(ip);
                rv = APR_ENOMEM;
                goto leave;
            }
            GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
        }
        else {
            ASN1_IA5STRING *dns = ASN1_IA5STRING_new();

            if (!dns || !ASN1_STRING_set(dns, name, (int)strlen(name))) {
                ASN1_IA5STRING_free(dns);
                rv = APR_ENOMEM;
                goto leave;
            }
            gn = GENERAL_NAME_new();
            if (!gn) {
                ASN1_IA5STRING_free(dns);
                rv = APR_ENOMEM;
                goto leave;
            }
            GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
        }
        if (!sk_GENERAL_NAME_push(gens, gn)) {
            GENERAL_NAME_free(gn);
            rv = APR_ENOMEM;
            goto leave;
        }
    }
leave:
    if (rv != APR_SUCCESS) {
        GENERAL_NAMES_free(gens);
        gens = NULL;
    }
    *pgens = gens;
    return rv;
}

/* CN is limited to 64 bytes (RFC 5280 ub-common-name) and IPs do not
 * belong there; everything is in the SAN anyway. */
static const char *default_cn(const apr_array_header_t *names)
{
    const char *first;

    if (!names || names->nelts < 1) {
        return NULL;
    }
    first = APR_ARRAY_IDX(names, 0, const char *);
    if (!first || acme_name_is_ip(first) || strlen(first) > 64) {
        return NULL;
    }
    return first;
}

static apr_status_t name_set_cn(X509_NAME *name, const char *cn)
{
    if (cn && !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                          (const unsigned char *)cn, -1, -1, 0)) {
        ssl_errors_drain("X509_NAME_add_entry_by_NID");
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t acme_csr_make(const unsigned char **pder, apr_size_t *plen, apr_pool_t *p,
                           const acme_pkey_t *key, const apr_array_header_t *names)
{
    X509_REQ *req = NULL;
    GENERAL_NAMES *gens = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    unsigned char *der = NULL, *q;
    int n;
    apr_status_t rv;

    *pder = NULL;
    *plen = 0;
    if (!key || !key->pkey || !key->is_private) {
        rv = APR_EINVAL;
        goto leave;
    }
    rv = gen_names_make(&gens, names);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    req = X509_REQ_new();
    if (!req) {
        rv = APR_ENOMEM;
        goto leave;
    }
    if (!X509_REQ_set_version(req, 0)) {
        rv = APR_EGENERAL;
        goto leave;
    }
    rv = name_set_cn(X509_REQ_get_subject_name(req), default_cn(names));
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (!X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT)
        || !X509_REQ_add_extensions(req, exts)
        || !X509_REQ_set_pubkey(req, key->pkey)
        || X509_REQ_sign(req, key->pkey, EVP_sha256()) <= 0) {
        ssl_errors_drain("building CSR");
        rv = APR_EGENERAL;
        goto leave;
    }
    n = i2d_X509_REQ(req, NULL);
    if (n <= 0) {
        rv = APR_EGENERAL;
        goto leave;
    }
    der = apr_palloc(p, (apr_size_t)n);
    q = der;
    if (i2d_X509_REQ(req, &q) != n) {
        rv = APR_EGENERAL;
        goto leave;
    }
    *pder = der;
    *plen = (apr_size_t)n;
leave:
    if (rv != APR_SUCCESS) {
        ssl_errors_drain("acme_csr_make");
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0504) "creating the CSR failed");
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(gens);
    X509_REQ_free(req);
    return rv;
}

apr_status_t acme_csr_names(apr_array_header_t **pnames, const char **pcn, apr_pool_t *p,
                            const unsigned char *der, apr_size_t len)
{
    X509_REQ *req = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    GENERAL_NAMES *gens = NULL;
    EVP_PKEY *pub;
    const unsigned char *q = der;
    apr_status_t rv = APR_SUCCESS;

    *pnames = apr_array_make(p, 5, sizeof(const char *));
    *pcn = NULL;
    if (!der || len == 0 || len > (apr_size_t)LONG_MAX) {
        rv = APR_EINVAL;
        goto leave;
    }
    req = d2i_X509_REQ(NULL, &q, (long)len);
    if (!req || q != der + len) {
        rv = APR_EINVAL;
        goto leave;
    }
    pub = X509_REQ_get0_pubkey(req);
    if (!pub || X509_REQ_verify(req, pub) != 1) {
        rv = APR_EINVAL;
        goto leave;
    }
    exts = X509_REQ_get_extensions(req);
    if (exts) {
        gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
        gen_names_collect(*pnames, p, gens);
    }
    *pcn = name_cn(X509_REQ_get_subject_name(req), p);
leave:
    ssl_errors_drain("acme_csr_names");
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    return rv;
}

static apr_status_t add_ext_conf(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) {
        ssl_errors_drain("X509V3_EXT_conf_nid");
        return APR_EGENERAL;
    }
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? APR_SUCCESS : APR_EGENERAL;
}

/* x's public key is key's: a copy of key->spki's algorithm and bits (made
 * once per key, by whichever thread gets there first), no decoding. Only
 * for a certificate that is encoded and freed: x has no EVP_PKEY of its
 * public key then (X509_get0_pubkey fails). */
static int set_spki(X509 *x, const acme_pkey_t *key)
{
    acme_pkey_t *k = (acme_pkey_t *)key;   /* only its cache changes */
    X509_PUBKEY *spki = k->spki, *mine = NULL;
    X509_ALGOR *algor;
    const ASN1_OBJECT *alg;
    const unsigned char *bits;
    const void *param;
    ASN1_OBJECT *alg_copy = NULL, *param_copy = NULL;
    unsigned char *bits_copy = NULL;
    int bits_len, param_type;

    if (!spki) {
        if (!X509_PUBKEY_set(&mine, key->pkey)) {
            return 0;
        }
        spki = apr_atomic_casptr((volatile void **)&k->spki, mine, NULL);
        if (spki) {
            X509_PUBKEY_free(mine);   /* another thread made the same */
        }
        else {
            spki = mine;
        }
    }
    if (!X509_PUBKEY_get0_param(NULL, &bits, &bits_len, &algor, spki)) {
        return 0;
    }
    X509_ALGOR_get0(&alg, &param_type, &param, algor);
    if (param_type != V_ASN1_OBJECT && param_type != V_ASN1_NULL
        && param_type != V_ASN1_UNDEF) {
        return X509_set_pubkey(x, key->pkey); /* parameters of a kind we never make */
    }
    if ((param_type == V_ASN1_OBJECT && !(param_copy = OBJ_dup(param)))   /* EC: the curve */
        || !(alg_copy = OBJ_dup(alg))
        || !(bits_copy = OPENSSL_memdup(bits, (size_t)bits_len))
        || !X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), alg_copy, param_type, param_copy,
                                   bits_copy, bits_len)) {
        ASN1_OBJECT_free(alg_copy);
        ASN1_OBJECT_free(param_copy);
        OPENSSL_free(bits_copy);
        return 0;
    }
    return 1;
}

/* Common frame of the fallback and the tls-alpn-01 certificates: a
 * self-signed end-entity certificate with a random positive serial. */
static apr_status_t self_signed_make(X509 **px, const acme_pkey_t *key,
                                     const apr_array_header_t *names, const char *cn,
                                     apr_time_t not_before, apr_interval_time_t valid_for,
                                     int spki_only)
{
    X509 *x = NULL;
    GENERAL_NAMES *gens = NULL;
    BIGNUM *serial = NULL;
    unsigned char rnd[16];
    apr_int64_t nb_sec, secs;
    apr_status_t rv;

    *px = NULL;
    if (!key || !key->pkey || !key->is_private || valid_for <= 0) {
        rv = APR_EINVAL;
        goto leave;
    }
    rv = gen_names_make(&gens, names);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = APR_EGENERAL;
    x = X509_new();
    if (!x || !X509_set_version(x, 2)) {
        goto leave;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        goto leave;
    }
    rnd[0] = (unsigned char)((rnd[0] & 0x7f) | 0x01);
    serial = BN_bin2bn(rnd, sizeof(rnd), NULL);
    if (!serial || !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x))) {
        goto leave;
    }
    nb_sec = apr_time_sec(not_before);
    secs = apr_time_sec(valid_for);
    if (!ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb_sec)
        || !ASN1_TIME_adj(X509_getm_notAfter(x), (time_t)nb_sec, (int)(secs / 86400),
                          (long)(secs % 86400))) {
        goto leave;
    }
    if (name_set_cn(X509_get_subject_name(x), cn) != APR_SUCCESS
        || name_set_cn(X509_get_issuer_name(x), cn) != APR_SUCCESS
        || !(spki_only ? set_spki(x, key) : X509_set_pubkey(x, key->pkey))) {
        goto leave;
    }
    if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT)
        || add_ext_conf(x, NID_basic_constraints, "critical,CA:FALSE") != APR_SUCCESS
        || add_ext_conf(x, NID_key_usage, EVP_PKEY_get_base_id(key->pkey) == EVP_PKEY_RSA
                                          ? "critical,digitalSignature,keyEncipherment"
                                          : "critical,digitalSignature") != APR_SUCCESS
        || add_ext_conf(x, NID_ext_key_usage, "serverAuth") != APR_SUCCESS
        || add_ext_conf(x, NID_subject_key_identifier, "hash") != APR_SUCCESS) {
        goto leave;
    }
    rv = APR_SUCCESS;
    *px = x;
    x = NULL;
leave:
    if (rv != APR_SUCCESS) {
        ssl_errors_drain("self-signed certificate");
    }
    BN_free(serial);
    GENERAL_NAMES_free(gens);
    X509_free(x);
    return rv;
}

static apr_status_t self_signed_finish(acme_cert_t **pcert, apr_pool_t *p, X509 *x,
                                       const acme_pkey_t *key)
{
    if (X509_sign(x, key->pkey, EVP_sha256()) <= 0) {
        ssl_errors_drain("X509_sign");
        X509_free(x);
        return APR_EGENERAL;
    }
    *pcert = cert_wrap(p, x);
    return APR_SUCCESS;
}

apr_status_t acme_cert_self_signed_pem(const char **ppem, apr_pool_t *p, const acme_pkey_t *key,
                                       const apr_array_header_t *names, const char *cn,
                                       apr_interval_time_t valid_for)
{
    X509 *x = NULL;
    apr_status_t rv;

    *ppem = NULL;
    if (cn && strlen(cn) > 64) {
        rv = APR_EINVAL;
        goto leave;
    }
    rv = self_signed_make(&x, key, names, cn ? cn : default_cn(names),
                          apr_time_now() - apr_time_from_sec(3600), valid_for, 1);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (X509_sign(x, key->pkey, EVP_sha256()) <= 0) {
        ssl_errors_drain("X509_sign");
        rv = APR_EGENERAL;
        goto leave;
    }
    rv = x509_to_pem(ppem, p, x);
leave:
    X509_free(x);
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0505) "creating a self-signed certificate failed");
    }
    return rv;
}

apr_status_t acme_cert_tls_alpn01(acme_cert_t **pcert, apr_pool_t *p, const acme_pkey_t *key,
                                  const char *name, const char *key_authz)
{
    apr_array_header_t *names;
    X509 *x = NULL;
    ASN1_OBJECT *oid = NULL;
    ASN1_OCTET_STRING *inner = NULL, *value = NULL;
    X509_EXTENSION *ext = NULL;
    unsigned char digest[32];
    unsigned char *der = NULL;
    int n;
    apr_status_t rv;

    *pcert = NULL;
    if (!name || !*name || !key_authz) {
        rv = APR_EINVAL;
        goto leave;
    }
    names = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(names, const char *) = name;
    /* A short validity around now: the validator only checks the
     * extension, but a clock skewed by a day should not matter. */
    rv = self_signed_make(&x, key, names, default_cn(names),
                          apr_time_now() - apr_time_from_sec(2 * 86400),
                          apr_time_from_sec(9 * 86400), 0);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = APR_EGENERAL;
    acme_sha256(digest, key_authz, strlen(key_authz));
    /* extnValue holds the DER of an OCTET STRING (RFC 8737 section 3):
     * an OCTET STRING nested in the extension's own OCTET STRING. */
    inner = ASN1_OCTET_STRING_new();
    if (!inner || !ASN1_OCTET_STRING_set(inner, digest, sizeof(digest))) {
        goto leave;
    }
    n = i2d_ASN1_OCTET_STRING(inner, &der);
    if (n <= 0) {
        goto leave;
    }
    value = ASN1_OCTET_STRING_new();
    oid = OBJ_txt2obj(ACME_ID_PE_ACME_IDENTIFIER, 1);
    if (!value || !oid || !ASN1_OCTET_STRING_set(value, der, n)) {
        goto leave;
    }
    ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, value);
    if (!ext || !X509_add_ext(x, ext, -1)) {
        goto leave;
    }
    rv = self_signed_finish(pcert, p, x, key);
    x = NULL;
leave:
    if (rv != APR_SUCCESS) {
        ssl_errors_drain("tls-alpn-01 certificate");
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0506) "creating the tls-alpn-01 certificate for %s failed",
                 name ? name : "(null)");
    }
    X509_EXTENSION_free(ext);
    ASN1_OBJECT_free(oid);
    ASN1_OCTET_STRING_free(value);
    ASN1_OCTET_STRING_free(inner);
    OPENSSL_free(der);
    X509_free(x);
    return rv;
}

apr_status_t acme_cert_get_acme_id(const unsigned char **pdigest, int *pcritical,
                                   apr_pool_t *p, const acme_cert_t *cert)
{
    ASN1_OBJECT *oid = NULL;
    ASN1_OCTET_STRING *inner = NULL;
    const ASN1_OCTET_STRING *value;
    X509_EXTENSION *ext;
    const unsigned char *q, *start;
    int idx, vlen;
    apr_status_t rv = APR_SUCCESS;

    *pdigest = NULL;
    *pcritical = 0;
    if (!cert || !cert->x509) {
        rv = APR_EINVAL;
        goto leave;
    }
    oid = OBJ_txt2obj(ACME_ID_PE_ACME_IDENTIFIER, 1);
    if (!oid) {
        rv = APR_ENOMEM;
        goto leave;
    }
    idx = X509_get_ext_by_OBJ(cert->x509, oid, -1);
    if (idx < 0) {
        rv = APR_ENOENT;
        goto leave;
    }
    if (X509_get_ext_by_OBJ(cert->x509, oid, idx) >= 0) {
        rv = APR_EINVAL; /* twice: ambiguous */
        goto leave;
    }
    ext = X509_get_ext(cert->x509, idx);
    value = X509_EXTENSION_get_data(ext);
    vlen = ASN1_STRING_length(value);
    start = q = ASN1_STRING_get0_data(value);
    inner = d2i_ASN1_OCTET_STRING(NULL, &q, vlen);
    if (!inner || q != start + vlen || ASN1_STRING_length(inner) != 32) {
        rv = APR_EINVAL;
        goto leave;
    }
    *pdigest = apr_pmemdup(p, ASN1_STRING_get0_data(inner), 32);
    *pcritical = X509_EXTENSION_get_critical(ext) ? 1 : 0;
leave:
    ssl_errors_drain("acmeIdentifier");
    ASN1_OCTET_STRING_free(inner);
    ASN1_OBJECT_free(oid);
    return rv;
}

void acme_sha256(unsigned char out[32], const void *data, apr_size_t len)
{
    unsigned int n = 32;

    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL)) {
        /* Only on a broken library; a zero digest then fails any compare. */
        ssl_errors_drain("EVP_Digest");
        memset(out, 0, 32);
    }
}

/* ---- sealing secrets (AES-256-GCM) -------------------------------------------------- */

#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16

typedef struct {
    void *data;
    apr_size_t len;
} wipe_t;

static apr_status_t wipe_cleanup(void *baton)
{
    wipe_t *w = baton;

    OPENSSL_cleanse(w->data, w->len);
    return APR_SUCCESS;
}

static void wipe_with_pool(apr_pool_t *p, void *data, apr_size_t len)
{
    wipe_t *w = apr_palloc(p, sizeof(*w));

    w->data = data;
    w->len = len;
    apr_pool_cleanup_register(p, w, wipe_cleanup, apr_pool_cleanup_null);
}

static apr_status_t ctx_cleanup(void *baton)
{
    EVP_CIPHER_CTX_free(baton);
    return APR_SUCCESS;
}

int acme_is_sealed(const char *data, apr_size_t len)
{
    apr_size_t n = sizeof(ACME_SEAL_PREFIX) - 1;

    return data && len >= n && !memcmp(data, ACME_SEAL_PREFIX, n);
}

apr_status_t acme_seal(const char **psealed, apr_pool_t *p, const unsigned char *key,
                       const char *ad, const void *data, apr_size_t len)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *buf = NULL;
    int n, total;
    apr_status_t rv = APR_EGENERAL;

    *psealed = NULL;
    if (len > INT_MAX - SEAL_NONCE_LEN - SEAL_TAG_LEN || strlen(ad) > INT_MAX) {
        return APR_EINVAL;
    }
    buf = apr_palloc(p, SEAL_NONCE_LEN + len + SEAL_TAG_LEN);
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx) {
        return APR_ENOMEM;
    }
    apr_pool_cleanup_register(p, ctx, ctx_cleanup, apr_pool_cleanup_null);
    /* 96-bit random nonces: the collision risk stays negligible far beyond
     * the number of keys a store ever seals under one key */
    if (RAND_bytes(buf, SEAL_NONCE_LEN) != 1
        || !EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL)
        || !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL)
        || !EVP_EncryptInit_ex(ctx, NULL, NULL, key, buf)
        || !EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)ad, (int)strlen(ad))
        || !EVP_EncryptUpdate(ctx, buf + SEAL_NONCE_LEN, &n, data, (int)len)) {
        goto leave;
    }
    total = n;
    if (!EVP_EncryptFinal_ex(ctx, buf + SEAL_NONCE_LEN + total, &n)) {
        goto leave;
    }
    total += n;
    if (!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN,
                             buf + SEAL_NONCE_LEN + total)) {
        goto leave;
    }
    *psealed = apr_pstrcat(p, ACME_SEAL_PREFIX,
                           acme_b64url_encode(p, buf, SEAL_NONCE_LEN + (apr_size_t)total
                                              + SEAL_TAG_LEN), NULL);
    rv = APR_SUCCESS;
leave:
    if (rv != APR_SUCCESS) {
        ssl_errors_drain("AES-256-GCM seal");
    }
    return rv;
}

apr_status_t acme_unseal(const char **pdata, apr_size_t *plen, apr_pool_t *p,
                         const unsigned char *key, const char *ad, const char *sealed,
                         apr_size_t sealed_len, const char **perr)
{
    apr_size_t pn = sizeof(ACME_SEAL_PREFIX) - 1, rawlen, ctlen;
    EVP_CIPHER_CTX *ctx;
    unsigned char *raw, *out;
    const char *text, *err = NULL;
    int n, total;
    apr_status_t rv = APR_EINVAL;

    *pdata = NULL;
    *plen = 0;
    if (!acme_is_sealed(sealed, sealed_len)) {
        err = "not a sealed value (no " ACME_SEAL_PREFIX " prefix)";
        goto leave;
    }
    text = apr_pstrmemdup(p, sealed + pn, sealed_len - pn);
    if (strlen(text) != sealed_len - pn
        || acme_b64url_decode(&raw, &rawlen, p, text) != APR_SUCCESS) {
        err = "a sealed value that is not base64url";
        goto leave;
    }
    if (rawlen < SEAL_NONCE_LEN + SEAL_TAG_LEN || rawlen - SEAL_NONCE_LEN > INT_MAX) {
        err = "a sealed value that is too short (truncated?)";
        goto leave;
    }
    ctlen = rawlen - SEAL_NONCE_LEN - SEAL_TAG_LEN;
    out = apr_palloc(p, ctlen + 1);
    wipe_with_pool(p, out, ctlen + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx) {
        rv = APR_ENOMEM;
        goto leave;
    }
    apr_pool_cleanup_register(p, ctx, ctx_cleanup, apr_pool_cleanup_null);
    rv = APR_EGENERAL;
    if (!EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL)
        || !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL)
        || !EVP_DecryptInit_ex(ctx, NULL, NULL, key, raw)
        || !EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)ad, (int)strlen(ad))
        || !EVP_DecryptUpdate(ctx, out, &n, raw + SEAL_NONCE_LEN, (int)ctlen)
        || !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN,
                                raw + SEAL_NONCE_LEN + ctlen)) {
        ssl_errors_drain("AES-256-GCM unseal");
        err = "the cipher failed";
        goto leave;
    }
    total = n;
    if (EVP_DecryptFinal_ex(ctx, out + total, &n) != 1) {
        ERR_clear_error();
        rv = APR_EACCES;
        err = "the sealed value does not authenticate (another encryption key, a value "
              "moved from another item, or altered)";
        goto leave;
    }
    total += n;
    out[total] = '\0';
    *pdata = (const char *)out;
    *plen = (apr_size_t)total;
    rv = APR_SUCCESS;
leave:
    if (perr) {
        *perr = err;
    }
    return rv;
}

apr_status_t acme_key_derive(unsigned char *out, apr_size_t out_len, const unsigned char *key,
                             apr_size_t key_len, const char *info)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t n = out_len;
    apr_status_t rv = APR_EGENERAL;

    if (!ctx) {
        return APR_ENOMEM;
    }
    if (key_len > INT_MAX || strlen(info) > INT_MAX
        || EVP_PKEY_derive_init(ctx) != 1
        || EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) != 1
        || EVP_PKEY_CTX_set1_hkdf_key(ctx, key, (int)key_len) != 1
        || EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)info, (int)strlen(info)) != 1
        || EVP_PKEY_derive(ctx, out, &n) != 1 || n != out_len) {
        ssl_errors_drain("HKDF");
        OPENSSL_cleanse(out, out_len);
        goto leave;
    }
    rv = APR_SUCCESS;
leave:
    EVP_PKEY_CTX_free(ctx);
    return rv;
}

apr_status_t acme_mac(unsigned char out[ACME_MAC_LEN], const unsigned char *key,
                      apr_size_t key_len, const void *data, apr_size_t len)
{
    size_t n = 0;

    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, data, len, out,
                   ACME_MAC_LEN, &n) || n != ACME_MAC_LEN) {
        ssl_errors_drain("HMAC-SHA256");
        memset(out, 0, ACME_MAC_LEN);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

int acme_mac_equal(const unsigned char *a, const unsigned char *b, apr_size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

void acme_wipe(void *data, apr_size_t len)
{
    OPENSSL_cleanse(data, len);
}

apr_status_t acme_secret_file_read(const char **pdata, apr_size_t *plen, apr_pool_t *p,
                                   const char *path, const char *what, apr_size_t max,
                                   int flags, const char *fix, const char **perr)
{
    apr_finfo_t fi;
    apr_file_t *f = NULL;
    apr_int32_t wanted = APR_FINFO_TYPE | APR_FINFO_PROT | APR_FINFO_USER | APR_FINFO_SIZE;
    const char *err = NULL;
    char *data;
    apr_size_t n = 0;
    apr_status_t rv;

    *pdata = NULL;
    *plen = 0;
    fix = fix ? apr_pstrcat(p, " ", fix, NULL) : "";
    /* stat first: opening a FIFO or a device could block or read forever */
    rv = apr_stat(&fi, path, wanted, p);
    if (rv == APR_SUCCESS && fi.filetype == APR_REG) {
        rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
        if (rv == APR_SUCCESS) {
            rv = apr_file_info_get(&fi, wanted, f);   /* the file we read, not a replaced one */
        }
    }
    if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
        err = apr_psprintf(p, "cannot read %s %s: %pm%s", what, path, &rv, fix);
        goto leave;
    }
    rv = APR_EINVAL;
    if (fi.filetype != APR_REG) {
        err = apr_psprintf(p, "%s %s is not a regular file%s", what, path, fix);
    }
    else if (fi.protection & (APR_GREAD | APR_GWRITE | APR_WREAD | APR_WWRITE)) {
        err = apr_psprintf(p, "%s %s can be read or written by group or others: chmod 0400 %s",
                           what, path, path);
    }
    else if (!(flags & ACME_KEYFILE_ANY_OWNER) && fi.user != 0) {
        err = apr_psprintf(p, "%s %s is not owned by root: chown root %s", what, path, path);
    }
    else if (fi.size < 0 || (apr_size_t)fi.size > max) {
        err = apr_psprintf(p, "%s %s has %ld bytes, more than the %lu it may have%s", what, path,
                           (long)fi.size, (unsigned long)max, fix);
    }
    else {
        data = apr_palloc(p, (apr_size_t)fi.size + 1);
        wipe_with_pool(p, data, (apr_size_t)fi.size + 1);
        rv = apr_file_read_full(f, data, (apr_size_t)fi.size, &n);
        if (n != (apr_size_t)fi.size || (rv != APR_SUCCESS && rv != APR_EOF)) {
            rv = APR_EINVAL;
            err = apr_psprintf(p, "%s %s changed while it was read", what, path);
        }
        else {
            rv = APR_SUCCESS;
            data[n] = '\0';
            *pdata = data;
            *plen = n;
        }
    }
leave:
    if (f) {
        apr_file_close(f);
    }
    if (perr) {
        *perr = err;
    }
    return rv;
}

apr_status_t acme_store_key_load(const unsigned char **pkey, apr_pool_t *p, const char *path,
                                 int flags, const char **perr)
{
    const char *fix = apr_psprintf(p, "(make one with: openssl rand -out %s 32; "
                                   "chown root %s; chmod 0400 %s)", path, path, path);
    const char *what = "the store encryption key file", *data, *err = NULL;
    apr_size_t len;
    apr_status_t rv;

    *pkey = NULL;
    /* a larger file is read too, so that the message says how large it is */
    rv = acme_secret_file_read(&data, &len, p, path, what, 4096, flags, fix, &err);
    if (rv == APR_SUCCESS && len != ACME_SEAL_KEY_LEN) {
        rv = APR_EINVAL;
        err = apr_psprintf(p, "%s %s has %lu bytes, it must hold exactly %d random bytes %s",
                           what, path, (unsigned long)len, ACME_SEAL_KEY_LEN, fix);
    }
    if (rv == APR_SUCCESS) {
        *pkey = (const unsigned char *)data;
    }
    if (perr) {
        *perr = err;
    }
    return rv;
}

/* ---- tls-alpn-01 probe (the pre-flight) --------------------------------------- */

/* How often the probe looks at the stop flag while it waits. */
#define PROBE_SLICE_MS 100

static int probe_stopped(volatile apr_uint32_t *stop)
{
    return stop && apr_atomic_read32(stop);
}

/* Waits until fd is ready for events: APR_TIMEUP after the deadline,
 * APR_EINTR when *stop is set. */
static apr_status_t probe_wait(int fd, short events, apr_time_t deadline,
                               volatile apr_uint32_t *stop)
{
    for (;;) {
        struct pollfd pfd;
        apr_time_t now = apr_time_now();
        int ms, n;

        if (probe_stopped(stop)) return APR_EINTR;
        if (now >= deadline) return APR_TIMEUP;
        ms = (int)apr_time_as_msec(deadline - now) + 1;
        pfd.fd = fd;
        pfd.events = events;
        pfd.revents = 0;
        n = poll(&pfd, 1, ms < PROBE_SLICE_MS ? ms : PROBE_SLICE_MS);
        if (n > 0) return APR_SUCCESS;
        if (n < 0 && errno != EINTR) return APR_FROM_OS_ERROR(errno);
    }
}

/* getaddrinfo() has no timeout and cannot be interrupted, so it runs in a
 * detached thread that the caller may give up on. The job is malloc'd and
 * owned by both; whoever lets go last frees it, so an abandoned thread
 * touches nothing of the caller's. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int done;
    int err;                 /* getaddrinfo()'s */
    struct addrinfo *ai;
    char service[8];
    char host[];
} resolve_job_t;

static void resolve_release(resolve_job_t *job)
{
    int last;

    pthread_mutex_lock(&job->mu);
    last = --job->refs == 0;
    pthread_mutex_unlock(&job->mu);
    if (last) {
        if (job->ai) freeaddrinfo(job->ai);
        pthread_cond_destroy(&job->cv);
        pthread_mutex_destroy(&job->mu);
        free(job);
    }
}

static void *resolve_thread(void *data)
{
    resolve_job_t *job = data;
    struct addrinfo hints, *ai = NULL;
    int err;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    err = getaddrinfo(job->host, job->service, &hints, &ai);
    pthread_mutex_lock(&job->mu);
    job->err = err;
    job->ai = ai;
    job->done = 1;
    pthread_cond_signal(&job->cv);
    pthread_mutex_unlock(&job->mu);
    resolve_release(job);
    return NULL;
}

/* host's addresses, in the order getaddrinfo() gives them, as numeric
 * strings in p; APR_TIMEUP or APR_EINTR when it gave up waiting. */
static apr_status_t probe_resolve(apr_array_header_t **paddrs, apr_pool_t *p, const char *host,
                                  apr_port_t port, apr_time_t deadline,
                                  volatile apr_uint32_t *stop, const char **pdetail)
{
    apr_size_t len = strlen(host);
    resolve_job_t *job = malloc(sizeof(*job) + len + 1);
    apr_status_t rv = APR_SUCCESS;
    struct addrinfo *ai;
    pthread_attr_t attr;
    pthread_t tid;

    *paddrs = apr_array_make(p, 4, sizeof(const char *));
    if (!job) return APR_ENOMEM;
    memset(job, 0, sizeof(*job));
    memcpy(job->host, host, len + 1);
    apr_snprintf(job->service, sizeof(job->service), "%d", (int)port);
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    job->refs = 2;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, resolve_thread, job) != 0) {
        job->refs = 1;
        job->done = 1;
        job->err = EAI_SYSTEM;
    }
    pthread_attr_destroy(&attr);
    pthread_mutex_lock(&job->mu);
    while (!job->done) {
        apr_time_t now = apr_time_now();
        apr_time_t until = now + apr_time_from_msec(PROBE_SLICE_MS);
        struct timespec ts;

        if (probe_stopped(stop) || now >= deadline) {
            rv = probe_stopped(stop) ? APR_EINTR : APR_TIMEUP;
            break;
        }
        if (until > deadline) until = deadline;
        /* the condition's clock is CLOCK_REALTIME, as apr_time_now() */
        ts.tv_sec = (time_t)apr_time_sec(until);
        ts.tv_nsec = (long)apr_time_usec(until) * 1000;
        pthread_cond_timedwait(&job->cv, &job->mu, &ts);
    }
    pthread_mutex_unlock(&job->mu);
    if (rv != APR_SUCCESS) {
        *pdetail = apr_psprintf(p, "resolving %s %s", host, rv == APR_EINTR
                                ? "was stopped" : "took too long");
    }
    else if (job->err) {
        rv = APR_EGENERAL;
        *pdetail = apr_psprintf(p, "cannot resolve %s: %s", host,
                                job->err == EAI_SYSTEM ? "no resolver thread"
                                                       : gai_strerror(job->err));
    }
    for (ai = rv == APR_SUCCESS ? job->ai : NULL; ai; ai = ai->ai_next) {
        char ip[NI_MAXHOST];

        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof(ip), NULL, 0,
                        NI_NUMERICHOST) == 0) {
            APR_ARRAY_PUSH(*paddrs, const char *) = apr_pstrdup(p, ip);
        }
    }
    resolve_release(job);
    return rv;
}

/* A non-blocking TCP connection to one of host's addresses, within the
 * deadline and the stop flag; -1 with *pdetail when none answers. */
static int probe_connect(const char **premote, apr_pool_t *p, const char *host, apr_port_t port,
                         apr_time_t deadline, volatile apr_uint32_t *stop, const char **pdetail)
{
    apr_array_header_t *addrs;
    apr_status_t rv;
    char buf[120];
    int i;

    if (probe_resolve(&addrs, p, host, port, deadline, stop, pdetail) != APR_SUCCESS) {
        return -1;
    }
    for (i = 0; i < addrs->nelts; ++i) {
        const char *ip = APR_ARRAY_IDX(addrs, i, const char *);
        struct addrinfo hints, *ai = NULL;
        char service[8];
        int fd = -1, soerr = 0;
        socklen_t elen = sizeof(soerr);

        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV; /* no resolver here */
        apr_snprintf(service, sizeof(service), "%d", (int)port);
        rv = APR_EGENERAL;
        if (getaddrinfo(ip, service, &hints, &ai) == 0) {
            fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            rv = fd < 0 ? APR_FROM_OS_ERROR(errno) : APR_SUCCESS;
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
                rv = errno == EINPROGRESS ? probe_wait(fd, POLLOUT, deadline, stop)
                                          : APR_FROM_OS_ERROR(errno);
                if (rv == APR_SUCCESS
                    && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) != 0 || soerr)) {
                    rv = APR_FROM_OS_ERROR(soerr ? soerr : errno);
                }
            }
            freeaddrinfo(ai);
        }
        if (rv == APR_SUCCESS) {
            *premote = ip;
            return fd;
        }
        if (fd >= 0) close(fd);
        *pdetail = apr_psprintf(p, "connecting to %s port %d: %s", ip, (int)port,
                                rv == APR_EINTR ? "stopped" : apr_strerror(rv, buf, sizeof(buf)));
        if (rv == APR_EINTR || rv == APR_TIMEUP) break;
    }
    if (!addrs->nelts) {
        *pdetail = apr_psprintf(p, "cannot resolve %s: no address", host);
    }
    return -1;
}

/* SSL_connect() on a non-blocking socket, waiting within the deadline and the stop flag. */
static int probe_handshake(SSL *ssl, int fd, apr_time_t deadline, volatile apr_uint32_t *stop,
                           const char **pwhy)
{
    for (;;) {
        int rc = SSL_connect(ssl), e;
        apr_status_t rv;

        if (rc == 1) return 1;
        e = SSL_get_error(ssl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            *pwhy = NULL; /* OpenSSL's own error says it */
            return 0;
        }
        rv = probe_wait(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, stop);
        if (rv != APR_SUCCESS) {
            *pwhy = rv == APR_EINTR ? "stopped" : rv == APR_TIMEUP ? "it took too long"
                                                                   : "the connection failed";
            return 0;
        }
    }
}

apr_status_t acme_tls_alpn01_probe(acme_alpn_probe_t *res, apr_pool_t *p, const char *host,
                                   apr_port_t port, const char *sni, const char *key_authz,
                                   apr_interval_time_t connect_timeout,
                                   apr_interval_time_t timeout, volatile apr_uint32_t *stop)
{
    static const unsigned char alpn[] = "\x0a" "acme-tls/1";
    const unsigned char *chosen = NULL, *digest;
    apr_time_t start = apr_time_now();
    apr_time_t deadline = start + timeout;
    apr_time_t connect_deadline = start + (connect_timeout < timeout ? connect_timeout : timeout);
    unsigned char want[32];
    unsigned int chosen_len = 0;
    const char *why = NULL;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    X509 *x;
    apr_status_t rv = APR_EGENERAL;
    int critical, fd;

    memset(res, 0, sizeof(*res));
    fd = probe_connect(&res->remote, p, host, port, connect_deadline, stop, &res->detail);
    if (fd < 0) goto leave;
    res->stage = ACME_ALPN_PROBE_NO_HANDSHAKE;
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        || SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0
        || !(ssl = SSL_new(ctx)) || !SSL_set_fd(ssl, fd)
        || !SSL_set_tlsext_host_name(ssl, sni)) {
        rv = APR_ENOMEM;
        res->detail = "cannot set up the TLS client";
        goto leave;
    }
    SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    if (!probe_handshake(ssl, fd, deadline, stop, &why)) {
        unsigned long e = ERR_peek_error();
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        res->detail = why ? why : e ? apr_pstrdup(p, buf) : "the connection was closed";
        rv = APR_EGENERAL;
        goto leave;
    }
    res->stage = ACME_ALPN_PROBE_NO_ALPN;
    SSL_get0_alpn_selected(ssl, &chosen, &chosen_len);
    if (chosen_len != sizeof(alpn) - 2 || memcmp(chosen, alpn + 1, chosen_len)) {
        res->detail = chosen_len ? apr_psprintf(p, "it chose %.*s", (int)chosen_len, chosen)
                                 : "it chose no protocol";
        rv = APR_EGENERAL;
        goto leave;
    }
    res->stage = ACME_ALPN_PROBE_WRONG_CERT;
    x = SSL_get1_peer_certificate(ssl);
    if (!x) {
        res->detail = "no certificate";
        rv = APR_EGENERAL;
        goto leave;
    }
    acme_sha256(want, key_authz, strlen(key_authz));
    if (acme_cert_get_acme_id(&digest, &critical, p, cert_wrap(p, x)) != APR_SUCCESS) {
        res->detail = "its certificate has no valid acmeIdentifier";
        rv = APR_EGENERAL;
    }
    else if (memcmp(digest, want, sizeof(want))) {
        res->detail = "its certificate is for another key authorization";
        rv = APR_EGENERAL;
    }
    else {
        res->stage = ACME_ALPN_PROBE_OK;
    }
leave:
    if (ssl) SSL_free(ssl);
    if (ctx) SSL_CTX_free(ctx);
    if (fd >= 0) close(fd);
    ssl_errors_drain("tls-alpn-01 probe");
    return rv;
}
