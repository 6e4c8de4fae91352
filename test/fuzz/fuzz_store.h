/* fuzz_store.h: a filesystem store in a temporary directory for the
 * targets that fuzz the store's own files, with a real certificate (from
 * pebble: example.org, www.example.org) active for the domain. */
#ifndef ACME_FUZZ_STORE_H
#define ACME_FUZZ_STORE_H

#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
#include <ftw.h>

#include <apr_strings.h>
#include "acme_store.h"
#include "acme_crypto.h"
#include "acme_job.h"
#include "acme_status.h"

#define FUZZ_DOMAIN "example.org"

static const char fuzz_chain_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICnzCCAYegAwIBAgIIVIgXU/6s/LswDQYJKoZIhvcNAQELBQAwKDEmMCQGA1UE\n"
    "AxMdUGViYmxlIEludGVybWVkaWF0ZSBDQSAwNzAwYzEwHhcNMjYxMjAyMDkwNjA3\n"
    "WhcNMzExMjAyMDkwNjA2WjAWMRQwEgYDVQQDEwtleGFtcGxlLm9yZzBZMBMGByqG\n"
    "SM49AgEGCCqGSM49AwEHA0IABEg5eEVGf7VJqpos1YvUKkrYIPu/Y3uu2eIFGq7r\n"
    "D0v2GSnLVhyNz2cGFYSAHvq6eZRfFadU56fY1fo4PBcpiWOjgakwgaYwDgYDVR0P\n"
    "AQH/BAQDAgWgMB0GA1UdJQQWMBQGCCsGAQUFBwMBBggrBgEFBQcDAjAMBgNVHRMB\n"
    "Af8EAjAAMB0GA1UdDgQWBBSP1wUrNJ7Z8EayHP27du3bMOh3eTAfBgNVHSMEGDAW\n"
    "gBTNluYE+KTh4zpAZ3dnyMcoHajz2jAnBgNVHREEIDAeggtleGFtcGxlLm9yZ4IP\n"
    "d3d3LmV4YW1wbGUub3JnMA0GCSqGSIb3DQEBCwUAA4IBAQCxyt5fs+em/MvvwrlY\n"
    "em+bfaraMtEH4pQwfdeAjwXwf7cYZJolL3BXeCiLwfDD2QxwXwjxcZAl1GoWUPkL\n"
    "nqqvXesXxMXNOaHRhtX6N1DXO3NHJ226cfiBhe1WDCibfA9JP90SZIqXMPCA3iSi\n"
    "uBp/Rxw75gYQa0gycXeGOny+VlCcndy7v3vWcBmpr7JtH39d2g6YFgSBMdJriht2\n"
    "MC5krU7NNg+AD1so7pG2lyetL/tfT7pZ7Rr6RaOQcFu4gblm8bxmi4AGJKvLXedS\n"
    "pJDOS5iWRIjySsxUCc+tnfNx7ypg6H/zeBk0p3jGxuIhEaI+mEZR2aFrsKFVeApp\n"
    "dH4/\n"
    "-----END CERTIFICATE-----\n"
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDUDCCAjigAwIBAgIIGE3E4C8ScagwDQYJKoZIhvcNAQELBQAwIDEeMBwGA1UE\n"
    "AxMVUGViYmxlIFJvb3QgQ0EgNzcyNWE1MCAXDTI2MTIwMjA5MDYwNloYDzIwNTYx\n"
    "MjAyMDkwNjA2WjAoMSYwJAYDVQQDEx1QZWJibGUgSW50ZXJtZWRpYXRlIENBIDA3\n"
    "MDBjMTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAMA9SmiDIVjYY9NH\n"
    "vimmEkusNAIlth1qdhSHUoWmdV/tD0yg1ZYdrx6dN+JSPDTdhWDXglyYR+HdlgqS\n"
    "s7XVvGuQbSwfYOTIl294BhHBqowNLe0PrIQtRvQej58rvw+D4uf3MsfInFPhDqr9\n"
    "uIiIZH55Neckvyfq+AgXdEvUI9Mg3lF4hEpTZWZz0vuuymdpi4EKFsONEnOuAZQK\n"
    "nj6rITUxhy/LRNkvKwKBV64zUrsHH2aLZ2Y7MqXFTxl1/DZUu3lxIMqfm+aJrM7F\n"
    "QSpIClbzOOcWEEZra1r3+HzHEKd8yLEy5h686TMey8/2xagvxs27CVbhSize8M2Y\n"
    "5vw8IWUCAwEAAaOBgzCBgDAOBgNVHQ8BAf8EBAMCAoQwHQYDVR0lBBYwFAYIKwYB\n"
    "BQUHAwEGCCsGAQUFBwMCMA8GA1UdEwEB/wQFMAMBAf8wHQYDVR0OBBYEFM2W5gT4\n"
    "pOHjOkBnd2fIxygdqPPaMB8GA1UdIwQYMBaAFEY+Y3lZefBSItHLKjQEEeBJ/XeW\n"
    "MA0GCSqGSIb3DQEBCwUAA4IBAQB7o66thLCkWObZPwk80zQau03zHAD5hcPLcU0c\n"
    "WWNMO6aMQG4KBIIc/ezRjR5j0Ymk7+7wDxhOz8sGGVkt1dOjeg+0XoQcTRyjPxg/\n"
    "SM47aun+bm1KA9t1xNGUgd6hxTxq2YAxiZNr5rNpGFEw8jb25p3z2ro/4VjlKzOg\n"
    "gAJwYHQ+seuQ8G2qEk0GC6nuWy9/wWXpO6G7yvyPuodVNvYsKUxZyEB2SBIB49xR\n"
    "cDQU7Povo/+/TAs8uG1bBJ80oaoOMgdgMHkVdgTFkMuKkdjZuo9VkrP4vdoeveiP\n"
    "/YOQOZcmuhqgUgBNgceDaTf8eFWWi5Sm+lT235RptprrVAwc\n"
    "-----END CERTIFICATE-----\n";

