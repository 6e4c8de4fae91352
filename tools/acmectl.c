/* acmectl.c: the shell side of mod_acme. Reads and acts on the module's
 * store (status, certificate details, renewal requests, revocation, account keys). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "acme_util.h"
#include "acme_json.h"
#include "acme_result.h"
#include "acme_crypto.h"
#include "acme_jws.h"
#include "acme_http.h"
#include "acme_acme.h"
#include "acme_store.h"
#include "acme_renew.h"
#include "acme_job.h"
#include "acme_status.h"
#include "acme_etcd.h"
#include "acme_store_etcd.h"
#include "acme_conf.h"
#include "acmectl_import.h"

#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

#define CA_LETSENCRYPT "https://acme-v02.api.letsencrypt.org/directory"
#define CA_LETSENCRYPT_STAGING "https://acme-staging-v02.api.letsencrypt.org/directory"
#define DEFAULT_RENEW_PERCENT 33.0


typedef struct {
    apr_pool_t *pool;
    /* from the command line */
    const char *store_opt;
    const char *conf_file;
    const char *server_root_opt;
    const char *ca_file_opt;
    const char *ca_opt;
    const char *reason_opt;
    int json;
    int yes;
    int verbose;
    int help;
    const char *cmd;
    apr_array_header_t *args;   /* positional arguments after the command */
    /* from the httpd config (-f) */
    const char *server_root;
    const char *conf_store_dir;
    const char *conf_ca_file;
    const char *conf_ca_file_any;
    const char *conf_ca_url;
    const char *conf_window;
    const char *conf_proxy, *conf_proxy_ca;   /* ManagedHttpProxy */
    const char *conf_eab_kid, *conf_eab_file; /* ManagedEAB KID ..., or file:PATH */
    apr_array_header_t *conf_domains;         /* each ManagedDomain's names */
    /* ManagedStore etcd and its settings (store migrate) */
    apr_array_header_t *conf_etcd_urls;
    const char *conf_store_key, *conf_store_prefix;
    const char *conf_store_ca, *conf_store_cert, *conf_store_cert_key;
    const char *conf_store_user, *conf_store_password;
    const char *to_opt;
    /* resolved */
    const char *store_dir;
    const char *ca_file;
    acme_renew_window_t window;
    acme_store_t *store;        /* the server's store: the file store or etcd */
    const char *where;          /* the store, for messages */
    const char *etcd_prefix;    /* the store is etcd, under this prefix */
    acme_store_t *wstore;       /* writes under a claim (acme_store_fenced) */
} ctl_t;

/* ---- output helpers ---------------------------------------------------------- */

static void err_printf(const char *fmt, ...) ACME_PRINTF(1, 2);
static const char *tx(apr_pool_t *p, const char *s);

/* Messages quote the CA and the store: they are escaped as a whole. */
static void err_printf(const char *fmt, ...)
{
    apr_pool_t *p;
    va_list ap;

    apr_pool_create(&p, NULL);
    va_start(ap, fmt);
    fprintf(stderr, "acmectl: %s\n", tx(p, apr_pvsprintf(p, fmt, ap)));
    va_end(ap);
    apr_pool_destroy(p);
}

static void log_stderr(void *baton, const char *file, int line, int level, apr_status_t rv,
                       const char *msg)
{
    ctl_t *ctl = baton;
    char buf[256];

    if (ctl->verbose >= 2) {
        fprintf(stderr, "acmectl: [%d] %s:%d %s", level, file, line, tx(ctl->pool, msg));
    }
    else {
        fprintf(stderr, "acmectl: %s", tx(ctl->pool, msg));
    }
    if (rv != APR_SUCCESS) {
        fprintf(stderr, " (%s)", apr_strerror(rv, buf, sizeof(buf)));
    }
    fputc('\n', stderr);
}

static const char *fmt_time(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t e;

    if (!t) return "-";
    apr_time_exp_gmt(&e, t);
    return apr_psprintf(p, "%04d-%02d-%02d %02d:%02d", e.tm_year + 1900, e.tm_mon + 1,
                        e.tm_mday, e.tm_hour, e.tm_min);
}

static const char *fmt_rfc3339(apr_pool_t *p, apr_time_t t)
{
    return t ? acme_time_rfc3339(p, t) : "-";
}

static const char *status_text(apr_pool_t *p, apr_status_t rv)
{
    char buf[256];
    return apr_pstrdup(p, apr_strerror(rv, buf, sizeof(buf)));
}

/* Text from the CA or the store, made safe for a terminal. */
static const char *tx(apr_pool_t *p, const char *s)
{
    return acme_str_printable(p, s);
}

/* ---- usage ----------------------------------------------------------------------- */

static const char usage_main[] =
    "usage: acmectl [--store DIR | -f HTTPD.CONF [-d SERVERROOT]] COMMAND [options]\n"
    "\n"
    "Works on the store of mod_acme (ManagedStoreDir).\n"
    "\n"
    "commands:\n"
    "  status [--json]          all domains: state, validity, next renewal, last error\n"
    "  show DOMAIN              certificate details per key type\n"
    "  renew DOMAIN             ask the running server to renew DOMAIN now\n"
    "  revoke DOMAIN [--reason R]  revoke DOMAIN's certificates at the CA, then renew\n"
    "  account [show|rollover|deactivate] [--ca URL]  the ACME account(s)\n"
    "  store migrate --to etcd  copy the file store into etcd (ManagedStore etcd)\n"
    "  import certbot [DIR]     take certbot's certificates and account (-f needed)\n"
    "  help [COMMAND]           this text, or a command's\n"
    "\n"
    "options:\n"
    "  --store DIR              the store directory\n"
    "  -f FILE                  read ManagedStoreDir (and ManagedCA,\n"
    "                           ManagedCACertificateFile) from this httpd config\n"
    "  -d DIR                   ServerRoot when the config does not set one\n"
    "  --ca-file FILE           trust anchors for the CA's HTTPS (revoke, account)\n"
    "  -v, --verbose            more messages (twice: debugging)\n"
    "  -h, --help               help; 'acmectl COMMAND --help' for a command\n"
    "  --version                the version\n"
    "\n"
    "exit status: 0 done, 1 failed, 2 usage error. See acmectl(1).\n";

static const char usage_status[] =
    "usage: acmectl status [--json]\n"
    "\n"
    "Lists every domain in the store: state, key types, validity, days left,\n"
    "issuer, last renewal, next renewal or retry, and the last error.\n"
    "States: ok, due, renewing, renew-requested, staged (new certificate waits\n"
    "for the server's restart), error, pending (no certificate yet), expired.\n"
    "  --json   the same as JSON (the shape is described in acmectl(1))\n";

static const char usage_show[] =
    "usage: acmectl show DOMAIN\n"
    "\n"
    "Certificate details for each key type of DOMAIN: names, validity, issuer,\n"
    "serial, SHA-256 fingerprint, ARI certificate id and the ARI window when\n"
    "the server has one. DOMAIN is the first name of its ManagedDomain line.\n";

static const char usage_renew[] =
    "usage: acmectl renew DOMAIN\n"
    "\n"
    "Writes a renewal request (jobs/DOMAIN/renew.json). The running server\n"
    "renews every key type of DOMAIN at its next check, whatever the renewal\n"
    "window says, and activates the result with a graceful restart.\n";

static const char usage_revoke[] =
    "usage: acmectl revoke DOMAIN [--reason REASON] [--ca-file FILE]\n"
    "\n"
    "Revokes the active certificates of DOMAIN at the CA that issued them,\n"
    "signed by the ACME account key, then requests a renewal like 'renew'.\n"
    "REASON: unspecified, keyCompromise, affiliationChanged, superseded,\n"
    "cessationOfOperation (default: none sent). keyCompromise is signed with\n"
    "the certificate's own key, as CAs require.\n";

static const char usage_account[] =
    "usage: acmectl account [show|rollover|deactivate] [--ca URL] [--yes]\n"
    "\n"
    "  show         account URL, CA, contact, key type and key thumbprint\n"
    "               (never the key itself); the default\n"
    "  rollover     a new account key, announced to the CA (keyChange). The\n"
    "               new key is saved first and the old one kept as\n"
    "               account.key.pem.old until the CA confirmed: running\n"
    "               rollover again after a crash finishes the job.\n"
    "  deactivate   deactivates the account at the CA for good (needs --yes).\n"
    "               The server creates a new account at its next order.\n"
    "  --ca URL     the CA's directory URL (when the store has several accounts)\n"
    "  --ca-file F  trust anchors for the CA's HTTPS\n";

static const char usage_import[] =
    "usage: acmectl -f HTTPD.CONF import certbot [DIR]\n"
    "\n"
    "Imports each certbot lineage under DIR (default " ACMECTL_CERTBOT_DIR ") whose\n"
    "certificate covers the names of a ManagedDomain of the config: its certificate,\n"
    "chain and key become the domain's active ones (unless the store's are newer),\n"
    "and certbot's ACME account of its CA becomes the module's (unless the store\n"
    "has one). Nothing of certbot's is changed. Run 'apachectl graceful' after it.\n";

static const char usage_store[] =
    "usage: acmectl -f HTTPD.CONF store migrate --to etcd\n"
    "\n"
    "Copies accounts, certificates, keys, staged results and job state from\n"
    "the file store (ManagedStoreDir) into the etcd store of the config's\n"
    "ManagedStore etcd (with ManagedStoreEncryptionKey, ManagedStorePrefix,\n"
    "ManagedStoreTLS, ManagedStoreAuth). Private keys are sealed. An item that\n"
    "etcd has with the same or a newer time is left alone, so running it again\n"
    "changes nothing. Archives and challenge data stay local. The first server\n"
    "of a new cluster runs it once, before it starts on etcd.\n";

static const char *usage_of(const char *cmd)
{
    if (!cmd) return usage_main;
    if (!strcmp(cmd, "status")) return usage_status;
    if (!strcmp(cmd, "show")) return usage_show;
    if (!strcmp(cmd, "renew")) return usage_renew;
    if (!strcmp(cmd, "revoke")) return usage_revoke;
    if (!strcmp(cmd, "account")) return usage_account;
    if (!strcmp(cmd, "store")) return usage_store;
    if (!strcmp(cmd, "import")) return usage_import;
    return NULL;
}

