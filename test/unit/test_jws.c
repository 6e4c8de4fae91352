/* test_jws.c: unit tests for acme_jws against the RFC 7515 / RFC 7638
 * examples, plus sign/verify round trips, EAB, keyChange and key authz. */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

/* OpenSSL is used here only to build the RFC's private key and to check
 * results independently of the code under test. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_test.h"

/* RFC 7515 Appendix A.3 (ES256) */
#define A3_X "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
#define A3_Y "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
#define A3_D "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
#define A3_PROTECTED "eyJhbGciOiJFUzI1NiJ9"
#define A3_PAYLOAD "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
#define A3_SIG "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"

/* RFC 7638 section 3.1 */
#define R7638_N                                                                                  \
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP" \
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY3" \
    "68QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4" \
    "lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
#define R7638_THUMB "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

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

static acme_json_t *json_of(const char *s)
{
    acme_json_t *j = NULL;
    const char *err = NULL;

    ck_assert_msg(acme_json_parse(&j, pool, s, strlen(s), &err) == APR_SUCCESS, "%s: %s", s,
                  err ? err : "");
    return j;
}

static const char *b64_text(const char *b64)
{
    unsigned char *d;
    apr_size_t n;

    ck_assert_int_eq(acme_b64url_decode(&d, &n, pool, b64), APR_SUCCESS);
    return apr_pstrmemdup(pool, (const char *)d, n);
}

static const char *jwk_json(const acme_pkey_t *key)
{
    acme_json_t *jwk;

    ck_assert_int_eq(acme_jwk_make(&jwk, pool, key), APR_SUCCESS);
    return acme_json_dump(jwk, pool, 1);
}

/* The RFC 7515 A.3 key built from its private scalar only: the public
 * point is derived here, so matching the RFC's x/y proves the JWK code. */
static acme_pkey_t *rfc_a3_private_key(void)
{
    unsigned char *d, pub[65];
    apr_size_t dlen;
    size_t publen;
    BIGNUM *bd;
    EC_GROUP *g;
    EC_POINT *pt;
    OSSL_PARAM_BLD *bld;
    OSSL_PARAM *params;
    EVP_PKEY_CTX *ctx;
    EVP_PKEY *evp = NULL;
    BIO *bio;
    char *pem;
    long n;
    acme_pkey_t *key;

    ck_assert_int_eq(acme_b64url_decode(&d, &dlen, pool, A3_D), APR_SUCCESS);
    bd = BN_bin2bn(d, (int)dlen, NULL);
    g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    pt = EC_POINT_new(g);
    ck_assert(EC_POINT_mul(g, pt, bd, NULL, NULL, NULL));
    publen = EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), NULL);
    ck_assert_uint_eq(publen, 65);
    bld = OSSL_PARAM_BLD_new();
    ck_assert(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0));
    ck_assert(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bd));
    ck_assert(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, publen));
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_fromdata(ctx, &evp, EVP_PKEY_KEYPAIR, params), 1);
    bio = BIO_new(BIO_s_mem());
    ck_assert(PEM_write_bio_PrivateKey(bio, evp, NULL, NULL, 0, NULL, NULL));
    n = BIO_get_mem_data(bio, &pem);
    ck_assert_int_eq(acme_pkey_from_pem(&key, pool, pem, (apr_size_t)n), APR_SUCCESS);
    BIO_free(bio);
    EVP_PKEY_free(evp);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    BN_free(bd);
    return key;
}

static acme_pkey_t *rfc_a3_public_key(void)
{
    acme_pkey_t *key;

    ck_assert_int_eq(acme_pkey_from_jwk(&key, pool,
                                        json_of("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X
                                                "\",\"y\":\"" A3_Y "\"}")), APR_SUCCESS);
    return key;
}

static const char *flattened(const char *prot, const char *payload, const char *sig)
{
    return apr_psprintf(pool, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}",
                        prot, payload, sig);
}

/* ---- RFC 7515 A.3 --------------------------------------------------------------- */

START_TEST(rfc7515_a3_jwk_from_private_key)
{
    acme_pkey_t *key = rfc_a3_private_key();

    ck_assert_int_eq(acme_pkey_type(key), ACME_KEY_P256);
    ck_assert_str_eq(acme_jws_alg(key), "ES256");
    ck_assert_str_eq(jwk_json(key),
                     "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}");
}
END_TEST

