/* acme_jws.c: JWS in the flattened JSON serialization (RFC 7515) as ACME
 * sends it, JWKs and their thumbprints, EAB and keyChange inner JWS. */

#include <string.h>

#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_crypto.h"
#include "acme_jws.h"

/* Tokens are 128+ bits of entropy (RFC 8555 8.3); anything much longer is
 * not a token a CA would send. */
#define ACME_MAX_TOKEN_LEN 512

typedef struct {
    const char *kty;
    const char *crv; /* EC only */
    const char *x;
    const char *y;
    const char *n; /* RSA only */
    const char *e;
} jwk_parts_t;

static void ssl_errors_drain(const char *what)
{
    unsigned long e;
    char buf[256];

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        acme_log(ACME_LOG_MARK, ACME_LOG_TRACE1, 0, "%s: %s", what, buf);
    }
}

/* Coordinate size of the curve: JOSE pads x, y, r and s to it. */
static apr_size_t ec_field_size(acme_key_type_t t)
{
    switch (t) {
    case ACME_KEY_P256: return 32;
    case ACME_KEY_P384: return 48;
    default: return 0;
    }
}

static const EVP_MD *key_md(const acme_pkey_t *key)
{
    return acme_pkey_type(key) == ACME_KEY_P384 ? EVP_sha384() : EVP_sha256();
}

/* base64url of a big number: fixed width when pad > 0, else minimal. */
static apr_status_t bn_param_b64(const char **pout, apr_pool_t *p, EVP_PKEY *pkey,
                                 const char *param, apr_size_t pad)
{
    BIGNUM *bn = NULL;
    unsigned char *buf;
    apr_size_t len;
    apr_status_t rv = APR_SUCCESS;

    *pout = NULL;
    if (!EVP_PKEY_get_bn_param(pkey, param, &bn)) {
        ssl_errors_drain("EVP_PKEY_get_bn_param");
        rv = APR_EGENERAL;
        goto leave;
    }
    len = pad ? pad : (apr_size_t)BN_num_bytes(bn);
    if (len == 0) {
        rv = APR_EGENERAL;
        goto leave;
    }
    buf = apr_palloc(p, len);
    if (BN_bn2binpad(bn, buf, (int)len) != (int)len) {
        rv = APR_EGENERAL;
        goto leave;
    }
    *pout = acme_b64url_encode(p, buf, len);
leave:
    BN_free(bn);
    return rv;
}

static apr_status_t jwk_parts_get(jwk_parts_t *parts, apr_pool_t *p, const acme_pkey_t *key)
{
    EVP_PKEY *pkey = acme_pkey_evp(key);
    apr_size_t fs = ec_field_size(acme_pkey_type(key));
    apr_status_t rv;

    memset(parts, 0, sizeof(*parts));
    if (!pkey) {
        return APR_EINVAL;
    }
    if (fs) {
        parts->kty = "EC";
        parts->crv = acme_key_type_name(acme_pkey_type(key));
        rv = bn_param_b64(&parts->x, p, pkey, OSSL_PKEY_PARAM_EC_PUB_X, fs);
        if (rv == APR_SUCCESS) {
            rv = bn_param_b64(&parts->y, p, pkey, OSSL_PKEY_PARAM_EC_PUB_Y, fs);
        }
        return rv;
    }
    parts->kty = "RSA";
    rv = bn_param_b64(&parts->n, p, pkey, OSSL_PKEY_PARAM_RSA_N, 0);
    if (rv == APR_SUCCESS) {
        rv = bn_param_b64(&parts->e, p, pkey, OSSL_PKEY_PARAM_RSA_E, 0);
    }
    return rv;
}

apr_status_t acme_jwk_make(acme_json_t **pjwk, apr_pool_t *p, const acme_pkey_t *key)
{
    jwk_parts_t parts;
    acme_json_t *jwk;
    apr_status_t rv;

    *pjwk = NULL;
    rv = jwk_parts_get(&parts, p, key);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    jwk = acme_json_new_object(p);
    rv = acme_json_sets(jwk, parts.kty, "kty", NULL);
    if (rv == APR_SUCCESS && parts.crv) {
        if ((rv = acme_json_sets(jwk, parts.crv, "crv", NULL)) == APR_SUCCESS
            && (rv = acme_json_sets(jwk, parts.x, "x", NULL)) == APR_SUCCESS) {
            rv = acme_json_sets(jwk, parts.y, "y", NULL);
        }
    }
    else if (rv == APR_SUCCESS) {
        if ((rv = acme_json_sets(jwk, parts.e, "e", NULL)) == APR_SUCCESS) {
            rv = acme_json_sets(jwk, parts.n, "n", NULL);
        }
    }
    if (rv == APR_SUCCESS) {
        *pjwk = jwk;
    }
leave:
    return rv;
}