static acme_store_t *fuzz_store;
static acme_job_spec_t fuzz_spec;
static apr_time_t fuzz_now;

static char fuzz_store_dir[] = "/dev/shm/acme-fuzz-store-XXXXXX";

static int fuzz_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static void fuzz_store_cleanup(void)
{
    nftw(fuzz_store_dir, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fuzz_die(const char *what)
{
    fprintf(stderr, "fuzz setup: %s\n", what);
    abort();
}

/* Writes an item the way a disk may leave it: no rename, no fsync. */
static inline void fuzz_store_put(acme_store_group_t g, const char *aspect, const uint8_t *data,
                           size_t size, apr_pool_t *p)
{
    const char *path = fuzz_store->path(fuzz_store, g, FUZZ_DOMAIN, aspect, p);
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;

    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size)) fuzz_die(path);
    close(fd);
}

/* with_cert: an active certificate for the domain, for the targets whose
 * file is read against it; without one each input runs far faster. */
static inline void fuzz_store_init(int with_cert)
{
    apr_array_header_t *names, *types, *cas, *chain;
    const char *err = NULL;
    acme_key_type_t t;
    apr_pool_t *tmp;

    fuzz_init();
    /* tmpfs: a disk would make the truncating writes slow */
    if (!mkdtemp(fuzz_store_dir)) fuzz_die("mkdtemp");
    atexit(fuzz_store_cleanup);
    if (acme_store_fs_create(&fuzz_store, fuzz_root, fuzz_store_dir, &err) != APR_SUCCESS) {
        fuzz_die(err);
    }
    names = apr_array_make(fuzz_root, 2, sizeof(const char *));
    APR_ARRAY_PUSH(names, const char *) = FUZZ_DOMAIN;
    APR_ARRAY_PUSH(names, const char *) = "www." FUZZ_DOMAIN;
    types = apr_array_make(fuzz_root, 2, sizeof(acme_key_type_t));
    APR_ARRAY_PUSH(types, acme_key_type_t) = ACME_KEY_P256;
    APR_ARRAY_PUSH(types, acme_key_type_t) = ACME_KEY_RSA2048;
    cas = apr_array_make(fuzz_root, 2, sizeof(const char *));
    APR_ARRAY_PUSH(cas, const char *) = "https://ca.test/dir";
    APR_ARRAY_PUSH(cas, const char *) = "https://backup.test/dir";
    t = ACME_KEY_P256;
    /* Every group's directory for the domain exists, as after a first run. */
    fuzz_store->save(fuzz_store, ACME_SG_JOBS, FUZZ_DOMAIN, "x", "", 0, 0, fuzz_root);
    fuzz_store->save(fuzz_store, ACME_SG_STAGING, FUZZ_DOMAIN, "x", "", 0, 0, fuzz_root);
    if (with_cert) {
        /* The leaf alone: the status reader looks at nothing else, and
         * OpenSSL's decoding of the issuer would double each input's cost. */
        const char *end = strstr(fuzz_chain_pem, "-----END CERTIFICATE-----\n");

        fuzz_store->save(fuzz_store, ACME_SG_DOMAINS, FUZZ_DOMAIN,
                         acme_job_cert_file(fuzz_root, t), fuzz_chain_pem,
                         (apr_size_t)(end - fuzz_chain_pem) + 26, 0, fuzz_root);
    }
    apr_pool_create(&tmp, fuzz_root);
    if (acme_chain_from_pem(&chain, tmp, fuzz_chain_pem, sizeof(fuzz_chain_pem) - 1)
        != APR_SUCCESS) {
        fuzz_die("the embedded chain does not parse");
    }
    /* A fixed clock inside the certificate's life keeps runs reproducible. */
    fuzz_now = acme_cert_not_before(APR_ARRAY_IDX(chain, 0, const acme_cert_t *))
               + apr_time_from_sec(86400 * 30);
    apr_pool_destroy(tmp);
    fuzz_spec.domain = FUZZ_DOMAIN;
    fuzz_spec.names = names;
    fuzz_spec.ca_url = "https://ca.test/dir";
    fuzz_spec.ca_urls = cas;
    fuzz_spec.ari = 1;
    fuzz_spec.key_types = types;
    fuzz_spec.window.is_percent = 1;
    fuzz_spec.window.percent = 33.0;
    fuzz_spec.retry_delay = apr_time_from_sec(10);
}

#endif /* ACME_FUZZ_STORE_H */
