/* mod_acme_config.h: directives turned into config objects. Global settings
 * live in the main server's config; <ManagedDomain> sections override them. */
#ifndef MOD_ACME_CONFIG_H
#define MOD_ACME_CONFIG_H

#include <httpd.h>
#include <http_config.h>
#include <apr_hash.h>

#include "acme_crypto.h"
#include "acme_job.h"

#define ACME_UNSET (-1)

/* Settings that a <ManagedDomain> section may override. */
typedef struct acme_settings_t {
    apr_array_header_t *ca_urls;    /* const char*; NULL = unset */
    const char *ca_file;
    const char *contact;
    int agree_tos;                  /* ACME_UNSET, 0, 1 */
    apr_array_header_t *challenges; /* const char* in preference order */
    apr_array_header_t *key_types;  /* acme_key_type_t */
    apr_interval_time_t retry_delay;
    int renew_is_percent;           /* ACME_UNSET, 0, 1 */
    double renew_percent;
    apr_interval_time_t renew_duration;
    const char *eab_kid;            /* External Account Binding, NULL = none */
    const char *eab_hmac;           /* base64url; secret: never logged */
    const char *profile;            /* ACME profile name, NULL = CA default */
    int profile_mandatory;          /* ACME_UNSET, 0, 1 */
    int ari;                        /* ACME_UNSET, 0, 1 */
    apr_array_header_t *dns_hook;   /* ManagedDNSHook program + args, NULL = none */
    struct acme_dns_config_t *dns_update; /* ManagedDNSUpdate server and key, NULL = none */
    apr_array_header_t *dns_check;  /* ManagedDNSCheck servers (acme_dns_server_t*), NULL = NS */
    apr_interval_time_t dns_check_timeout; /* 0: the engine's default */
    struct acme_preflight_conf_t *preflight; /* ManagedPreflight, NULL = unset */
    const char *http_proxy;         /* ManagedHttpProxy URL, NULL = unset, "" = none */
    const char *http_proxy_ca_file; /* its trust anchors, NULL = the system's */
    int require_https;              /* ACME_UNSET or acme_require_https_t */
    apr_int64_t hsts_max_age;       /* seconds, with ACME_HTTPS_PERMANENT */
    int members;                    /* ManagedMembers: ACME_UNSET, 0 manual, 1 auto */
    int renew_mode;                 /* ACME_UNSET or acme_renew_mode_t */
    apr_array_header_t *install_cmd; /* ManagedInstallCmd program + args, NULL = none */
} acme_settings_t;

/* ManagedRenewMode */
typedef enum {
    ACME_RENEW_AUTO = 0,    /* certificates for domains that an SSL vhost uses */
    ACME_RENEW_ALWAYS,      /* also without one (a mail server's name) */
    ACME_RENEW_MANUAL       /* never ordered; a certificate in the store is still served */
} acme_renew_mode_t;

/* ManagedRequireHttps */
typedef enum {
    ACME_HTTPS_OFF = 0,
    ACME_HTTPS_TEMPORARY,   /* redirect http to https (302/307) */
    ACME_HTTPS_PERMANENT    /* 301/308, and Strict-Transport-Security on https */
} acme_require_https_t;

typedef struct acme_domain_t {
    const char *name;             /* first name: the domain's id in the store */
    apr_array_header_t *names;    /* const char*, all names (SANs) */
    acme_settings_t *settings;    /* merged with the globals at post_config */
    const char *file;             /* where it was defined, for messages */
    int line;
    apr_array_header_t *servers;  /* server_rec* of SSL vhosts using it */
    /* Runtime facts found by the parent at post_config. */
    int has_cert;                 /* an issued certificate is served (some key type) */
    apr_array_header_t *served_types; /* acme_key_type_t with a usable cert + key pair */
    int driven;                   /* an SSL vhost uses it, so jobs run for it */
    int tls_alpn_ok;              /* tls-alpn-01 is allowed and reachable */
    apr_array_header_t *eff_challenges; /* allowed and reachable types */
    const char *served_staged;    /* "staged" of the meta.json handed to mod_ssl, or NULL */
    const char *vhost_cert;       /* a vhost's own SSLCertificateFile, served until the
                                   * domain has a certificate (takeover), or NULL */
} acme_domain_t;