apr_status_t acme_jwk_thumbprint(const char **pthumb, apr_pool_t *p, const acme_pkey_t *key)
{
    jwk_parts_t parts;
    unsigned char md[32];
    const char *canon;
    apr_status_t rv;

    *pthumb = NULL;
    rv = jwk_parts_get(&parts, p, key);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* RFC 7638 section 3: only the required members, sorted, no
     * whitespace. The values are base64url or fixed names, so there is
     * nothing to escape and the JSON can be written directly. */
    if (parts.crv) {
        canon = apr_psprintf(p, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                             parts.crv, parts.x, parts.y);
    }
    else {
        canon = apr_psprintf(p, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", parts.e, parts.n);
    }
    acme_sha256(md, canon, strlen(canon));
    *pthumb = acme_b64url_encode(p, md, sizeof(md));
    return APR_SUCCESS;
}

const char *acme_jws_alg(const acme_pkey_t *key)
{
    switch (acme_pkey_type(key)) {
    case ACME_KEY_P256: return "ES256";
    case ACME_KEY_P384: return "ES384";
    case ACME_KEY_RSA2048:
    case ACME_KEY_RSA3072:
    case ACME_KEY_RSA4096: return "RS256";
    default: return NULL;
    }
}

/* ---- JWK -> key ------------------------------------------------------------------ */

static apr_status_t b64_member(unsigned char **pd, apr_size_t *plen, apr_pool_t *p,
                               const acme_json_t *jwk, const char *name)
{
    const char *s = acme_json_gets(jwk, name, NULL);

    if (!s || !*s) {
        return APR_EINVAL;
    }
    return acme_b64url_decode(pd, plen, p, s);
}

/* RSA's private members (RFC 7518 6.3.2) with their OpenSSL names: all
 * required (the CRT members, which RFC 7518 makes optional, are what
 * OpenSSL's pairwise check needs; certbot writes them). */
static const struct {
    const char *member, *param;
} rsa_private[] = {
    {"d", OSSL_PKEY_PARAM_RSA_D},
    {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
    {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},
    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
    {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2},
    {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
};
#define RSA_PRIVATE_N (sizeof(rsa_private) / sizeof(rsa_private[0]))

/* The key of a JWK: with_private, its private part too (required). */
static apr_status_t pkey_from_jwk(acme_pkey_t **pkey, apr_pool_t *p, const acme_json_t *jwk,
                                  int with_private)
{
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL, *cctx = NULL;
    EVP_PKEY *evp = NULL;
    BIGNUM *n = NULL, *e = NULL, *priv[RSA_PRIVATE_N] = {NULL};
    const char *kty, *crv, *alg_name;
    unsigned char *x, *y, *pub, *d;
    apr_size_t xlen, ylen, dlen, fs, i;
    apr_status_t rv;

    *pkey = NULL;
    kty = acme_json_gets(jwk, "kty", NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!kty || !bld) {
        rv = APR_EINVAL;
        goto leave;
    }
    if (!strcmp(kty, "EC")) {
        alg_name = "EC";
        crv = acme_json_gets(jwk, "crv", NULL);
        fs = ec_field_size(acme_key_type_parse(crv));
        if (!crv || (strcmp(crv, "P-256") && strcmp(crv, "P-384")) || !fs) {
            rv = APR_EINVAL;
            goto leave;
        }
        if ((rv = b64_member(&x, &xlen, p, jwk, "x")) != APR_SUCCESS
            || (rv = b64_member(&y, &ylen, p, jwk, "y")) != APR_SUCCESS) {
            goto leave;
        }
        /* RFC 7518 6.2.1.2: the coordinates MUST be full length. */
        if (xlen != fs || ylen != fs) {
            rv = APR_EINVAL;
            goto leave;
        }
        pub = apr_palloc(p, 1 + 2 * fs);
        pub[0] = 0x04; /* uncompressed point */
        memcpy(pub + 1, x, fs);
        memcpy(pub + 1 + fs, y, fs);
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, crv, 0)
            || !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * fs)) {
            rv = APR_ENOMEM;
            goto leave;
        }
        if (with_private) {
            /* RFC 7518 6.2.2.1: d is as long as the coordinates */
            if ((rv = b64_member(&d, &dlen, p, jwk, "d")) != APR_SUCCESS || dlen != fs) {
                rv = APR_EINVAL;
                goto leave;
            }
            if (!(priv[0] = BN_bin2bn(d, (int)dlen, NULL))
                || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv[0])) {
                rv = APR_ENOMEM;
                goto leave;
            }
        }
    }
    else if (!strcmp(kty, "RSA")) {
        alg_name = "RSA";
        if ((rv = b64_member(&x, &xlen, p, jwk, "n")) != APR_SUCCESS
            || (rv = b64_member(&y, &ylen, p, jwk, "e")) != APR_SUCCESS) {
            goto leave;
        }
        if (xlen > 2048 || ylen > 16) {
            rv = APR_EINVAL;
            goto leave;
        }
        n = BN_bin2bn(x, (int)xlen, NULL);
        e = BN_bin2bn(y, (int)ylen, NULL);
        if (!n || !e || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n)
            || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
            rv = APR_ENOMEM;
            goto leave;
        }
        for (i = 0; with_private && i < RSA_PRIVATE_N; ++i) {
            if ((rv = b64_member(&d, &dlen, p, jwk, rsa_private[i].member)) != APR_SUCCESS
                || dlen > 1024) {
                rv = APR_EINVAL;
                goto leave;
            }
            if (!(priv[i] = BN_bin2bn(d, (int)dlen, NULL))
                || !OSSL_PARAM_BLD_push_BN(bld, rsa_private[i].param, priv[i])) {
                rv = APR_ENOMEM;
                goto leave;
            }
        }
    }
    else {
        rv = APR_EINVAL;
        goto leave;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, alg_name, NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &evp, with_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                             params) <= 0
        || !evp) {
        rv = APR_EINVAL;
        goto leave;
    }
    /* A point off the curve would make every verification meaningless. */
    cctx = EVP_PKEY_CTX_new_from_pkey(NULL, evp, NULL);
    if (!cctx || EVP_PKEY_public_check(cctx) != 1
        || (with_private && EVP_PKEY_pairwise_check(cctx) != 1)) {
        rv = APR_EINVAL;
        goto leave;
    }
    rv = acme_pkey_wrap(pkey, p, evp, with_private);
    evp = NULL; /* owned by *pkey now, or freed by acme_pkey_wrap */
