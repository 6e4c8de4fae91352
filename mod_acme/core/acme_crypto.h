/* acme_crypto.h: keys, certificates, CSRs and challenge certificates.
 * Together with acme_jws.[ch] the only place that sees OpenSSL. All objects
 * are owned by the pool they were created in (freed by a pool cleanup). */
#ifndef ACME_CRYPTO_H
#define ACME_CRYPTO_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <apr_network_io.h>

typedef struct acme_pkey_t acme_pkey_t;
typedef struct acme_cert_t acme_cert_t;

typedef enum {
    ACME_KEY_NONE = 0,
    ACME_KEY_P256,
    ACME_KEY_P384,
    ACME_KEY_RSA2048,
    ACME_KEY_RSA3072,
    ACME_KEY_RSA4096
} acme_key_type_t;

/* "P-256", "P-384", "RSA-2048", "RSA-3072", "RSA-4096" (case-insensitive;
 * also "rsa" = RSA-2048, "ec"/"ecdsa" = P-256). ACME_KEY_NONE if unknown. */
acme_key_type_t acme_key_type_parse(const char *s);
const char *acme_key_type_name(acme_key_type_t t);     /* "P-256" ... */
const char *acme_key_type_file_tag(acme_key_type_t t); /* "p256", "rsa2048" ... for file names */

apr_status_t acme_pkey_gen(acme_pkey_t **pkey, apr_pool_t *p, acme_key_type_t type);
acme_key_type_t acme_pkey_type(const acme_pkey_t *key);
/* Non-zero when key holds a private part (keys from acme_pkey_from_jwk do
 * not: they can verify but not sign, export or be saved). */
int acme_pkey_is_private(const acme_pkey_t *key);
/* PEM (PKCS#8, unencrypted). Secret: never log it. APR_EINVAL for a
 * public-only key. */
apr_status_t acme_pkey_to_pem(const char **ppem, apr_pool_t *p, const acme_pkey_t *key);
/* APR_EINVAL for anything but an unencrypted private key of a supported
 * type (P-256, P-384, RSA 2048/3072/4096); never prompts for a password. */
apr_status_t acme_pkey_from_pem(acme_pkey_t **pkey, apr_pool_t *p, const char *pem, apr_size_t len);
/* File errors as APR status (APR_ENOENT ...), bad content APR_EINVAL. */
apr_status_t acme_pkey_load(acme_pkey_t **pkey, apr_pool_t *p, const char *path);
/* Writes atomically with mode 0600 (temp file in the same directory,
 * fsync, rename). */
apr_status_t acme_pkey_save(const acme_pkey_t *key, apr_pool_t *p, const char *path);
/* For acme_jws.c only: the EVP_PKEY*. */
void *acme_pkey_evp(const acme_pkey_t *key);
/* For acme_jws.c only: takes ownership of an EVP_PKEY* (freed with p).
 * APR_EINVAL (and the EVP_PKEY freed) when its type is not supported. */
apr_status_t acme_pkey_wrap(acme_pkey_t **pkey, apr_pool_t *p, void *evp_pkey, int is_private);

/* Certificates */
apr_status_t acme_cert_from_pem(acme_cert_t **pcert, apr_pool_t *p, const char *pem, apr_size_t len);
/* All certificates of a PEM chain, leaf first. An empty chain -> APR_ENOENT. */
apr_status_t acme_chain_from_pem(apr_array_header_t **pchain, apr_pool_t *p,
                                 const char *pem, apr_size_t len);
apr_status_t acme_chain_load(apr_array_header_t **pchain, apr_pool_t *p, const char *path);
apr_status_t acme_cert_to_pem(const char **ppem, apr_pool_t *p, const acme_cert_t *cert);
apr_status_t acme_cert_to_der(const unsigned char **pder, apr_size_t *plen, apr_pool_t *p,
                              const acme_cert_t *cert);
apr_time_t acme_cert_not_before(const acme_cert_t *cert);
apr_time_t acme_cert_not_after(const acme_cert_t *cert);
/* dNSName and iPAddress SANs, as text (IPs in canonical text form). */
apr_status_t acme_cert_sans(apr_array_header_t **pnames, apr_pool_t *p, const acme_cert_t *cert);
const char *acme_cert_issuer_cn(const acme_cert_t *cert, apr_pool_t *p);
const char *acme_cert_subject_cn(const acme_cert_t *cert, apr_pool_t *p);
/* Serial as upper-case hex without leading zeros' padding issues ("0A1B..."). */
const char *acme_cert_serial_hex(const acme_cert_t *cert, apr_pool_t *p);
/* SHA-256 over DER, hex with colons "AB:CD:..." */
const char *acme_cert_fingerprint(const acme_cert_t *cert, apr_pool_t *p);
/* RFC 9773 id: base64url(AKI keyIdentifier) "." base64url(serial DER content bytes).
 * APR_ENOENT if the certificate has no AKI keyIdentifier. */
