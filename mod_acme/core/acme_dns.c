/* acme_dns.c: dns-01 through RFC 2136 dynamic updates with TSIG, the only
 * unit that includes ldns.h; ldns writes and reads every DNS message. */
#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_atomic.h>

#include <ldns/ldns.h>

#include "acme_util.h"
#include "acme_crypto.h"
#include "acme_result.h"
#include "acme_dns.h"
#include "acme_jws.h"
#include "acme_publish.h"

#define MAX_KEYFILE (64 * 1024)
#define MAX_CNAME_HOPS 8
#define TSIG_FUDGE 300

/* ---- TSIG key files --------------------------------------------------------- */

typedef struct {
    const char *s, *end;
    int line;
    apr_pool_t *p;
    const char **perr;
} lexer_t;

static apr_status_t lex_fail(lexer_t *lx, const char *fmt, const char *arg)
{
    *lx->perr = apr_psprintf(lx->p, "line %d: %s", lx->line, apr_psprintf(lx->p, fmt, arg));
    return APR_EINVAL;
}

/* Skips whitespace and comments (#, //, C style). */
static apr_status_t lex_skip(lexer_t *lx, int hash_only)
{
    while (lx->s < lx->end) {
        char c = *lx->s;

        if (c == '\n') {
            lx->line++;
            lx->s++;
        }
        else if (apr_isspace(c)) {
            lx->s++;
        }
        else if (c == '#' || (!hash_only && c == '/' && lx->s + 1 < lx->end && lx->s[1] == '/')) {
            while (lx->s < lx->end && *lx->s != '\n') lx->s++;
        }
        else if (!hash_only && c == '/' && lx->s + 1 < lx->end && lx->s[1] == '*') {
            int start = lx->line;

            lx->s += 2;
            while (lx->s + 1 < lx->end && !(lx->s[0] == '*' && lx->s[1] == '/')) {
                if (*lx->s == '\n') lx->line++;
                lx->s++;
            }
            if (lx->s + 1 >= lx->end) {
                lx->line = start;
                return lex_fail(lx, "%s", "comment is not closed (missing */)");
            }
            lx->s += 2;
        }
        else {
            break;
        }
    }
    return APR_SUCCESS;
}

static int is_word_char(char c)
{
    return apr_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '+' || c == '/'
           || c == '=';
}

/* The next token of the BIND syntax: a word, a quoted string or one of {};
 * NULL at the end of the text. */
static apr_status_t lex_next(const char **ptok, int *pquoted, lexer_t *lx)
{
    const char *start;
    apr_status_t rv;

    *ptok = NULL;
    *pquoted = 0;
    if ((rv = lex_skip(lx, 0)) != APR_SUCCESS) {
        return rv;
    }
    if (lx->s >= lx->end) {
        return APR_SUCCESS;
    }
    start = lx->s;
    if (*start == '"') {
        for (++lx->s; lx->s < lx->end && *lx->s != '"'; ++lx->s) {
            if (*lx->s == '\n' || *lx->s == '\\') {
                return lex_fail(lx, "%s", "a quoted string must be on one line, without '\\'");
            }
        }
        if (lx->s >= lx->end) {
            return lex_fail(lx, "%s", "quoted string is not closed");
        }
        *ptok = apr_pstrmemdup(lx->p, start + 1, (apr_size_t)(lx->s - start - 1));
        *pquoted = 1;
        lx->s++;
        return APR_SUCCESS;
    }
    if (*start == '{' || *start == '}' || *start == ';') {
        lx->s++;
        *ptok = apr_pstrmemdup(lx->p, start, 1);
        return APR_SUCCESS;
    }
    while (lx->s < lx->end && is_word_char(*lx->s)) lx->s++;
    if (lx->s == start) {
        if (*start == '\0') {
            return lex_fail(lx, "%s", "NUL byte in the key file");
        }
        return lex_fail(lx, "unexpected character '%s'",
                        apr_isprint(*start) ? apr_pstrmemdup(lx->p, start, 1)
                                            : apr_psprintf(lx->p, "\\x%02x",
                                                           (unsigned char)*start));
    }
    *ptok = apr_pstrmemdup(lx->p, start, (apr_size_t)(lx->s - start));
    return APR_SUCCESS;
}

static apr_status_t lex_expect(lexer_t *lx, const char *want, const char *after)
{
    const char *tok;
    int quoted;
    apr_status_t rv;

    if ((rv = lex_next(&tok, &quoted, lx)) != APR_SUCCESS) {
        return rv;
    }
    if (!tok || quoted || strcmp(tok, want)) {
        return lex_fail(lx, apr_pstrcat(lx->p, "expected '", want, "' after ", after,
                                        ", found %s", NULL),
                        tok ? apr_psprintf(lx->p, "'%s'", tok) : "the end of the file");
    }
    return APR_SUCCESS;
}

static int valid_key_name(const char *name)
{
    apr_size_t len = strlen(name), label = 0;
    const char *s;

    if (len && name[len - 1] == '.') {
        len--;
    }
    if (len == 0 || len > 253) {
        return 0;
    }
    for (s = name; s < name + len; ++s) {
        if (*s == '.') {
            if (label == 0) return 0;
            label = 0;
        }
        else if (apr_isalnum(*s) || *s == '-' || *s == '_') {
            if (++label > 63) return 0;
        }
        else {
            return 0;
        }
    }
    return label > 0;
}

static int valid_base64(const char *s)
{
    apr_size_t len = strlen(s), i, pad = 0;

    if (len == 0 || len % 4) {
        return 0;
    }
    for (i = 0; i < len; ++i) {
        char c = s[i];

        if (c == '=') {
            pad++;
        }
        else if (pad || !(apr_isalnum(c) || c == '+' || c == '/')) {
            return 0;
        }
    }
    return pad <= 2;
}

static const char *const tsig_algorithms[] = {
    "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha1", NULL
};

/* Checks and stores one field; line is where it was given. */
static apr_status_t key_set(acme_dns_tsig_t *key, lexer_t *lx, const char *field,
                            const char *value)
{
    int i;

    if (!strcmp(field, "algorithm")) {
        if (key->algorithm) {
            return lex_fail(lx, "%s", "algorithm is given twice");
        }
        for (i = 0; tsig_algorithms[i]; ++i) {
            if (!apr_strnatcasecmp(value, tsig_algorithms[i])) {
                key->algorithm = tsig_algorithms[i];
                return APR_SUCCESS;
            }
        }
        return lex_fail(lx, "algorithm '%s' is not supported "
                        "(use hmac-sha256, hmac-sha384, hmac-sha512 or hmac-sha1)", value);
    }
    if (!strcmp(field, "secret")) {
        if (key->secret) {
            return lex_fail(lx, "%s", "secret is given twice");
        }
        if (!valid_base64(value)) {
            return lex_fail(lx, "%s", "secret is not valid base64");
        }
        key->secret = value;
        return APR_SUCCESS;
    }
    return lex_fail(lx, "unknown statement '%s' (a key has only algorithm and secret)", field);
}

static apr_status_t key_name_set(acme_dns_tsig_t *key, lexer_t *lx, const char *name)
{
    apr_size_t len = strlen(name);
    char *lower;

    if (!valid_key_name(name)) {
        return lex_fail(lx, "key name '%s' is not a valid DNS name", name);
    }
    if (name[len - 1] == '.') {
        name = apr_pstrmemdup(lx->p, name, len - 1);
    }
    key->name = apr_pstrdup(lx->p, name);
    for (lower = (char *)key->name; *lower; ++lower) *lower = (char)apr_tolower(*lower);
    return APR_SUCCESS;
}

static apr_status_t key_complete(acme_dns_tsig_t *key, lexer_t *lx)
{
    if (!key->algorithm) {
        return lex_fail(lx, "key '%s' has no algorithm", key->name);
    }
    if (!key->secret) {
        return lex_fail(lx, "key '%s' has no secret", key->name);
    }
    return APR_SUCCESS;
}

