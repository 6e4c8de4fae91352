/* acme_util.h: small helpers every core unit uses: logging indirection,
 * base64url, durations, string checks. No httpd header may be included here. */
#ifndef ACME_UTIL_H
#define ACME_UTIL_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#define ACME_VERSION "0.1.0"
#define ACME_USER_AGENT "mod_acme/" ACME_VERSION

#if defined(__GNUC__)
#define ACME_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ACME_PRINTF(f, a)
#endif

/* Log levels use syslog numbering, like httpd's APLOG_* */
typedef enum {
    ACME_LOG_EMERG = 0,
    ACME_LOG_ERR = 3,
    ACME_LOG_WARNING = 4,
    ACME_LOG_NOTICE = 5,
    ACME_LOG_INFO = 6,
    ACME_LOG_DEBUG = 7,
    ACME_LOG_TRACE1 = 8,
    ACME_LOG_TRACE2 = 9
} acme_log_level_t;

/* The glue installs a bridge to ap_log_error; the CLI one to stderr. */
typedef void acme_log_cb(void *baton, const char *file, int line, int level,
                         apr_status_t rv, const char *msg);

/* What a whole-file read takes at most when the caller gives no bound:
 * far above any certificate chain, far below what a hostile sparse file
 * could make the reader allocate. */
#define ACME_FILE_MAX (1024 * 1024)

/* The readers of whole files: NUL-terminated (not counted in *plen).
 * APR_EINVAL when it is not a regular file or larger than max (0:
 * ACME_FILE_MAX); the OS error otherwise (APR_ENOENT when missing). Neither
 * blocks on a FIFO or a device. acme_file_read follows symlinks (paths from
 * the configuration); acme_file_read_at reads the entry name of the open
 * directory dirfd and never follows one (files someone else could write). */
apr_status_t acme_file_read(const char **pdata, apr_size_t *plen, const char *path,
                            apr_size_t max, apr_pool_t *p);
apr_status_t acme_file_read_at(const char **pdata, apr_size_t *plen, int dirfd,
                               const char *name, apr_size_t max, apr_pool_t *p);

/* A log line's stable message id, n = 0403 gives "ACME0403: ": ids are
 * grepped by operators and never reused. */
#define ACMELOG(n) "ACME" #n ": "

void acme_log_set(acme_log_cb *cb, void *baton, int maxlevel);
int acme_log_is_level(int level);
void acme_log(const char *file, int line, int level, apr_status_t rv,
              const char *fmt, ...) ACME_PRINTF(5, 6);
#define ACME_LOG_MARK __FILE__, __LINE__

/* base64url without padding (RFC 7515 section 2). */
const char *acme_b64url_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len);
/* Returns APR_EINVAL on any character outside the alphabet or a bad length;
 * the result is NUL-terminated for convenience (not counted in *plen). */
apr_status_t acme_b64url_decode(unsigned char **pdata, apr_size_t *plen,
                                apr_pool_t *p, const char *s);
/* Non-zero iff s is a non-empty base64url token of at most maxlen characters. */
int acme_b64url_is_token(const char *s, apr_size_t maxlen);

/* Durations as users write them: "30s", "5m", "2h", "30d", plain number =
 * default_unit seconds multiplier. Rejects negatives and overflow. */
apr_status_t acme_duration_parse(apr_interval_time_t *pdur, const char *s,
                                 const char *default_unit);
const char *acme_duration_format(apr_pool_t *p, apr_interval_time_t dur);

/* A DNS name as ManagedDomain accepts it: LDH labels, optional leading "*.",
 * at most 253 chars, no trailing dot; or an IPv4/IPv6 literal. */
int acme_name_is_valid(const char *name);

/* Text from the CA, the store or the network, made safe for a terminal and
 * a log line: control characters (C0, DEL, C1) and bytes that are not
 * UTF-8 become \xNN, and the Unicode bidi controls (which reorder what a
 * terminal shows) \uNNNN, so that nobody can move the cursor, recolour the
 * screen, forge lines or make one name read as another. */
const char *acme_str_printable(apr_pool_t *p, const char *s);
int acme_name_is_ip(const char *name);
int acme_name_is_wildcard(const char *name);
/* Does pattern (possibly "*.example.org") cover host? Case-insensitive. */
int acme_name_covers(const char *pattern, const char *host);

/* The IP address of a reverse-DNS name ("4.3.2.1.in-addr.arpa" -> "1.2.3.4",
 * 32 nibbles + ".ip6.arpa" -> IPv6 text), as ACME servers send it in the SNI
 * of a tls-alpn-01 validation for an IP identifier (RFC 8738 section 6).
 * NULL when name is not such a name. */
const char *acme_ip_from_reverse_name(apr_pool_t *p, const char *name);

/* Random bytes from OpenSSL-free source (apr_generate_random_bytes). */
apr_status_t acme_random_bytes(unsigned char *buf, apr_size_t len);
/* Uniform random in [0, n) (n > 0). */
apr_uint64_t acme_random_below(apr_uint64_t n);

/* RFC 3339 timestamps (UTC, "Z"). Parse accepts fractional seconds and offsets. */
const char *acme_time_rfc3339(apr_pool_t *p, apr_time_t t);
apr_status_t acme_time_parse_rfc3339(apr_time_t *pt, const char *s);

#endif /* ACME_UTIL_H */
