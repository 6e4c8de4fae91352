/* acme_dns.h: dns-01 without a hook: RFC 2136 updates signed with TSIG
 * (RFC 8945), CNAME delegation and a propagation check at every server. */
#ifndef ACME_DNS_H
#define ACME_DNS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <apr_network_io.h>

struct acme_result_t;

/* Problem ids. "acme:dns-config" is not retried until the configuration
 * changes: only what this host decides (a name without a record, an
 * unusable key) or an answer signed with the TSIG key (a verified refusal)
 * says so. "acme:dns" is transient: timeouts, a record that does not show,
 * and every conclusion from an unsigned answer, which anyone who can send
 * a packet to this host might have forged. */
#define ACME_DNS_PROBLEM "acme:dns"
#define ACME_DNS_PROBLEM_CONFIG "acme:dns-config"

/* ---- TSIG keys ------------------------------------------------------------ */

typedef struct acme_dns_tsig_t {
    const char *name;      /* key name, lower case, no trailing dot */
    const char *algorithm; /* "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha1" */
    const char *secret;    /* base64, as in the file */
} acme_dns_tsig_t;

/* One key in the format BIND's tsig-keygen prints
 *   key "name" { algorithm hmac-sha256; secret "base64"; };
 * or the one Knot's keymgr -t prints (key: / - id: / algorithm: / secret:).
 * Comments (#, //, / * * /) are skipped. Anything else fails with APR_EINVAL
 * and *perr saying what and on which line. */
apr_status_t acme_dns_tsig_parse(acme_dns_tsig_t **pkey, apr_pool_t *p, const char *text,
                                 apr_size_t len, const char **perr);
/* Can this ldns sign with the key? APR_ENOTIMPL and *perr if not (ldns
 * 1.8 fails hmac-sha384). */
apr_status_t acme_dns_tsig_usable(const acme_dns_tsig_t *key, apr_pool_t *p, const char **perr);
/* acme_dns_tsig_parse and acme_dns_tsig_usable of a file that passes
 * acme_secret_file_read (root's, not readable by group or others; flags:
 * ACME_KEYFILE_ANY_OWNER for tools that do not run as root); *perr names
 * the path. */
apr_status_t acme_dns_tsig_load(acme_dns_tsig_t **pkey, apr_pool_t *p, const char *path,
                                int flags, const char **perr);

/* ---- configuration ---------------------------------------------------------- */

typedef struct acme_dns_server_t {
    const char *host;      /* name or IP literal (no brackets) */
    apr_port_t port;
} acme_dns_server_t;

/* "host", "host:port", "[v6]:port" or a bare IPv6 literal. */
apr_status_t acme_dns_server_parse(acme_dns_server_t **psrv, apr_pool_t *p, const char *spec,
                                   apr_port_t default_port, const char **perr);

typedef struct acme_dns_config_t {
    acme_dns_server_t update;            /* where updates (and lookups) go */
    const acme_dns_tsig_t *key;          /* required */
    apr_array_header_t *check;           /* acme_dns_server_t*: replaces the NS list; may be NULL */
    apr_interval_time_t check_timeout;   /* propagation bound, default 120 s */
    apr_interval_time_t poll_interval;   /* default 2 s */
    apr_interval_time_t query_timeout;   /* one query, default 3 s */
    apr_uint32_t ttl;                    /* of the TXT records, default 60 */
    apr_port_t ns_port;                  /* where the zone's NS are asked, default 53 */
    volatile apr_uint32_t *abort_flag;   /* non-zero: stop waiting (APR_EINTR) once the query
                                          * in flight ends (query_timeout); may be NULL */
} acme_dns_config_t;

/* A config with the defaults above; the caller fills update and key. */
acme_dns_config_t *acme_dns_config_make(apr_pool_t *p);

/* The arguments of "ManagedDNSCheck SERVER[:PORT]... [timeout=DURATION]":
 * *pcheck gets the servers (acme_dns_server_t*), *ptimeout the timeout if
 * one is given (1 s to 1 h; plain numbers are seconds), else it is left
 * alone. APR_EINVAL and *perr naming the bad argument otherwise. */