/* key "name" { algorithm X; secret "Y"; }; */
static apr_status_t parse_bind(acme_dns_tsig_t *key, lexer_t *lx)
{
    const char *tok, *field, *value;
    int quoted;
    apr_status_t rv;

    if ((rv = lex_next(&tok, &quoted, lx)) != APR_SUCCESS) goto leave;
    if (!tok || quoted || strcmp(tok, "key")) {
        rv = lex_fail(lx, "expected 'key', found %s",
                      tok ? apr_psprintf(lx->p, "'%s'", tok) : "nothing");
        goto leave;
    }
    if ((rv = lex_next(&tok, &quoted, lx)) != APR_SUCCESS) goto leave;
    if (!tok || (!quoted && (!strcmp(tok, "{") || !strcmp(tok, ";") || !strcmp(tok, "}")))) {
        rv = lex_fail(lx, "%s", "expected the key name after 'key'");
        goto leave;
    }
    if ((rv = key_name_set(key, lx, tok)) != APR_SUCCESS) goto leave;
    if ((rv = lex_expect(lx, "{", "the key name")) != APR_SUCCESS) goto leave;
    for (;;) {
        if ((rv = lex_next(&field, &quoted, lx)) != APR_SUCCESS) goto leave;
        if (!field) {
            rv = lex_fail(lx, "%s", "the key is not closed (missing '};')");
            goto leave;
        }
        if (!quoted && !strcmp(field, "}")) {
            break;
        }
        if (quoted || !strcmp(field, "{") || !strcmp(field, ";")) {
            rv = lex_fail(lx, "expected algorithm or secret, found '%s'", field);
            goto leave;
        }
        if ((rv = lex_next(&value, &quoted, lx)) != APR_SUCCESS) goto leave;
        if (!value || (!quoted && (!strcmp(value, ";") || !strcmp(value, "{")
                                   || !strcmp(value, "}")))) {
            rv = lex_fail(lx, "%s has no value", field);
            goto leave;
        }
        if ((rv = key_set(key, lx, field, value)) != APR_SUCCESS) goto leave;
        if ((rv = lex_expect(lx, ";", field)) != APR_SUCCESS) goto leave;
    }
    if ((rv = lex_expect(lx, ";", "'}'")) != APR_SUCCESS) goto leave;
    if ((rv = key_complete(key, lx)) != APR_SUCCESS) goto leave;
    if ((rv = lex_next(&tok, &quoted, lx)) != APR_SUCCESS) goto leave;
    if (tok) {
        rv = lex_fail(lx, "%s", !strcmp(tok, "key") ? "the file holds more than one key"
                                                      : "unexpected text after the key");
    }
leave:
    return rv;
}

/* One "name: value" line of Knot's YAML; value may be quoted. */
static apr_status_t yaml_line(const char **pfield, const char **pvalue, int *pdash,
                              lexer_t *lx)
{
    const char *eol, *colon, *s, *v, *vend;
    apr_status_t rv;

    *pfield = NULL;
    if ((rv = lex_skip(lx, 1)) != APR_SUCCESS || lx->s >= lx->end) {
        return rv;
    }
    eol = memchr(lx->s, '\n', (apr_size_t)(lx->end - lx->s));
    if (!eol) eol = lx->end;
    s = lx->s;
    *pdash = 0;
    if (*s == '-' && s + 1 < eol && (s[1] == ' ' || s[1] == '\t')) {
        *pdash = 1;
        for (s++; s < eol && (*s == ' ' || *s == '\t'); ++s);
    }
    colon = memchr(s, ':', (apr_size_t)(eol - s));
    if (!colon) {
        return lex_fail(lx, "%s", "expected 'name: value'");
    }
    *pfield = apr_pstrmemdup(lx->p, s, (apr_size_t)(colon - s));
    for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); ++v);
    vend = eol;
    /* a comment after the value */
    for (s = v; s < eol; ++s) {
        if (*s == '#' && (s == v || s[-1] == ' ' || s[-1] == '\t')) {
            vend = s;
            break;
        }
    }
    while (vend > v && apr_isspace(vend[-1])) vend--;
    if (vend - v >= 2 && (*v == '"' || *v == '\'') && vend[-1] == *v) {
        v++;
        vend--;
    }
    *pvalue = apr_pstrmemdup(lx->p, v, (apr_size_t)(vend - v));
    for (s = *pvalue; *s; ++s) {
        if (!apr_isprint(*s)) {
            return lex_fail(lx, "%s", "control character in a value");
        }
    }
    lx->s = eol;
    return APR_SUCCESS;
}

/* key:
 *   - id: name
 *     algorithm: hmac-sha256
 *     secret: base64 */
static apr_status_t parse_knot(acme_dns_tsig_t *key, lexer_t *lx)
{
    const char *field, *value;
    int dash, items = 0;
    apr_status_t rv;

    if ((rv = yaml_line(&field, &value, &dash, lx)) != APR_SUCCESS) goto leave;
    if (!field || dash || strcmp(field, "key") || *value) {
        rv = lex_fail(lx, "%s", "expected 'key:'");
        goto leave;
    }
    for (;;) {
        if ((rv = yaml_line(&field, &value, &dash, lx)) != APR_SUCCESS) goto leave;
        if (!field) {
            break;
        }
        if (dash) {
            if (++items > 1) {
                rv = lex_fail(lx, "%s", "the file holds more than one key");
                goto leave;
            }
            if (strcmp(field, "id")) {
                rv = lex_fail(lx, "%s", "a key item starts with '- id: NAME'");
                goto leave;
            }
            if ((rv = key_name_set(key, lx, value)) != APR_SUCCESS) goto leave;
            continue;
        }
        if (!items) {
            rv = lex_fail(lx, "'%s' before '- id: NAME'", field);
            goto leave;
        }
        if (!strcmp(field, "id") || !*value) {
            rv = lex_fail(lx, !*value ? "%s has no value" : "%s is given twice", field);
            goto leave;
        }
        if ((rv = key_set(key, lx, field, value)) != APR_SUCCESS) goto leave;
    }
    if (!items) {
        rv = lex_fail(lx, "%s", "'key:' has no '- id: NAME' item");
        goto leave;
    }
    rv = key_complete(key, lx);
leave:
    return rv;
}

apr_status_t acme_dns_tsig_parse(acme_dns_tsig_t **pkey, apr_pool_t *p, const char *text,
                                 apr_size_t len, const char **perr)
{
    acme_dns_tsig_t *key = apr_pcalloc(p, sizeof(*key));
    lexer_t lx;
    const char *s;
    apr_status_t rv;

    *pkey = NULL;
    *perr = NULL;
    lx.s = text;
    lx.end = text + len;
    lx.line = 1;
    lx.p = p;
    lx.perr = perr;
    if ((rv = lex_skip(&lx, 0)) != APR_SUCCESS) goto leave;
    if (lx.s >= lx.end) {
        *perr = "the key file is empty (expected key \"NAME\" { algorithm ...; secret \"...\"; };)";
        rv = APR_EINVAL;
        goto leave;
    }
    /* Knot's YAML has "key:" where BIND has "key NAME"; only # comments there. */
    for (s = lx.s; s < lx.end && apr_isalpha(*s); ++s);
    lx.s = text;
    lx.line = 1;
    rv = (s < lx.end && *s == ':') ? parse_knot(key, &lx) : parse_bind(key, &lx);
    if (rv == APR_SUCCESS) {
        *pkey = key;
    }
leave:
    return rv;
}

apr_status_t acme_dns_tsig_load(acme_dns_tsig_t **pkey, apr_pool_t *p, const char *path,
                                int flags, const char **perr)
{
    const char *buf = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    *pkey = NULL;
    *perr = NULL;
    /* the key signs changes to the zone: as guarded as the store's key (and
     * wiped with the pool) */
    rv = acme_secret_file_read(&buf, &len, p, path, "the TSIG key file", MAX_KEYFILE, flags,
                               apr_psprintf(p, "(tsig-keygen or keymgr -t writes one; chown root "
                                            "%s; chmod 0400 %s)", path, path), perr);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = acme_dns_tsig_parse(pkey, p, buf, len, perr);
    if (rv == APR_SUCCESS) {
        rv = acme_dns_tsig_usable(*pkey, p, perr);
    }
    if (rv != APR_SUCCESS) {
        *pkey = NULL;
        *perr = apr_psprintf(p, "%s: %s", path, *perr);
    }
    return rv;
}

