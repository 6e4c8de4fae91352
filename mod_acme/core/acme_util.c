/* acme_util.c: logging indirection, base64url, durations, name checks,
 * randomness and RFC 3339 time, shared by every core unit. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <stdio.h>
#include <apr_strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <apr_lib.h>
#include <apr_network_io.h>
#include <apr_general.h>
#include <arpa/inet.h>

#include "acme_util.h"

static acme_log_cb *log_cb;
static void *log_baton;
static int log_maxlevel = ACME_LOG_WARNING;

void acme_log_set(acme_log_cb *cb, void *baton, int maxlevel)
{
    log_cb = cb;
    log_baton = baton;
    log_maxlevel = maxlevel;
}

int acme_log_is_level(int level)
{
    return log_cb && level <= log_maxlevel;
}

void acme_log(const char *file, int line, int level, apr_status_t rv, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    if (!acme_log_is_level(level)) {
        return;
    }
    va_start(ap, fmt);
    apr_vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* The core's own codes (ACME_STORE_EFENCED ...) mean nothing to
     * apr_strerror() ("APR does not understand this error code"): the
     * message itself says what went wrong. */
    if (rv >= APR_OS_START_USERERR && rv < APR_OS_START_USERERR + APR_OS_ERRSPACE_SIZE) {
        rv = APR_SUCCESS;
    }
    log_cb(log_baton, file, line, level, rv, buf);
}

/* ---- base64url ---------------------------------------------------------- */

static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char *acme_b64url_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    char *out = apr_palloc(p, ((len + 2) / 3) * 4 + 1);
    char *o = out;
    apr_size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *o++ = b64url_chars[data[i] >> 2];
        *o++ = b64url_chars[((data[i] & 0x03) << 4) | (data[i + 1] >> 4)];
        *o++ = b64url_chars[((data[i + 1] & 0x0f) << 2) | (data[i + 2] >> 6)];
        *o++ = b64url_chars[data[i + 2] & 0x3f];
    }
    if (len - i == 1) {
        *o++ = b64url_chars[data[i] >> 2];
        *o++ = b64url_chars[(data[i] & 0x03) << 4];
    }
    else if (len - i == 2) {
        *o++ = b64url_chars[data[i] >> 2];
        *o++ = b64url_chars[((data[i] & 0x03) << 4) | (data[i + 1] >> 4)];
        *o++ = b64url_chars[(data[i + 1] & 0x0f) << 2];
    }
    *o = '\0';
    return out;
}

static int b64url_val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