apr_status_t acme_dns_check_args(apr_array_header_t **pcheck, apr_interval_time_t *ptimeout,
                                 apr_pool_t *p, int argc, const char *const *argv,
                                 const char **perr);

/* ---- publishing ------------------------------------------------------------- */

/* Each call opens its own sockets and shares no state, so one config can
 * serve concurrent jobs. Every query goes without recursion, UDP first and
 * TCP when the answer is truncated. */

/* Where the TXT record of a name goes. */
typedef struct acme_dns_target_t {
    const char *record;    /* "_acme-challenge.example.org." */
    const char *owner;     /* record, or the end of its CNAME chain */
    const char *zone;      /* the zone of owner, found through its SOA */
} acme_dns_target_t;

/* Follows CNAMEs at _acme-challenge.NAME (logged) and finds the zone. name
 * may be a wildcard ("*.example.org" uses _acme-challenge.example.org). */
apr_status_t acme_dns_target_find(acme_dns_target_t **ptarget, const acme_dns_config_t *conf,
                                  const char *name, apr_pool_t *p, struct acme_result_t *r);
/* Adds one TXT value (other values at the name stay). */
apr_status_t acme_dns_add(const acme_dns_config_t *conf, const acme_dns_target_t *t,
                          const char *value, apr_pool_t *p, struct acme_result_t *r);
/* Deletes exactly that TXT value. */
apr_status_t acme_dns_delete(const acme_dns_config_t *conf, const acme_dns_target_t *t,
                             const char *value, apr_pool_t *p, struct acme_result_t *r);
/* Waits until the value is visible at the update server and every check
 * server (conf->check, else the zone's NS). APR_TIMEUP names the servers
 * that never showed it. */
apr_status_t acme_dns_wait(const acme_dns_config_t *conf, const acme_dns_target_t *t,
                           const char *value, apr_pool_t *p, struct acme_result_t *r);

/* target_find + add + wait. */
apr_status_t acme_dns_publish(const acme_dns_config_t *conf, const char *name,
                              const char *value, apr_pool_t *p, struct acme_result_t *r);
/* target_find + delete. */
apr_status_t acme_dns_withdraw(const acme_dns_config_t *conf, const char *name,
                               const char *value, apr_pool_t *p, struct acme_result_t *r);

/* The dns-01 publisher for ManagedDNSUpdate (acme_publish.h). */
struct acme_publisher_t;
struct acme_publisher_t *acme_dns_publisher(apr_pool_t *p, const acme_dns_config_t *conf);

/* ---- pure parts (no network; exposed for unit tests) ----------------------- */

/* "*.Example.org" / "example.org." -> "_acme-challenge.example.org."; NULL
 * for an empty or IP name. */
const char *acme_dns_record_name(apr_pool_t *p, const char *name);

/* "example.org" -> "example.org." lower case; "." stays ".". */
const char *acme_dns_fqdn(apr_pool_t *p, const char *name);

#define ACME_DNS_SEC_ANSWER 1
#define ACME_DNS_SEC_AUTHORITY 2
#define ACME_DNS_SEC_ADDITIONAL 3

#define ACME_DNS_T_A 1
#define ACME_DNS_T_NS 2
#define ACME_DNS_T_CNAME 5
#define ACME_DNS_T_SOA 6
#define ACME_DNS_T_TXT 16
#define ACME_DNS_T_AAAA 28

/* A DNS answer as the decisions see it. */
typedef struct acme_dns_rr_t {
    int section;           /* ACME_DNS_SEC_* */
    const char *owner;     /* lower case FQDN */
    int type;              /* ACME_DNS_T_* or another RR type number */
    const char *data;      /* A/AAAA: address text; NS/CNAME/SOA: the (first) name,
                            * lower case FQDN; TXT: the strings joined; else NULL */
} acme_dns_rr_t;