apr_status_t acme_cert_ari_id(const char **pid, apr_pool_t *p, const acme_cert_t *cert);
/* Does the certificate's public key match the private key? */
int acme_cert_matches_key(const acme_cert_t *cert, const acme_pkey_t *key);
/* Does cert cover every name (dNSName / iPAddress, wildcard-aware)? */
int acme_cert_covers(const acme_cert_t *cert, const apr_array_header_t *names);
/* The same for a certificate's SANs (acme_cert_sans). */
int acme_sans_cover(const apr_array_header_t *sans, const apr_array_header_t *names,
                    apr_pool_t *ptemp);
/* Is this chain and key usable as a pair? The leaf matches the key, covers
 * names (unless names is NULL) and, unless now is 0, is valid at now (a
 * clock skew of an hour is allowed before notBefore). APR_EINVAL with *pwhy
 * saying what is wrong, in words for the log. The one rule for activation,
 * for mod_ssl's hand-off and after download. */
apr_status_t acme_pair_check(const apr_array_header_t *chain, const acme_pkey_t *key,
                             const apr_array_header_t *names, apr_time_t now, const char **pwhy,
                             apr_pool_t *p);
/* Verifies the chain (leaf first) against the trust anchors in ca_file
 * (PEM) at time 'at' (0 = now). APR_SUCCESS when it verifies; APR_EINVAL
 * when it does not (*perr says why, X509_verify_cert_error_string) or the
 * chain is empty; the file's status when ca_file cannot be loaded. perr may
 * be NULL. */
apr_status_t acme_chain_verify(const apr_array_header_t *chain, const char *ca_file,
                               apr_time_t at, const char **perr, apr_pool_t *p);

/* CSR (DER) for names: SAN for every name (dNS or iPAddress), CN = first
 * name only when it is a DNS name of at most 64 bytes. */
apr_status_t acme_csr_make(const unsigned char **pder, apr_size_t *plen, apr_pool_t *p,
                           const acme_pkey_t *key, const apr_array_header_t *names);
/* Parses a DER CSR back (for tests): SAN names and the CN (or NULL).
 * APR_EINVAL when the DER is malformed or its signature does not verify. */
apr_status_t acme_csr_names(apr_array_header_t **pnames, const char **pcn, apr_pool_t *p,
                            const unsigned char *der, apr_size_t len);

/* A self-signed certificate for names in PEM, valid from now-1h for
 * valid_for (notAfter = notBefore + valid_for; the temporary certificate
 * before the first issuance). cn NULL: the first name when it is a DNS
 * name of at most 64 bytes, else no CN. The key's public part is encoded
 * once, on its first certificate: one key signs many of them. */
apr_status_t acme_cert_self_signed_pem(const char **ppem, apr_pool_t *p, const acme_pkey_t *key,
                                       const apr_array_header_t *names, const char *cn,
                                       apr_interval_time_t valid_for);
/* RFC 8737 tls-alpn-01 certificate: SAN = name, critical id-pe-acmeIdentifier
 * (1.3.6.1.5.5.7.1.31) holding OCTET STRING(SHA-256(key_authz)). */
apr_status_t acme_cert_tls_alpn01(acme_cert_t **pcert, apr_pool_t *p, const acme_pkey_t *key,
                                  const char *name, const char *key_authz);
/* Reads the acmeIdentifier extension back: 32 bytes, *pcritical set.
 * APR_ENOENT without the extension, APR_EINVAL when it is malformed. */
apr_status_t acme_cert_get_acme_id(const unsigned char **pdigest, int *pcritical,
                                   apr_pool_t *p, const acme_cert_t *cert);

/* tls-alpn-01 as the CA checks it (RFC 8737 3): connect to host:port (the
 * system's resolver), offer only acme-tls/1 with SNI sni, and compare the
 * certificate's acmeIdentifier with SHA-256(key_authz). No trust check: the
 * certificate is self-signed. res->stage says how far it got. Resolving and
 * connecting end after connect_timeout, all of it after timeout, and every
 * wait (the resolution too) within 0.1 s of *stop becoming non-zero. */