apr_status_t acme_dns_tsig_usable(const acme_dns_tsig_t *key, apr_pool_t *p, const char **perr)
{
    ldns_rdf *zone = ldns_dname_new_frm_str("example.");
    ldns_pkt *q = zone ? ldns_pkt_query_new(zone, LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN, 0) : NULL;
    ldns_status st;
    apr_status_t rv = APR_SUCCESS;

    *perr = NULL;
    if (!q) {
        *perr = "out of memory";
        return APR_ENOMEM;
    }
    /* ldns 1.8 cannot sign hmac-sha384 (it looks for "hmac-shac384."):
     * better at start-up than at the first renewal. */
    st = ldns_pkt_tsig_sign(q, acme_dns_fqdn(p, key->name), key->secret, TSIG_FUDGE,
                            apr_pstrcat(p, key->algorithm, ".", NULL), NULL);
    if (st != LDNS_STATUS_OK) {
        *perr = apr_psprintf(p, "the ldns library cannot sign with %s (%s) for key '%s': use "
                             "hmac-sha256 or hmac-sha512", key->algorithm,
                             ldns_get_errorstr_by_id(st), key->name);
        rv = APR_ENOTIMPL;
    }
    ldns_pkt_free(q);
    return rv;
}

/* ---- configuration ------------------------------------------------------------ */

apr_status_t acme_dns_server_parse(acme_dns_server_t **psrv, apr_pool_t *p, const char *spec,
                                   apr_port_t default_port, const char **perr)
{
    acme_dns_server_t *srv = apr_pcalloc(p, sizeof(*srv));
    const char *host = spec, *port = NULL, *colon;
    apr_int64_t n;
    char *end;

    *psrv = NULL;
    *perr = NULL;
    if (!spec || !*spec) {
        *perr = "empty DNS server";
        return APR_EINVAL;
    }
    if (*spec == '[') {
        const char *close = strchr(spec, ']');

        if (!close || close == spec + 1 || (close[1] && close[1] != ':')) {
            *perr = apr_psprintf(p, "'%s': expected [IPv6]:PORT", spec);
            return APR_EINVAL;
        }
        host = apr_pstrmemdup(p, spec + 1, (apr_size_t)(close - spec - 1));
        port = close[1] ? close + 2 : NULL;
    }
    else if ((colon = strchr(spec, ':')) && !strchr(colon + 1, ':')) {
        host = apr_pstrmemdup(p, spec, (apr_size_t)(colon - spec));
        port = colon + 1;
    }
    if (!*host || (!strchr(host, ':') && !acme_name_is_valid(host))) {
        *perr = apr_psprintf(p, "'%s': not a host name or IP address", spec);
        return APR_EINVAL;
    }
    srv->host = apr_pstrdup(p, host);
    srv->port = default_port;
    if (port) {
        n = apr_strtoi64(port, &end, 10);
        if (!*port || *end || n < 1 || n > 65535) {
            *perr = apr_psprintf(p, "'%s': the port must be a number from 1 to 65535", spec);
            return APR_EINVAL;
        }
        srv->port = (apr_port_t)n;
    }
    *psrv = srv;
    return APR_SUCCESS;
}

acme_dns_config_t *acme_dns_config_make(apr_pool_t *p)
{
    acme_dns_config_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->update.port = 53;
    conf->check_timeout = apr_time_from_sec(120);
    conf->poll_interval = apr_time_from_sec(2);
    conf->query_timeout = apr_time_from_sec(3);
    conf->ttl = 60;
    conf->ns_port = 53;
    return conf;
}

apr_status_t acme_dns_check_args(apr_array_header_t **pcheck, apr_interval_time_t *ptimeout,
                                 apr_pool_t *p, int argc, const char *const *argv,
                                 const char **perr)
{
    apr_array_header_t *check = apr_array_make(p, argc > 0 ? argc : 1,
                                               sizeof(acme_dns_server_t *));
    acme_dns_server_t *srv;
    apr_interval_time_t t;
    int i, have_timeout = 0;

    *pcheck = NULL;
    *perr = NULL;
    for (i = 0; i < argc; ++i) {
        if (!strncmp(argv[i], "timeout=", 8)) {
            if (have_timeout || acme_duration_parse(&t, argv[i] + 8, "s") != APR_SUCCESS
                || t < apr_time_from_sec(1) || t > apr_time_from_sec(3600)) {
                *perr = apr_psprintf(p, "'%s': %s", argv[i], have_timeout
                                     ? "the timeout is given twice"
                                     : "expected timeout=DURATION from 1s to 1h");
                return APR_EINVAL;
            }
            have_timeout = 1;
            continue;
        }
        if (acme_dns_server_parse(&srv, p, argv[i], 53, perr) != APR_SUCCESS) {
            return APR_EINVAL;
        }
        APR_ARRAY_PUSH(check, acme_dns_server_t *) = srv;
    }
    if (!check->nelts) {
        *perr = "expected at least one SERVER[:PORT]";
        return APR_EINVAL;
    }
    if (have_timeout) {
        *ptimeout = t;
    }
    *pcheck = check;
    return APR_SUCCESS;
}

/* ---- pure parts ----------------------------------------------------------------- */

const char *acme_dns_fqdn(apr_pool_t *p, const char *name)
{
    apr_size_t len = strlen(name);
    char *s, *out;

    if (len && name[len - 1] == '.') {
        len--;
    }
    if (!len) {
        return ".";
    }
    out = apr_palloc(p, len + 2);
    memcpy(out, name, len);
    out[len] = '.';
    out[len + 1] = '\0';
    for (s = out; *s; ++s) *s = (char)apr_tolower(*s);
    return out;
}

const char *acme_dns_record_name(apr_pool_t *p, const char *name)
{
    if (!name) {
        return NULL;
    }
    if (!strncmp(name, "*.", 2)) {
        name += 2;
    }
    if (!*name || !strcmp(name, ".") || acme_name_is_ip(name)) {
        return NULL;
    }
    return apr_pstrcat(p, "_acme-challenge.", acme_dns_fqdn(p, name), NULL);
}

/* Is name equal to zone or below it? Both lower case FQDNs. */
static int in_zone(const char *name, const char *zone)
{
    apr_size_t nl = strlen(name), zl = strlen(zone);

    if (!strcmp(zone, ".")) return 1;
    if (nl < zl) return 0;
    if (strcmp(name + nl - zl, zone)) return 0;
    return nl == zl || name[nl - zl - 1] == '.';
}

apr_status_t acme_dns_msg_zone(const char **pzone, const acme_dns_msg_t *m, const char *qname)
{
    int i;

    *pzone = NULL;
    if (!m || (m->rcode != 0 && m->rcode != 3)) {
        return APR_ENOENT;
    }
    for (i = 0; m->rrs && i < m->rrs->nelts; ++i) {
        const acme_dns_rr_t *rr = APR_ARRAY_IDX(m->rrs, i, const acme_dns_rr_t *);

        if (rr->type != ACME_DNS_T_SOA) continue;
        if ((rr->section == ACME_DNS_SEC_ANSWER && !strcmp(rr->owner, qname))
            || (rr->section == ACME_DNS_SEC_AUTHORITY && in_zone(qname, rr->owner))) {
            *pzone = rr->owner;
            return APR_SUCCESS;
        }
    }
    return APR_ENOENT;
}

apr_status_t acme_dns_msg_cname(const char **ptarget, const acme_dns_msg_t *m, const char *qname)
{
    int i;

    *ptarget = NULL;
    if (!m || m->rcode != 0) {
        return APR_ENOENT;
    }
    for (i = 0; m->rrs && i < m->rrs->nelts; ++i) {
        const acme_dns_rr_t *rr = APR_ARRAY_IDX(m->rrs, i, const acme_dns_rr_t *);

        if (rr->section == ACME_DNS_SEC_ANSWER && rr->type == ACME_DNS_T_CNAME
            && !strcmp(rr->owner, qname) && rr->data) {
            *ptarget = rr->data;
            return APR_SUCCESS;
        }
    }
    return APR_ENOENT;
}