START_TEST(rfc7515_a3_signature_verifies)
{
    acme_pkey_t *pub = rfc_a3_public_key(), *priv = rfc_a3_private_key(), *other;
    const char *tampered;

    ck_assert(!acme_pkey_is_private(pub));
    ck_assert_int_eq(acme_jws_verify(flattened(A3_PROTECTED, A3_PAYLOAD, A3_SIG), pub, pool), APR_SUCCESS);
    ck_assert_int_eq(acme_jws_verify(flattened(A3_PROTECTED, A3_PAYLOAD, A3_SIG), priv, pool), APR_SUCCESS);

    /* one payload character changed (still valid base64url) */
    tampered = apr_pstrdup(pool, A3_PAYLOAD);
    ((char *)tampered)[10] = tampered[10] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(acme_jws_verify(flattened(A3_PROTECTED, tampered, A3_SIG), pub, pool), APR_EGENERAL);
    /* one signature byte changed */
    tampered = apr_pstrdup(pool, A3_SIG);
    ((char *)tampered)[5] = tampered[5] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(acme_jws_verify(flattened(A3_PROTECTED, A3_PAYLOAD, tampered), pub, pool), APR_EGENERAL);
    /* a signature of the wrong length is malformed, not just wrong */
    ck_assert_int_eq(acme_jws_verify(flattened(A3_PROTECTED, A3_PAYLOAD, "DtEhU3ljbEg8L38VWAfU"), pub, pool),
                     APR_EINVAL);
    /* a key of another algorithm is refused by the header's alg */
    ck_assert_int_eq(acme_pkey_gen(&other, pool, ACME_KEY_P384), APR_SUCCESS);
    ck_assert_int_eq(acme_jws_verify(flattened(A3_PROTECTED, A3_PAYLOAD, A3_SIG), other, pool), APR_EINVAL);
    /* another P-256 key */
    ck_assert_int_eq(acme_pkey_gen(&other, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_jws_verify(flattened(A3_PROTECTED, A3_PAYLOAD, A3_SIG), other, pool), APR_EGENERAL);
}
END_TEST

START_TEST(rfc7515_a3_key_signs_verifiable_es256)
{
    acme_pkey_t *priv = rfc_a3_private_key(), *pub = rfc_a3_public_key();
    const unsigned char *sig;
    apr_size_t siglen;
    const char *input = A3_PROTECTED "." A3_PAYLOAD;

    ck_assert_int_eq(acme_jws_sign_raw(&sig, &siglen, pool, priv, input), APR_SUCCESS);
    ck_assert_uint_eq(siglen, 64);
    ck_assert_int_eq(acme_jws_verify_raw(pub, input, sig, siglen), APR_SUCCESS);
    ck_assert_int_eq(acme_jws_verify(flattened(A3_PROTECTED, A3_PAYLOAD, acme_b64url_encode(pool, sig, siglen)),
                                     pub, pool), APR_SUCCESS);
    /* a public-only key cannot sign */
    ck_assert_int_eq(acme_jws_sign_raw(&sig, &siglen, pool, pub, input), APR_EINVAL);
}
END_TEST

/* ---- sign / verify round trips ---------------------------------------------------- */

static const struct {
    acme_key_type_t type;
    const char *alg;
    apr_size_t siglen;
} sign_cases[] = {
    { ACME_KEY_P256, "ES256", 64 },
    { ACME_KEY_P384, "ES384", 96 },
    { ACME_KEY_RSA2048, "RS256", 256 },
    { ACME_KEY_RSA3072, "RS256", 384 },
};

/* Verifies an r||s signature with OpenSSL directly, after converting it to
 * DER, so the check does not rest on acme_jws_verify alone. */
static int ecdsa_ok_independently(const acme_pkey_t *key, const char *input, const unsigned char *sig,
                                  apr_size_t siglen, const EVP_MD *md)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    unsigned char *der = NULL;
    int derlen, ok;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    apr_size_t half = siglen / 2;

    ck_assert(ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)half, NULL), BN_bin2bn(sig + half, (int)half, NULL)));
    derlen = i2d_ECDSA_SIG(es, &der);
    ck_assert_int_gt(derlen, 0);
    ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, md, NULL, acme_pkey_evp(key)), 1);
    ok = EVP_DigestVerify(ctx, der, (size_t)derlen, (const unsigned char *)input, strlen(input)) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    return ok;
}

