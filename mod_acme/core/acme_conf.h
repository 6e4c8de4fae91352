/* acme_conf.h: parsers of configuration text shared by the httpd glue and
 * acmectl: directive values (port maps, EAB) and acmectl's httpd.conf scan. */
#ifndef ACME_CONF_H
#define ACME_CONF_H

#include <apr_pools.h>
#include <apr_tables.h>

/* One ManagedPortMap mapping "80:PORT" or "443:PORT" ('-': unreachable,
 * *pport = 0). *pfrom is 80 or 443. APR_EINVAL with *perr (the directive's
 * error text) for anything else. */
apr_status_t acme_conf_port_map(int *pfrom, int *pport, const char **perr, apr_pool_t *p,
                                const char *mapping);

/* ManagedEAB's arguments: "none" (*pnone = 1), or a key id and a base64url
 * HMAC key (hmac may be NULL) of at least 16 bytes. APR_EINVAL with *perr,
 * which names the key id but never the HMAC key. */
apr_status_t acme_conf_eab(int *pnone, const char **perr, apr_pool_t *p, const char *kid,
                           const char *hmac);

/* ManagedEAB file:PATH: a JSON object {"kid": "...", "hmac": "..."} in a
 * secret file (acme_secret_file_read: root's, no access for group and
 * others; flags as there). APR_EINVAL or the read error, with *perr
 * naming the file and what to fix, never the HMAC key. */
#define ACME_EAB_FILE_PREFIX "file:"
apr_status_t acme_conf_eab_file(const char **pkid, const char **phmac, const char **perr,
                                apr_pool_t *p, const char *path, int flags);

/* ManagedHttpProxy's URL: http:// or https://, a host, an optional port
 * and nothing after it but "/". APR_EINVAL with *perr, which shows the
 * URL without its password. */
apr_status_t acme_conf_http_proxy(const char **perr, apr_pool_t *p, const char *url);

/* What acmectl needs from the server's config, read the way httpd reads it
 * (Include, Define, ${VAR}, line continuations) without evaluating
 * conditional sections (both branches count). */
typedef struct acme_conf_scan_t {
    apr_pool_t *pool;
    apr_table_t *defines;
    int no_includes;          /* skip Include lines: the fuzz target reads no file */
    int section_depth;        /* non-conditional sections: <VirtualHost>, <ManagedDomain> ... */
    int files;
    const char *err;          /* why the scan failed */
    /* results (NULL when the config does not set them) */
    const char *server_root;  /* in: the compiled-in default; out: the last ServerRoot */
    const char *store_dir;    /* ManagedStoreDir, ServerRoot-relative resolved */
    const char *ca_file;      /* ManagedCACertificateFile outside any section */
    const char *ca_file_any;  /* the first ManagedCACertificateFile anywhere */
    const char *ca_url;       /* ManagedCA outside any section */
    const char *window;       /* ManagedRenewWindow outside any section */
    const char *http_proxy;   /* ManagedHttpProxy outside any section (not "none") */
    const char *http_proxy_ca; /* its CA file, resolved */
    const char *eab_kid;      /* ManagedEAB's key id outside any section */
    const char *eab_file;     /* or its file:PATH, resolved (read by the caller) */
    apr_array_header_t *domains; /* each ManagedDomain's names (an apr_array_header_t * of
                                  * const char *, lower case, the first the domain's id) */
    /* ManagedStore etcd URL... and its settings (acmectl store migrate) */
    apr_array_header_t *etcd_urls;
    const char *store_key, *store_prefix, *store_ca, *store_cert, *store_cert_key;
    const char *store_user, *store_password;
} acme_conf_scan_t;

void acme_conf_scan_init(acme_conf_scan_t *cs, apr_pool_t *p, const char *server_root);
/* A file (or a directory: its files, sorted). On failure cs->err says why. */
apr_status_t acme_conf_scan_file(acme_conf_scan_t *cs, const char *path);
/* Config text; where names it in messages ("httpd.conf"). */
apr_status_t acme_conf_scan_text(acme_conf_scan_t *cs, const char *data, apr_size_t len,
                                 const char *where);
/* path resolved against the scanned ServerRoot ("." when unknown). */
const char *acme_conf_root_relative(acme_conf_scan_t *cs, const char *path);

#endif /* ACME_CONF_H */