leave:
    ssl_errors_drain("acme_pkey_from_jwk");
    EVP_PKEY_free(evp);
    EVP_PKEY_CTX_free(cctx);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    for (i = 0; i < RSA_PRIVATE_N; ++i) {
        BN_clear_free(priv[i]);
    }
    return rv;
}

apr_status_t acme_pkey_from_jwk(acme_pkey_t **pkey, apr_pool_t *p, const acme_json_t *jwk)
{
    return pkey_from_jwk(pkey, p, jwk, 0);
}

apr_status_t acme_pkey_from_private_jwk(acme_pkey_t **pkey, apr_pool_t *p,
                                        const acme_json_t *jwk)
{
    return pkey_from_jwk(pkey, p, jwk, 1);
}

/* ---- signatures ------------------------------------------------------------------ */

apr_status_t acme_jws_sign_raw(const unsigned char **psig, apr_size_t *plen, apr_pool_t *p,
                               const acme_pkey_t *key, const char *signing_input)
{
    EVP_MD_CTX *md = NULL;
    ECDSA_SIG *es = NULL;
    unsigned char *der = NULL, *out;
    const unsigned char *q;
    const BIGNUM *r, *s;
    size_t len = 0;
    apr_size_t fs = ec_field_size(acme_pkey_type(key));
    apr_status_t rv = APR_EGENERAL;

    *psig = NULL;
    *plen = 0;
    if (!acme_pkey_is_private(key) || !acme_jws_alg(key) || !signing_input) {
        rv = APR_EINVAL;
        goto leave;
    }
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, NULL, key_md(key), NULL, acme_pkey_evp(key)) != 1
        || EVP_DigestSign(md, NULL, &len, (const unsigned char *)signing_input,
                          strlen(signing_input)) != 1) {
        goto leave;
    }
    der = OPENSSL_malloc(len);
    if (!der || EVP_DigestSign(md, der, &len, (const unsigned char *)signing_input,
                               strlen(signing_input)) != 1) {
        goto leave;
    }
    if (!fs) {
        *psig = apr_pmemdup(p, der, len);
        *plen = len;
        rv = APR_SUCCESS;
        goto leave;
    }
    /* OpenSSL returns ECDSA as DER SEQUENCE{r,s}; JOSE (RFC 7518 3.4)
     * wants r||s, each left-padded to the coordinate size. */
    q = der;
    es = d2i_ECDSA_SIG(NULL, &q, (long)len);
    if (!es) {
        goto leave;
    }
    ECDSA_SIG_get0(es, &r, &s);
    out = apr_palloc(p, 2 * fs);
    if (BN_bn2binpad(r, out, (int)fs) != (int)fs || BN_bn2binpad(s, out + fs, (int)fs) != (int)fs) {
        goto leave;
    }
    *psig = out;
    *plen = 2 * fs;
    rv = APR_SUCCESS;