typedef enum {
    ACME_ALPN_PROBE_NO_CONNECT = 0,
    ACME_ALPN_PROBE_NO_HANDSHAKE,
    ACME_ALPN_PROBE_NO_ALPN,     /* the server did not choose acme-tls/1 */
    ACME_ALPN_PROBE_WRONG_CERT,  /* no acmeIdentifier, or another one */
    ACME_ALPN_PROBE_OK
} acme_alpn_probe_stage_t;
typedef struct acme_alpn_probe_t {
    acme_alpn_probe_stage_t stage;
    const char *remote;          /* the address connected to, or NULL */
    const char *detail;          /* why it stopped, or NULL */
} acme_alpn_probe_t;
apr_status_t acme_tls_alpn01_probe(acme_alpn_probe_t *res, apr_pool_t *p, const char *host,
                                   apr_port_t port, const char *sni, const char *key_authz,
                                   apr_interval_time_t connect_timeout,
                                   apr_interval_time_t timeout, volatile apr_uint32_t *stop);

/* SHA-256 */
void acme_sha256(unsigned char out[32], const void *data, apr_size_t len);

/* AES-256-GCM for secrets kept in a shared store. ad (associated data) is
 * the item's name, so a value copied to another name does not open. The
 * sealed form is text: ACME_SEAL_PREFIX base64url(nonce[12] | ciphertext | tag[16]). */
#define ACME_SEAL_KEY_LEN 32
#define ACME_SEAL_PREFIX "v1:"
apr_status_t acme_seal(const char **psealed, apr_pool_t *p, const unsigned char *key,
                       const char *ad, const void *data, apr_size_t len);
/* APR_EINVAL when sealed is not in the sealed form (garbage, truncated);
 * APR_EACCES when it does not authenticate (wrong key, other ad, altered).
 * *perr (may be NULL) says which. The plaintext is NUL-terminated (not
 * counted) and wiped when p goes away. */
apr_status_t acme_unseal(const char **pdata, apr_size_t *plen, apr_pool_t *p,
                         const unsigned char *key, const char *ad, const char *sealed,
                         apr_size_t sealed_len, const char **perr);
/* Non-zero when data starts like a sealed value. */
int acme_is_sealed(const char *data, apr_size_t len);

/* A key of its own for each use of one secret (RFC 5869 HKDF-SHA256, no
 * salt): out_len bytes for info, so that sealing and MACs never share a key. */
apr_status_t acme_key_derive(unsigned char *out, apr_size_t out_len, const unsigned char *key,
                             apr_size_t key_len, const char *info);
/* HMAC-SHA256 of data under key. */
#define ACME_MAC_LEN 32
apr_status_t acme_mac(unsigned char out[ACME_MAC_LEN], const unsigned char *key,
                      apr_size_t key_len, const void *data, apr_size_t len);
/* Non-zero when two MACs of len bytes are equal; takes the same time
 * whatever the bytes, so that a forger learns nothing from the answer's time. */
int acme_mac_equal(const unsigned char *a, const unsigned char *b, apr_size_t len);
/* Overwrites a secret in a way the compiler does not drop. */
void acme_wipe(void *data, apr_size_t len);

/* Reads a secret named in the config (a key, an EAB file): a regular file
 * owned by root that group and others can neither read nor write, of at
 * most max bytes. Anything else fails with *perr naming the file ("what
 * path ...") and saying what to fix; fix (may be NULL) is added where
 * making the file anew is the cure. The data is NUL-terminated (not
 * counted) and wiped when p goes away.
 * ACME_KEYFILE_ANY_OWNER skips the owner check (unit tests, non-root CLI). */
#define ACME_KEYFILE_ANY_OWNER 0x1
apr_status_t acme_secret_file_read(const char **pdata, apr_size_t *plen, apr_pool_t *p,
                                   const char *path, const char *what, apr_size_t max,
                                   int flags, const char *fix, const char **perr);

/* Reads the store encryption key: exactly ACME_SEAL_KEY_LEN bytes in a
 * secret file (acme_secret_file_read), made with `openssl rand -out FILE 32`. */
apr_status_t acme_store_key_load(const unsigned char **pkey, apr_pool_t *p, const char *path,
                                 int flags, const char **perr);

#endif /* ACME_CRYPTO_H */