int acme_dns_msg_has_txt(const acme_dns_msg_t *m, const char *owner, const char *value)
{
    int i;

    if (!m || m->rcode != 0) {
        return 0;
    }
    for (i = 0; m->rrs && i < m->rrs->nelts; ++i) {
        const acme_dns_rr_t *rr = APR_ARRAY_IDX(m->rrs, i, const acme_dns_rr_t *);

        if (rr->section == ACME_DNS_SEC_ANSWER && rr->type == ACME_DNS_T_TXT
            && !strcmp(rr->owner, owner) && rr->data && !strcmp(rr->data, value)) {
            return 1;
        }
    }
    return 0;
}

apr_array_header_t *acme_dns_msg_data(apr_pool_t *p, const acme_dns_msg_t *m, const char *owner,
                                      int type)
{
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(const char *));
    int i, j;

    for (i = 0; m && m->rrs && i < m->rrs->nelts; ++i) {
        const acme_dns_rr_t *rr = APR_ARRAY_IDX(m->rrs, i, const acme_dns_rr_t *);

        if (rr->type != type || strcmp(rr->owner, owner) || !rr->data) continue;
        for (j = 0; j < out->nelts; ++j) {
            if (!strcmp(APR_ARRAY_IDX(out, j, const char *), rr->data)) break;
        }
        if (j == out->nelts) {
            APR_ARRAY_PUSH(out, const char *) = rr->data;
        }
    }
    return out;
}

apr_status_t acme_dns_msg_answers(const acme_dns_msg_t *q, const acme_dns_msg_t *a,
                                  const char **pwhy)
{
    const char *why = NULL;

    if (!a->qr) {
        why = "a message that is not an answer";
    }
    else if (a->id != q->id) {
        why = "an answer with another message id";
    }
    else if (a->opcode != q->opcode) {
        why = "an answer with another opcode";
    }
    else if (a->qdcount == 0 && q->opcode == 5) {
        /* RFC 2136 3.8: an update's answer may leave its sections out */
    }
    else if (a->qdcount != 1 || !a->qname || !q->qname || strcmp(a->qname, q->qname)
             || a->qtype != q->qtype || a->qclass != q->qclass) {
        why = "an answer to another question";
    }
    *pwhy = why;
    return why ? APR_EGENERAL : APR_SUCCESS;
}

acme_dns_txt_view_t acme_dns_msg_txt_view(const acme_dns_msg_t *m, const char *qname,
                                          const char *value)
{
    const char *name = qname, *next;
    int i, hops;

    if (!m || m->rcode == 5 || m->rcode == 9 || (!m->aa && m->rcode == 0)) {
        return ACME_DNS_TXT_ELSEWHERE;
    }
    if (m->rcode != 0 && m->rcode != 3) {
        return ACME_DNS_TXT_MISSING;
    }
    for (hops = 0; hops <= MAX_CNAME_HOPS; ++hops) {
        if (acme_dns_msg_has_txt(m, name, value)) {
            return ACME_DNS_TXT_SHOWN;
        }
        if (acme_dns_msg_cname(&next, m, name) != APR_SUCCESS) {
            break;
        }
        name = next;
    }
    if (hops > MAX_CNAME_HOPS || !strcmp(name, qname)) {
        return ACME_DNS_TXT_MISSING; /* a loop, or nothing at qname where it speaks for it */
    }
    for (i = 0; m->rrs && i < m->rrs->nelts; ++i) {
        const acme_dns_rr_t *rr = APR_ARRAY_IDX(m->rrs, i, const acme_dns_rr_t *);

        /* other values at the chain's end, or its zone's SOA (NXDOMAIN, NODATA):
         * a cache of an older answer looks like this */
        if ((rr->section == ACME_DNS_SEC_ANSWER && rr->type == ACME_DNS_T_TXT
             && !strcmp(rr->owner, name))
            || (rr->section == ACME_DNS_SEC_AUTHORITY && rr->type == ACME_DNS_T_SOA
                && in_zone(name, rr->owner))) {
            return ACME_DNS_TXT_MISSING;
        }
    }
    return ACME_DNS_TXT_ELSEWHERE;
}

const char *acme_dns_rcode_name(apr_pool_t *p, int rcode)
{
    static const char *const names[] = {
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
        "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"
    };

    if (rcode >= 0 && rcode < (int)(sizeof(names) / sizeof(names[0]))) {
        return names[rcode];
    }
    return apr_psprintf(p, "RCODE %d", rcode);
}

const char *acme_dns_tsig_error_name(apr_pool_t *p, int err)
{
    switch (err) {
    case 16: return "BADSIG";
    case 17: return "BADKEY";
    case 18: return "BADTIME";
    case 22: return "BADTRUNC";
    default: return apr_psprintf(p, "TSIG error %d", err);
    }
}

apr_status_t acme_dns_update_failed(acme_result_t *r, const acme_dns_msg_t *m,
                                    const char *key_name, const char *server, const char *zone,
                                    const char *owner)
{
    apr_pool_t *p = r->pool;
    const char *what = apr_psprintf(p, "DNS server %s answered the update of %s TXT in zone %s",
                                    server, owner, zone);
    const char *answer = acme_dns_rcode_name(p, m->rcode), *why;
    /* Only the key proves the server said it: an unsigned refusal may be one
     * forged packet, and must not stop renewals for a day. */
    const char *problem = m->tsig_verified ? ACME_DNS_PROBLEM_CONFIG : ACME_DNS_PROBLEM;
    const char *retry = m->tsig_verified ? ""
                        : " (an unsigned answer: retried with the normal backoff)";
    apr_status_t rv = APR_EACCES;

    if (m->tsig_error) {
        answer = apr_pstrcat(p, answer, "/", acme_dns_tsig_error_name(p, m->tsig_error), NULL);
        switch (m->tsig_error) {
        case 16:
            why = "the signature with TSIG key '%s' does not verify: the secret or the "
                  "algorithm in the key file differs from the server's";
            break;
        case 17:
            why = "the server does not accept TSIG key '%s' for this update: it does not know "
                  "the key name or algorithm, or (Knot) no ACL allows this key a TXT update "
                  "there";
            break;
        case 18:
            why = "the server's clock and this host's differ by more than 300 s "
                  "(TSIG key '%s')";
            break;
        default:
            why = "the server refused TSIG key '%s'";
        }
        why = apr_psprintf(p, why, key_name);
    }
    else {
        switch (m->rcode) {
        case 5:
            /* PowerDNS answers a badly signed update so, without a TSIG error */
            why = apr_psprintf(p, "its ACL or update-policy does not allow TSIG key '%s' to "
                               "update it, or the key's secret differs from the server's",
                               key_name);
            break;
        case 9:
            why = apr_psprintf(p, "the server is not authoritative for the zone or does not "
                               "accept TSIG key '%s' for it", key_name);
            break;
        case 10:
            rv = APR_EINVAL;
            why = "the name is not in that zone";
            break;
        case 4:
            rv = APR_ENOTIMPL;
            why = "the server does not take dynamic updates";
            break;
        case 2:
            problem = ACME_DNS_PROBLEM;
            retry = "";
            rv = APR_EGENERAL;
            why = "it could not apply the update (for a secondary: is the primary reachable?)";
            break;
        default:
            rv = APR_EGENERAL;
            why = NULL;
        }
    }
    return acme_result_set(r, rv, problem, "%s with %s%s%s%s", what, answer, why ? ": " : "",
                           why ? why : "", retry);
}

/* ---- ldns glue ------------------------------------------------------------------- */

static apr_status_t pkt_cleanup(void *data)
{
    ldns_pkt_free(data);
    return APR_SUCCESS;
}

static apr_status_t resolver_cleanup(void *data)
{
    ldns_resolver_deep_free(data);
    return APR_SUCCESS;
}

static const char *rdf_str(apr_pool_t *p, const ldns_rdf *rdf, int lower)
{
    char *s = rdf ? ldns_rdf2str(rdf) : NULL, *out, *c;

    if (!s) {
        return NULL;
    }
    out = apr_pstrdup(p, s);
    free(s);
    if (lower) {
        for (c = out; *c; ++c) *c = (char)apr_tolower(*c);
    }
    return out;
}

