/* acme_jws.h: JSON Web Signature (RFC 7515) in the flattened JSON
 * serialization ACME uses, JWK (RFC 7517/7518), thumbprints (RFC 7638) and
 * the ACME key authorization and challenge digests. */
#ifndef ACME_JWS_H
#define ACME_JWS_H

#include <apr_pools.h>
#include "acme_crypto.h"

struct acme_json_t;

/* The public JWK of key: EC {crv,kty,x,y} or RSA {e,kty,n}. */
apr_status_t acme_jwk_make(struct acme_json_t **pjwk, apr_pool_t *p, const acme_pkey_t *key);
/* A public-only key from a JWK (EC P-256/P-384 or RSA 2048/3072/4096);
 * private members are ignored. APR_EINVAL for anything malformed, an EC
 * point not on the curve or an unsupported key. */
apr_status_t acme_pkey_from_jwk(acme_pkey_t **pkey, apr_pool_t *p, const struct acme_json_t *jwk);
/* A private key from a JWK with its private members (EC "d"; RSA "d", "p",
 * "q", "dp", "dq" and "qi"): another client's account key, as
 * certbot keeps it. APR_EINVAL as above, and for a private part that does
 * not match the public one. Secret: never log the JWK. */
apr_status_t acme_pkey_from_private_jwk(acme_pkey_t **pkey, apr_pool_t *p,
                                        const struct acme_json_t *jwk);
/* RFC 7638 thumbprint: base64url(SHA-256(canonical JWK)). */
apr_status_t acme_jwk_thumbprint(const char **pthumb, apr_pool_t *p, const acme_pkey_t *key);
/* "ES256" / "ES384" / "RS256" for the key type. */
const char *acme_jws_alg(const acme_pkey_t *key);

/* Signs payload (may be "" for POST-as-GET) into a flattened JWS JSON:
 * {"protected":..,"payload":..,"signature":..}. Protected header holds
 * alg, nonce (if non-NULL), url, and kid when kid != NULL else jwk. */
apr_status_t acme_jws_sign(const char **pjws, apr_pool_t *p, const acme_pkey_t *key,
                           const char *kid, const char *nonce, const char *url,
                           const char *payload, apr_size_t payload_len);
/* Lower-level: signs signing_input ("b64hdr.b64payload") with key, returns
 * the raw JOSE signature (ECDSA r||s fixed width, RSA PKCS#1 v1.5). */
apr_status_t acme_jws_sign_raw(const unsigned char **psig, apr_size_t *plen, apr_pool_t *p,
                               const acme_pkey_t *key, const char *signing_input);
/* Verifies a flattened JWS with a public key (for tests and keyChange checks).
 * The protected "alg" must be the key's. APR_EINVAL when malformed,
 * APR_EGENERAL when the signature does not verify. */
apr_status_t acme_jws_verify(const char *jws, const acme_pkey_t *key, apr_pool_t *p);
/* Lower-level: checks a raw JOSE signature over signing_input. Same
 * status codes as acme_jws_verify. */
apr_status_t acme_jws_verify_raw(const acme_pkey_t *key, const char *signing_input,
                                 const unsigned char *sig, apr_size_t siglen);

/* External Account Binding (RFC 8555 7.3.4): a JWS with alg HS256, kid, url,
 * payload = the account's JWK, signed with the base64url HMAC key. Returns
 * the JSON object to put in "externalAccountBinding". APR_EINVAL when the
 * HMAC key is not valid base64url or empty, or kid/url are missing. */
apr_status_t acme_jws_eab(struct acme_json_t **peab, apr_pool_t *p, const acme_pkey_t *account_key,
                          const char *eab_kid, const char *eab_hmac_b64url, const char *url);

/* keyChange inner JWS (RFC 8555 7.3.5): signed by new_key with its jwk,
 * url = keyChange URL, payload {account, oldKey}. */
apr_status_t acme_jws_keychange_inner(struct acme_json_t **pinner, apr_pool_t *p,
                                      const acme_pkey_t *new_key, const acme_pkey_t *old_key,
                                      const char *account_url, const char *url);

/* token "." thumbprint(account key). APR_EINVAL unless token is a
 * base64url string (it comes from the CA and ends up in HTTP answers). */
apr_status_t acme_key_authz(const char **pauthz, apr_pool_t *p, const acme_pkey_t *account_key,
                            const char *token);
/* dns-01 TXT value: base64url(SHA-256(key_authz)) */
const char *acme_dns01_value(apr_pool_t *p, const char *key_authz);

#endif /* ACME_JWS_H */