typedef struct acme_dns_msg_t {
    int id;                /* the message id */
    int qr;                /* 1 in an answer */
    int opcode;            /* 0 QUERY, 5 UPDATE */
    int qdcount;           /* questions (an update's zone section) */
    const char *qname;     /* the first question: lower case FQDN, NULL if none */
    int qtype, qclass;
    int rcode;             /* 0 NOERROR, 3 NXDOMAIN, 5 REFUSED, 9 NOTAUTH ... */
    int tsig_error;        /* the TSIG RR's error (16 BADSIG, 17 BADKEY, 18 BADTIME), 0 if none */
    int tsig_verified;     /* the answer is signed with our key and the signature verified:
                            * set by the exchange that checked it, never by parsing */
    int aa;
    apr_array_header_t *rrs; /* acme_dns_rr_t* */
} acme_dns_msg_t;

/* A message from wire format (parsed by ldns). APR_EINVAL if malformed. */
apr_status_t acme_dns_msg_from_wire(acme_dns_msg_t **pmsg, apr_pool_t *p,
                                    const unsigned char *wire, apr_size_t len);

/* Is a the answer to q? a must be an answer (QR) with q's id and opcode
 * and hold q's question (name in any case, type and class). An update's
 * answer may leave the zone section out (RFC 2136 3.8); a query's must not.
 * APR_EGENERAL and *pwhy otherwise: such a packet is no answer at all (a
 * stray or forged one), never a reason to act. */
apr_status_t acme_dns_msg_answers(const acme_dns_msg_t *q, const acme_dns_msg_t *a,
                                  const char **pwhy);

/* What the answer m to "qname TXT" shows of value, following the CNAMEs in
 * it as the CA's resolver would. */
typedef enum {
    ACME_DNS_TXT_SHOWN,     /* the chain from qname ends at a TXT with value */
    ACME_DNS_TXT_MISSING,   /* the server speaks for the chain's end (TXT there, an SOA
                             * that covers it, or an error) and has no such value */
    ACME_DNS_TXT_ELSEWHERE  /* it does not (REFUSED, NOTAUTH, not authoritative, or a CNAME
                             * it says nothing more of): the CA asks another server */
} acme_dns_txt_view_t;
acme_dns_txt_view_t acme_dns_msg_txt_view(const acme_dns_msg_t *m, const char *qname,
                                          const char *value);

/* The zone of qname from the answer to "qname SOA": an SOA in the answer
 * owned by qname, or one in the authority section owned by a parent of
 * qname. APR_ENOENT otherwise (a referral, REFUSED, no SOA). */
apr_status_t acme_dns_msg_zone(const char **pzone, const acme_dns_msg_t *m, const char *qname);
/* The CNAME target of qname in the answer; APR_ENOENT if there is none. */
apr_status_t acme_dns_msg_cname(const char **ptarget, const acme_dns_msg_t *m,
                                const char *qname);
/* Does the answer hold TXT value at owner? */
int acme_dns_msg_has_txt(const acme_dns_msg_t *m, const char *owner, const char *value);
/* data of every RR of type at owner (any section) as const char*. */
apr_array_header_t *acme_dns_msg_data(apr_pool_t *p, const acme_dns_msg_t *m, const char *owner,
                                      int type);

/* "NOERROR", "REFUSED", ...; "RCODE n" for others. */
const char *acme_dns_rcode_name(apr_pool_t *p, int rcode);
/* "BADSIG", "BADKEY", "BADTIME", ...; "TSIG error n" for others. */
const char *acme_dns_tsig_error_name(apr_pool_t *p, int err);
/* Fills r for a failed update answer m (rcode != 0), in words a DNS
 * operator knows, naming the key, the server and the zone. A configuration
 * error (ACME_DNS_PROBLEM_CONFIG) only if m->tsig_verified; an unsigned
 * refusal (as BADSIG and BADKEY answers are, RFC 8945 5.3.2) may be forged
 * and is transient. SERVFAIL is always transient. Returns the status set. */
apr_status_t acme_dns_update_failed(struct acme_result_t *r, const acme_dns_msg_t *m,
                                    const char *key_name, const char *server, const char *zone,
                                    const char *owner);

#endif /* ACME_DNS_H */