START_TEST(jws_sign_verify_round_trip)
{
    acme_pkey_t *key;
    acme_json_t *jws;
    const char *out, *prot, *payload = "{\"termsOfServiceAgreed\":true}", *input, *tampered;
    const unsigned char *sig;
    unsigned char *sigb;
    apr_size_t siglen;

    ck_assert_int_eq(acme_pkey_gen(&key, pool, sign_cases[_i].type), APR_SUCCESS);
    ck_assert_str_eq(acme_jws_alg(key), sign_cases[_i].alg);

    /* new account style: jwk + nonce */
    ck_assert_int_eq(acme_jws_sign(&out, pool, key, NULL, "nonce-1", "https://ca.example/new-acct",
                                   payload, strlen(payload)), APR_SUCCESS);
    jws = json_of(out);
    prot = b64_text(acme_json_gets(jws, "protected", NULL));
    ck_assert_str_eq(prot, apr_psprintf(pool, "{\"alg\":\"%s\",\"jwk\":%s,\"nonce\":\"nonce-1\","
                                              "\"url\":\"https://ca.example/new-acct\"}",
                                        sign_cases[_i].alg, jwk_json(key)));
    ck_assert_str_eq(b64_text(acme_json_gets(jws, "payload", NULL)), payload);
    ck_assert_int_eq(acme_b64url_decode(&sigb, &siglen, pool, acme_json_gets(jws, "signature", NULL)),
                     APR_SUCCESS);
    ck_assert_uint_eq(siglen, sign_cases[_i].siglen);
    ck_assert_int_eq(acme_jws_verify(out, key, pool), APR_SUCCESS);
    input = apr_pstrcat(pool, acme_json_gets(jws, "protected", NULL), ".",
                        acme_json_gets(jws, "payload", NULL), NULL);
    if (sign_cases[_i].siglen == 64) {
        ck_assert(ecdsa_ok_independently(key, input, sigb, siglen, EVP_sha256()));
    }
    else if (sign_cases[_i].siglen == 96) {
        ck_assert(ecdsa_ok_independently(key, input, sigb, siglen, EVP_sha384()));
        /* ES384 hashes with SHA-384, not SHA-256 */
        ck_assert(!ecdsa_ok_independently(key, input, sigb, siglen, EVP_sha256()));
    }
    else {
        /* RSASSA-PKCS1-v1_5 is deterministic (PSS would not be) */
        ck_assert_int_eq(acme_jws_sign_raw(&sig, &siglen, pool, key, input), APR_SUCCESS);
        ck_assert_mem_eq(sig, sigb, siglen);
    }

    /* tampered payload */
    tampered = flattened(acme_json_gets(jws, "protected", NULL),
                         acme_b64url_encode(pool, (const unsigned char *)"{\"termsOfServiceAgreed\":false}", 30),
                         acme_json_gets(jws, "signature", NULL));
    ck_assert_int_eq(acme_jws_verify(tampered, key, pool), APR_EGENERAL);

    /* account request: kid, no jwk; POST-as-GET has an empty payload */
    ck_assert_int_eq(acme_jws_sign(&out, pool, key, "https://ca.example/acct/7", "nonce-2",
                                   "https://ca.example/order/1", "", 0), APR_SUCCESS);
    jws = json_of(out);
    ck_assert_str_eq(acme_json_gets(jws, "payload", NULL), "");
    ck_assert_str_eq(b64_text(acme_json_gets(jws, "protected", NULL)),
                     apr_psprintf(pool, "{\"alg\":\"%s\",\"kid\":\"https://ca.example/acct/7\","
                                        "\"nonce\":\"nonce-2\",\"url\":\"https://ca.example/order/1\"}",
                                  sign_cases[_i].alg));
    ck_assert_int_eq(acme_jws_verify(out, key, pool), APR_SUCCESS);

    /* no nonce: none in the header */
    ck_assert_int_eq(acme_jws_sign(&out, pool, key, "k", NULL, "https://ca.example/x", NULL, 0),
                     APR_SUCCESS);
    ck_assert(!acme_json_has(json_of(b64_text(acme_json_gets(json_of(out), "protected", NULL))),
                             "nonce", NULL));
    ck_assert_int_eq(acme_jws_sign(&out, pool, key, NULL, "n", NULL, "", 0), APR_EINVAL);
}
END_TEST