leave:
    if (rv != APR_SUCCESS) {
        ssl_errors_drain("acme_jws_sign_raw");
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0701) "JWS signing failed");
    }
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return rv;
}

apr_status_t acme_jws_verify_raw(const acme_pkey_t *key, const char *signing_input,
                                 const unsigned char *sig, apr_size_t siglen)
{
    EVP_MD_CTX *md = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL;
    const unsigned char *vsig = sig;
    size_t vlen = siglen;
    apr_size_t fs = ec_field_size(acme_pkey_type(key));
    int n;
    apr_status_t rv = APR_EINVAL;

    if (!acme_jws_alg(key) || !signing_input || !sig || siglen == 0) {
        goto leave;
    }
    if (fs) {
        if (siglen != 2 * fs) {
            goto leave;
        }
        es = ECDSA_SIG_new();
        r = BN_bin2bn(sig, (int)fs, NULL);
        s = BN_bin2bn(sig + fs, (int)fs, NULL);
        if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
            rv = APR_ENOMEM;
            goto leave;
        }
        r = s = NULL; /* owned by es */
        n = i2d_ECDSA_SIG(es, &der);
        if (n <= 0) {
            goto leave;
        }
        vsig = der;
        vlen = (size_t)n;
    }
    rv = APR_EGENERAL;
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestVerifyInit(md, NULL, key_md(key), NULL, acme_pkey_evp(key)) != 1) {
        goto leave;
    }
    if (EVP_DigestVerify(md, vsig, vlen, (const unsigned char *)signing_input,
                         strlen(signing_input)) == 1) {
        rv = APR_SUCCESS;
    }
leave:
    ssl_errors_drain("acme_jws_verify_raw");
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return rv;
}

/* Signs hdr + payload into the flattened JSON object. */
static apr_status_t jws_build(acme_json_t **pjws, apr_pool_t *p, const acme_pkey_t *key,
                              const acme_json_t *hdr, const char *payload, apr_size_t plen)
{
    const char *hdr_json, *b64_hdr, *b64_payload, *input;
    const unsigned char *sig;
    apr_size_t siglen;
    acme_json_t *jws;
    apr_status_t rv;

    *pjws = NULL;
    hdr_json = acme_json_dump(hdr, p, 1);
    if (!hdr_json) {
        return APR_EGENERAL;
    }
    b64_hdr = acme_b64url_encode(p, (const unsigned char *)hdr_json, strlen(hdr_json));
    b64_payload = acme_b64url_encode(p, (const unsigned char *)(payload ? payload : ""),
                                     payload ? plen : 0);
    input = apr_pstrcat(p, b64_hdr, ".", b64_payload, NULL);
    rv = acme_jws_sign_raw(&sig, &siglen, p, key, input);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    jws = acme_json_new_object(p);
    if ((rv = acme_json_sets(jws, b64_hdr, "protected", NULL)) != APR_SUCCESS
        || (rv = acme_json_sets(jws, b64_payload, "payload", NULL)) != APR_SUCCESS
        || (rv = acme_json_sets(jws, acme_b64url_encode(p, sig, siglen), "signature", NULL))
               != APR_SUCCESS) {
        return rv;
    }
    *pjws = jws;
    return APR_SUCCESS;
}