/* The character strings of a TXT RR, joined (RFC 8555 8.4 values fit one). */
static const char *txt_str(apr_pool_t *p, const ldns_rr *rr)
{
    char *out = apr_pstrdup(p, "");
    size_t i;

    for (i = 0; i < ldns_rr_rd_count(rr); ++i) {
        const ldns_rdf *rdf = ldns_rr_rdf(rr, i);
        const uint8_t *d = ldns_rdf_data(rdf);
        size_t n = ldns_rdf_size(rdf);

        if (ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_STR || n < 1 || (size_t)d[0] + 1 > n) {
            continue;
        }
        out = apr_pstrcat(p, out, apr_pstrmemdup(p, (const char *)d + 1, d[0]), NULL);
    }
    return out;
}

static void msg_add_list(acme_dns_msg_t *m, apr_pool_t *p, const ldns_rr_list *list, int sec)
{
    size_t i;

    for (i = 0; list && i < ldns_rr_list_rr_count(list); ++i) {
        const ldns_rr *rr = ldns_rr_list_rr(list, i);
        acme_dns_rr_t *out = apr_pcalloc(p, sizeof(*out));

        out->section = sec;
        out->owner = rdf_str(p, ldns_rr_owner(rr), 1);
        out->type = (int)ldns_rr_get_type(rr);
        switch (out->type) {
        case ACME_DNS_T_A:
        case ACME_DNS_T_AAAA:
            out->data = rdf_str(p, ldns_rr_rdf(rr, 0), 0);
            break;
        case ACME_DNS_T_NS:
        case ACME_DNS_T_CNAME:
        case ACME_DNS_T_SOA:
            out->data = rdf_str(p, ldns_rr_rdf(rr, 0), 1);
            break;
        case ACME_DNS_T_TXT:
            out->data = txt_str(p, rr);
            break;
        default:
            break;
        }
        if (out->owner) {
            APR_ARRAY_PUSH(m->rrs, acme_dns_rr_t *) = out;
        }
    }
}

static acme_dns_msg_t *msg_from_pkt(apr_pool_t *p, const ldns_pkt *pkt)
{
    acme_dns_msg_t *m = apr_pcalloc(p, sizeof(*m));
    const ldns_rr *tsig = ldns_pkt_tsig(pkt);

    const ldns_rr_list *question = ldns_pkt_question(pkt);

    m->id = ldns_pkt_id(pkt);
    m->qr = ldns_pkt_qr(pkt) ? 1 : 0;
    m->opcode = (int)ldns_pkt_get_opcode(pkt);
    m->qdcount = question ? (int)ldns_rr_list_rr_count(question) : 0;
    if (m->qdcount) {
        const ldns_rr *q = ldns_rr_list_rr(question, 0);

        m->qname = rdf_str(p, ldns_rr_owner(q), 1);
        m->qtype = (int)ldns_rr_get_type(q);
        m->qclass = (int)ldns_rr_get_class(q);
    }
    m->rcode = ldns_pkt_get_rcode(pkt);
    m->aa = ldns_pkt_aa(pkt) ? 1 : 0;
    m->rrs = apr_array_make(p, 8, sizeof(acme_dns_rr_t *));
    if (tsig && ldns_rr_rd_count(tsig) > 5 && ldns_rdf_size(ldns_rr_rdf(tsig, 5)) == 2) {
        m->tsig_error = ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5));
    }
    msg_add_list(m, p, ldns_pkt_answer(pkt), ACME_DNS_SEC_ANSWER);
    msg_add_list(m, p, ldns_pkt_authority(pkt), ACME_DNS_SEC_AUTHORITY);
    msg_add_list(m, p, ldns_pkt_additional(pkt), ACME_DNS_SEC_ADDITIONAL);
    return m;
}

apr_status_t acme_dns_msg_from_wire(acme_dns_msg_t **pmsg, apr_pool_t *p,
                                    const unsigned char *wire, apr_size_t len)
{
    ldns_pkt *pkt = NULL;

    *pmsg = NULL;
    if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK || !pkt) {
        return APR_EINVAL;
    }
    *pmsg = msg_from_pkt(p, pkt);
    ldns_pkt_free(pkt);
    return APR_SUCCESS;
}

/* One server as the messages name it. */
typedef struct {
    const char *label;     /* "127.0.0.1:53" or "ns1.example.org. (192.0.2.1:53)" */
    const char *ip;
    apr_port_t port;
    int seen;              /* the value showed at the owner */
    int done;              /* and where the CA asks */
    const char *last;      /* what it answered last, for the failure message */
} server_t;