static int usage_error(const char *cmd, const char *fmt, ...) ACME_PRINTF(2, 3);
static int usage_error(const char *cmd, const char *fmt, ...)
{
    apr_pool_t *p;
    va_list ap;

    apr_pool_create(&p, NULL);
    va_start(ap, fmt);
    fprintf(stderr, "acmectl%s%s: %s", cmd ? " " : "", cmd ? cmd : "",
            tx(p, apr_pvsprintf(p, fmt, ap)));
    va_end(ap);
    apr_pool_destroy(p);
    fprintf(stderr, "\nRun 'acmectl %s%s--help' for usage.\n", cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

/* ---- command line ------------------------------------------------------------- */

typedef enum { OPT_NONE, OPT_FLAG, OPT_VALUE } opt_kind_t;

typedef struct {
    const char *name;   /* "--store" */
    const char *alias;  /* "-f" or NULL */
    opt_kind_t kind;
    const char *cmds;   /* commands that accept it ("" = all), space separated */
} opt_def_t;

static const opt_def_t opt_defs[] = {
    { "--store", NULL, OPT_VALUE, "" },
    { "--config", "-f", OPT_VALUE, "" },
    { "--server-root", "-d", OPT_VALUE, "" },
    { "--ca-file", NULL, OPT_VALUE, "" },
    { "--verbose", "-v", OPT_FLAG, "" },
    { "--help", "-h", OPT_FLAG, "" },
    { "--json", NULL, OPT_FLAG, " status " },
    { "--reason", NULL, OPT_VALUE, " revoke " },
    { "--ca", NULL, OPT_VALUE, " account " },
    { "--yes", NULL, OPT_FLAG, " account " },
    { "--to", NULL, OPT_VALUE, " store " },
    { NULL, NULL, OPT_NONE, NULL }
};

static int cmd_accepts(apr_pool_t *p, const opt_def_t *d, const char *cmd)
{
    if (!d->cmds[0]) return 1;
    if (!cmd) return 0;
    return strstr(d->cmds, apr_pstrcat(p, " ", cmd, " ", NULL)) != NULL;
}

static void opt_set(ctl_t *ctl, const opt_def_t *d, const char *val)
{
    const char *n = d->name;

    if (!strcmp(n, "--store")) ctl->store_opt = val;
    else if (!strcmp(n, "--config")) ctl->conf_file = val;
    else if (!strcmp(n, "--server-root")) ctl->server_root_opt = val;
    else if (!strcmp(n, "--ca-file")) ctl->ca_file_opt = val;
    else if (!strcmp(n, "--verbose")) ctl->verbose++;
    else if (!strcmp(n, "--help")) ctl->help = 1;
    else if (!strcmp(n, "--json")) ctl->json = 1;
    else if (!strcmp(n, "--reason")) ctl->reason_opt = val;
    else if (!strcmp(n, "--ca")) ctl->ca_opt = val;
    else if (!strcmp(n, "--yes")) ctl->yes = 1;
    else if (!strcmp(n, "--to")) ctl->to_opt = val;
}

/* Options may come before or after the command; each command accepts only
 * its own and the global ones. Returns EXIT_OK or EXIT_USAGE. */
static int parse_args(ctl_t *ctl, int argc, const char *const *argv)
{
    int i, only_args = 0;
    /* The first option pass needs the command to check options against. */
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const opt_def_t *d;

        if (only_args || a[0] != '-' || !a[1]) {
            if (!ctl->cmd) ctl->cmd = a;
            else APR_ARRAY_PUSH(ctl->args, const char *) = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_args = 1;
            continue;
        }
        if (!strcmp(a, "--version")) {
            printf("acmectl (mod_acme) %s\n", ACME_VERSION);
            exit(EXIT_OK);
        }
        for (d = opt_defs; d->name; ++d) {
            apr_size_t nl = strlen(d->name);
            const char *val = NULL;

            if (!strcmp(a, d->name) || (d->alias && !strcmp(a, d->alias))) {
                if (d->kind == OPT_VALUE) {
                    if (i + 1 >= argc) {
                        return usage_error(ctl->cmd, "option %s needs a value", a);
                    }
                    val = argv[++i];
                }
            }
            else if (d->kind == OPT_VALUE && !strncmp(a, d->name, nl) && a[nl] == '=') {
                val = a + nl + 1;
            }
            else if (d->kind == OPT_VALUE && d->alias && !strncmp(a, d->alias, 2)
                     && strlen(d->alias) == 2 && a[1] != '-' && a[2]) {
                val = a + 2;  /* -fFILE */
            }
            else {
                continue;
            }
            if (d->kind == OPT_VALUE && (!val || !val[0])) {
                return usage_error(ctl->cmd, "option %s needs a value", d->name);
            }
            /* a command-specific option is checked once the command is known */
            APR_ARRAY_PUSH(ctl->args, const char *) = NULL;
            APR_ARRAY_PUSH(ctl->args, const char *) = d->name;
            opt_set(ctl, d, val);
            goto next;
        }
        if (!strcmp(a, "-vv")) {
            ctl->verbose += 2;
            continue;
        }
        return usage_error(ctl->cmd, "unknown option '%s'", a);
    next:
        continue;
    }
    /* Drop the option markers; check options against the command. */
    {
        apr_array_header_t *pos = apr_array_make(ctl->pool, 4, sizeof(const char *));
        for (i = 0; i < ctl->args->nelts; ++i) {
            const char *a = APR_ARRAY_IDX(ctl->args, i, const char *);
            if (!a) {
                const char *name = APR_ARRAY_IDX(ctl->args, ++i, const char *);
                const opt_def_t *d;
                for (d = opt_defs; d->name && strcmp(d->name, name); ++d)
                    ;
                if (d->name && !cmd_accepts(ctl->pool, d, ctl->cmd) && !ctl->help) {
                    return usage_error(ctl->cmd, "option %s does not apply to %s", name,
                                       ctl->cmd ? apr_psprintf(ctl->pool, "'%s'", ctl->cmd)
                                                : "this command");
                }
                continue;
            }
            APR_ARRAY_PUSH(pos, const char *) = a;
        }
        ctl->args = pos;
    }
    return EXIT_OK;
}

/* ---- httpd config scanning (acme_conf.c) ---------------------------------- */

static const char *root_relative(ctl_t *ctl, const char *path)
{
    if (!path || path[0] == '/') return path;
    return apr_pstrcat(ctl->pool, ctl->server_root ? ctl->server_root : ".", "/", path, NULL);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- setup -------------------------------------------------------------------- */

static int setup(ctl_t *ctl, int need_store)
{
    apr_pool_t *p = ctl->pool;
    const char *err = NULL;
    struct stat st;
    apr_status_t rv;

    ctl->window.is_percent = 1;
    ctl->window.percent = DEFAULT_RENEW_PERCENT;
    if (ctl->conf_file) {
        acme_conf_scan_t cs;
        char *dir;

        if (ctl->server_root_opt) {
            ctl->server_root = ctl->server_root_opt;
        }
        else {
            /* httpd's compiled-in ServerRoot is the config's directory in
             * Debian's layout (/etc/apache2); a ServerRoot line overrides it. */
            dir = apr_pstrdup(p, ctl->conf_file);
            if (strrchr(dir, '/')) *strrchr(dir, '/') = '\0';
            else dir = ".";
            ctl->server_root = dir[0] ? dir : "/";
        }
        acme_conf_scan_init(&cs, p, ctl->server_root);
        rv = acme_conf_scan_file(&cs, ctl->conf_file);
        ctl->server_root = cs.server_root;
        ctl->conf_store_dir = cs.store_dir;
        ctl->conf_ca_file = cs.ca_file;
        ctl->conf_ca_file_any = cs.ca_file_any;
        ctl->conf_ca_url = cs.ca_url;
        ctl->conf_window = cs.window;
        ctl->conf_domains = cs.domains;
        ctl->conf_proxy = cs.http_proxy;
        ctl->conf_proxy_ca = cs.http_proxy_ca;
        ctl->conf_eab_kid = cs.eab_kid;
        ctl->conf_eab_file = cs.eab_file;
        ctl->conf_etcd_urls = cs.etcd_urls;
        ctl->conf_store_key = cs.store_key;
        ctl->conf_store_prefix = cs.store_prefix;
        ctl->conf_store_ca = cs.store_ca;
        ctl->conf_store_cert = cs.store_cert;
        ctl->conf_store_cert_key = cs.store_cert_key;
        ctl->conf_store_user = cs.store_user;
        ctl->conf_store_password = cs.store_password;
        if (rv != APR_SUCCESS) {
            err_printf("%s. Give the server's main config file with -f, or the store with "
                       "--store DIR.", cs.err ? cs.err : "cannot read the config");
            return EXIT_FAILED;
        }
        if (ctl->conf_window
            && acme_renew_window_parse(&ctl->window, ctl->conf_window) != APR_SUCCESS) {
            ctl->window.is_percent = 1;
            ctl->window.percent = DEFAULT_RENEW_PERCENT;
        }
    }
    ctl->ca_file = ctl->ca_file_opt ? ctl->ca_file_opt
                 : ctl->conf_ca_file ? ctl->conf_ca_file : ctl->conf_ca_file_any;
    if (!need_store) return EXIT_OK;
    if (ctl->store_opt) {
        ctl->store_dir = ctl->store_opt;
    }
    else if (ctl->conf_file) {
        ctl->store_dir = ctl->conf_store_dir ? ctl->conf_store_dir
                                             : root_relative(ctl, "acme");
    }
    else {
        return usage_error(ctl->cmd, "which store? Give --store DIR (the ManagedStoreDir) or "
                           "-f /path/to/httpd.conf");
    }
    if (stat(apr_pstrcat(p, ctl->store_dir, "/store.json", NULL), &st) < 0) {
        err_printf("%s is not a mod_acme store (no store.json there): check --store or the "
                   "ManagedStoreDir of %s. The server creates the store at its first start "
                   "with a ManagedDomain.", ctl->store_dir,
                   ctl->conf_file ? ctl->conf_file : "the server's config");
        return EXIT_FAILED;
    }
    rv = acme_store_fs_create(&ctl->store, p, ctl->store_dir, &err);
    if (rv != APR_SUCCESS) {
        err_printf("cannot use the store %s: %s", ctl->store_dir, err ? err : status_text(p, rv));
        return EXIT_FAILED;
    }
    ctl->where = ctl->store_dir;
    return EXIT_OK;
}

/* ---- reading a domain ------------------------------------------------------------ */

typedef struct {
    const char *domain;
    apr_array_header_t *names;
    const char *ca;             /* the CA that issued the certificates, or of the last run */
    acme_status_t *st;
} domain_info_t;

static const acme_key_type_t all_types[] = {
    ACME_KEY_P256, ACME_KEY_P384, ACME_KEY_RSA2048, ACME_KEY_RSA3072, ACME_KEY_RSA4096
};

static int has_item(acme_store_t *s, acme_store_group_t g, const char *name, const char *aspect,
                    apr_pool_t *p)
{
    apr_time_t t;
    return s->mtime(s, g, name, aspect, &t, p) == APR_SUCCESS;
}

/* acmectl does not know the server's settings: the key types are those
 * with a certificate item, the names those of meta.json (or of the
 * certificate), the window that of -f. The status itself is the server's
 * own function (acme_status.c), so both say the same. */
static domain_info_t *domain_read(ctl_t *ctl, const char *domain, apr_time_t now)
{
    apr_pool_t *p = ctl->pool;
    domain_info_t *d = apr_pcalloc(p, sizeof(*d));
    apr_array_header_t *types = apr_array_make(p, 2, sizeof(acme_key_type_t));
    acme_job_spec_t spec;
    apr_size_t i;

    memset(&spec, 0, sizeof(spec));
    d->domain = spec.domain = domain;
    d->names = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(d->names, const char *) = domain;
    for (i = 0; i < sizeof(all_types) / sizeof(all_types[0]); ++i) {
        if (has_item(ctl->store, ACME_SG_DOMAINS, domain, acme_job_cert_file(p, all_types[i]), p)) {
            APR_ARRAY_PUSH(types, acme_key_type_t) = all_types[i];
        }
    }
    spec.key_types = types;
    spec.window = ctl->window;
    spec.ari = 1; /* renewal information in job.json is the server's: it follows it */
    spec.names = d->names;
    acme_status_get(&d->st, ctl->store, &spec, NULL, now, p);
    if (d->st->meta_names && d->st->meta_names->nelts) {
        d->names = d->st->meta_names;
    }
    else if (d->st->certs->nelts
             && APR_ARRAY_IDX(d->st->certs, 0, acme_status_cert_t *)->sans) {
        d->names = APR_ARRAY_IDX(d->st->certs, 0, acme_status_cert_t *)->sans;
    }
    if (d->names != spec.names) {
        spec.names = d->names;
        acme_status_get(&d->st, ctl->store, &spec, NULL, now, p);
    }
    d->ca = d->st->cert_ca ? d->st->cert_ca : d->st->job_ca;
    return d;
}

static void add_names(apr_array_header_t *out, apr_array_header_t *names)
{
    int i, j;

    for (i = 0; names && i < names->nelts; ++i) {
        const char *n = APR_ARRAY_IDX(names, i, const char *);
        int dup = 0;
        for (j = 0; j < out->nelts && !dup; ++j) {
            dup = !strcmp(n, APR_ARRAY_IDX(out, j, const char *));
        }
        if (!dup) APR_ARRAY_PUSH(out, const char *) = n;
    }
}

/* Every domain the store knows: active, staged or with job state. */
static apr_array_header_t *domain_list(ctl_t *ctl)
{
    apr_pool_t *p = ctl->pool;
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(const char *)), *names;
    static const acme_store_group_t groups[] = { ACME_SG_DOMAINS, ACME_SG_STAGING, ACME_SG_JOBS };
    apr_size_t i;

    for (i = 0; i < sizeof(groups) / sizeof(groups[0]); ++i) {
        if (ctl->store->list(ctl->store, groups[i], NULL, &names, p) == APR_SUCCESS) {
            int k;
            apr_array_header_t *domains = apr_array_make(p, names->nelts, sizeof(const char *));
            /* The store also holds the server's own markers (staging/_batch). */
            for (k = 0; k < names->nelts; ++k) {
                const char *n = APR_ARRAY_IDX(names, k, const char *);
                if (acme_name_is_valid(n)) APR_ARRAY_PUSH(domains, const char *) = n;
            }
            add_names(out, domains);
        }
    }
    qsort(out->elts, (size_t)out->nelts, sizeof(const char *), cmp_str);
    return out;
}

static int domain_check(ctl_t *ctl, const char *domain)
{
    apr_array_header_t *all;

    if (!acme_store_name_is_valid(domain) || !acme_name_is_valid(domain)) {
        err_printf("'%s' is not a domain name", domain);
        return EXIT_FAILED;
    }
    all = domain_list(ctl);
    {
        int i;
        for (i = 0; i < all->nelts; ++i) {
            if (!strcmp(domain, APR_ARRAY_IDX(all, i, const char *))) return EXIT_OK;
        }
    }
    err_printf("no managed domain '%s' in the store %s. Known: %s. A domain is named by "
               "the first name of its ManagedDomain line; run 'acmectl status' to list them.",
               domain, ctl->where,
               all->nelts ? apr_array_pstrcat(ctl->pool, all, ' ') : "none");
    return EXIT_FAILED;
}

static const char *error_line(apr_pool_t *p, const acme_result_t *r)
{
    const char *prob = r->problem ? acme_problem_short(r->problem) : NULL;
    const char *s = r->detail ? r->detail : "failed";

    if (prob) s = apr_psprintf(p, "%s (%s)", s, prob);
    if (r->activity) s = apr_psprintf(p, "%s: %s", r->activity, s);
    return tx(p, s);
}

/* The key types with a certificate item (readable or not). */
static const char *key_types_text(apr_pool_t *p, const domain_info_t *d)
{
    apr_array_header_t *a = apr_array_make(p, 2, sizeof(const char *));
    int i;
    for (i = 0; i < d->st->certs->nelts; ++i) {
        APR_ARRAY_PUSH(a, const char *) =
            acme_key_type_name(APR_ARRAY_IDX(d->st->certs, i, acme_status_cert_t *)->type);
    }
    return a->nelts ? apr_array_pstrcat(p, a, ',') : "-";
}

/* ---- status ---------------------------------------------------------------------- */

static acme_json_t *domain_json(ctl_t *ctl, const domain_info_t *d, apr_time_t now)
{
    apr_pool_t *p = ctl->pool;
    const acme_status_t *st = d->st;
    acme_json_t *j = acme_json_new_object(p), *certs = acme_json_new_array(p);
    apr_array_header_t *kt = apr_array_make(p, 2, sizeof(const char *));
    int i;

    acme_json_sets(j, d->domain, "domain", NULL);
    acme_json_setsa(j, d->names, "names", NULL);
    acme_json_sets(j, acme_status_state_name(st->state), "state", NULL);
    acme_json_sets(j, st->reason, "state-reason", NULL);
    if (d->ca) acme_json_sets(j, d->ca, "ca", NULL);
    for (i = 0; i < st->certs->nelts; ++i) {
        const acme_status_cert_t *ci = APR_ARRAY_IDX(st->certs, i, acme_status_cert_t *);
        acme_json_t *c = ci->present ? acme_status_cert_json(ci, now, p)
                                     : acme_json_new_object(p);

        APR_ARRAY_PUSH(kt, const char *) = acme_key_type_name(ci->type);
        if (!ci->present) {
            acme_json_sets(c, acme_key_type_name(ci->type), "key-type", NULL);
            acme_json_sets(c, ci->load_error, "error", NULL);
        }
        acme_json_array_append(certs, c);
    }
    acme_json_setsa(j, kt, "key-types", NULL);
    acme_json_setj(j, certs, "certificates", NULL);
    if (st->first) {
        acme_json_sets(j, acme_time_rfc3339(p, st->not_before), "valid-from", NULL);
        acme_json_sets(j, acme_time_rfc3339(p, st->not_after), "valid-until", NULL);
        acme_json_setl(j, acme_status_days_left(st->not_after, now), "days-left", NULL);
        if (st->first->issuer) acme_json_sets(j, st->first->issuer, "issuer", NULL);
    }
    acme_json_setb(j, st->expiring, "expiring", NULL);
    if (st->last_success) {
        acme_json_sets(j, acme_time_rfc3339(p, st->last_success), "last-renewal", NULL);
    }
    if (st->renew_at) acme_json_sets(j, acme_time_rfc3339(p, st->renew_at), "renew-at", NULL);
    if (st->next) acme_json_sets(j, acme_time_rfc3339(p, st->next), "next-attempt", NULL);
    acme_json_setb(j, st->staged, "staged", NULL);
    acme_json_setb(j, st->renew_requested, "renew-requested", NULL);
    acme_json_setl(j, st->in_flight, "orders-in-flight", NULL);
    acme_json_setl(j, st->errors, "errors", NULL);
    if (st->last_error) {
        acme_json_setj(j, acme_status_error_json(st->last_error, p), "last-error", NULL);
    }
    if (st->preflight) {
        acme_json_setj(j, acme_status_preflight_json(st, p), "preflight", NULL);
    }
    return j;
}

typedef struct {
    const char *cols[9];
} row_t;

static int cmd_status(ctl_t *ctl)
{
    apr_pool_t *p = ctl->pool;
    apr_array_header_t *domains, *infos;
    apr_time_t now = apr_time_now();
    static const char *const heads[9] = { "DOMAIN", "STATE", "KEYS", "VALID FROM", "VALID UNTIL",
                                          "DAYS", "ISSUER", "LAST RENEWAL", "NEXT" };
    apr_size_t width[9];
    int i, c;

    if (ctl->args->nelts) {
        return usage_error("status", "unexpected argument '%s'",
                           APR_ARRAY_IDX(ctl->args, 0, const char *));
    }
    domains = domain_list(ctl);
    infos = apr_array_make(p, domains->nelts + 1, sizeof(domain_info_t *));
    for (i = 0; i < domains->nelts; ++i) {
        APR_ARRAY_PUSH(infos, domain_info_t *) =
            domain_read(ctl, APR_ARRAY_IDX(domains, i, const char *), now);
    }
    if (ctl->json) {
        acme_json_t *top = acme_json_new_object(p), *arr = acme_json_new_array(p);
        acme_json_sets(top, ctl->where, "store", NULL);
        acme_json_sets(top, acme_time_rfc3339(p, now), "time", NULL);
        for (i = 0; i < infos->nelts; ++i) {
            acme_json_array_append(arr, domain_json(ctl, APR_ARRAY_IDX(infos, i, domain_info_t *),
                                                    now));
        }
        acme_json_setj(top, arr, "domains", NULL);
        printf("%s\n", acme_json_dump(top, p, 0));
        return EXIT_OK;
    }
    if (!infos->nelts) {
        printf("No managed domains in the store %s yet.\n", ctl->where);
        return EXIT_OK;
    }
    {
        row_t *rows = apr_pcalloc(p, sizeof(row_t) * (apr_size_t)infos->nelts);
        for (c = 0; c < 9; ++c) width[c] = strlen(heads[c]);
        for (i = 0; i < infos->nelts; ++i) {
            const domain_info_t *d = APR_ARRAY_IDX(infos, i, domain_info_t *);
            const acme_status_t *st = d->st;
            const char **r = rows[i].cols;
            r[0] = d->domain;
            r[1] = acme_status_state_name(st->state);
            r[2] = key_types_text(p, d);
            r[3] = fmt_time(p, st->not_before);
            r[4] = fmt_time(p, st->not_after);
            r[5] = st->first ? apr_psprintf(p, "%" APR_INT64_T_FMT,
                                            acme_status_days_left(st->not_after, now)) : "-";
            r[6] = st->first && st->first->issuer ? tx(p, st->first->issuer) : "-";
            r[7] = fmt_time(p, st->last_success);
            r[8] = st->renew_requested ? "requested" : st->staged ? "restart"
                                                                  : fmt_time(p, st->next);
            for (c = 0; c < 9; ++c) {
                if (strlen(r[c]) > width[c]) width[c] = strlen(r[c]);
            }
        }
        for (c = 0; c < 8; ++c) {
            printf("%-*s  ", (int)width[c], heads[c]);
        }
        printf("%s\n", heads[8]);
        for (i = 0; i < infos->nelts; ++i) {
            const domain_info_t *d = APR_ARRAY_IDX(infos, i, domain_info_t *);
            for (c = 0; c < 8; ++c) {
                printf("%-*s  ", (int)width[c], rows[i].cols[c]);
            }
            printf("%s\n", rows[i].cols[8]);
            if (d->names->nelts > 1
                || strcmp(APR_ARRAY_IDX(d->names, 0, const char *), d->domain)) {
                printf("    names: %s\n", tx(p, apr_array_pstrcat(p, d->names, ' ')));
            }
            if (d->st->last_error) {
                printf("    last error (%d in a row): %s\n", d->st->errors,
                       error_line(p, d->st->last_error));
            }
        }
        printf("Times are UTC. NEXT: the next renewal (or retry after an error).\n");
    }
    return EXIT_OK;
}

/* ---- show -------------------------------------------------------------------------- */

/* The ARI data the server keeps in job.json is shown member by member;
 * unix times are printed as dates. */
typedef struct {
    apr_pool_t *pool;
    const char *indent;
} ari_print_t;

static int ari_print_cb(void *baton, const char *key, acme_json_t *value)
{
    ari_print_t *ap = baton;
    apr_pool_t *p = ap->pool;

    if (!strcmp(key, "start") || !strcmp(key, "end")) return 0;

    switch (acme_json_type(value, NULL)) {
    case ACME_JSON_OBJECT: {
        ari_print_t sub;
        sub.pool = p;
        sub.indent = apr_pstrcat(p, ap->indent, "  ", NULL);
        printf("%s%s:\n", ap->indent, tx(p, key));
        acme_json_iter(value, p, ari_print_cb, &sub);
        break;
    }
    case ACME_JSON_STRING:
        printf("%s%s: %s\n", ap->indent, tx(p, key), tx(p, acme_json_gets(value, NULL)));
        break;
    case ACME_JSON_INT: {
        long long v = acme_json_getl(value, NULL);
        if (v > 1000000000LL && v < 100000000000LL) {
            printf("%s%s: %s\n", ap->indent, tx(p, key),
                   acme_time_rfc3339(p, apr_time_from_sec((apr_time_t)v)));
        }
        else {
            printf("%s%s: %lld\n", ap->indent, tx(p, key), v);
        }
        break;
    }
    case ACME_JSON_BOOL:
        printf("%s%s: %s\n", ap->indent, tx(p, key), acme_json_getb(value, NULL) ? "yes" : "no");
        break;
    default:
        break;
    }
    return 0;
}

static int cmd_show(ctl_t *ctl)
{
    apr_pool_t *p = ctl->pool;
    const char *domain;
    domain_info_t *d;
    const acme_status_t *st;
    apr_time_t now = apr_time_now();
    int i, rc;

    if (ctl->args->nelts != 1) {
        return usage_error("show", ctl->args->nelts ? "one DOMAIN only" : "which DOMAIN?");
    }
    domain = APR_ARRAY_IDX(ctl->args, 0, const char *);
    if ((rc = domain_check(ctl, domain)) != EXIT_OK) return rc;
    d = domain_read(ctl, domain, now);
    st = d->st;

    printf("Domain:          %s\n", tx(p, d->domain));
    printf("Names:           %s\n", tx(p, apr_array_pstrcat(p, d->names, ' ')));
    printf("State:           %s (%s)\n", acme_status_state_name(st->state), st->reason);
    printf("CA:              %s\n", d->ca ? tx(p, d->ca) : "-");
    printf("Last renewal:    %s\n", fmt_rfc3339(p, st->last_success));
    printf("Renew at:        %s\n", fmt_rfc3339(p, st->renew_at));
    if (st->errors > 0 && st->next_attempt) {
        printf("Next attempt:    %s\n", acme_time_rfc3339(p, st->next_attempt));
    }
    if (st->renew_requested) printf("Renewal:         requested (acmectl renew)\n");
    if (st->staged) printf("Staged:          a new certificate waits for the server's restart\n");
    if (st->last_error) {
        printf("Last error:      %s (%d in a row)\n", error_line(p, st->last_error), st->errors);
    }
    if (st->preflight) {
        printf("Pre-flight:      %s%s\n", tx(p, st->preflight),
               st->preflight_holding ? " (the CA is not asked again until it passes)" : "");
    }
    if (!st->certs->nelts) {
        printf("\nNo certificate yet.\n");
    }
    for (i = 0; i < st->certs->nelts; ++i) {
        const acme_status_cert_t *ci = APR_ARRAY_IDX(st->certs, i, acme_status_cert_t *);

        printf("\nCertificate %s (domains/%s/%s)\n", acme_key_type_name(ci->type),
               tx(p, domain), acme_job_cert_file(p, ci->type));
        if (!ci->present) {
            printf("  cannot read it: %s\n", ci->load_error);
            continue;
        }
        printf("  Key type:      %s\n", acme_key_type_name(ci->type));
        printf("  Names:         %s\n", ci->sans ? tx(p, apr_array_pstrcat(p, ci->sans, ' '))
                                                : "-");
        printf("  Valid from:    %s\n", acme_time_rfc3339(p, ci->not_before));
        printf("  Valid until:   %s (%" APR_INT64_T_FMT " days left)\n",
               acme_time_rfc3339(p, ci->not_after), acme_status_days_left(ci->not_after, now));
        printf("  Issuer:        %s\n", ci->issuer ? tx(p, ci->issuer) : "-");
        printf("  Serial:        %s\n", ci->serial);
        printf("  SHA-256:       %s\n", ci->fingerprint);
        printf("  ARI id:        %s\n", ci->ari_id ? ci->ari_id
                                                  : "- (no authority key identifier)");
        if (ci->ari) {
            long long start = acme_json_getl(ci->ari, ACME_JK_ARI_START, NULL);
            long long end = acme_json_getl(ci->ari, ACME_JK_ARI_END, NULL);
            ari_print_t ap;

            if (start && end) {
                printf("  ARI window:    %s - %s\n",
                       acme_time_rfc3339(p, apr_time_from_sec((apr_time_t)start)),
                       acme_time_rfc3339(p, apr_time_from_sec((apr_time_t)end)));
            }
            else {
                printf("  ARI window:    - (not known yet)\n");
            }
            /* the rest (chosen time, next poll, explanation) as the server keeps it */
            ap.pool = p;
            ap.indent = "    ";
            acme_json_iter(ci->ari, p, ari_print_cb, &ap);
        }
        else if (acme_json_getl(st->ari, ACME_JK_ARI_UNSUPPORTED, NULL)) {
            printf("  ARI window:    - (the CA offers no renewal information)\n");
        }
    }
    return EXIT_OK;
}

/* ---- claims: acmectl never writes while a renewal job works on a domain ---------- */

#define CTL_LEASE apr_time_from_sec(120)

/* A claim held for a moment (a server writing a domain's job record) is
 * waited for this long, looked at every 200 ms; a renewal job's is not. */
#define CTL_CLAIM_WAIT apr_time_from_sec(5)

/* Claims name for acmectl; when another holds it, says who, and fails. */
static int claim_take(acme_store_claim_t **pc, ctl_t *ctl, const char *name)
{
    /* no blanks: the etcd store takes printable owners without them */
    const char *owner = apr_psprintf(ctl->pool, "acmectl-pid-%ld", (long)getpid());
    apr_time_t until = apr_time_now() + CTL_CLAIM_WAIT;
    apr_status_t rv;

    while ((rv = ctl->store->claim(ctl->store, pc, name, owner, CTL_LEASE, ctl->pool))
               == APR_EBUSY && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(200));
    }
    if (rv == APR_EBUSY) {
        err_printf("%s is working on %s right now; try again in a minute",
                   *pc && (*pc)->owner ? (*pc)->owner : "another process", name);
        return EXIT_FAILED;
    }
    if (rv != APR_SUCCESS) {
        err_printf("cannot claim %s in the store %s: %s", name, ctl->where,
                   status_text(ctl->pool, rv));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

static void claim_drop(ctl_t *ctl, acme_store_claim_t *c)
{
    if (c) ctl->store->release(ctl->store, c, ctl->pool);
}

/* ---- renew ---------------------------------------------------------------------- */

static apr_status_t request_renewal(ctl_t *ctl, acme_store_claim_t *c, const char *domain)
{
    apr_pool_t *p = ctl->pool;
    acme_json_t *j = acme_json_new_object(p);

    acme_json_sets(j, acme_time_rfc3339(p, apr_time_now()), "requested", NULL);
    apr_status_t rv;

    acme_json_sets(j, "acmectl", "by", NULL);
    rv = acme_store_save_json(acme_store_fenced(p, ctl->store, c), ACME_SG_JOBS, domain,
                              ACME_JOB_RENEW_REQUEST, j, p);
    if (rv == APR_SUCCESS) {
        rv = ctl->store->save(ctl->store, ACME_SG_JOBS, ACME_REQUESTS_NAME, ACME_REQUESTS_MARKER,
                              "1", 1, 0, p);
    }
    return rv;
}

static int cmd_renew(ctl_t *ctl)
{
    apr_pool_t *p = ctl->pool;
    const char *domain;
    acme_store_claim_t *c = NULL;
    apr_status_t rv;
    int rc;

    if (ctl->args->nelts != 1) {
        return usage_error("renew", ctl->args->nelts ? "one DOMAIN only" : "which DOMAIN?");
    }
    domain = APR_ARRAY_IDX(ctl->args, 0, const char *);
    if ((rc = domain_check(ctl, domain)) != EXIT_OK) return rc;
    if ((rc = claim_take(&c, ctl, domain)) != EXIT_OK) return rc;
    rv = request_renewal(ctl, c, domain);
    claim_drop(ctl, c);
    if (rv != APR_SUCCESS) {
        err_printf("cannot write the renewal request %s/%s/%s: %s. Run acmectl as root or as "
                   "the server's User.", ctl->where, "jobs", domain, status_text(p, rv));
        return EXIT_FAILED;
    }
    printf("Renewal of %s requested. The running server renews every key type at its next "
           "check and activates the new certificate with a graceful restart.\n", domain);
    if (domain_read(ctl, domain, apr_time_now())->st->staged) {
        printf("Note: a new certificate for %s already waits for the server's restart; the "
               "request is handled after it is activated.\n", domain);
    }
    printf("Follow it with: acmectl status\n");
    return EXIT_OK;
}

/* ---- the CA side: accounts -------------------------------------------------------- */

typedef struct {
    const char *caid;
    const char *dir;           /* accounts/<caid> */
    const char *ca_url;
    const char *url;           /* account URL */
    acme_json_t *json;
    const char *key_pem;       /* NULL when missing */
    apr_size_t key_len;
} account_ref_t;

static const char *ca_alias(const char *url)
{
    if (!strcasecmp(url, "letsencrypt")) return CA_LETSENCRYPT;
    if (!strcasecmp(url, "letsencrypt-staging")) return CA_LETSENCRYPT_STAGING;
    return url;
}

static account_ref_t *account_read(ctl_t *ctl, const char *caid)
{
    apr_pool_t *p = ctl->pool;
    acme_store_t *s = ctl->store;
    account_ref_t *a = apr_pcalloc(p, sizeof(*a));

    a->caid = caid;
    a->dir = ctl->etcd_prefix /* for messages */
             ? apr_pstrcat(p, ctl->etcd_prefix, "accounts/", caid, " in etcd", NULL)
             : apr_pstrcat(p, s->where, "/accounts/", caid, NULL);
    if (acme_store_load_json(s, ACME_SG_ACCOUNTS, caid, ACME_ACCOUNT_JSON, &a->json, p)
        != APR_SUCCESS) {
        a->json = NULL;
    }
    if (a->json) {
        a->url = acme_json_gets(a->json, ACME_AK_URL, NULL);
        a->ca_url = acme_json_gets(a->json, ACME_AK_CA, NULL);
    }
    if (s->load(s, ACME_SG_ACCOUNTS, caid, ACME_ACCOUNT_KEY, &a->key_pem, &a->key_len, p)
        != APR_SUCCESS) {
        a->key_pem = NULL;
    }
    return a;
}

static apr_array_header_t *account_list(ctl_t *ctl)
{
    apr_pool_t *p = ctl->pool;
    apr_array_header_t *names, *out = apr_array_make(p, 2, sizeof(account_ref_t *));
    int i;

    if (ctl->store->list(ctl->store, ACME_SG_ACCOUNTS, NULL, &names, p) == APR_SUCCESS) {
        for (i = 0; i < names->nelts; ++i) {
            account_ref_t *a = account_read(ctl, APR_ARRAY_IDX(names, i, const char *));
            if (a->json || a->key_pem) APR_ARRAY_PUSH(out, account_ref_t *) = a;
        }
    }
    return out;
}

static const char *account_names(apr_pool_t *p, apr_array_header_t *accts)
{
    apr_array_header_t *n = apr_array_make(p, 2, sizeof(const char *));
    int i;
    for (i = 0; i < accts->nelts; ++i) {
        const account_ref_t *a = APR_ARRAY_IDX(accts, i, account_ref_t *);
        APR_ARRAY_PUSH(n, const char *) = a->ca_url ? a->ca_url : a->caid;
    }
    return apr_array_pstrcat(p, n, ' ');
}

/* The account for a CA URL (its directory name is derived from the URL and
 * the EAB key id): the one bound to eab_kid first, as the server uses it. */
static account_ref_t *account_for(ctl_t *ctl, apr_array_header_t *accts, const char *ca_url,
                                  const char *eab_kid)
{
    const char *caid = acme_job_ca_id(ctl->pool, ca_url);
    const char *bound = acme_job_account_id(ctl->pool, ca_url, eab_kid);
    int i;

    for (i = 0; i < accts->nelts; ++i) {
        account_ref_t *a = APR_ARRAY_IDX(accts, i, account_ref_t *);
        if (!strcmp(a->caid, bound)) return a;
    }
    for (i = 0; i < accts->nelts; ++i) {
        account_ref_t *a = APR_ARRAY_IDX(accts, i, account_ref_t *);
        if (!strcmp(a->caid, caid) || (a->ca_url && !strcmp(a->ca_url, ca_url))) return a;
    }
    return NULL;
}

static apr_status_t make_client(acme_client_t **pclient, ctl_t *ctl, const char *ca_url,
                                const acme_pkey_t *key, const char *kid, acme_result_t *r)
{
    acme_http_config_t hc;
    acme_http_t *http;
    apr_status_t rv;

    acme_http_global_init();
    acme_http_config_init(&hc);
    hc.ca_file = ctl->ca_file;
    /* the server's way to the CA is acmectl's too */
    hc.proxy = ctl->conf_proxy;
    hc.proxy_ca_file = ctl->conf_proxy_ca;
    rv = acme_http_curl_create(&http, ctl->pool, &hc);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:internal", "cannot set up the HTTP client");
    }
    rv = acme_client_create(pclient, ctl->pool, ca_url, http);
    if (rv != APR_SUCCESS) {
        return acme_result_set(r, rv, "acme:config", "cannot use the CA URL %s", ca_url);
    }
    acme_client_set_account(*pclient, key, kid);
    return APR_SUCCESS;
}

static const char *ca_hint(ctl_t *ctl)
{
    if (ctl->ca_file) return "";
    return " If the CA uses a private root, pass it with --ca-file (or -f with a config that "
           "has ManagedCACertificateFile).";
}

static int account_load_key(acme_pkey_t **pkey, ctl_t *ctl, const account_ref_t *a)
{
    if (!a->key_pem) {
        err_printf("the account for %s has no key file %s/%s", a->ca_url ? a->ca_url : a->caid,
                   a->dir, ACME_ACCOUNT_KEY);
        return EXIT_FAILED;
    }
    if (acme_pkey_from_pem(pkey, ctl->pool, a->key_pem, a->key_len) != APR_SUCCESS) {
        err_printf("the account key %s/%s cannot be read (not an unencrypted private key of a "
                   "supported type)", a->dir, ACME_ACCOUNT_KEY);
        return EXIT_FAILED;
    }
    if (!a->url || !a->ca_url) {
        err_printf("%s/%s lacks the account URL or the CA: the server has not finished "
                   "creating this account", a->dir, ACME_ACCOUNT_JSON);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

/* ---- revoke ----------------------------------------------------------------------- */

static int reason_parse(const char *s)
{
    static const struct { const char *name; int code; } reasons[] = {
        { "unspecified", 0 }, { "keyCompromise", 1 }, { "affiliationChanged", 3 },
        { "superseded", 4 }, { "cessationOfOperation", 5 }, { NULL, -1 }
    };
    int i;
    for (i = 0; reasons[i].name; ++i) {
        if (!strcasecmp(s, reasons[i].name)) return reasons[i].code;
    }
    return -2;
}

static int revoke_claimed(ctl_t *ctl, acme_store_claim_t *c, const char *domain, int reason);

static int cmd_revoke(ctl_t *ctl)
{
    const char *domain;
    acme_store_claim_t *c = NULL;
    int reason = -1, rc;

    if (ctl->args->nelts != 1) {
        return usage_error("revoke", ctl->args->nelts ? "one DOMAIN only" : "which DOMAIN?");
    }
    if (ctl->reason_opt && (reason = reason_parse(ctl->reason_opt)) < -1) {
        return usage_error("revoke", "unknown reason '%s' (use unspecified, keyCompromise, "
                           "affiliationChanged, superseded or cessationOfOperation)",
                           ctl->reason_opt);
    }
    domain = APR_ARRAY_IDX(ctl->args, 0, const char *);
    if ((rc = domain_check(ctl, domain)) != EXIT_OK) return rc;
    if ((rc = claim_take(&c, ctl, domain)) != EXIT_OK) return rc;
    rc = revoke_claimed(ctl, c, domain, reason);
    claim_drop(ctl, c);
    return rc;
}

static int revoke_claimed(ctl_t *ctl, acme_store_claim_t *c, const char *domain, int reason)
{
    apr_pool_t *p = ctl->pool;
    domain_info_t *d;
    apr_array_header_t *accts;
    account_ref_t *a;
    acme_pkey_t *akey;
    acme_client_t *client = NULL;
    acme_result_t *r = acme_result_make(p);
    int i, rc, revoked = 0, failed = 0;
    apr_status_t rv;

    d = domain_read(ctl, domain, apr_time_now());
    if (!d->st->certs->nelts) {
        err_printf("%s has no active certificate to revoke", domain);
        return EXIT_FAILED;
    }
    if (!d->ca) {
        err_printf("cannot tell which CA issued the certificates of %s (no \"ca\" in %s/domains/"
                   "%s/meta.json)", domain, ctl->where, domain);
        return EXIT_FAILED;
    }
    accts = account_list(ctl);
    a = account_for(ctl, accts, d->ca, NULL);
    if (!a) {
        err_printf("no account for the CA %s in the store (accounts: %s); the certificates of "
                   "%s cannot be revoked by account", d->ca,
                   accts->nelts ? account_names(p, accts) : "none", domain);
        return EXIT_FAILED;
    }
    if ((rc = account_load_key(&akey, ctl, a)) != EXIT_OK) return rc;
    rv = make_client(&client, ctl, d->ca, akey, a->url, r);
    if (rv != APR_SUCCESS) {
        err_printf("%s", acme_result_describe(r, p));
        return EXIT_FAILED;
    }
    for (i = 0; i < d->st->certs->nelts; ++i) {
        const acme_status_cert_t *ci = APR_ARRAY_IDX(d->st->certs, i, acme_status_cert_t *);
        const acme_pkey_t *ckey = NULL;
        const char *serial;

        if (!ci->present) {
            err_printf("skipping the %s certificate: %s", acme_key_type_name(ci->type),
                       ci->load_error);
            ++failed;
            continue;
        }
        serial = ci->serial;
        if (reason == 1) {
            /* CAs accept keyCompromise only with proof of the key. */
            acme_pkey_t *k;
            if (acme_store_load_pkey(ctl->store, ACME_SG_DOMAINS, domain,
                                     acme_job_key_file(p, ci->type), &k, p) != APR_SUCCESS) {
                err_printf("cannot read the %s key of %s to sign the keyCompromise revocation",
                           acme_key_type_name(ci->type), domain);
                ++failed;
                continue;
            }
            ckey = k;
        }
        acme_result_reset(r);
        rv = acme_cert_revoke(client, ci->leaf, reason, ckey, p, r);
        if (rv == APR_SUCCESS) {
            printf("Revoked the %s certificate of %s, serial %s%s%s.\n",
                   acme_key_type_name(ci->type), domain, serial,
                   ctl->reason_opt ? ", reason " : "", ctl->reason_opt ? ctl->reason_opt : "");
            ++revoked;
        }
        else if (r->problem && !strcmp(r->problem, ACME_PROBLEM_NS "alreadyRevoked")) {
            printf("The %s certificate of %s (serial %s) was already revoked.\n",
                   acme_key_type_name(ci->type), domain, serial);
            ++revoked;
        }
        else {
            err_printf("revoking the %s certificate of %s (serial %s) failed: %s.%s",
                       acme_key_type_name(ci->type), domain, serial,
                       acme_result_describe(r, p),
                       r->http_status ? "" : ca_hint(ctl));
            ++failed;
        }
    }
    if (revoked) {
        rv = request_renewal(ctl, c, domain);
        if (rv != APR_SUCCESS) {
            err_printf("cannot write the renewal request for %s: %s. Run 'acmectl renew %s' "
                       "as root or as the server's User.", domain, status_text(p, rv), domain);
            return EXIT_FAILED;
        }
        printf("Renewal of %s requested: the running server gets a new certificate at its "
               "next check and restarts gracefully to use it.\n", domain);
    }
    return failed ? EXIT_FAILED : EXIT_OK;
}

/* ---- account --------------------------------------------------------------------- */

/* The config's EAB key id, read from its file the way the server reads it. */
static int eab_kid_of_config(const char **pkid, ctl_t *ctl)
{
    const char *hmac, *err = NULL;

    *pkid = ctl->conf_eab_kid;
    if (ctl->conf_eab_file
        && acme_conf_eab_file(pkid, &hmac, &err, ctl->pool, ctl->conf_eab_file,
                              geteuid() == 0 ? 0 : ACME_KEYFILE_ANY_OWNER) != APR_SUCCESS) {
        err_printf("ManagedEAB %s%s in %s: %s", ACME_EAB_FILE_PREFIX, ctl->conf_eab_file,
                   ctl->conf_file, err ? err : "cannot be read");
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

static int account_select(account_ref_t **pa, ctl_t *ctl, const char *sub)
{
    apr_pool_t *p = ctl->pool;
    apr_array_header_t *accts = account_list(ctl);
    const char *want = ctl->ca_opt ? ca_alias(ctl->ca_opt) : NULL, *eab_kid;
    int rc;

    *pa = NULL;
    if ((rc = eab_kid_of_config(&eab_kid, ctl)) != EXIT_OK) return rc;
    if (!accts->nelts) {
        err_printf("no ACME account in the store %s yet: the server creates one at its first "
                   "order", ctl->where);
        return EXIT_FAILED;
    }
    if (!want && accts->nelts > 1 && ctl->conf_ca_url) {
        want = ca_alias(ctl->conf_ca_url);
    }
    if (want) {
        *pa = account_for(ctl, accts, want, eab_kid);
        if (!*pa) {
            err_printf("no account for the CA %s in the store (accounts: %s)", want,
                       account_names(p, accts));
            return EXIT_FAILED;
        }
        return EXIT_OK;
    }
    if (accts->nelts > 1) {
        return usage_error(apr_pstrcat(p, "account ", sub, NULL),
                           "the store has several accounts (%s): choose one with --ca URL",
                           account_names(p, accts));
    }
    *pa = APR_ARRAY_IDX(accts, 0, account_ref_t *);
    return EXIT_OK;
}

static void account_print(ctl_t *ctl, const account_ref_t *a)
{
    apr_pool_t *p = ctl->pool;
    apr_array_header_t *contact = NULL;
    acme_pkey_t *key;
    const char *thumb = NULL;

    printf("CA:              %s\n", a->ca_url ? tx(p, a->ca_url) : "-");
    printf("Account URL:     %s\n", a->url ? tx(p, a->url) : "- (not registered yet)");
    if (a->json && acme_json_gets(a->json, ACME_AK_EAB_KID, NULL)) {
        printf("EAB key id:      %s\n", tx(p, acme_json_gets(a->json, ACME_AK_EAB_KID, NULL)));
    }
    if (a->json) acme_json_getsa(&contact, a->json, p, ACME_AK_CONTACT, NULL);
    printf("Contact:         %s\n", contact && contact->nelts
                                    ? tx(p, apr_array_pstrcat(p, contact, ' ')) : "-");
    if (a->json && acme_json_gets(a->json, ACME_AK_CREATED, NULL)) {
        printf("Created:         %s\n", tx(p, acme_json_gets(a->json, ACME_AK_CREATED, NULL)));
    }
    if (a->json && acme_json_gets(a->json, ACME_AK_KEY_CHANGED, NULL)) {
        printf("Key changed:     %s\n", tx(p, acme_json_gets(a->json, ACME_AK_KEY_CHANGED, NULL)));
    }
    if (a->key_pem && acme_pkey_from_pem(&key, p, a->key_pem, a->key_len) == APR_SUCCESS) {
        printf("Key type:        %s\n", acme_key_type_name(acme_pkey_type(key)));
        if (acme_jwk_thumbprint(&thumb, p, key) == APR_SUCCESS) {
            printf("Key thumbprint:  %s\n", thumb);
        }
    }
    else {
        printf("Key:             missing or unreadable (%s/%s)\n", a->dir, ACME_ACCOUNT_KEY);
    }
    printf("Directory:       %s\n", tx(p, a->dir));
    if (has_item(ctl->store, ACME_SG_ACCOUNTS, a->caid, ACME_ACCOUNT_KEY_OLD, p)) {
        printf("Warning:         a key rollover was interrupted; run 'acmectl account rollover'"
               " to finish it\n");
    }
}

static int account_show(ctl_t *ctl)
{
    apr_array_header_t *accts;
    account_ref_t *a;
    int i, rc;

    if (ctl->ca_opt || ctl->conf_ca_url) {
        if ((rc = account_select(&a, ctl, "show")) != EXIT_OK) return rc;
        account_print(ctl, a);
        return EXIT_OK;
    }
    accts = account_list(ctl);
    if (!accts->nelts) {
        err_printf("no ACME account in the store %s yet: the server creates one at its first "
                   "order", ctl->where);
        return EXIT_FAILED;
    }
    for (i = 0; i < accts->nelts; ++i) {
        if (i) printf("\n");
        account_print(ctl, APR_ARRAY_IDX(accts, i, account_ref_t *));
    }
    return EXIT_OK;
}

static apr_status_t account_save_key(ctl_t *ctl, const account_ref_t *a, const char *fname,
                                     const char *pem, apr_size_t len)
{
    return ctl->wstore->save(ctl->wstore, ACME_SG_ACCOUNTS, a->caid, fname, pem, len,
                             ACME_STORE_SECRET, ctl->pool);
}

static int rollover_claimed(ctl_t *ctl, account_ref_t *a);

/* The account and every domain are claimed first: no job signs with the
 * old key while it changes. Account writes carry the account's claim. */
static int account_rollover(ctl_t *ctl)
{
    apr_array_header_t *domains = domain_list(ctl);
    acme_store_claim_t *ac = NULL, **dc;
    account_ref_t *a;
    int i, n = 0, rc;

    if ((rc = account_select(&a, ctl, "rollover")) != EXIT_OK) return rc;
    dc = apr_pcalloc(ctl->pool, sizeof(*dc) * (apr_size_t)(domains->nelts + 1));
    rc = claim_take(&ac, ctl, a->caid);
    for (i = 0; rc == EXIT_OK && i < domains->nelts; ++i, ++n) {
        rc = claim_take(&dc[i], ctl, APR_ARRAY_IDX(domains, i, const char *));
    }
    if (rc == EXIT_OK) {
        ctl->wstore = acme_store_fenced(ctl->pool, ctl->store, ac);
        rc = rollover_claimed(ctl, a);
    }
    for (i = 0; i < n; ++i) claim_drop(ctl, dc[i]);
    if (ac && ac->token) claim_drop(ctl, ac);
    return rc;
}

static int rollover_claimed(ctl_t *ctl, account_ref_t *a)
{
    apr_pool_t *p = ctl->pool;
    acme_pkey_t *old_key, *new_key, *cur;
    acme_client_t *client;
    acme_account_t *found;
    acme_result_t *r = acme_result_make(p);
    const char *old_pem, *new_pem, *thumb = "";
    apr_size_t old_len;
    apr_status_t rv;
    int rc;

    if ((rc = account_load_key(&cur, ctl, a)) != EXIT_OK) return rc;

    if (ctl->store->load(ctl->store, ACME_SG_ACCOUNTS, a->caid, ACME_ACCOUNT_KEY_OLD, &old_pem,
                         &old_len, p) == APR_SUCCESS) {
        /* An earlier rollover did not finish: the CA knows either the
         * current key (keyChange went through) or the old one. */
        rv = make_client(&client, ctl, a->ca_url, cur, NULL, r);
        if (rv == APR_SUCCESS) rv = acme_account_find(&found, client, p, r);
        if (rv == APR_SUCCESS && (!found->url || strcmp(found->url, a->url))) {
            err_printf("an earlier key rollover was interrupted, and the CA knows the current "
                       "key as a different account (%s, expected %s): check %s by hand",
                       found->url ? found->url : "?", a->url, a->dir);
            return EXIT_FAILED;
        }
        if (rv == APR_SUCCESS) {
            ctl->wstore->remove(ctl->wstore, ACME_SG_ACCOUNTS, a->caid, ACME_ACCOUNT_KEY_OLD, p);
            acme_jwk_thumbprint(&thumb, p, cur);
            printf("Finished the interrupted key rollover of %s: the CA uses the new key "
                   "(thumbprint %s).\n", a->url, thumb);
            return EXIT_OK;
        }
        if (!APR_STATUS_IS_ENOENT(rv) && !(r->problem && strstr(r->problem,
                                                                 "accountDoesNotExist"))) {
            err_printf("an earlier key rollover was interrupted, and asking the CA which key it "
                       "knows failed: %s. Nothing was changed; try again.%s",
                       acme_result_describe(r, p), ca_hint(ctl));
            return EXIT_FAILED;
        }
        /* The CA never saw the new key: go back to the old one. */
        rv = account_save_key(ctl, a, ACME_ACCOUNT_KEY, old_pem, old_len);
        if (rv != APR_SUCCESS) {
            err_printf("cannot restore %s/%s from %s: %s", a->dir, ACME_ACCOUNT_KEY,
                       ACME_ACCOUNT_KEY_OLD,
                       status_text(p, rv));
            return EXIT_FAILED;
        }
        ctl->wstore->remove(ctl->wstore, ACME_SG_ACCOUNTS, a->caid, ACME_ACCOUNT_KEY_OLD, p);
        printf("An interrupted key rollover was undone (the CA never got the new key); "
               "starting again.\n");
        a = account_read(ctl, a->caid);
        if ((rc = account_load_key(&cur, ctl, a)) != EXIT_OK) return rc;
        acme_result_reset(r);
    }
    old_key = cur;
    rv = acme_pkey_gen(&new_key, p, acme_pkey_type(old_key));
    if (rv == APR_SUCCESS) rv = acme_pkey_to_pem(&new_pem, p, new_key);
    if (rv != APR_SUCCESS) {
        err_printf("cannot create a new account key: %s", status_text(p, rv));
        return EXIT_FAILED;
    }
    /* Old key aside first, then the new key in place, then the CA: a crash
     * at any point leaves both keys on disk and rollover can finish. */
    rv = account_save_key(ctl, a, ACME_ACCOUNT_KEY_OLD, a->key_pem, a->key_len);
    if (rv == APR_SUCCESS) {
        rv = account_save_key(ctl, a, ACME_ACCOUNT_KEY, new_pem, strlen(new_pem));
    }
    if (rv != APR_SUCCESS) {
        err_printf("cannot save the new account key in %s: %s. The CA was not contacted; the "
                   "old key is in %s.", a->dir, status_text(p, rv), ACME_ACCOUNT_KEY_OLD);
        return EXIT_FAILED;
    }
    rv = make_client(&client, ctl, a->ca_url, old_key, a->url, r);
    if (rv == APR_SUCCESS) rv = acme_account_key_change(client, new_key, p, r);
    if (rv != APR_SUCCESS) {
        if (r->http_status >= 400) {
            /* The CA refused: it still has the old key. */
            if (account_save_key(ctl, a, ACME_ACCOUNT_KEY, a->key_pem, a->key_len) == APR_SUCCESS) {
                ctl->wstore->remove(ctl->wstore, ACME_SG_ACCOUNTS, a->caid,
                                    ACME_ACCOUNT_KEY_OLD, p);
            }
            err_printf("the CA refused the key change: %s. The account keeps its old key.",
                       acme_result_describe(r, p));
        }
        else {
            err_printf("the key change did not complete: %s. Both keys are kept (%s, %s); run "
                       "'acmectl account rollover' again to finish or undo it.%s",
                       acme_result_describe(r, p), ACME_ACCOUNT_KEY, ACME_ACCOUNT_KEY_OLD,
                       ca_hint(ctl));
        }
        return EXIT_FAILED;
    }
    ctl->wstore->remove(ctl->wstore, ACME_SG_ACCOUNTS, a->caid, ACME_ACCOUNT_KEY_OLD, p);
    if (a->json) {
        acme_json_sets(a->json, acme_time_rfc3339(p, apr_time_now()), ACME_AK_KEY_CHANGED, NULL);
        acme_store_save_json(ctl->wstore, ACME_SG_ACCOUNTS, a->caid, ACME_ACCOUNT_JSON, a->json, p);
    }
    acme_jwk_thumbprint(&thumb, p, new_key);
    printf("The account %s now uses a new %s key (thumbprint %s).\n", a->url,
           acme_key_type_name(acme_pkey_type(new_key)), thumb);
    return EXIT_OK;
}

/* Renames an account item within the store (copy, then remove). */
static apr_status_t move_aside(ctl_t *ctl, const account_ref_t *a, const char *aspect,
                               const char *suffix, int flags)
{
    acme_store_t *s = ctl->store;
    const char *data;
    apr_size_t len;
    apr_status_t rv = s->load(s, ACME_SG_ACCOUNTS, a->caid, aspect, &data, &len, ctl->pool);

    if (rv == APR_SUCCESS) {
        rv = s->save(s, ACME_SG_ACCOUNTS, a->caid, apr_pstrcat(ctl->pool, aspect, suffix, NULL),
                     data, len, flags, ctl->pool);
    }
    if (rv == APR_SUCCESS) rv = s->remove(s, ACME_SG_ACCOUNTS, a->caid, aspect, ctl->pool);
    return rv;
}

static int account_deactivate(ctl_t *ctl)
{
    apr_pool_t *p = ctl->pool;
    account_ref_t *a;
    acme_pkey_t *key;
    acme_client_t *client;
    acme_result_t *r = acme_result_make(p);
    const char *suffix;
    apr_status_t rv;
    int rc;

    if ((rc = account_select(&a, ctl, "deactivate")) != EXIT_OK) return rc;
    if ((rc = account_load_key(&key, ctl, a)) != EXIT_OK) return rc;
    if (!ctl->yes) {
        fprintf(stderr, "acmectl account deactivate: this deactivates the account %s at %s for "
                "good: the CA refuses every later request with it. Run again with --yes to do "
                "it.\n", a->url, a->ca_url);
        return EXIT_USAGE;
    }
    rv = make_client(&client, ctl, a->ca_url, key, a->url, r);
    if (rv == APR_SUCCESS) rv = acme_account_deactivate(client, p, r);
    if (rv != APR_SUCCESS) {
        err_printf("deactivating %s failed: %s.%s", a->url, acme_result_describe(r, p),
                   r->http_status ? "" : ca_hint(ctl));
        return EXIT_FAILED;
    }
    /* Moved aside, so that the server registers a new account instead of
     * failing with the dead one. */
    suffix = apr_psprintf(p, ".deactivated-%" APR_TIME_T_FMT, apr_time_sec(apr_time_now()));
    if (move_aside(ctl, a, ACME_ACCOUNT_JSON, suffix, 0) != APR_SUCCESS
        || move_aside(ctl, a, ACME_ACCOUNT_KEY, suffix, ACME_STORE_SECRET) != APR_SUCCESS) {
        err_printf("the account %s is deactivated, but its files in %s could not be moved "
                   "aside: move account.json and account.key.pem away by hand so the "
                   "server creates a new account", a->url, a->dir);
        return EXIT_FAILED;
    }
    printf("Deactivated the account %s. Its files were renamed with the suffix %s; the server "
           "creates a new account at its next order (ManagedAgreeTOS on).\n", a->url, suffix);
    return EXIT_OK;
}

static int cmd_account(ctl_t *ctl)
{
    const char *sub = ctl->args->nelts ? APR_ARRAY_IDX(ctl->args, 0, const char *) : "show";

    if (ctl->args->nelts > 1) {
        return usage_error("account", "unexpected argument '%s'",
                           APR_ARRAY_IDX(ctl->args, 1, const char *));
    }
    if (!strcmp(sub, "show")) return account_show(ctl);
    if (!strcmp(sub, "rollover")) return account_rollover(ctl);
    if (!strcmp(sub, "deactivate")) return account_deactivate(ctl);
    return usage_error("account", "unknown action '%s' (show, rollover or deactivate)", sub);
}

/* ---- main ------------------------------------------------------------------------- */

/* ---- store migrate --------------------------------------------------------------- */

typedef struct {
    int copied, kept, failed;
} migrate_count_t;

/* One item: copied unless etcd has it, authenticated, from the same time
 * or later. The store writes it in the current, authenticated form. */
static void migrate_item(migrate_count_t *mc, acme_store_t *from, acme_store_t *to,
                         acme_store_group_t g, const char *name, const char *aspect,
                         apr_pool_t *p)
{
    const char *data;
    apr_size_t len;
    apr_time_t src_mt = 0, dst_mt = 0;
    apr_status_t rv;
    int secret;

    if (from->mtime(from, g, name, aspect, &src_mt, p) != APR_SUCCESS
        || from->load(from, g, name, aspect, &data, &len, p) != APR_SUCCESS) {
        err_printf("cannot read %s/%s/%s in %s", acme_store_group_name(g), name, aspect,
                   from->where);
        mc->failed++;
        return;
    }
    rv = to->mtime(to, g, name, aspect, &dst_mt, p);
    if (rv == APR_SUCCESS && dst_mt >= src_mt) {
        mc->kept++;
        return;
    }
    /* APR_EINVAL: etcd's item does not authenticate (the store logged its
     * key); the file store's copy replaces it in the authenticated form */
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv) && rv != APR_EINVAL) {
        err_printf("cannot read %s/%s/%s in etcd (%s)", acme_store_group_name(g), name, aspect,
                   to->where);
        mc->failed++;
        return;
    }
    /* whatever holds a private key is sealed, whatever its name */
    secret = strstr(data, "PRIVATE KEY") != NULL;
    if (to->save(to, g, name, aspect, data, len, secret ? ACME_STORE_SECRET : 0, p)
        != APR_SUCCESS) {
        err_printf("cannot write %s/%s/%s to etcd (%s)", acme_store_group_name(g), name, aspect,
                   to->where);
        mc->failed++;
        return;
    }
    mc->copied++;
}

static void migrate_group(migrate_count_t *mc, acme_store_t *from, acme_store_t *to,
                          acme_store_group_t g, apr_pool_t *p)
{
    apr_array_header_t *names, *aspects;
    int i, j;

    if (from->list(from, g, NULL, &names, p) != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < names->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        if (name[0] == '_') continue; /* this server's markers and shared fallback key */
        if (from->list(from, g, name, &aspects, p) != APR_SUCCESS) continue;
        for (j = 0; j < aspects->nelts; ++j) {
            const char *a = APR_ARRAY_IDX(aspects, j, const char *);
            /* a server's own temporary certificate stays local */
            if (g == ACME_SG_DOMAINS && !strncmp(a, "fallback", 8)) continue;
            migrate_item(mc, from, to, g, name, a, p);
        }
    }
}

/* The etcd store of the config's ManagedStore etcd, with its key and its
 * TLS and auth settings, checked against the cluster's sealed schema item. */
static int etcd_store_open(acme_store_t **pstore, ctl_t *ctl)
{
    apr_pool_t *p = ctl->pool;
    const unsigned char *key;
    const char *err = NULL;
    acme_etcd_config_t ec;
    acme_etcd_t *etcd;
    acme_result_t *r = acme_result_make(p);
    acme_store_t *to;

    if (!ctl->conf_store_key) {
        err_printf("%s has no ManagedStoreEncryptionKey: it is required with ManagedStore etcd",
                   ctl->conf_file);
        return EXIT_FAILED;
    }
    if (acme_store_key_load(&key, p, ctl->conf_store_key,
                            geteuid() == 0 ? 0 : ACME_KEYFILE_ANY_OWNER, &err) != APR_SUCCESS) {
        err_printf("%s", err ? err : "cannot read ManagedStoreEncryptionKey");
        return EXIT_FAILED;
    }
    acme_etcd_config_init(&ec);
    ec.endpoints = ctl->conf_etcd_urls;
    ec.ca_file = ctl->conf_store_ca;
    ec.cert_file = ctl->conf_store_cert;
    ec.key_file = ctl->conf_store_cert_key;
    ec.user = ctl->conf_store_user;
    ec.password_file = ctl->conf_store_password;
    ec.password_flags = geteuid() == 0 ? 0 : ACME_KEYFILE_ANY_OWNER;
    if (acme_etcd_create(&etcd, p, &ec, NULL, r) != APR_SUCCESS) {
        err_printf("etcd: %s", acme_result_describe(r, p));
        return EXIT_FAILED;
    }
    if (acme_store_etcd_create(&to, p, etcd, ctl->conf_store_prefix, key, &err) != APR_SUCCESS
        || acme_store_etcd_verify(to, p, &err) != APR_SUCCESS) {
        err_printf("the etcd store at %s: %s", acme_etcd_endpoints(etcd, p),
                   err ? err : "cannot be used");
        return EXIT_FAILED;
    }
    *pstore = to;
    return EXIT_OK;
}

static int cmd_store(ctl_t *ctl)
{
    static const acme_store_group_t groups[] = {
        ACME_SG_ACCOUNTS, ACME_SG_DOMAINS, ACME_SG_STAGING, ACME_SG_JOBS
    };
    apr_pool_t *p = ctl->pool;
    const char *sub = ctl->args->nelts ? APR_ARRAY_IDX(ctl->args, 0, const char *) : NULL;
    acme_store_t *to;
    migrate_count_t mc = {0, 0, 0};
    apr_size_t i;

    if (!sub || strcmp(sub, "migrate") || ctl->args->nelts != 1) {
        return usage_error("store", "the only store command is 'migrate --to etcd'");
    }
    if (!ctl->to_opt || strcmp(ctl->to_opt, "etcd")) {
        return usage_error("store", "migrate needs --to etcd");
    }
    if (!ctl->conf_file || !ctl->conf_etcd_urls || !ctl->conf_etcd_urls->nelts) {
        return usage_error("store", "give the server's config with -f: its ManagedStore etcd "
                           "line names the etcd endpoints");
    }
    if (etcd_store_open(&to, ctl) != EXIT_OK) {
        return EXIT_FAILED;
    }
    for (i = 0; i < sizeof(groups) / sizeof(groups[0]); ++i) {
        migrate_group(&mc, ctl->store, to, groups[i], p);
    }
    printf("%s\n", tx(p, apr_psprintf(p, "migrated %s to etcd %s (prefix %s): %d item(s) "
                                      "copied, %d already there (same or newer), %d failed",
                                      ctl->store_dir, to->where,
                                      ctl->conf_store_prefix ? ctl->conf_store_prefix
                                                             : ACME_STORE_ETCD_PREFIX_DEFAULT,
                                      mc.copied, mc.kept, mc.failed)));
    return mc.failed ? EXIT_FAILED : EXIT_OK;
}

static int cmd_import(ctl_t *ctl)
{
    const char *what = ctl->args->nelts ? APR_ARRAY_IDX(ctl->args, 0, const char *) : NULL;

    if (!what || strcmp(what, "certbot") || ctl->args->nelts > 2) {
        return usage_error("import", "import certbot [DIR]");
    }
    if (!ctl->conf_domains) {
        return usage_error("import", "give the server's config with -f: its ManagedDomain "
                           "names decide what is imported");
    }
    if (ctl->etcd_prefix) {
        err_printf("import works on the file store; with ManagedStore etcd, import into a "
                   "file store (--store) and use 'acmectl store migrate'");
        return EXIT_FAILED;
    }
    return acmectl_import_certbot(ctl->store, ctl->conf_domains,
                                  ctl->args->nelts > 1 ? APR_ARRAY_IDX(ctl->args, 1, const char *)
                                                       : ACMECTL_CERTBOT_DIR,
                                  ctl->pool) ? EXIT_FAILED : EXIT_OK;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;
    ctl_t ctl;
    int rc;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS) {
        fprintf(stderr, "acmectl: cannot initialize APR\n");
        return EXIT_FAILED;
    }
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    memset(&ctl, 0, sizeof(ctl));
    ctl.pool = pool;
    ctl.args = apr_array_make(pool, 4, sizeof(const char *));

    rc = parse_args(&ctl, argc, argv);
    if (rc != EXIT_OK) return rc;
    acme_log_set(log_stderr, &ctl, ctl.verbose >= 2 ? ACME_LOG_DEBUG
                                   : ctl.verbose ? ACME_LOG_INFO : ACME_LOG_ERR);
    if (ctl.cmd && !strcmp(ctl.cmd, "help")) {
        const char *which = ctl.args->nelts ? APR_ARRAY_IDX(ctl.args, 0, const char *) : NULL;
        if (which && !usage_of(which)) {
            return usage_error(NULL, "no command '%s'", which);
        }
        fputs(usage_of(which), stdout);
        return EXIT_OK;
    }
    if (ctl.help) {
        if (ctl.cmd && !usage_of(ctl.cmd)) {
            return usage_error(NULL, "no command '%s'", ctl.cmd);
        }
        fputs(usage_of(ctl.cmd), stdout);
        return EXIT_OK;
    }
    if (!ctl.cmd) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    if (!usage_of(ctl.cmd)) {
        return usage_error(NULL, "no command '%s' (status, show, renew, revoke, account, store, import)",
                           ctl.cmd);
    }
    rc = setup(&ctl, 1);
    if (rc != EXIT_OK) return rc;
    if (ctl.conf_etcd_urls && ctl.conf_etcd_urls->nelts && !ctl.store_opt
        && strcmp(ctl.cmd, "store")) {
        /* The server's store is etcd; ManagedStoreDir is only its cache. */
        rc = etcd_store_open(&ctl.store, &ctl);
        if (rc != EXIT_OK) return rc;
        ctl.etcd_prefix = ctl.conf_store_prefix ? ctl.conf_store_prefix
                                                : ACME_STORE_ETCD_PREFIX_DEFAULT;
        ctl.where = apr_psprintf(pool, "etcd %s prefix %s", ctl.store->where, ctl.etcd_prefix);
    }
    if (!strcmp(ctl.cmd, "status")) return cmd_status(&ctl);
    if (!strcmp(ctl.cmd, "show")) return cmd_show(&ctl);
    if (!strcmp(ctl.cmd, "renew")) return cmd_renew(&ctl);
    if (!strcmp(ctl.cmd, "revoke")) return cmd_revoke(&ctl);
    if (!strcmp(ctl.cmd, "store")) return cmd_store(&ctl);
    if (!strcmp(ctl.cmd, "import")) return cmd_import(&ctl);
    return cmd_account(&ctl);
}