/* alg plus either the key's jwk or the account kid. */
static apr_status_t hdr_start(acme_json_t **phdr, apr_pool_t *p, const acme_pkey_t *key,
                              const char *kid, const char *url)
{
    acme_json_t *hdr, *jwk;
    const char *alg = acme_jws_alg(key);
    apr_status_t rv;

    *phdr = NULL;
    if (!alg || !url || !*url) {
        return APR_EINVAL;
    }
    hdr = acme_json_new_object(p);
    if ((rv = acme_json_sets(hdr, alg, "alg", NULL)) != APR_SUCCESS
        || (rv = acme_json_sets(hdr, url, "url", NULL)) != APR_SUCCESS) {
        return rv;
    }
    if (kid) {
        rv = acme_json_sets(hdr, kid, "kid", NULL);
    }
    else if ((rv = acme_jwk_make(&jwk, p, key)) == APR_SUCCESS) {
        rv = acme_json_setj(hdr, jwk, "jwk", NULL);
    }
    if (rv == APR_SUCCESS) {
        *phdr = hdr;
    }
    return rv;
}

apr_status_t acme_jws_sign(const char **pjws, apr_pool_t *p, const acme_pkey_t *key,
                           const char *kid, const char *nonce, const char *url,
                           const char *payload, apr_size_t payload_len)
{
    acme_json_t *hdr, *jws;
    apr_status_t rv;

    *pjws = NULL;
    rv = hdr_start(&hdr, p, key, kid, url);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (nonce && (rv = acme_json_sets(hdr, nonce, "nonce", NULL)) != APR_SUCCESS) {
        goto leave;
    }
    rv = jws_build(&jws, p, key, hdr, payload, payload_len);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    *pjws = acme_json_dump(jws, p, 1);
    if (!*pjws) {
        rv = APR_EGENERAL;
    }
leave:
    return rv;
}

apr_status_t acme_jws_verify(const char *jws, const acme_pkey_t *key, apr_pool_t *p)
{
    acme_json_t *j = NULL, *hdr = NULL;
    const char *b64_hdr, *b64_payload, *b64_sig, *alg, *err = NULL;
    unsigned char *hdr_json, *sig, *payload;
    apr_size_t hdr_len, siglen, plen;
    apr_status_t rv;

    if (!jws || !key) {
        return APR_EINVAL;
    }
    rv = acme_json_parse(&j, p, jws, strlen(jws), &err);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    b64_hdr = acme_json_gets(j, "protected", NULL);
    b64_payload = acme_json_gets(j, "payload", NULL);
    b64_sig = acme_json_gets(j, "signature", NULL);
    if (!b64_hdr || !b64_payload || !b64_sig) {
        rv = APR_EINVAL;
        goto leave;
    }
    if ((rv = acme_b64url_decode(&hdr_json, &hdr_len, p, b64_hdr)) != APR_SUCCESS
        || (rv = acme_b64url_decode(&payload, &plen, p, b64_payload)) != APR_SUCCESS
        || (rv = acme_b64url_decode(&sig, &siglen, p, b64_sig)) != APR_SUCCESS) {
        rv = APR_EINVAL;
        goto leave;
    }
    rv = acme_json_parse(&hdr, p, (const char *)hdr_json, hdr_len, &err);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    /* The algorithm comes from the key, never from the message: a header
     * may not talk us into another one. */
    alg = acme_json_gets(hdr, "alg", NULL);
    if (!alg || !acme_jws_alg(key) || strcmp(alg, acme_jws_alg(key))) {
        rv = APR_EINVAL;
        goto leave;
    }
    rv = acme_jws_verify_raw(key, apr_pstrcat(p, b64_hdr, ".", b64_payload, NULL), sig, siglen);
leave:
    if (err) {
        acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, rv, "JWS not parseable: %s", err);
    }
    return rv;
}