apr_status_t acme_b64url_decode(unsigned char **pdata, apr_size_t *plen, apr_pool_t *p,
                                const char *s)
{
    apr_size_t n = strlen(s), i, olen = 0;
    unsigned char *out;
    apr_uint32_t acc = 0;
    int bits = 0;

    *pdata = NULL;
    *plen = 0;
    /* Tolerate trailing '=' padding that some servers still send. */
    while (n > 0 && s[n - 1] == '=') {
        --n;
    }
    if (n % 4 == 1) {
        return APR_EINVAL;
    }
    out = apr_palloc(p, (n * 3) / 4 + 1);
    for (i = 0; i < n; ++i) {
        int v = b64url_val((unsigned char)s[i]);
        if (v < 0) {
            return APR_EINVAL;
        }
        acc = (acc << 6) | (apr_uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[olen++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    /* Leftover bits must be zero in a canonical encoding. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        return APR_EINVAL;
    }
    out[olen] = '\0';
    *pdata = out;
    *plen = olen;
    return APR_SUCCESS;
}

int acme_b64url_is_token(const char *s, apr_size_t maxlen)
{
    apr_size_t i;

    if (!s || !*s) {
        return 0;
    }
    for (i = 0; s[i]; ++i) {
        if (i >= maxlen || b64url_val((unsigned char)s[i]) < 0) {
            return 0;
        }
    }
    return 1;
}

/* ---- durations ------------------------------------------------------------ */

apr_status_t acme_duration_parse(apr_interval_time_t *pdur, const char *s,
                                 const char *default_unit)
{
    char *end;
    apr_int64_t n;
    const char *unit;
    apr_int64_t mult;

    if (!s || !*s || !apr_isdigit(*s)) {
        return APR_EINVAL;
    }
    errno = 0;
    n = apr_strtoi64(s, &end, 10);
    if (errno || n < 0) {
        return APR_EINVAL;
    }
    unit = *end ? end : (default_unit ? default_unit : "s");
    if (!strcmp(unit, "ms")) mult = 1000;
    else if (!strcmp(unit, "s")) mult = APR_USEC_PER_SEC;
    else if (!strcmp(unit, "m") || !strcmp(unit, "mi")) mult = 60 * APR_USEC_PER_SEC;
    else if (!strcmp(unit, "h")) mult = 3600 * APR_USEC_PER_SEC;
    else if (!strcmp(unit, "d")) mult = 86400 * APR_USEC_PER_SEC;
    else return APR_EINVAL;
    if (n > APR_INT64_MAX / mult) {
        return APR_EINVAL;
    }
    *pdur = n * mult;
    return APR_SUCCESS;
}

const char *acme_duration_format(apr_pool_t *p, apr_interval_time_t dur)
{
    apr_int64_t s = dur / APR_USEC_PER_SEC;

    if (dur % APR_USEC_PER_SEC) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "ms", (apr_int64_t)(dur / 1000));
    }
    if (s && s % 86400 == 0) return apr_psprintf(p, "%" APR_INT64_T_FMT "d", s / 86400);
    if (s && s % 3600 == 0) return apr_psprintf(p, "%" APR_INT64_T_FMT "h", s / 3600);
    if (s && s % 60 == 0) return apr_psprintf(p, "%" APR_INT64_T_FMT "m", s / 60);
    return apr_psprintf(p, "%" APR_INT64_T_FMT "s", s);
}

/* ---- names ----------------------------------------------------------------- */

int acme_name_is_ip(const char *name)
{
    unsigned char buf[16];

    if (!name) {
        return 0;
    }
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

int acme_name_is_wildcard(const char *name)
{
    return name && name[0] == '*' && name[1] == '.';
}

/* U+061C, U+200E-F, U+202A-E, U+2066-9 */
static int is_bidi_control(const unsigned char *c, apr_size_t n)
{
    return (n == 2 && c[0] == 0xD8 && c[1] == 0x9C)
           || (n == 3 && c[0] == 0xE2 && c[1] == 0x80
               && ((c[2] >= 0x8E && c[2] <= 0x8F) || (c[2] >= 0xAA && c[2] <= 0xAE)))
           || (n == 3 && c[0] == 0xE2 && c[1] == 0x81 && c[2] >= 0xA6 && c[2] <= 0xA9);
}

const char *acme_str_printable(apr_pool_t *p, const char *s)
{
    const unsigned char *c = (const unsigned char *)(s ? s : "");
    char *out = apr_palloc(p, strlen((const char *)c) * 4 + 1), *o = out;
    apr_size_t n, i;

    while (*c) {
        n = *c < 0x80 ? 1 : (*c & 0xE0) == 0xC0 ? 2 : (*c & 0xF0) == 0xE0 ? 3
          : (*c >= 0xF0 && *c <= 0xF4) ? 4 : 0;
        for (i = 1; i < n; ++i) {
            if ((c[i] & 0xC0) != 0x80) n = 0;
        }
        if (!n || *c < 0x20 || *c == 0x7F || *c == 0xC0 || *c == 0xC1
            || (*c == 0xC2 && c[1] < 0xA0)) {
            apr_snprintf(o, 5, "\\x%02X", *c);
            o += 4;
            ++c;
            continue;
        }
        if (is_bidi_control(c, n)) {
            /* as many bytes in as characters out, at most */
            unsigned cp = n == 2 ? ((c[0] & 0x1Fu) << 6 | (c[1] & 0x3Fu))
                                 : ((c[0] & 0x0Fu) << 12 | (c[1] & 0x3Fu) << 6 | (c[2] & 0x3Fu));
            apr_snprintf(o, 7, "\\u%04X", cp);
            o += 6;
            c += n;
            continue;
        }
        memcpy(o, c, n);
        o += n;
        c += n;
    }
    *o = '\0';
    return out;
}

int acme_name_is_valid(const char *name)
{
    apr_size_t len, label = 0, labels = 0;
    const char *c;
    int prev_hyphen = 0;

    if (!name || !*name) {
        return 0;
    }
    if (acme_name_is_ip(name)) {
        return 1;
    }
    if (acme_name_is_wildcard(name)) {
        name += 2;
    }
    len = strlen(name);
    if (len == 0 || len > 253) {
        return 0;
    }
    for (c = name; ; ++c) {
        if (*c == '.' || *c == '\0') {
            if (label == 0 || label > 63 || prev_hyphen) {
                return 0;
            }
            ++labels;
            label = 0;
            if (*c == '\0') {
                break;
            }
            continue;
        }
        if (apr_isalnum(*c)) {
            prev_hyphen = 0;
        }
        else if (*c == '-' && label > 0) {
            prev_hyphen = 1;
        }
        else {
            return 0;
        }
        ++label;
    }
    /* A name with only digits and dots that is not an IP is not a host name. */
    for (c = name; *c; ++c) {
        if (!apr_isdigit(*c) && *c != '.') {
            return labels >= 1;
        }
    }
    return 0;
}

int acme_name_covers(const char *pattern, const char *host)
{
    const char *dot;

    if (!pattern || !host) {
        return 0;
    }
    if (!strcasecmp(pattern, host)) {
        return 1;
    }
    if (acme_name_is_wildcard(pattern) && !acme_name_is_wildcard(host)) {
        dot = strchr(host, '.');
        return dot && dot != host && !strcasecmp(dot + 1, pattern + 2);
    }
    return 0;
}

const char *acme_ip_from_reverse_name(apr_pool_t *p, const char *name)
{
    static const char v4[] = ".in-addr.arpa", v6[] = ".ip6.arpa";
    apr_size_t len = name ? strlen(name) : 0;
    char buf[64];

    if (len > sizeof(v4) - 1 && !strcasecmp(name + len - (sizeof(v4) - 1), v4)) {
        unsigned int o[4];
        char tail;
        apr_size_t n = len - (sizeof(v4) - 1);
        char *head = apr_pstrndup(p, name, n);
        int i, parts = 0;
        const char *c;

        for (c = head; *c; ++c) {
            if (*c == '.') ++parts;
            else if (!apr_isdigit(*c)) return NULL;
        }
        if (parts != 3 || sscanf(head, "%u.%u.%u.%u%c", &o[3], &o[2], &o[1], &o[0], &tail) != 4) {
            return NULL;
        }
        for (i = 0; i < 4; ++i) {
            if (o[i] > 255) return NULL;
        }
        apr_snprintf(buf, sizeof(buf), "%u.%u.%u.%u", o[0], o[1], o[2], o[3]);
        return apr_pstrdup(p, buf);
    }
    if (len == 63 + sizeof(v6) - 1 && !strcasecmp(name + 63, v6)) {
        unsigned char addr[16];
        int i;

        /* 32 single hex digits separated by dots, least significant first */
        for (i = 0; i < 32; ++i) {
            char d = name[2 * i], dot = name[2 * i + 1];
            int v = apr_isdigit(d) ? d - '0'
                    : (d >= 'a' && d <= 'f') ? d - 'a' + 10
                    : (d >= 'A' && d <= 'F') ? d - 'A' + 10 : -1;
            if (v < 0 || (i < 31 && dot != '.')) return NULL;
            if (i % 2 == 0) addr[15 - i / 2] = (unsigned char)v;
            else addr[15 - i / 2] |= (unsigned char)(v << 4);
        }
        if (!inet_ntop(AF_INET6, addr, buf, sizeof(buf))) return NULL;
        return apr_pstrdup(p, buf);
    }
    return NULL;
}

/* ---- randomness ---------------------------------------------------------- */

apr_status_t acme_random_bytes(unsigned char *buf, apr_size_t len)
{
    return apr_generate_random_bytes(buf, len);
}

apr_uint64_t acme_random_below(apr_uint64_t n)
{
    apr_uint64_t r, limit;

    if (n <= 1) {
        return 0;
    }
    /* Rejection sampling keeps the distribution uniform. */
    limit = APR_UINT64_MAX - (APR_UINT64_MAX % n);
    do {
        if (acme_random_bytes((unsigned char *)&r, sizeof(r)) != APR_SUCCESS) {
            r = (apr_uint64_t)apr_time_now();
        }
    } while (r >= limit);
    return r % n;
}

/* ---- time ------------------------------------------------------------------ */

const char *acme_time_rfc3339(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int parse_digits(const char **ps, int n, int *pval)
{
    int v = 0, i;

    for (i = 0; i < n; ++i) {
        if (!apr_isdigit((*ps)[i])) {
            return 0;
        }
        v = v * 10 + ((*ps)[i] - '0');
    }
    *ps += n;
    *pval = v;
    return 1;
}

apr_status_t acme_time_parse_rfc3339(apr_time_t *pt, const char *s)
{
    apr_time_exp_t tm;
    int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0;
    apr_time_t t;

    if (!s) {
        return APR_EINVAL;
    }
    memset(&tm, 0, sizeof(tm));
    if (!parse_digits(&s, 4, &year) || *s++ != '-' || !parse_digits(&s, 2, &mon)
        || *s++ != '-' || !parse_digits(&s, 2, &day) || (*s != 'T' && *s != 't' && *s != ' ')) {
        return APR_EINVAL;
    }
    ++s;
    if (!parse_digits(&s, 2, &hour) || *s++ != ':' || !parse_digits(&s, 2, &min)
        || *s++ != ':' || !parse_digits(&s, 2, &sec)) {
        return APR_EINVAL;
    }
    if (*s == '.') {
        ++s;
        if (!apr_isdigit(*s)) {
            return APR_EINVAL;
        }
        while (apr_isdigit(*s)) {
            ++s;
        }
    }
    if (*s == 'Z' || *s == 'z') {
        ++s;
    }
    else if (*s == '+' || *s == '-') {
        sign = (*s == '-') ? -1 : 1;
        ++s;
        if (!parse_digits(&s, 2, &oh) || *s++ != ':' || !parse_digits(&s, 2, &om)) {
            return APR_EINVAL;
        }
    }
    else {
        return APR_EINVAL;
    }
    if (*s || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59
        || sec > 60 || oh > 23 || om > 59) {
        return APR_EINVAL;
    }
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec > 59 ? 59 : sec;
    if (apr_time_exp_gmt_get(&t, &tm) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    t -= (apr_time_t)sign * ((apr_time_t)oh * 3600 + (apr_time_t)om * 60) * APR_USEC_PER_SEC;
    *pt = t;
    return APR_SUCCESS;
}

/* ---- files ---------------------------------------------------------------------- */

/* Reads all of fd, which must be a regular file of at most max bytes.
 * Takes fd: it is closed. */
static apr_status_t read_fd(const char **pdata, apr_size_t *plen, int fd, apr_size_t max,
                            apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;
    struct stat st;
    char *buf = NULL;
    apr_size_t size, got = 0;

    *pdata = NULL;
    *plen = 0;
    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (fstat(fd, &st) < 0) {
        rv = APR_FROM_OS_ERROR(errno);
        goto leave;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 0
        || (apr_size_t)st.st_size > (max ? max : ACME_FILE_MAX)) {
        rv = APR_EINVAL;
        goto leave;
    }
    size = (apr_size_t)st.st_size;
    buf = apr_palloc(p, size + 1);
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rv = APR_FROM_OS_ERROR(errno);
            goto leave;
        }
        if (n == 0) {
            break;
        }
        got += (apr_size_t)n;
    }
    buf[got] = '\0';
    *pdata = buf;
    *plen = got;
leave:
    close(fd);
    return rv;
}

apr_status_t acme_file_read(const char **pdata, apr_size_t *plen, const char *path,
                            apr_size_t max, apr_pool_t *p)
{
    return read_fd(pdata, plen, open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), max, p);
}

apr_status_t acme_file_read_at(const char **pdata, apr_size_t *plen, int dirfd,
                               const char *name, apr_size_t max, apr_pool_t *p)
{
    return read_fd(pdata, plen,
                   openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC), max, p);
}