/* ManagedStore etcd ...: the shared store; ManagedStoreDir is then the local cache. */
typedef struct acme_store_conf_t {
    int etcd;                     /* 0: the file store (default) */
    apr_array_header_t *urls;     /* const char*: etcd endpoints */
    const char *key_file;         /* ManagedStoreEncryptionKey */
    const unsigned char *key;     /* its ACME_SEAL_KEY_LEN bytes, read at config time */
    const char *prefix;           /* NULL: ACME_STORE_ETCD_PREFIX_DEFAULT */
    const char *ca_file, *cert_file, *cert_key_file;   /* ManagedStoreTLS */
    const char *user, *password_file;                  /* ManagedStoreAuth */
} acme_store_conf_t;

typedef struct acme_global_t {
    apr_pool_t *pool;
    apr_array_header_t *domains;  /* acme_domain_t* */
    apr_hash_t *names;            /* name -> acme_domain_t*, for duplicates */
    acme_settings_t *defaults;    /* global Managed* settings */
    const char *store_dir;
    acme_store_conf_t store;
    int auto_restart;             /* ACME_UNSET, 0, 1 */
    int port_http;                /* local port where the CA's 80 lands; 0 = unreachable */
    int port_https;               /* same for 443 */
    int port_map_set;
    apr_interval_time_t check_interval;
    int parallel;
    apr_array_header_t *notify_argv; /* ManagedNotifyCmd program + args, NULL = none */
    acme_domain_t *current;       /* inside <ManagedDomain> while parsing */
    apr_array_header_t *watched;  /* acme_watched_t*: SSL vhosts' certificate files, read
                                   * by the parent at post_config (NULL until then) */
} acme_global_t;

typedef struct acme_srv_conf_t {
    acme_global_t *global;        /* shared by all servers of a config generation */
    acme_domain_t *domain;        /* the managed domain serving this vhost, or NULL */
    const char *own_cert;         /* its SSLCertificateFile that mod_ssl serves while the
                                   * domain has no certificate (no 503 then), or NULL */
} acme_srv_conf_t;

extern const command_rec acme_cmds[];

void *acme_config_create_srv(apr_pool_t *p, server_rec *s);
void *acme_config_merge_srv(apr_pool_t *p, void *basev, void *addv);

acme_srv_conf_t *acme_config_get(server_rec *s);
acme_global_t *acme_config_global(server_rec *s);

/* Resolves unset values of a domain's settings from the globals and the
 * built-in defaults. A domain with no settings of its own gets the
 * globals' object itself, shared with every such domain: read only. */
void acme_config_resolve(acme_global_t *g, acme_domain_t *d, server_rec *base, apr_pool_t *p);

/* Whether the module orders and renews d's certificates: its renew mode
 * and whether an SSL vhost uses it (d->driven). */
int acme_config_renews(const acme_domain_t *d);

/* What is missing for the configured store (checked after parsing, so
 * that `apachectl -t` says it), or NULL. */
const char *acme_config_check_store(acme_global_t *g, apr_pool_t *p);

/* The challenge publishers of resolved settings (acme_publisher_t*). */
apr_array_header_t *acme_config_publishers(apr_pool_t *p, const acme_settings_t *st);

/* The job spec for a resolved domain: everything that runs or judges its
 * renewal uses this one. stop and memo are left NULL for the caller. */
void acme_config_job_spec(acme_job_spec_t *spec, const acme_domain_t *d);

/* Built-in defaults */
#define ACME_DEFAULT_CA "https://acme-v02.api.letsencrypt.org/directory"
#define ACME_STAGING_CA "https://acme-staging-v02.api.letsencrypt.org/directory"
#define ACME_DEFAULT_RETRY_DELAY apr_time_from_sec(30)
#define ACME_DEFAULT_CHECK_INTERVAL apr_time_from_sec(3600)
#define ACME_DEFAULT_RENEW_PERCENT 33.0
#define ACME_DEFAULT_PARALLEL 32
#define ACME_DEFAULT_HSTS_MAX_AGE 15768000   /* half a year, in seconds */
#define ACME_HSTS_MAX_AGE_MAX 315360000      /* ten years */

#endif /* MOD_ACME_CONFIG_H */