static const char *hostport(apr_pool_t *p, const char *host, apr_port_t port)
{
    return apr_psprintf(p, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
}

/* The addresses of host by the system resolver (names of update and check
 * servers are configuration, like a ServerName). */
static apr_status_t host_addrs(apr_array_header_t **paddrs, apr_pool_t *p, const char *host)
{
    apr_array_header_t *out = apr_array_make(p, 2, sizeof(const char *));
    apr_sockaddr_t *sa, *it;
    char *ip;
    apr_status_t rv;

    rv = apr_sockaddr_info_get(&sa, host, APR_UNSPEC, 53, 0, p);
    for (it = (rv == APR_SUCCESS) ? sa : NULL; it; it = it->next) {
        if (apr_sockaddr_ip_get(&ip, it) == APR_SUCCESS) {
            APR_ARRAY_PUSH(out, const char *) = ip;
        }
    }
    *paddrs = out;
    return out->nelts ? APR_SUCCESS : (rv != APR_SUCCESS ? rv : APR_ENOENT);
}

/* Sends q to ip:port with a new random id and returns the answer. sign:
 * TSIG with conf->key, and the answer's signature is verified. A packet
 * that does not answer q (id, question) is no answer. On no usable answer
 * *perr says why. */
static apr_status_t exchange(acme_dns_msg_t **pmsg, const acme_dns_config_t *conf,
                             const char *ip, apr_port_t port, ldns_pkt *q, int sign,
                             apr_pool_t *p, const char **perr)
{
    ldns_resolver *res;
    ldns_rdf *addr = NULL;
    ldns_pkt *ans = NULL;
    ldns_status st;
    struct timeval tv;
    unsigned char id[2];
    acme_dns_msg_t *m;
    const char *why;
    apr_status_t rv = APR_SUCCESS;

    *pmsg = NULL;
    *perr = NULL;
    /* with id 0 a forged answer only had to guess the port */
    if (acme_random_bytes(id, sizeof(id)) != APR_SUCCESS) {
        *perr = "no random message id (the system's random source failed)";
        return APR_EGENERAL;
    }
    ldns_pkt_set_id(q, (uint16_t)((id[0] << 8) | id[1]));
    res = ldns_resolver_new();
    if (!res) {
        return APR_ENOMEM;
    }
    apr_pool_cleanup_register(p, res, resolver_cleanup, apr_pool_cleanup_null);
    addr = ldns_rdf_new_frm_str(strchr(ip, ':') ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, ip);
    if (!addr || ldns_resolver_push_nameserver(res, addr) != LDNS_STATUS_OK) {
        *perr = apr_psprintf(p, "'%s' is not an IP address", ip);
        rv = APR_EINVAL;
        goto leave;
    }
    ldns_resolver_set_port(res, port);
    ldns_resolver_set_recursive(res, false);
    ldns_resolver_set_retry(res, 1);
    ldns_resolver_set_retrans(res, 0);
    ldns_resolver_set_random(res, false);
    ldns_resolver_set_fallback(res, true); /* a truncated answer is asked again over TCP */
    tv.tv_sec = (time_t)apr_time_sec(conf->query_timeout);
    tv.tv_usec = (suseconds_t)(conf->query_timeout % APR_USEC_PER_SEC);
    ldns_resolver_set_timeout(res, tv);
    if (sign) {
        ldns_resolver_set_tsig_keyname(res, acme_dns_fqdn(p, conf->key->name));
        ldns_resolver_set_tsig_algorithm(res, apr_pstrcat(p, conf->key->algorithm, ".", NULL));
        ldns_resolver_set_tsig_keydata(res, conf->key->secret);
        st = ldns_update_pkt_tsig_add(q, res);
        if (st != LDNS_STATUS_OK) {
            *perr = apr_psprintf(p, "cannot sign with TSIG key '%s' (%s): %s", conf->key->name,
                                 conf->key->algorithm, ldns_get_errorstr_by_id(st));
            rv = APR_EINVAL;
            goto leave;
        }
    }
    /* ldns_send keeps an error answer whose TSIG does not verify (error
     * answers are unsigned); ldns_resolver_send_pkt would drop it. */
    st = sign ? ldns_send(&ans, res, q) : ldns_resolver_send_pkt(&ans, res, q);
    if (ans) {
        apr_pool_cleanup_register(p, ans, pkt_cleanup, apr_pool_cleanup_null);
    }
    if (!ans) {
        *perr = apr_psprintf(p, "no answer (%s)", st == LDNS_STATUS_NETWORK_ERR
                             ? "timeout or connection refused" : ldns_get_errorstr_by_id(st));
        rv = APR_TIMEUP;
        goto leave;
    }
    m = msg_from_pkt(p, ans);
    /* ldns compares neither id nor question */
    if (acme_dns_msg_answers(msg_from_pkt(p, q), m, &why) != APR_SUCCESS) {
        *perr = apr_psprintf(p, "no answer (only %s, ignored)", why);
        rv = APR_TIMEUP;
        goto leave;
    }
    m->tsig_verified = sign && st == LDNS_STATUS_OK && ldns_pkt_tsig(ans);
    *pmsg = m;
    if (st == LDNS_STATUS_CRYPTO_TSIG_BOGUS && m->rcode == 0) {
        /* an error answer may be unsigned (RFC 8945 5.3.2); a NOERROR may not */
        *perr = "the answer's TSIG signature does not verify";
        rv = APR_EGENERAL;
    }
    else if (st != LDNS_STATUS_OK && st != LDNS_STATUS_CRYPTO_TSIG_BOGUS) {
        *perr = apr_psprintf(p, "bad answer (%s)", ldns_get_errorstr_by_id(st));
        rv = APR_EGENERAL;
    }
leave:
    if (addr) ldns_rdf_deep_free(addr);
    return rv;
}

/* Asks ip:port for (name, type), without recursion. */
static apr_status_t query(acme_dns_msg_t **pmsg, const acme_dns_config_t *conf, const char *ip,
                          apr_port_t port, const char *name, int type, apr_pool_t *p,
                          const char **perr)
{
    ldns_rdf *qname = ldns_dname_new_frm_str(name);
    ldns_pkt *q;

    *pmsg = NULL;
    if (!qname) {
        *perr = apr_psprintf(p, "'%s' is not a DNS name", name);
        return APR_EINVAL;
    }
    q = ldns_pkt_query_new(qname, (ldns_rr_type)type, LDNS_RR_CLASS_IN, 0);
    if (!q) {
        *perr = "out of memory";
        return APR_ENOMEM;
    }
    apr_pool_cleanup_register(p, q, pkt_cleanup, apr_pool_cleanup_null);
    return exchange(pmsg, conf, ip, port, q, 0, p, perr);
}

/* The update server's address and label. */
static apr_status_t update_server(server_t *srv, const acme_dns_config_t *conf, apr_pool_t *p,
                                  acme_result_t *r)
{
    apr_array_header_t *addrs;
    apr_status_t rv;

    srv->port = conf->update.port;
    srv->label = hostport(p, conf->update.host, conf->update.port);
    rv = host_addrs(&addrs, p, conf->update.host);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, ACME_DNS_PROBLEM, "DNS update server %s: no address for "
                               "'%s'", srv->label, conf->update.host);
    }
    srv->ip = APR_ARRAY_IDX(addrs, 0, const char *);
    return APR_SUCCESS;
}

static apr_status_t lookup_failed(acme_result_t *r, apr_status_t rv, const server_t *srv,
                                  const char *name, const char *type, const char *err)
{
    return acme_result_set(r, rv, ACME_DNS_PROBLEM, "DNS update server %s, asked for %s %s: %s",
                           srv->label, name, type, err);
}

/* Every answer here is unsigned: what it says (no zone, a CNAME loop) is
 * transient (ACME_DNS_PROBLEM), as one forged packet could say it. */
apr_status_t acme_dns_target_find(acme_dns_target_t **ptarget, const acme_dns_config_t *conf,
                                  const char *name, apr_pool_t *p, acme_result_t *r)
{
    acme_dns_target_t *t = apr_pcalloc(p, sizeof(*t));
    acme_dns_msg_t *m;
    server_t srv;
    const char *owner, *target, *err, *qname;
    int hops;
    apr_status_t rv;

    *ptarget = NULL;
    t->record = acme_dns_record_name(p, name);
    if (!t->record) {
        rv = acme_result_set(r, APR_EINVAL, ACME_DNS_PROBLEM_CONFIG,
                             "'%s' has no DNS name for a dns-01 record", name);
        goto leave;
    }
    if ((rv = update_server(&srv, conf, p, r)) != APR_SUCCESS) goto leave;
    owner = t->record;
    for (hops = 0;; ++hops) {
        rv = query(&m, conf, srv.ip, srv.port, owner, ACME_DNS_T_CNAME, p, &err);
        if (rv != APR_SUCCESS) {
            rv = lookup_failed(r, rv, &srv, owner, "CNAME", err);
            goto leave;
        }
        if (acme_dns_msg_cname(&target, m, owner) != APR_SUCCESS) {
            break;
        }
        if (hops >= MAX_CNAME_HOPS) {
            rv = acme_result_set(r, APR_EINVAL, ACME_DNS_PROBLEM,
                                 "%s: more than %d CNAMEs in a row (a loop?)", t->record,
                                 MAX_CNAME_HOPS);
            goto leave;
        }
        acme_log(ACME_LOG_MARK, ACME_LOG_NOTICE, 0, ACMELOG(1201) "dns-01: %s is a CNAME to %s: "
                 "the TXT record for %s goes there (CNAME delegation)", owner, target, name);
        owner = target;
    }
    t->owner = owner;
    /* As nsupdate does: the SOA in the answer or authority section names
     * the zone; without one, ask again one label up. */
    for (qname = owner;;) {
        rv = query(&m, conf, srv.ip, srv.port, qname, ACME_DNS_T_SOA, p, &err);
        if (rv != APR_SUCCESS) {
            rv = lookup_failed(r, rv, &srv, qname, "SOA", err);
            goto leave;
        }
        if (acme_dns_msg_zone(&t->zone, m, qname) == APR_SUCCESS) {
            break;
        }
        if (m->rcode == 5 || m->rcode == 9 || !strcmp(qname, ".")) {
            rv = acme_result_set(r, APR_ENOENT, ACME_DNS_PROBLEM,
                                 "zone not found: DNS update server %s has no zone for %s "
                                 "(SOA query answered %s%s)", srv.label, owner,
                                 acme_dns_rcode_name(p, m->rcode),
                                 m->rcode == 5 ? ": it is not authoritative for it" : "");
            goto leave;
        }
        qname = strchr(qname, '.') + 1;
        if (!*qname) qname = ".";
    }
    if (!in_zone(t->owner, t->zone)) {
        rv = acme_result_set(r, APR_ENOENT, ACME_DNS_PROBLEM, "zone not found for %s at "
                             "%s (SOA owner %s)", t->owner, srv.label, t->zone);
        goto leave;
    }
    if (strcmp(t->owner, t->record)) {
        acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, "dns-01: %s: updating %s in zone %s",
                 t->record, t->owner, t->zone);
    }
    *ptarget = t;
leave:
    return rv;
}

/* TXT values go into the presentation format of ldns: keep them plain. */
static int value_ok(const char *value)
{
    const char *s;

    if (!value || !*value || strlen(value) > 255) return 0;
    for (s = value; *s; ++s) {
        if (!apr_isprint(*s) || *s == '"' || *s == '\\' || *s == ';') return 0;
    }
    return 1;
}