apr_status_t acme_jws_eab(acme_json_t **peab, apr_pool_t *p, const acme_pkey_t *account_key,
                          const char *eab_kid, const char *eab_hmac_b64url, const char *url)
{
    acme_json_t *hdr, *jwk, *eab;
    const char *hdr_json, *jwk_json, *b64_hdr, *b64_payload, *input;
    unsigned char *hmac_key = NULL;
    unsigned char mac[EVP_MAX_MD_SIZE];
    apr_size_t keylen = 0;
    size_t maclen = 0;
    apr_status_t rv;

    *peab = NULL;
    if (!eab_kid || !*eab_kid || !url || !*url || !eab_hmac_b64url) {
        rv = APR_EINVAL;
        goto leave;
    }
    rv = acme_b64url_decode(&hmac_key, &keylen, p, eab_hmac_b64url);
    if (rv != APR_SUCCESS || keylen == 0) {
        rv = APR_EINVAL;
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv,
                 ACMELOG(0702) "EAB key for kid %s is not valid base64url", eab_kid);
        goto leave;
    }
    rv = acme_jwk_make(&jwk, p, account_key);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    hdr = acme_json_new_object(p);
    if ((rv = acme_json_sets(hdr, "HS256", "alg", NULL)) != APR_SUCCESS
        || (rv = acme_json_sets(hdr, eab_kid, "kid", NULL)) != APR_SUCCESS
        || (rv = acme_json_sets(hdr, url, "url", NULL)) != APR_SUCCESS) {
        goto leave;
    }
    hdr_json = acme_json_dump(hdr, p, 1);
    jwk_json = acme_json_dump(jwk, p, 1);
    if (!hdr_json || !jwk_json) {
        rv = APR_EGENERAL;
        goto leave;
    }
    b64_hdr = acme_b64url_encode(p, (const unsigned char *)hdr_json, strlen(hdr_json));
    b64_payload = acme_b64url_encode(p, (const unsigned char *)jwk_json, strlen(jwk_json));
    input = apr_pstrcat(p, b64_hdr, ".", b64_payload, NULL);
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, hmac_key, keylen,
                   (const unsigned char *)input, strlen(input), mac, sizeof(mac), &maclen)
        || maclen != 32) {
        ssl_errors_drain("EAB HMAC");
        rv = APR_EGENERAL;
        goto leave;
    }
    eab = acme_json_new_object(p);
    if ((rv = acme_json_sets(eab, b64_hdr, "protected", NULL)) != APR_SUCCESS
        || (rv = acme_json_sets(eab, b64_payload, "payload", NULL)) != APR_SUCCESS
        || (rv = acme_json_sets(eab, acme_b64url_encode(p, mac, maclen), "signature", NULL))
               != APR_SUCCESS) {
        goto leave;
    }
    *peab = eab;
leave:
    if (hmac_key) {
        OPENSSL_cleanse(hmac_key, keylen);
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    return rv;
}

apr_status_t acme_jws_keychange_inner(acme_json_t **pinner, apr_pool_t *p,
                                      const acme_pkey_t *new_key, const acme_pkey_t *old_key,
                                      const char *account_url, const char *url)
{
    acme_json_t *hdr, *payload, *old_jwk;
    const char *payload_json;
    apr_status_t rv;

    *pinner = NULL;
    if (!account_url || !*account_url) {
        rv = APR_EINVAL;
        goto leave;
    }
    /* RFC 8555 7.3.5: jwk of the new key, no nonce, no kid. */
    rv = hdr_start(&hdr, p, new_key, NULL, url);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = acme_jwk_make(&old_jwk, p, old_key);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    payload = acme_json_new_object(p);
    if ((rv = acme_json_sets(payload, account_url, "account", NULL)) != APR_SUCCESS
        || (rv = acme_json_setj(payload, old_jwk, "oldKey", NULL)) != APR_SUCCESS) {
        goto leave;
    }
    payload_json = acme_json_dump(payload, p, 1);
    if (!payload_json) {
        rv = APR_EGENERAL;
        goto leave;
    }
    rv = jws_build(pinner, p, new_key, hdr, payload_json, strlen(payload_json));
leave:
    return rv;
}

apr_status_t acme_key_authz(const char **pauthz, apr_pool_t *p, const acme_pkey_t *account_key,
                            const char *token)
{
    const char *thumb;
    apr_status_t rv;

    *pauthz = NULL;
    if (!acme_b64url_is_token(token, ACME_MAX_TOKEN_LEN)) {
        return APR_EINVAL;
    }
    rv = acme_jwk_thumbprint(&thumb, p, account_key);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pauthz = apr_pstrcat(p, token, ".", thumb, NULL);
    return APR_SUCCESS;
}

const char *acme_dns01_value(apr_pool_t *p, const char *key_authz)
{
    unsigned char md[32];

    if (!key_authz) {
        return NULL;
    }
    acme_sha256(md, key_authz, strlen(key_authz));
    return acme_b64url_encode(p, md, sizeof(md));
}