START_TEST(jws_verify_rejects_malformed)
{
    acme_pkey_t *key = rfc_a3_public_key();
    const char *bad[] = {
        "", "{", "[]", "{}", "{\"protected\":\"" A3_PROTECTED "\",\"payload\":\"" A3_PAYLOAD "\"}",
        "{\"protected\":1,\"payload\":\"" A3_PAYLOAD "\",\"signature\":\"" A3_SIG "\"}",
        "{\"protected\":\"e!!\",\"payload\":\"" A3_PAYLOAD "\",\"signature\":\"" A3_SIG "\"}",
        "{\"protected\":\"" A3_PROTECTED "\",\"payload\":\"" A3_PAYLOAD "\",\"signature\":\"$$\"}",
        /* protected is base64url but not JSON */
        "{\"protected\":\"bm90IGpzb24\",\"payload\":\"" A3_PAYLOAD "\",\"signature\":\"" A3_SIG "\"}",
        /* {"alg":"none"} */
        "{\"protected\":\"eyJhbGciOiJub25lIn0\",\"payload\":\"" A3_PAYLOAD "\",\"signature\":\"" A3_SIG "\"}",
        /* {"alg":"HS256"} */
        "{\"protected\":\"eyJhbGciOiJIUzI1NiJ9\",\"payload\":\"" A3_PAYLOAD "\",\"signature\":\"" A3_SIG "\"}",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(acme_jws_verify(bad[i], key, pool) == APR_EINVAL, "accepted: %s", bad[i]);
    }
    ck_assert_int_eq(acme_jws_verify(NULL, key, pool), APR_EINVAL);
}
END_TEST

/* ---- JWK import and RFC 7638 -------------------------------------------------------------------- */

START_TEST(rfc7638_thumbprint_example)
{
    acme_pkey_t *key;
    const char *thumb;
    acme_json_t *jwk;

    ck_assert_int_eq(acme_pkey_from_jwk(&key, pool,
                                        json_of("{\"kty\":\"RSA\",\"n\":\"" R7638_N "\",\"e\":\"AQAB\","
                                                "\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}")),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_type(key), ACME_KEY_RSA2048);
    ck_assert_int_eq(acme_jwk_thumbprint(&thumb, pool, key), APR_SUCCESS);
    ck_assert_str_eq(thumb, R7638_THUMB);
    ck_assert_int_eq(acme_jwk_make(&jwk, pool, key), APR_SUCCESS);
    ck_assert_str_eq(acme_json_dump(jwk, pool, 1), "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"" R7638_N "\"}");
}
END_TEST

START_TEST(thumbprint_of_ec_key_is_sha256_of_canonical_jwk)
{
    acme_pkey_t *key = rfc_a3_public_key();
    const char *thumb, *canon = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}";
    unsigned char md[32];
    unsigned int n = 0;

    ck_assert(EVP_Digest(canon, strlen(canon), md, &n, EVP_sha256(), NULL));
    ck_assert_int_eq(acme_jwk_thumbprint(&thumb, pool, key), APR_SUCCESS);
    ck_assert_str_eq(thumb, acme_b64url_encode(pool, md, 32));
}
END_TEST