/* One RFC 2136 update: add (class IN, TTL) or delete by value (class NONE, TTL 0). */
static apr_status_t update(const acme_dns_config_t *conf, const acme_dns_target_t *t,
                           const char *value, int add, apr_pool_t *p, acme_result_t *r)
{
    apr_pool_t *ptemp;
    ldns_rr_list *ups = NULL;
    ldns_rr *rr = NULL;
    ldns_rdf *owner, *zone, *txt;
    ldns_pkt *q;
    acme_dns_msg_t *m;
    server_t srv;
    const char *err;
    apr_status_t rv;

    apr_pool_create(&ptemp, p);
    if (!conf->key) {
        rv = acme_result_set(r, APR_EINVAL, ACME_DNS_PROBLEM_CONFIG, "dns-01: no TSIG key");
        goto leave;
    }
    if (!value_ok(value)) {
        rv = acme_result_set(r, APR_EINVAL, ACME_DNS_PROBLEM, "dns-01: TXT value for %s is not "
                             "a plain token", t->owner);
        goto leave;
    }
    if ((rv = update_server(&srv, conf, ptemp, r)) != APR_SUCCESS) goto leave;
    owner = ldns_dname_new_frm_str(t->owner);
    txt = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_STR, value);
    rr = ldns_rr_new();
    ups = ldns_rr_list_new();
    if (!owner || !txt || !rr || !ups) {
        if (owner) ldns_rdf_deep_free(owner);
        if (txt) ldns_rdf_deep_free(txt);
        rv = acme_result_set(r, APR_EINVAL, ACME_DNS_PROBLEM, "dns-01: cannot build the "
                             "update for %s", t->owner);
        goto leave;
    }
    ldns_rr_set_owner(rr, owner);
    ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
    /* RFC 2136 2.5.1 adds with the zone's class; 2.5.4 deletes one RR with NONE */
    ldns_rr_set_class(rr, add ? LDNS_RR_CLASS_IN : LDNS_RR_CLASS_NONE);
    ldns_rr_set_ttl(rr, add ? conf->ttl : 0);
    ldns_rr_push_rdf(rr, txt);
    ldns_rr_list_push_rr(ups, rr);
    rr = NULL;
    zone = ldns_dname_new_frm_str(t->zone);
    q = zone ? ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, NULL, ups, NULL) : NULL;
    if (!q) {
        rv = acme_result_set(r, APR_ENOMEM, ACME_DNS_PROBLEM, "dns-01: cannot build the update");
        goto leave;
    }
    apr_pool_cleanup_register(ptemp, q, pkt_cleanup, apr_pool_cleanup_null);
    ldns_pkt_set_rd(q, false);
    rv = exchange(&m, conf, srv.ip, srv.port, q, 1, ptemp, &err);
    if (m && m->rcode != 0) {
        rv = acme_dns_update_failed(r, m, conf->key->name, srv.label, t->zone, t->owner);
        goto leave;
    }
    if (rv != APR_SUCCESS) {
        rv = acme_result_set(r, rv, rv == APR_EINVAL ? ACME_DNS_PROBLEM_CONFIG : ACME_DNS_PROBLEM,
                             "DNS update server %s, update of %s TXT in zone %s: %s", srv.label,
                             t->owner, t->zone, err);
        goto leave;
    }
    acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0,
             "ACME%s: dns-01: %s TXT %s at %s (zone %s, server %s)", add ? "1202" : "1203",
             add ? "added" : "deleted", value, t->owner, t->zone, srv.label);
leave:
    if (rr) ldns_rr_free(rr);
    if (ups) ldns_rr_list_deep_free(ups);
    apr_pool_destroy(ptemp);
    return rv;
}

apr_status_t acme_dns_add(const acme_dns_config_t *conf, const acme_dns_target_t *t,
                          const char *value, apr_pool_t *p, acme_result_t *r)
{
    return update(conf, t, value, 1, p, r);
}

apr_status_t acme_dns_delete(const acme_dns_config_t *conf, const acme_dns_target_t *t,
                             const char *value, apr_pool_t *p, acme_result_t *r)
{
    return update(conf, t, value, 0, p, r);
}

static void server_add(apr_array_header_t *servers, apr_pool_t *p, const char *name,
                       const char *ip, apr_port_t port)
{
    server_t *s;
    const char *hp = hostport(p, ip, port);
    int i;

    for (i = 0; i < servers->nelts; ++i) {
        s = APR_ARRAY_IDX(servers, i, server_t *);
        if (!strcmp(hostport(p, s->ip, s->port), hp)) return;
    }
    s = apr_pcalloc(p, sizeof(*s));
    s->ip = ip;
    s->port = port;
    s->label = name ? apr_psprintf(p, "%s (%s)", name, hp) : hp;
    s->last = "not asked yet";
    APR_ARRAY_PUSH(servers, server_t *) = s;
}

/* The servers that must show the record: the update server, then the check
 * list or the zone's NS with addresses from the update server. */
static apr_status_t check_servers(apr_array_header_t **pservers, const acme_dns_config_t *conf,
                                  const acme_dns_target_t *t, apr_pool_t *p, acme_result_t *r)
{
    apr_array_header_t *servers = apr_array_make(p, 4, sizeof(server_t *));
    apr_array_header_t *names, *addrs;
    acme_dns_msg_t *m;
    server_t up;
    const char *err, *ns;
    int i, j, k, types[2] = { ACME_DNS_T_A, ACME_DNS_T_AAAA };
    apr_status_t rv;

    *pservers = servers;
    if ((rv = update_server(&up, conf, p, r)) != APR_SUCCESS) goto leave;
    server_add(servers, p, NULL, up.ip, up.port);
    APR_ARRAY_IDX(servers, 0, server_t *)->label = apr_psprintf(p, "update server %s", up.label);
    if (conf->check && conf->check->nelts) {
        for (i = 0; i < conf->check->nelts; ++i) {
            const acme_dns_server_t *cs = APR_ARRAY_IDX(conf->check, i, acme_dns_server_t *);

            if ((rv = host_addrs(&addrs, p, cs->host)) != APR_SUCCESS) {
                rv = acme_result_set(r, rv, ACME_DNS_PROBLEM, "DNS check server %s: no address",
                                     hostport(p, cs->host, cs->port));
                goto leave;
            }
            for (j = 0; j < addrs->nelts; ++j) {
                server_add(servers, p, strcmp(cs->host, APR_ARRAY_IDX(addrs, j, const char *))
                           ? cs->host : NULL, APR_ARRAY_IDX(addrs, j, const char *), cs->port);
            }
        }
        goto leave;
    }
    rv = query(&m, conf, up.ip, up.port, t->zone, ACME_DNS_T_NS, p, &err);
    if (rv != APR_SUCCESS) {
        rv = lookup_failed(r, rv, &up, t->zone, "NS", err);
        goto leave;
    }
    names = acme_dns_msg_data(p, m, t->zone, ACME_DNS_T_NS);
    if (!names->nelts) {
        rv = acme_result_set(r, APR_ENOENT, ACME_DNS_PROBLEM, "zone %s has no NS records "
                             "at %s (configure ManagedDNSCheck)", t->zone, up.label);
        goto leave;
    }
    for (i = 0; i < names->nelts; ++i) {
        int found = 0;

        ns = APR_ARRAY_IDX(names, i, const char *);
        for (k = 0; k < 2; ++k) {
            if (query(&m, conf, up.ip, up.port, ns, types[k], p, &err) != APR_SUCCESS) continue;
            addrs = acme_dns_msg_data(p, m, ns, types[k]);
            for (j = 0; j < addrs->nelts; ++j, ++found) {
                server_add(servers, p, ns, APR_ARRAY_IDX(addrs, j, const char *), conf->ns_port);
            }
        }
        if (!found) {
            /* an NS outside the update server's zones (a provider's secondary) */
            if (host_addrs(&addrs, p, ns) != APR_SUCCESS) {
                rv = acme_result_set(r, APR_ENOENT, ACME_DNS_PROBLEM, "no address for %s, NS of "
                                     "zone %s, at %s or the system resolver", ns, t->zone,
                                     up.label);
                goto leave;
            }
            acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(1205) "dns-01: %s (NS of %s) "
                     "resolved by the system resolver", ns, t->zone);
            for (j = 0; j < addrs->nelts; ++j) {
                server_add(servers, p, ns, APR_ARRAY_IDX(addrs, j, const char *), conf->ns_port);
            }
        }
    }