START_TEST(key_authz_and_dns01)
{
    acme_pkey_t *key;
    const char *authz;

    ck_assert_int_eq(acme_pkey_from_jwk(&key, pool,
                                        json_of("{\"kty\":\"RSA\",\"n\":\"" R7638_N "\",\"e\":\"AQAB\"}")),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_key_authz(&authz, pool, key, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"),
                     APR_SUCCESS);
    ck_assert_str_eq(authz, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA." R7638_THUMB);
    /* base64url(SHA-256(authz)), computed independently with Python hashlib */
    ck_assert_str_eq(acme_dns01_value(pool, authz), "ZTRx1Ckl1-tM05o5zaizTTA0yUy5AGereMgSNWC6Ll8");

    ck_assert_int_eq(acme_key_authz(&authz, pool, key, ""), APR_EINVAL);
    ck_assert_int_eq(acme_key_authz(&authz, pool, key, "a.b"), APR_EINVAL);
    ck_assert_int_eq(acme_key_authz(&authz, pool, key, "../etc/passwd"), APR_EINVAL);
    ck_assert_int_eq(acme_key_authz(&authz, pool, key, "tok\r\nX-Evil: 1"), APR_EINVAL);
    ck_assert_int_eq(acme_key_authz(&authz, pool, key, NULL), APR_EINVAL);
    ck_assert_ptr_null(authz);
}
END_TEST

START_TEST(pkey_from_jwk_rejects_malformed)
{
    acme_pkey_t *key, *pub;
    const char *y_off, *pem;
    unsigned char *y;
    apr_size_t ylen;
    const char *bad[] = {
        "{}",
        "{\"kty\":\"oct\",\"k\":\"AAAA\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}",
        "{\"kty\":\"EC\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"x_FE!!\"}",
        /* 31-byte x: coordinates must be full length */
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVA\",\"y\":\"" A3_Y "\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}",
        "{\"kty\":\"RSA\",\"n\":\"" R7638_N "\"}",
        "{\"kty\":\"RSA\",\"e\":\"AQAB\"}",
        /* 1024-bit modulus is below what we accept */
        "{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGg\"}",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        key = (acme_pkey_t *)1;
        ck_assert_msg(acme_pkey_from_jwk(&key, pool, json_of(bad[i])) == APR_EINVAL, "accepted: %s", bad[i]);
        ck_assert_ptr_null(key);
    }

    /* a point off the curve: y with its last bit flipped */
    ck_assert_int_eq(acme_b64url_decode(&y, &ylen, pool, A3_Y), APR_SUCCESS);
    y[ylen - 1] ^= 0x01;
    y_off = acme_b64url_encode(pool, y, ylen);
    ck_assert_int_eq(acme_pkey_from_jwk(&key, pool,
                                        json_of(apr_psprintf(pool, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\","
                                                                   "\"y\":\"%s\"}", A3_X, y_off))),
                     APR_EINVAL);

    /* public-only keys: no PEM export, no saving, no signing, no CSR */
    pub = rfc_a3_public_key();
    ck_assert_int_eq(acme_pkey_to_pem(&pem, pool, pub), APR_EINVAL);
    ck_assert_int_eq(acme_pkey_save(pub, pool, "/nonexistent/never-written.pem"), APR_EINVAL);
    ck_assert_int_eq(acme_jws_sign(&pem, pool, pub, NULL, "n", "https://ca.example/x", "", 0), APR_EINVAL);
}
END_TEST

/* A private JWK, as another client (certbot) keeps its account key. A
 * 2048-bit RSA key made for this test, with its CRT members. */
static const char RSA_PRIVATE_JWK[] =
    "{"
    "\"kty\":\"" "RSA" "\""
    ",\"n\":\"" "6b4dKVm34Ta1HGq7bWviyXAabf2WGUOmJFNVoCyLk0TEWqSEVEg7eVud8KSpHRSQ7YiAGbGmm-tXKgR6jmcg-vMaUK2x9WWDq9Cobalqb90ZimfyzCRCG_4ZDWoCI4W3C1fYygRcdvILDKyngqhs5NVySOJ5nOu5Wfg-cY5O7jHq4eqWwSDh2Elfmp9LtRr85TRHhxVFqi-I2l-ETA9Cml_pvpoWOcF9dSsma8KC9QSQ7I0hxG2llrHJbYh2xR8mo8mwUMp3kBi5OGN4bvaPjQ8S3yYIEOQJkWoe95WPp65AnLEuoOHpbrZN7emJfUPmxvriGdUrrlmjCHTTFtNT4Q" "\""
    ",\"e\":\"" "AQAB" "\""
    ",\"d\":\"" "DmFMii8Di1H7zQtBJUEZaAFcrUtufaoC4Y8IIHBzh83-Jhtv-EvXVabnlEn1DR2nF7Rc0sSldns0ihiFCuS_JS4DZPCpFze1flw6BUEcE-5UzdLv7FPT7PfyRgTkq8qXd8jh3lye7NxrbJsX1SFHTcHwVxnDyv3yxPbrFIsuQb4aiR7rrkXElgm0ekjKocTLvFhDI92hNLzRNmN2P36IpBFq9v8wFYP9Wma9eh0pxqL14nWVmNidu5z-67TVU2_JvB3zlYFF_GHAckH6Cpz6JSHrzfMo0Dgpuuai2ROoHvbj8GBX9unZjoNCleFjLP4hI9OpOSh8BS5rV_aXtxgy5w" "\""
    ",\"p\":\"" "-Mg037_DEe_grFm-CUZrhPatYksh7M9l8mk31kGDLZZpHGyq8KVFUUSDhlmog0gYDgBLx3RUBYfAdGN4plYuFHpJrwLVkRbNV21xlodkU4XcBdbgqoC-BaTn-jvojUvet0PLsOkZbL8pLuEflCtP6kRexmU03hD9EVlTUHj6t4c" "\""
    ",\"q\":\"" "8IY0RTGEVhuNvcznhnmEA14Xe-8-7oR_hOeaoFxxRDkPYNpabub6R4Fui74y0ayixmCT3ZPkM_il9OwowKAXWmLEC3j9LjFVsQt_U8fzQWLpajyI7M_660clztTtS_JIlkBTVR3PZ0WPbRzhQcLqDcvCwO1wls5U7ECmUJwco1c" "\""
    ",\"dp\":\"" "FlIgLFMQNXPIPK5wlnRzASMAu2jySkTxaKZ4FAkcs-Ji2-IEFEM_zOLQyiURMXYuclMkeWi-gSCE6-xgzsu8pqmyIrmmX7YkBkwTfOX44mWIMB3vWlzir670AUeOvd6oxNiYVe8UEOW11DbulmSsbuBjgHlkHOh5TC0vhHDWTdE" "\""
    ",\"dq\":\"" "sD83GCjjtxEzuQvn7-MlOC5_eOJkM_VFWAc6iB2VJg_F1AvMzo1Ugoc2kRHLPVeKY2ErmOchBnBCc4mFhzkIQ8QxsdJze6DNERHCuIrBFn27WoyHLThtvnABJWFjjQ454Fe8eJeCfkM7iRHrgfuo9HkF-cdDhE4nboMlG9Z5Kbs" "\""
    ",\"qi\":\"" "BCWWhF25ZHc1LgxAzhBNJGPzRwKJZxAOnSOw1UsTqd31uFI7vF3JL5fP8kD_WYp8veEdY5iiN0SHTq2QbzKRZrff7rmrq7YU-I7dh_uXH0cGvwYPlmcpRPAW8zQTw4_d5VoXij_Sf88VbN4SmwO9H2s86Uj7OWLHmkQqv67X4Qk" "\""
    "}";

START_TEST(private_jwk_imports_a_usable_key)
{
    acme_pkey_t *key, *pub;
    acme_json_t *jwk;
    const char *pem, *out, *t1, *t2;
    unsigned char *d;
    apr_size_t dlen;

    /* RFC 7515 A.3's EC key with its d */
    ck_assert_int_eq(acme_pkey_from_private_jwk(&key, pool, json_of(
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\","
        "\"d\":\"" A3_D "\"}")), APR_SUCCESS);
    ck_assert(acme_pkey_is_private(key));
    ck_assert_int_eq(acme_pkey_to_pem(&pem, pool, key), APR_SUCCESS);
    ck_assert_int_eq(acme_jwk_thumbprint(&t1, pool, key), APR_SUCCESS);
    ck_assert_int_eq(acme_jwk_thumbprint(&t2, pool, rfc_a3_public_key()), APR_SUCCESS);
    ck_assert_str_eq(t1, t2);
    ck_assert_int_eq(acme_jws_sign(&out, pool, key, NULL, "n", "https://ca.example/x", "{}", 2),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_jws_verify(out, rfc_a3_public_key(), pool), APR_SUCCESS);

    /* RSA with the CRT members; d alone is refused */
    jwk = json_of(RSA_PRIVATE_JWK);
    ck_assert_int_eq(acme_pkey_from_private_jwk(&key, pool, jwk), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_type(key), ACME_KEY_RSA2048);
    ck_assert_int_eq(acme_pkey_to_pem(&pem, pool, key), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_from_jwk(&pub, pool, jwk), APR_SUCCESS);
    ck_assert_int_eq(acme_jws_sign(&out, pool, key, NULL, "n", "https://ca.example/x", "{}", 2),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_jws_verify(out, pub, pool), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_from_private_jwk(&key, pool, json_of(apr_psprintf(pool,
        "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\",\"d\":\"%s\"}",
        acme_json_gets(jwk, "n", NULL), acme_json_gets(jwk, "e", NULL),
        acme_json_gets(jwk, "d", NULL)))), APR_EINVAL);

    /* a public JWK is no private key; a d that does not match is refused */
    key = (acme_pkey_t *)1;
    ck_assert_int_eq(acme_pkey_from_private_jwk(&key, pool, json_of(
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\"}")),
        APR_EINVAL);
    ck_assert_ptr_null(key);
    ck_assert_int_eq(acme_b64url_decode(&d, &dlen, pool, A3_D), APR_SUCCESS);
    d[dlen - 1] ^= 0x01;
    ck_assert_int_eq(acme_pkey_from_private_jwk(&key, pool, json_of(apr_psprintf(pool,
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" A3_X "\",\"y\":\"" A3_Y "\","
        "\"d\":\"%s\"}", acme_b64url_encode(pool, d, dlen)))), APR_EINVAL);
    ck_assert_int_eq(acme_b64url_decode(&d, &dlen, pool, acme_json_gets(jwk, "p", NULL)),
                     APR_SUCCESS);
    d[dlen - 1] ^= 0x02;
    ck_assert_int_eq(acme_pkey_from_private_jwk(&key, pool, json_of(apr_psprintf(pool,
        "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\",\"d\":\"%s\",\"p\":\"%s\","
        "\"q\":\"%s\",\"dp\":\"%s\",\"dq\":\"%s\",\"qi\":\"%s\"}",
        acme_json_gets(jwk, "n", NULL), acme_json_gets(jwk, "e", NULL),
        acme_json_gets(jwk, "d", NULL), acme_b64url_encode(pool, d, dlen),
        acme_json_gets(jwk, "q", NULL), acme_json_gets(jwk, "dp", NULL),
        acme_json_gets(jwk, "dq", NULL), acme_json_gets(jwk, "qi", NULL)))), APR_EINVAL);
    /* all of them */
    ck_assert_int_eq(acme_pkey_from_private_jwk(&key, pool, json_of(apr_psprintf(pool,
        "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\",\"d\":\"%s\",\"p\":\"%s\"}",
        acme_json_gets(jwk, "n", NULL), acme_json_gets(jwk, "e", NULL),
        acme_json_gets(jwk, "d", NULL), acme_json_gets(jwk, "p", NULL)))), APR_EINVAL);
}
END_TEST

/* ---- EAB -------------------------------------------------------------------------------------- */

START_TEST(eab_structure_and_hmac)
{
    acme_pkey_t *key;
    acme_json_t *eab;
    unsigned char raw_key[32], mac[32];
    unsigned int maclen = 0;
    const char *hmac_b64, *input, *url = "https://ca.example/new-account";
    apr_size_t i;

    for (i = 0; i < sizeof(raw_key); ++i) {
        raw_key[i] = (unsigned char)(i * 7 + 1);
    }
    hmac_b64 = acme_b64url_encode(pool, raw_key, sizeof(raw_key));
    ck_assert_int_eq(acme_pkey_gen(&key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_jws_eab(&eab, pool, key, "kid-123", hmac_b64, url), APR_SUCCESS);

    ck_assert_str_eq(b64_text(acme_json_gets(eab, "protected", NULL)),
                     "{\"alg\":\"HS256\",\"kid\":\"kid-123\",\"url\":\"https://ca.example/new-account\"}");
    ck_assert_str_eq(b64_text(acme_json_gets(eab, "payload", NULL)), jwk_json(key));
    input = apr_pstrcat(pool, acme_json_gets(eab, "protected", NULL), ".",
                        acme_json_gets(eab, "payload", NULL), NULL);
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), raw_key, (int)sizeof(raw_key), (const unsigned char *)input,
                               strlen(input), mac, &maclen));
    ck_assert_uint_eq(maclen, 32);
    ck_assert_str_eq(acme_json_gets(eab, "signature", NULL), acme_b64url_encode(pool, mac, 32));

    /* malformed HMAC keys and missing parts */
    ck_assert_int_eq(acme_jws_eab(&eab, pool, key, "kid-123", "not base64!", url), APR_EINVAL);
    ck_assert_ptr_null(eab);
    ck_assert_int_eq(acme_jws_eab(&eab, pool, key, "kid-123", "", url), APR_EINVAL);
    ck_assert_int_eq(acme_jws_eab(&eab, pool, key, "kid-123", "A", url), APR_EINVAL);
    ck_assert_int_eq(acme_jws_eab(&eab, pool, key, "kid-123", "ab+/", url), APR_EINVAL);
    ck_assert_int_eq(acme_jws_eab(&eab, pool, key, "kid-123", NULL, url), APR_EINVAL);
    ck_assert_int_eq(acme_jws_eab(&eab, pool, key, NULL, hmac_b64, url), APR_EINVAL);
    ck_assert_int_eq(acme_jws_eab(&eab, pool, key, "", hmac_b64, url), APR_EINVAL);
    ck_assert_int_eq(acme_jws_eab(&eab, pool, key, "kid-123", hmac_b64, NULL), APR_EINVAL);
}
END_TEST