leave:
    return rv;
}

static int aborted(const acme_dns_config_t *conf)
{
    return conf->abort_flag && apr_atomic_read32(conf->abort_flag);
}

/* Does s show value where it is written (t->owner) and where the CA asks
 * (t->record, through its CNAMEs)? A packet cache can keep the CNAME
 * owner's older answer for its TTL (PowerDNS does) after the target shows
 * the value. s->last says what is missing. */
static int server_shows(server_t *s, const acme_dns_config_t *qconf, const acme_dns_target_t *t,
                        const char *value, apr_pool_t *ptemp, apr_pool_t *p)
{
    acme_dns_msg_t *m;
    const char *err;

    if (!s->seen) {
        if (query(&m, qconf, s->ip, s->port, t->owner, ACME_DNS_T_TXT, ptemp, &err)
            != APR_SUCCESS) {
            s->last = apr_pstrdup(p, err);
            return 0;
        }
        if (!acme_dns_msg_has_txt(m, t->owner, value)) {
            s->last = apr_psprintf(p, "it answered %s%s", acme_dns_rcode_name(p, m->rcode),
                                   m->rcode ? "" : " without the value");
            return 0;
        }
        s->seen = 1;
    }
    if (!strcmp(t->record, t->owner)) {
        return 1;
    }
    if (query(&m, qconf, s->ip, s->port, t->record, ACME_DNS_T_TXT, ptemp, &err)
        != APR_SUCCESS) {
        s->last = apr_psprintf(p, "asked for %s TXT, as the CA will: %s", t->record, err);
        return 0;
    }
    if (acme_dns_msg_txt_view(m, t->record, value) == ACME_DNS_TXT_MISSING) {
        s->last = apr_psprintf(p, "asked for %s TXT, as the CA will, it answered %s without "
                               "the value (an older answer in its cache?)", t->record,
                               acme_dns_rcode_name(p, m->rcode));
        return 0;
    }
    return 1;
}

apr_status_t acme_dns_wait(const acme_dns_config_t *conf, const acme_dns_target_t *t,
                           const char *value, apr_pool_t *p, acme_result_t *r)
{
    apr_array_header_t *servers;
    apr_pool_t *ptemp;
    acme_dns_config_t qconf = *conf;
    apr_time_t deadline, next, left;
    const char *missing;
    int i, pending;
    apr_status_t rv;

    if ((rv = check_servers(&servers, conf, t, p, r)) != APR_SUCCESS) goto leave;
    deadline = apr_time_now() + conf->check_timeout;
    apr_pool_create(&ptemp, p);
    for (;;) {
        apr_pool_clear(ptemp);
        pending = 0;
        for (i = 0; i < servers->nelts; ++i) {
            server_t *s = APR_ARRAY_IDX(servers, i, server_t *);

            if (s->done) continue;
            if (aborted(conf)) {
                rv = acme_result_set(r, APR_EINTR, ACME_DNS_PROBLEM, "dns-01: stopped while "
                                     "waiting for %s TXT", t->owner);
                goto leave;
            }
            /* a server that does not answer must not stretch the bound */
            left = deadline - apr_time_now();
            qconf.query_timeout = (left < conf->query_timeout) ? left : conf->query_timeout;
            if (qconf.query_timeout < apr_time_from_msec(500)) {
                qconf.query_timeout = apr_time_from_msec(500);
            }
            if (server_shows(s, &qconf, t, value, ptemp, p)) {
                s->done = 1;
                acme_log(ACME_LOG_MARK, ACME_LOG_DEBUG, 0, "dns-01: %s TXT visible at %s",
                         t->owner, s->label);
                continue;
            }
            pending++;
        }
        if (!pending) {
            acme_log(ACME_LOG_MARK, ACME_LOG_INFO, 0, ACMELOG(1204) "dns-01: %s TXT visible at all %d "
                     "server(s)", t->owner, servers->nelts);
            rv = APR_SUCCESS;
            goto leave;
        }
        if (apr_time_now() >= deadline) break;
        next = apr_time_now() + conf->poll_interval;
        while (apr_time_now() < next && apr_time_now() < deadline) {
            if (aborted(conf)) break;
            apr_sleep(apr_time_from_msec(100));
        }
    }
    missing = NULL;
    for (i = 0; i < servers->nelts; ++i) {
        const server_t *s = APR_ARRAY_IDX(servers, i, server_t *);

        if (s->done) continue;
        missing = apr_psprintf(p, "%s%s%s: %s", missing ? missing : "", missing ? "; " : "",
                               s->label, s->last);
    }
    rv = acme_result_set(r, APR_TIMEUP, ACME_DNS_PROBLEM, "the TXT record %s (value %s) did not "
                         "show within %s at %s", t->owner, value,
                         acme_duration_format(p, conf->check_timeout), missing);
leave:
    return rv;
}

apr_status_t acme_dns_publish(const acme_dns_config_t *conf, const char *name,
                              const char *value, apr_pool_t *p, acme_result_t *r)
{
    acme_dns_target_t *t;
    apr_status_t rv;

    acme_result_activity(r, "publishing the dns-01 record for %s", name);
    if ((rv = acme_dns_target_find(&t, conf, name, p, r)) != APR_SUCCESS) goto leave;
    if ((rv = acme_dns_add(conf, t, value, p, r)) != APR_SUCCESS) goto leave;
    rv = acme_dns_wait(conf, t, value, p, r);
leave:
    return rv;
}

apr_status_t acme_dns_withdraw(const acme_dns_config_t *conf, const char *name,
                               const char *value, apr_pool_t *p, acme_result_t *r)
{
    acme_dns_target_t *t;
    apr_status_t rv;

    acme_result_activity(r, "removing the dns-01 record for %s", name);
    if ((rv = acme_dns_target_find(&t, conf, name, p, r)) != APR_SUCCESS) goto leave;
    rv = acme_dns_delete(conf, t, value, p, r);
leave:
    return rv;
}

/* ---- the publisher --------------------------------------------------------- */

/* The configuration of one call: the job's stop flag ends the waiting. */
static acme_dns_config_t *call_conf(const acme_publisher_t *pub, const acme_answer_t *a,
                                    apr_pool_t *p)
{
    acme_dns_config_t *conf = apr_pmemdup(p, pub->baton, sizeof(*conf));

    conf->abort_flag = a->stop;
    return conf;
}

static void dns_withdraw(const acme_publisher_t *pub, struct acme_store_t *s,
                         const acme_answer_t *a, apr_pool_t *p);

static apr_status_t dns_publish(const acme_publisher_t *pub, struct acme_store_t *s,
                                const acme_answer_t *a, apr_pool_t *p, acme_result_t *r)
{
    apr_status_t rv = acme_dns_publish(call_conf(pub, a, p), a->name,
                                       acme_dns01_value(p, a->key_authz), p, r);

    if (rv != APR_SUCCESS) {
        /* added but never seen everywhere: nobody else withdraws it */
        dns_withdraw(pub, s, a, p);
    }
    return rv;
}

static void dns_withdraw(const acme_publisher_t *pub, struct acme_store_t *s,
                         const acme_answer_t *a, apr_pool_t *p)
{
    acme_result_t *r = acme_result_make(p);

    (void)s;
    if (acme_dns_withdraw(call_conf(pub, a, p), a->name, acme_dns01_value(p, a->key_authz), p, r)
        != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, r->status, ACMELOG(1206) "%s: the TXT record "
                 "for %s may have stayed: %s", a->domain, a->name, acme_result_describe(r, p));
    }
}

acme_publisher_t *acme_dns_publisher(apr_pool_t *p, const acme_dns_config_t *conf)
{
    acme_publisher_t *pub = apr_pcalloc(p, sizeof(*pub));

    pub->type = "dns-01";
    pub->baton = (void *)conf;
    pub->publish = dns_publish;
    pub->withdraw = dns_withdraw;
    return pub;
}