/* ---- keyChange ------------------------------------------------------------------------------------ */

START_TEST(keychange_inner_structure)
{
    acme_pkey_t *new_key, *old_key;
    acme_json_t *inner, *payload;
    const char *acct = "https://ca.example/acct/42", *url = "https://ca.example/key-change", *dumped;

    ck_assert_int_eq(acme_pkey_gen(&new_key, pool, ACME_KEY_P384), APR_SUCCESS);
    ck_assert_int_eq(acme_pkey_gen(&old_key, pool, ACME_KEY_P256), APR_SUCCESS);
    ck_assert_int_eq(acme_jws_keychange_inner(&inner, pool, new_key, old_key, acct, url), APR_SUCCESS);

    /* exactly alg, jwk (new key) and url: no nonce, no kid */
    ck_assert_str_eq(b64_text(acme_json_gets(inner, "protected", NULL)),
                     apr_psprintf(pool, "{\"alg\":\"ES384\",\"jwk\":%s,\"url\":\"%s\"}", jwk_json(new_key), url));
    payload = json_of(b64_text(acme_json_gets(inner, "payload", NULL)));
    ck_assert_str_eq(acme_json_gets(payload, "account", NULL), acct);
    ck_assert_str_eq(acme_json_dump(acme_json_getj(payload, pool, "oldKey", NULL), pool, 1), jwk_json(old_key));

    dumped = acme_json_dump(inner, pool, 1);
    ck_assert_int_eq(acme_jws_verify(dumped, new_key, pool), APR_SUCCESS);
    ck_assert_int_ne(acme_jws_verify(dumped, old_key, pool), APR_SUCCESS);

    ck_assert_int_eq(acme_jws_keychange_inner(&inner, pool, new_key, old_key, NULL, url), APR_EINVAL);
    ck_assert_int_eq(acme_jws_keychange_inner(&inner, pool, new_key, old_key, acct, NULL), APR_EINVAL);
}
END_TEST

static Suite *jws_suite(void)
{
    Suite *s = suite_create("acme_jws");
    TCase *tc;

    tc = tcase_create("rfc");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, rfc7515_a3_jwk_from_private_key);
    tcase_add_test(tc, rfc7515_a3_signature_verifies);
    tcase_add_test(tc, rfc7515_a3_key_signs_verifiable_es256);
    tcase_add_test(tc, rfc7638_thumbprint_example);
    tcase_add_test(tc, thumbprint_of_ec_key_is_sha256_of_canonical_jwk);
    tcase_add_test(tc, key_authz_and_dns01);
    suite_add_tcase(s, tc);

    tc = tcase_create("jws");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, jws_sign_verify_round_trip, 0, (int)(sizeof(sign_cases) / sizeof(sign_cases[0])));
    tcase_add_test(tc, jws_verify_rejects_malformed);
    tcase_add_test(tc, pkey_from_jwk_rejects_malformed);
    tcase_add_test(tc, private_jwk_imports_a_usable_key);
    tcase_add_test(tc, eab_structure_and_hmac);
    tcase_add_test(tc, keychange_inner_structure);
    suite_add_tcase(s, tc);
    return s;
}

ACME_TEST_MAIN(jws_suite)
