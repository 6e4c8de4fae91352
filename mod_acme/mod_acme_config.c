/* mod_acme_config.c: the Managed* directives. Every setter validates its
 * value and names the directive and the value in its error, so that
 * `apachectl -t` tells the operator exactly what to fix. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_hash.h>
#include <apr_uri.h>
#include <apr_file_info.h>

#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>

#include "acme_util.h"
#include "acme_publish.h"
#include "acme_dns.h"
#include "acme_preflight.h"
#include "acme_crypto.h"
#include "acme_etcd.h"
#include "acme_conf.h"
#include "mod_acme_config.h"
#include "mod_acme.h"

extern module AP_MODULE_DECLARE_DATA acme_module;

/* The config generation being parsed: directives in virtual hosts still
 * write to the one global object of the main server. */
static acme_global_t *parsing_global;

static acme_settings_t *settings_make(apr_pool_t *p)
{
    acme_settings_t *st = apr_pcalloc(p, sizeof(*st));

    st->agree_tos = ACME_UNSET;
    st->retry_delay = ACME_UNSET;
    st->renew_is_percent = ACME_UNSET;
    st->profile_mandatory = ACME_UNSET;
    st->ari = ACME_UNSET;
    st->require_https = ACME_UNSET;
    st->members = ACME_UNSET;
    st->renew_mode = ACME_UNSET;
    return st;
}

void *acme_config_create_srv(apr_pool_t *p, server_rec *s)
{
    acme_srv_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    if (!s->is_virtual || !parsing_global) {
        acme_global_t *g = apr_pcalloc(p, sizeof(*g));
        g->pool = p;
        g->domains = apr_array_make(p, 10, sizeof(acme_domain_t *));
        g->names = apr_hash_make(p);
        g->defaults = settings_make(p);
        g->auto_restart = ACME_UNSET;
        g->port_http = 80;
        g->port_https = 443;
        g->check_interval = ACME_UNSET;
        g->parallel = ACME_UNSET;
        parsing_global = g;
    }
    sc->global = parsing_global;
    return sc;
}

void *acme_config_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    acme_srv_conf_t *base = basev, *add = addv;
    acme_srv_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    sc->global = base->global ? base->global : add->global;
    sc->domain = add->domain;
    return sc;
}

acme_srv_conf_t *acme_config_get(server_rec *s)
{
    return ap_get_module_config(s->module_config, &acme_module);
}

acme_global_t *acme_config_global(server_rec *s)
{
    return acme_config_get(s)->global;
}

/* ---- context checks ---------------------------------------------------- */

static acme_global_t *global_of(cmd_parms *cmd)
{
    return acme_config_get(cmd->server)->global;
}

/* Where may a directive stand? in_section: also inside <ManagedDomain>. */
static const char *check_context(cmd_parms *cmd, int in_section)
{
    acme_global_t *g = global_of(cmd);

    if (cmd->server->is_virtual) {
        return apr_psprintf(cmd->pool,
                            "%s is not allowed inside <VirtualHost>: put it at the top "
                            "level of the server configuration%s",
                            cmd->cmd->name, in_section ? " or inside <ManagedDomain>" : "");
    }
    if (cmd->path) {
        return apr_psprintf(cmd->pool,
                            "%s is not allowed inside <Directory>, <Location> or <Files>",
                            cmd->cmd->name);
    }
    if (g->current && !in_section) {
        return apr_psprintf(cmd->pool,
                            "%s is a server-wide setting and is not allowed inside "
                            "<ManagedDomain %s>", cmd->cmd->name, g->current->name);
    }
    return NULL;
}

static acme_settings_t *target_settings(cmd_parms *cmd)
{
    acme_global_t *g = global_of(cmd);

    if (!g->current) {
        return g->defaults;
    }
    /* made for the first setting inside <ManagedDomain>: the others share
     * the resolved globals (acme_config_resolve) */
    if (!g->current->settings) {
        g->current->settings = settings_make(cmd->pool);
    }
    return g->current->settings;
}

/* ---- ManagedDomain ---------------------------------------------------- */

static const char *add_domain(cmd_parms *cmd, int argc, char *const argv[],
                              acme_domain_t **pdomain)
{
    acme_global_t *g = global_of(cmd);
    acme_domain_t *d, *other;
    int i, j;

    if (argc < 1) {
        return apr_psprintf(cmd->pool, "%s needs at least one domain name", cmd->cmd->name);
    }
    d = apr_pcalloc(cmd->pool, sizeof(*d));
    d->names = apr_array_make(cmd->pool, argc, sizeof(const char *));
    d->file = cmd->directive ? cmd->directive->filename : "?";
    d->line = cmd->directive ? cmd->directive->line_num : 0;
    d->servers = apr_array_make(cmd->pool, 2, sizeof(server_rec *));
    for (i = 0; i < argc; ++i) {
        char *name = apr_pstrdup(cmd->pool, argv[i]);

        ap_str_tolower(name);
        if (!acme_name_is_valid(name)) {
            return apr_psprintf(cmd->pool,
                                "%s: '%s' is not a valid domain name or IP address "
                                "(letters, digits and '-' in dot-separated labels, "
                                "an optional leading '*.')", cmd->cmd->name, argv[i]);
        }
        for (j = 0; j < d->names->nelts; ++j) {
            if (!strcmp(APR_ARRAY_IDX(d->names, j, const char *), name)) {
                return apr_psprintf(cmd->pool, "%s: '%s' is listed twice", cmd->cmd->name,
                                    argv[i]);
            }
        }
        other = apr_hash_get(g->names, name, APR_HASH_KEY_STRING);
        if (other) {
            return apr_psprintf(cmd->pool,
                                "%s: '%s' is already part of the managed domain '%s' "
                                "(line %d of %s); a name can belong to one managed domain only",
                                cmd->cmd->name, argv[i], other->name, other->line, other->file);
        }
        APR_ARRAY_PUSH(d->names, const char *) = name;
    }
    d->name = APR_ARRAY_IDX(d->names, 0, const char *);
    for (i = 0; i < d->names->nelts; ++i) {
        apr_hash_set(g->names, APR_ARRAY_IDX(d->names, i, const char *), APR_HASH_KEY_STRING, d);
    }
    APR_ARRAY_PUSH(g->domains, acme_domain_t *) = d;
    *pdomain = d;
    return NULL;
}

static const char *cmd_domain(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_domain_t *d;
    const char *err = check_context(cmd, 0);

    if (!err && global_of(cmd)->current) {
        err = "ManagedDomain cannot be nested inside <ManagedDomain>";
    }
    return err ? err : add_domain(cmd, argc, argv, &d);
}

static const char *cmd_domain_section(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_global_t *g = global_of(cmd);
    const char *endp = ap_strrchr_c(arg, '>');
    const char *err, *word;
    apr_array_header_t *names;
    ap_directive_t *dir;
    acme_domain_t *d;
    char *args;

    if ((err = check_context(cmd, 0))) {
        return err;
    }
    if (g->current) {
        return "<ManagedDomain> sections cannot be nested";
    }
    for (dir = cmd->directive->first_child; dir; dir = dir->next) {
        if (strncasecmp(dir->directive, "Managed", 7)) {
            /* httpd would apply it to the whole server, silently */
            return apr_psprintf(cmd->pool, "%s (line %d) cannot be used inside <ManagedDomain>: "
                                "only Managed* directives can. Put it into the <VirtualHost> "
                                "of the domain.", dir->directive, dir->line_num);
        }
    }
    if (!endp) {
        return "<ManagedDomain> section is missing its closing '>'";
    }
    args = apr_pstrndup(cmd->temp_pool, arg, (apr_size_t)(endp - arg));
    names = apr_array_make(cmd->temp_pool, 5, sizeof(char *));
    while (*(word = ap_getword_conf(cmd->temp_pool, (const char **)&args))) {
        APR_ARRAY_PUSH(names, char *) = (char *)word;
    }
    if ((err = add_domain(cmd, names->nelts, (char *const *)names->elts, &d))) {
        return err;
    }
    g->current = d;
    err = ap_walk_config(cmd->directive->first_child, cmd, cmd->context);
    g->current = NULL;
    return err;
}

/* ---- CA settings -------------------------------------------------------- */

/* A file named in the config, resolved against ServerRoot: a regular file now. */
static const char *readable_file(cmd_parms *cmd, const char *arg, const char **ppath)
{
    apr_finfo_t fi;

    *ppath = ap_server_root_relative(cmd->pool, arg);
    if (!*ppath || apr_stat(&fi, *ppath, APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS
        || fi.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file", cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *cmd_ca(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1);
    int i;

    if (err) return err;
    if (argc < 1) return "ManagedCA needs a directory URL or 'letsencrypt' / 'letsencrypt-staging'";
    st->ca_urls = apr_array_make(cmd->pool, argc, sizeof(const char *));
    for (i = 0; i < argc; ++i) {
        const char *url = argv[i];
        apr_uri_t uri;

        if (!strcasecmp(url, "letsencrypt")) url = ACME_DEFAULT_CA;
        else if (!strcasecmp(url, "letsencrypt-staging")) url = ACME_STAGING_CA;
        else if (apr_uri_parse(cmd->pool, url, &uri) != APR_SUCCESS || !uri.scheme
                 || strcasecmp(uri.scheme, "https") || !uri.hostname) {
            return apr_psprintf(cmd->pool,
                                "ManagedCA: '%s' is not an https:// URL of an ACME directory "
                                "(or one of the names letsencrypt, letsencrypt-staging)", url);
        }
        APR_ARRAY_PUSH(st->ca_urls, const char *) = apr_pstrdup(cmd->pool, url);
    }
    return NULL;
}

static const char *cmd_ca_file(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1);

    return err ? err : readable_file(cmd, arg, &st->ca_file);
}

static const char *cmd_http_proxy(cmd_parms *cmd, void *dc, const char *url,
                                  const char *ca_file)
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1);

    if (err) return err;
    st->http_proxy_ca_file = NULL;
    if (!strcasecmp(url, "none")) {
        st->http_proxy = "";   /* overrides a server-wide proxy */
        return ca_file ? "ManagedHttpProxy none takes no CA file" : NULL;
    }
    if (acme_conf_http_proxy(&err, cmd->pool, url) != APR_SUCCESS) return err;
    if (ca_file && strncasecmp(url, "https:", 6)) {
        return "ManagedHttpProxy: a CA file only applies to an https:// proxy (the connection "
               "to an http:// proxy is not encrypted)";
    }
    st->http_proxy = apr_pstrdup(cmd->pool, url);
    return ca_file ? readable_file(cmd, ca_file, &st->http_proxy_ca_file) : NULL;
}

static const char *cmd_require_https(cmd_parms *cmd, void *dc, const char *mode,
                                     const char *opt)
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1), *num;
    char *end = NULL;
    apr_int64_t v;

    if (err) return err;
    st->hsts_max_age = ACME_DEFAULT_HSTS_MAX_AGE;
    if (!strcasecmp(mode, "off")) st->require_https = ACME_HTTPS_OFF;
    else if (!strcasecmp(mode, "temporary")) st->require_https = ACME_HTTPS_TEMPORARY;
    else if (!strcasecmp(mode, "permanent")) st->require_https = ACME_HTTPS_PERMANENT;
    else {
        return apr_psprintf(cmd->pool, "ManagedRequireHttps: '%s' is not off, temporary or "
                            "permanent", mode);
    }
    if (!opt) return NULL;
    if (st->require_https != ACME_HTTPS_PERMANENT) {
        return apr_psprintf(cmd->pool, "ManagedRequireHttps %s: '%s' only goes with permanent "
                            "(only then is Strict-Transport-Security sent)", mode, opt);
    }
    /* up to ten years (browsers cap it anyway); 0 tells them to forget */
    num = strncasecmp(opt, "max-age=", 8) ? "" : opt + 8;
    v = apr_isdigit(*num) ? apr_strtoi64(num, &end, 10) : -1;
    if (v < 0 || *end || v > ACME_HSTS_MAX_AGE_MAX) {
        return apr_psprintf(cmd->pool, "ManagedRequireHttps permanent: '%s' is not "
                            "max-age=SECONDS (0 to %d)", opt, ACME_HSTS_MAX_AGE_MAX);
    }
    st->hsts_max_age = v;
    return NULL;
}

static const char *cmd_contact(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1), *at;

    if (err) return err;
    if (!strncasecmp(arg, "mailto:", 7)) {
        arg += 7;
    }
    at = strchr(arg, '@');
    if (!at || at == arg || !at[1] || strchr(at + 1, '@') || strpbrk(arg, " \t<>\"")) {
        return apr_psprintf(cmd->pool, "ManagedContact: '%s' is not an e-mail address", arg);
    }
    st->contact = apr_pstrcat(cmd->pool, "mailto:", arg, NULL);
    return NULL;
}

static const char *cmd_agree_tos(cmd_parms *cmd, void *dc, int flag)
{
    const char *err = check_context(cmd, 1);

    if (err) return err;
    target_settings(cmd)->agree_tos = flag;
    return NULL;
}

static const char *cmd_challenges(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1);
    int i, j;

    if (err) return err;
    if (argc < 1) return "ManagedChallenges needs at least one of http-01, tls-alpn-01, dns-01";
    st->challenges = apr_array_make(cmd->pool, argc, sizeof(const char *));
    for (i = 0; i < argc; ++i) {
        const char *t = argv[i];
        if (strcasecmp(t, "http-01") && strcasecmp(t, "tls-alpn-01") && strcasecmp(t, "dns-01")) {
            return apr_psprintf(cmd->pool,
                                "ManagedChallenges: unknown challenge type '%s' "
                                "(known: http-01, tls-alpn-01, dns-01)", t);
        }
        for (j = 0; j < st->challenges->nelts; ++j) {
            if (!strcasecmp(APR_ARRAY_IDX(st->challenges, j, const char *), t)) {
                return apr_psprintf(cmd->pool, "ManagedChallenges: '%s' is listed twice", t);
            }
        }
        APR_ARRAY_PUSH(st->challenges, const char *) = apr_pstrdup(cmd->pool, t);
        ap_str_tolower(APR_ARRAY_IDX(st->challenges, st->challenges->nelts - 1, char *));
    }
    return NULL;
}

static const char *cmd_keys(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1);
    int i, j;

    if (err) return err;
    if (argc < 1) return "ManagedKeys needs at least one key type";
    st->key_types = apr_array_make(cmd->pool, argc, sizeof(acme_key_type_t));
    for (i = 0; i < argc; ++i) {
        acme_key_type_t t = acme_key_type_parse(argv[i]);
        if (t == ACME_KEY_NONE) {
            return apr_psprintf(cmd->pool,
                                "ManagedKeys: unknown key type '%s' (known: P-256, P-384, "
                                "RSA-2048, RSA-3072, RSA-4096)", argv[i]);
        }
        for (j = 0; j < st->key_types->nelts; ++j) {
            if (APR_ARRAY_IDX(st->key_types, j, acme_key_type_t) == t) {
                return apr_psprintf(cmd->pool, "ManagedKeys: '%s' is listed twice", argv[i]);
            }
        }
        APR_ARRAY_PUSH(st->key_types, acme_key_type_t) = t;
    }
    return NULL;
}

static const char *parse_duration(cmd_parms *cmd, const char *arg, apr_interval_time_t min,
                                  apr_interval_time_t *pdur)
{
    apr_size_t len = strlen(arg);

    if (len > 0 && apr_isdigit(arg[len - 1])) {
        /* "1" might mean a second, a minute or a day: say which */
        return apr_psprintf(cmd->pool, "%s: '%s' has no unit; write it as %ss, %sm, %sh or %sd",
                            cmd->cmd->name, arg, arg, arg, arg, arg);
    }
    if (acme_duration_parse(pdur, arg, "s") != APR_SUCCESS || *pdur < min) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a duration of at least %s (examples: 30s, 5m, 2h, 7d)",
                            cmd->cmd->name, arg, acme_duration_format(cmd->pool, min));
    }
    return NULL;
}

static const char *cmd_retry_delay(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = check_context(cmd, 1);

    if (err) return err;
    return parse_duration(cmd, arg, apr_time_from_sec(1), &target_settings(cmd)->retry_delay);
}

static const char *cmd_renew_window(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1);
    apr_size_t len = strlen(arg);

    if (err) return err;
    if (len > 1 && arg[len - 1] == '%') {
        char *end;
        double v = strtod(arg, &end);
        if (end != arg + len - 1 || !(v > 0.0 && v < 100.0)) {
            return apr_psprintf(cmd->pool,
                                "ManagedRenewWindow: '%s' is not a percentage between 0%% and "
                                "100%% (example: 33%%)", arg);
        }
        st->renew_is_percent = 1;
        st->renew_percent = v;
        return NULL;
    }
    st->renew_is_percent = 0;
    return parse_duration(cmd, arg, apr_time_from_sec(60), &st->renew_duration);
}

/* ---- server-wide settings --------------------------------------------- */

/* A store directory that can never work fails the syntax check, not the
 * start: its nearest existing ancestor must be a directory, on a real
 * filesystem (not /proc or /sys). A read-only disk is allowed: the store
 * opens for reading and renewal waits. */
static const char *store_dir_can_work(cmd_parms *cmd, const char *dir)
{
    char *path = apr_pstrdup(cmd->temp_pool, dir), *slash;
    struct statfs fs;
    struct stat st;

    while (stat(path, &st) != 0 && (slash = strrchr(path, '/')) != NULL && slash != path) {
        *slash = '\0';
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return apr_psprintf(cmd->pool, "ManagedStoreDir %s: %s is not a directory, so the store "
                            "can never be created there", dir, path);
    }
    if (statfs(path, &fs) == 0 && (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC)) {
        return apr_psprintf(cmd->pool, "ManagedStoreDir %s: %s is a kernel filesystem (/proc "
                            "or /sys), which cannot hold files; choose a directory on a disk, "
                            "such as /var/lib/apache2/acme", dir, path);
    }
    return NULL;
}

static const char *cmd_store_dir(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = check_context(cmd, 0);

    if (err) return err;
    global_of(cmd)->store_dir = ap_server_root_relative(cmd->pool, arg);
    if (!global_of(cmd)->store_dir) {
        return apr_psprintf(cmd->pool, "ManagedStoreDir: invalid path '%s'", arg);
    }
    return store_dir_can_work(cmd, global_of(cmd)->store_dir);
}

/* ManagedStore file | etcd URL...: where accounts, keys and certificates live. */
static const char *cmd_store(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_store_conf_t *sc = &global_of(cmd)->store;
    const char *err = check_context(cmd, 0);
    int i;

    if (err) return err;
    if (argc < 1 || (strcmp(argv[0], "file") && strcmp(argv[0], "etcd"))) {
        return "ManagedStore: use 'file' (the default) or 'etcd URL...', e.g. ManagedStore "
               "etcd https://10.0.0.1:2379 https://10.0.0.2:2379 https://10.0.0.3:2379";
    }
    if (!strcmp(argv[0], "file")) {
        if (argc > 1) return "ManagedStore file takes no further argument";
        sc->etcd = 0;
        sc->urls = NULL;
        return NULL;
    }
    if (argc < 2) {
        return "ManagedStore etcd: name the etcd endpoints, e.g. ManagedStore etcd "
               "https://10.0.0.1:2379 https://10.0.0.2:2379 https://10.0.0.3:2379";
    }
    sc->etcd = 1;
    sc->urls = apr_array_make(cmd->pool, argc - 1, sizeof(const char *));
    for (i = 1; i < argc; ++i) {
        apr_uri_t uri;
        if ((strncmp(argv[i], "http://", 7) && strncmp(argv[i], "https://", 8))
            || apr_uri_parse(cmd->temp_pool, argv[i], &uri) != APR_SUCCESS || !uri.hostname
            || (uri.path && strcmp(uri.path, "/")) || uri.query) {
            return apr_psprintf(cmd->pool, "ManagedStore etcd: '%s' is not an etcd endpoint: "
                                "write it as https://HOST:PORT (or http:// on a trusted "
                                "network)", argv[i]);
        }
        APR_ARRAY_PUSH(sc->urls, const char *) = apr_pstrdup(cmd->pool, argv[i]);
    }
    return NULL;
}

/* The parent reads the key here, as root, like mod_ssl reads its keys:
 * children never need the file. */
static const char *cmd_store_key(cmd_parms *cmd, void *dc, const char *arg)
{
    acme_store_conf_t *sc = &global_of(cmd)->store;
    const char *err = check_context(cmd, 0), *why = NULL;

    if (err) return err;
    sc->key_file = ap_server_root_relative(cmd->pool, arg);
    if (!sc->key_file) {
        return apr_psprintf(cmd->pool, "ManagedStoreEncryptionKey: invalid path '%s'", arg);
    }
    if (acme_store_key_load(&sc->key, cmd->pool, sc->key_file, 0, &why) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ManagedStoreEncryptionKey: %s",
                            why ? why : "cannot be read");
    }
    return NULL;
}

static const char *cmd_store_prefix(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = check_context(cmd, 0);
    apr_size_t i;

    if (err) return err;
    for (i = 0; arg[i]; ++i) {
        if (!apr_isgraph(arg[i])) break;
    }
    if (!arg[0] || arg[i] || i > 200 || strstr(arg, "..")) {
        return apr_psprintf(cmd->pool, "ManagedStorePrefix: '%s' is not a usable etcd key "
                            "prefix: 1 to 200 printable characters without spaces or '..', "
                            "e.g. mod_acme/", arg);
    }
    global_of(cmd)->store.prefix = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *cmd_store_tls(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_store_conf_t *sc = &global_of(cmd)->store;
    const char *err = check_context(cmd, 0);

    if (err) return err;
    if (argc != 1 && argc != 3) {
        return "ManagedStoreTLS takes the CA file of the etcd servers, optionally followed "
               "by a client certificate file and its key file";
    }
    sc->cert_file = sc->cert_key_file = NULL;
    if ((err = readable_file(cmd, argv[0], &sc->ca_file)) != NULL) return err;
    if (argc == 3 && ((err = readable_file(cmd, argv[1], &sc->cert_file)) != NULL
                      || (err = readable_file(cmd, argv[2], &sc->cert_key_file)) != NULL)) {
        return err;
    }
    return NULL;
}

static const char *cmd_store_auth(cmd_parms *cmd, void *dc, const char *user, const char *file)
{
    acme_store_conf_t *sc = &global_of(cmd)->store;
    const char *err = check_context(cmd, 0), *why = NULL, *pw;
    apr_size_t len;

    if (err) return err;
    if (!*user) return "ManagedStoreAuth: the etcd user name is empty";
    sc->user = apr_pstrdup(cmd->pool, user);
    sc->password_file = ap_server_root_relative(cmd->pool, file);
    if (!sc->password_file) {
        return apr_psprintf(cmd->pool, "ManagedStoreAuth: invalid path '%s'", file);
    }
    /* checked here, as the encryption key is, so that configtest says what
     * to fix; the parent reads it again when it connects */
    if (acme_secret_file_read(&pw, &len, cmd->temp_pool, sc->password_file,
                              "the etcd password file", ACME_ETCD_MAX_PASSWORD, 0, NULL, &why)
        != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ManagedStoreAuth: %s", why ? why : "cannot be read");
    }
    return NULL;
}

const char *acme_config_check_store(acme_global_t *g, apr_pool_t *p)
{
    const acme_store_conf_t *sc = &g->store;

    (void)p;
    if (sc->etcd && !sc->key) {
        return "ManagedStore etcd needs ManagedStoreEncryptionKey: private keys are stored in "
               "etcd only encrypted. Make the key with 'openssl rand -out "
               "/etc/apache2/acme-store.key 32', chown root and chmod 0400 it, copy the same "
               "file to every server of the cluster, and add ManagedStoreEncryptionKey "
               "/etc/apache2/acme-store.key";
    }
    return NULL;
}

static const char *cmd_auto_restart(cmd_parms *cmd, void *dc, int flag)
{
    const char *err = check_context(cmd, 0);

    if (err) return err;
    global_of(cmd)->auto_restart = flag;
    return NULL;
}

static const char *cmd_port_map(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_global_t *g = global_of(cmd);
    const char *err = check_context(cmd, 0);
    int i;

    if (err) return err;
    if (argc < 1 || argc > 2) {
        return "ManagedPortMap takes one or two mappings like 80:8080 443:8443 ('-' = unreachable)";
    }
    for (i = 0; i < argc; ++i) {
        int from, port;

        if (acme_conf_port_map(&from, &port, &err, cmd->pool, argv[i]) != APR_SUCCESS) {
            return err;
        }
        *(from == 80 ? &g->port_http : &g->port_https) = port;
    }
    g->port_map_set = 1;
    return NULL;
}

static const char *cmd_check_interval(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = check_context(cmd, 0);

    if (err) return err;
    return parse_duration(cmd, arg, apr_time_from_sec(1), &global_of(cmd)->check_interval);
}

static const char *cmd_parallel(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = check_context(cmd, 0);
    char *end;
    apr_int64_t v;

    if (err) return err;
    v = apr_strtoi64(arg, &end, 10);
    if (!apr_isdigit(*arg) || *end || v < 1 || v > 256) {
        return apr_psprintf(cmd->pool,
                            "ManagedParallelRenewals: '%s' is not a number from 1 to 256", arg);
    }
    global_of(cmd)->parallel = (int)v;
    return NULL;
}

static const char *cmd_eab(cmd_parms *cmd, void *dc, const char *kid, const char *hmac)
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1);
    int none;

    if (err) return err;
    if (!strncasecmp(kid, ACME_EAB_FILE_PREFIX, strlen(ACME_EAB_FILE_PREFIX)) && !hmac) {
        /* read now, by root: the file is readable by root only */
        const char *path = ap_server_root_relative(cmd->pool,
                                                   kid + strlen(ACME_EAB_FILE_PREFIX));
        if (!path || acme_conf_eab_file(&st->eab_kid, &st->eab_hmac, &err, cmd->pool, path, 0)
                     != APR_SUCCESS) {
            return apr_psprintf(cmd->pool, ACMELOG(1701) "ManagedEAB %s: %s", kid,
                                err ? err : "invalid path");
        }
        return NULL;
    }
    if (acme_conf_eab(&none, &err, cmd->pool, kid, hmac) != APR_SUCCESS) {
        return err;
    }
    if (none) {
        st->eab_kid = "";
        st->eab_hmac = "";
        return NULL;
    }
    st->eab_kid = apr_pstrdup(cmd->pool, kid);
    st->eab_hmac = apr_pstrdup(cmd->pool, hmac);
    return NULL;
}

static const char *cmd_profile(cmd_parms *cmd, void *dc, const char *name, const char *flag)
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1), *c;

    if (err) return err;
    for (c = name; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '-' && *c != '_' && *c != '.') {
            return apr_psprintf(cmd->pool, "ManagedProfile: '%s' is not a profile name", name);
        }
    }
    if (flag && strcasecmp(flag, "mandatory")) {
        return apr_psprintf(cmd->pool, "ManagedProfile %s: '%s' is not understood (only "
                            "'mandatory' may follow the name)", name, flag);
    }
    st->profile = *name ? apr_pstrdup(cmd->pool, name) : NULL;
    st->profile_mandatory = flag ? 1 : 0;
    return NULL;
}

static const char *cmd_ari(cmd_parms *cmd, void *dc, int flag)
{
    const char *err = check_context(cmd, 1);

    if (err) return err;
    target_settings(cmd)->ari = flag;
    return NULL;
}

/* A program and its arguments, run without a shell: the program must be an
 * executable file. */
static const char *parse_program(cmd_parms *cmd, int argc, char *const argv[],
                                 apr_array_header_t **pargv)
{
    const char *prog;
    apr_finfo_t fi;
    int i;

    if (argc < 1) {
        return apr_psprintf(cmd->pool, "%s needs a program (and optional arguments)",
                            cmd->cmd->name);
    }
    prog = ap_server_root_relative(cmd->pool, argv[0]);
    if (!prog || apr_stat(&fi, prog, APR_FINFO_TYPE | APR_FINFO_PROT, cmd->temp_pool) != APR_SUCCESS
        || fi.filetype != APR_REG || !(fi.protection & (APR_UEXECUTE | APR_GEXECUTE | APR_WEXECUTE))) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not an executable file "
                            "(it is run directly, without a shell)", cmd->cmd->name, argv[0]);
    }
    *pargv = apr_array_make(cmd->pool, argc, sizeof(const char *));
    APR_ARRAY_PUSH(*pargv, const char *) = prog;
    for (i = 1; i < argc; ++i) {
        APR_ARRAY_PUSH(*pargv, const char *) = apr_pstrdup(cmd->pool, argv[i]);
    }
    return NULL;
}

static const char *cmd_notify(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    const char *err = check_context(cmd, 0);

    return err ? err : parse_program(cmd, argc, argv, &global_of(cmd)->notify_argv);
}

static const char *cmd_members(cmd_parms *cmd, void *dc, const char *mode)
{
    const char *err = check_context(cmd, 1);

    if (err) return err;
    if (!strcasecmp(mode, "auto")) target_settings(cmd)->members = 1;
    else if (!strcasecmp(mode, "manual")) target_settings(cmd)->members = 0;
    else return apr_psprintf(cmd->pool, "ManagedMembers: '%s' is not auto or manual", mode);
    return NULL;
}

static const char *cmd_renew_mode(cmd_parms *cmd, void *dc, const char *mode)
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1);

    if (err) return err;
    if (!strcasecmp(mode, "auto")) st->renew_mode = ACME_RENEW_AUTO;
    else if (!strcasecmp(mode, "always")) st->renew_mode = ACME_RENEW_ALWAYS;
    else if (!strcasecmp(mode, "manual")) st->renew_mode = ACME_RENEW_MANUAL;
    else {
        return apr_psprintf(cmd->pool, "ManagedRenewMode: '%s' is not auto, always or manual",
                            mode);
    }
    return NULL;
}

static const char *cmd_install_cmd(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    const char *err = check_context(cmd, 1);

    return err ? err : parse_program(cmd, argc, argv, &target_settings(cmd)->install_cmd);
}

static const char *cmd_dns_hook(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    const char *err = check_context(cmd, 1);

    return err ? err : parse_program(cmd, argc, argv, &target_settings(cmd)->dns_hook);
}

static const char *cmd_dns_update(cmd_parms *cmd, void *dc, const char *server,
                                  const char *keyfile)
{
    const char *err = check_context(cmd, 1), *path;
    acme_dns_config_t *conf;
    acme_dns_server_t *srv;
    acme_dns_tsig_t *key;

    if (err) return err;
    if (acme_dns_server_parse(&srv, cmd->pool, server, 53, &err) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ManagedDNSUpdate: '%s' is not SERVER[:PORT]: %s", server,
                            err);
    }
    path = ap_server_root_relative(cmd->pool, keyfile);
    if (!path) {
        return apr_psprintf(cmd->pool, "ManagedDNSUpdate: invalid path '%s'", keyfile);
    }
    /* read now, by the parent: the key file is root's, as the store's key */
    if (acme_dns_tsig_load(&key, cmd->pool, path, 0, &err) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ManagedDNSUpdate: %s", err);
    }
    conf = acme_dns_config_make(cmd->pool);
    conf->update = *srv;
    conf->key = key;
    target_settings(cmd)->dns_update = conf;
    return NULL;
}

static const char *cmd_dns_check(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1);

    if (err) return err;
    if (acme_dns_check_args(&st->dns_check, &st->dns_check_timeout, cmd->pool, argc,
                            (const char *const *)argv, &err) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ManagedDNSCheck: %s", err);
    }
    return NULL;
}

static const char *cmd_preflight(cmd_parms *cmd, void *dc, int argc, char *const argv[])
{
    acme_settings_t *st = target_settings(cmd);
    const char *err = check_context(cmd, 1);

    if (err) return err;
    st->preflight = apr_pcalloc(cmd->pool, sizeof(*st->preflight));
    if (acme_preflight_conf_parse(st->preflight, cmd->pool, argc, (const char *const *)argv,
                                  &err) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ManagedPreflight: %s", err);
    }
    (void)dc;
    return NULL;
}

const command_rec acme_cmds[] = {
    AP_INIT_TAKE_ARGV("ManagedDomain", cmd_domain, NULL, RSRC_CONF,
                      "names (DNS names or IP addresses) for one certificate"),
    AP_INIT_RAW_ARGS("<ManagedDomain", cmd_domain_section, NULL, RSRC_CONF,
                     "section with the names of a managed domain and its own settings"),
    AP_INIT_TAKE_ARGV("ManagedCA", cmd_ca, NULL, RSRC_CONF,
                      "ACME directory URL(s) of the CA, or letsencrypt / letsencrypt-staging"),
    AP_INIT_TAKE1("ManagedCACertificateFile", cmd_ca_file, NULL, RSRC_CONF,
                  "PEM file with extra trust anchors for the CA's HTTPS server"),
    AP_INIT_TAKE12("ManagedHttpProxy", cmd_http_proxy, NULL, RSRC_CONF,
                   "HTTP or HTTPS proxy for every request to the CA [CA file of an https "
                   "proxy], or none"),
    AP_INIT_TAKE12("ManagedRequireHttps", cmd_require_https, NULL, RSRC_CONF,
                   "off, temporary or permanent [max-age=SECONDS]: redirect http requests for "
                   "managed names to https; permanent adds Strict-Transport-Security"),
    AP_INIT_TAKE1("ManagedContact", cmd_contact, NULL, RSRC_CONF,
                  "e-mail address for the ACME account (default: ServerAdmin)"),
    AP_INIT_FLAG("ManagedAgreeTOS", cmd_agree_tos, NULL, RSRC_CONF,
                 "on: you accept the CA's terms of service (required to create an account)"),
    AP_INIT_TAKE_ARGV("ManagedChallenges", cmd_challenges, NULL, RSRC_CONF,
                      "allowed challenge types in order of preference"),
    AP_INIT_TAKE_ARGV("ManagedPortMap", cmd_port_map, NULL, RSRC_CONF,
                      "where the CA's ports 80 and 443 arrive locally, e.g. 80:8080 443:8443"),
    AP_INIT_TAKE_ARGV("ManagedKeys", cmd_keys, NULL, RSRC_CONF,
                      "certificate key types: P-256, P-384, RSA-2048, RSA-3072, RSA-4096"),
    AP_INIT_TAKE1("ManagedStoreDir", cmd_store_dir, NULL, RSRC_CONF,
                  "directory for accounts, keys and certificates"),
    AP_INIT_TAKE_ARGV("ManagedStore", cmd_store, NULL, RSRC_CONF,
                      "file (default), or etcd URL...: a store shared by a cluster"),
    AP_INIT_TAKE1("ManagedStoreEncryptionKey", cmd_store_key, NULL, RSRC_CONF,
                  "file of 32 random bytes that encrypts private keys in etcd"),
    AP_INIT_TAKE1("ManagedStorePrefix", cmd_store_prefix, NULL, RSRC_CONF,
                  "key prefix of this cluster in etcd (default mod_acme/)"),
    AP_INIT_TAKE_ARGV("ManagedStoreTLS", cmd_store_tls, NULL, RSRC_CONF,
                      "CA file of the etcd servers [client certificate and key files]"),
    AP_INIT_TAKE2("ManagedStoreAuth", cmd_store_auth, NULL, RSRC_CONF,
                  "etcd user and a file with its password"),
    AP_INIT_FLAG("ManagedAutoRestart", cmd_auto_restart, NULL, RSRC_CONF,
                 "restart gracefully by itself to activate new certificates"),
    AP_INIT_TAKE1("ManagedRetryDelay", cmd_retry_delay, NULL, RSRC_CONF,
                  "first delay before retrying a failed renewal (doubles each time)"),
    AP_INIT_TAKE1("ManagedRenewWindow", cmd_renew_window, NULL, RSRC_CONF,
                  "renew when less than this remains: a percentage of the lifetime or a duration"),
    AP_INIT_TAKE1("ManagedCheckInterval", cmd_check_interval, NULL, RSRC_CONF,
                  "how often certificates are checked for renewal"),
    AP_INIT_TAKE1("ManagedParallelRenewals", cmd_parallel, NULL, RSRC_CONF,
                  "how many domains are worked on at the same time"),
    AP_INIT_TAKE12("ManagedEAB", cmd_eab, NULL, RSRC_CONF,
                   "External Account Binding: key id and base64url HMAC key from the CA, "
                   "file:PATH of a root-only JSON file with both, or none"),
    AP_INIT_TAKE12("ManagedProfile", cmd_profile, NULL, RSRC_CONF,
                   "ACME certificate profile to ask for, optionally 'mandatory'"),
    AP_INIT_FLAG("ManagedARI", cmd_ari, NULL, RSRC_CONF,
                 "follow the CA's ACME Renewal Information (RFC 9773)"),
    AP_INIT_TAKE_ARGV("ManagedNotifyCmd", cmd_notify, NULL, RSRC_CONF,
                      "program run (without a shell) with the event and the domain"),
    AP_INIT_TAKE1("ManagedMembers", cmd_members, NULL, RSRC_CONF,
                  "auto: the ServerName and ServerAlias names of the domain's virtual hosts "
                  "join its certificate; manual (default): only the ManagedDomain's names"),
    AP_INIT_TAKE1("ManagedRenewMode", cmd_renew_mode, NULL, RSRC_CONF,
                  "auto (default): certificates for domains an SSL vhost uses; always: for "
                  "every domain; manual: none is ordered"),
    AP_INIT_TAKE_ARGV("ManagedInstallCmd", cmd_install_cmd, NULL, RSRC_CONF,
                      "program run by root (without a shell) after a new certificate of the "
                      "domain has been activated"),
    AP_INIT_TAKE_ARGV("ManagedDNSHook", cmd_dns_hook, NULL, RSRC_CONF,
                      "program that sets and removes the dns-01 TXT records"),
    AP_INIT_TAKE2("ManagedDNSUpdate", cmd_dns_update, NULL, RSRC_CONF,
                  "DNS server taking RFC 2136 updates for dns-01, and its TSIG key file"),
    AP_INIT_TAKE_ARGV("ManagedDNSCheck", cmd_dns_check, NULL, RSRC_CONF,
                      "servers that must show a dns-01 record before the CA is asked "
                      "[timeout=DURATION]"),
    AP_INIT_TAKE_ARGV("ManagedPreflight", cmd_preflight, NULL, RSRC_CONF,
                      "look at http-01/tls-alpn-01 from here before asking the CA: on, off, "
                      "or ADDRESS [80:PORT] [443:PORT] to connect to instead of the name"),
    {NULL}
};

static void settings_merge(acme_settings_t *st, const acme_settings_t *base)
{
    if (!st->ca_urls) st->ca_urls = base->ca_urls;
    if (!st->ca_file) st->ca_file = base->ca_file;
    if (!st->http_proxy) {
        st->http_proxy = base->http_proxy;
        st->http_proxy_ca_file = base->http_proxy_ca_file;
    }
    if (!st->contact) st->contact = base->contact;
    if (st->agree_tos == ACME_UNSET) st->agree_tos = base->agree_tos;
    if (!st->challenges) st->challenges = base->challenges;
    if (!st->key_types) st->key_types = base->key_types;
    if (st->retry_delay == ACME_UNSET) st->retry_delay = base->retry_delay;
    if (st->renew_is_percent == ACME_UNSET) {
        st->renew_is_percent = base->renew_is_percent;
        st->renew_percent = base->renew_percent;
        st->renew_duration = base->renew_duration;
    }
    if (!st->eab_kid) {
        st->eab_kid = base->eab_kid;
        st->eab_hmac = base->eab_hmac;
    }
    if (st->profile_mandatory == ACME_UNSET) {
        st->profile = base->profile;
        st->profile_mandatory = base->profile_mandatory;
    }
    if (st->ari == ACME_UNSET) st->ari = base->ari;
    if (!st->dns_hook) st->dns_hook = base->dns_hook;
    if (!st->dns_update) st->dns_update = base->dns_update;
    if (!st->dns_check) st->dns_check = base->dns_check;
    if (!st->dns_check_timeout) st->dns_check_timeout = base->dns_check_timeout;
    if (!st->preflight) st->preflight = base->preflight;
    if (st->require_https == ACME_UNSET) {
        st->require_https = base->require_https;
        st->hsts_max_age = base->hsts_max_age;
    }
    if (st->members == ACME_UNSET) st->members = base->members;
    if (st->renew_mode == ACME_UNSET) st->renew_mode = base->renew_mode;
    if (!st->install_cmd) st->install_cmd = base->install_cmd;
}

/* Sets what is still unset to the built-in defaults; changes nothing the
 * second time. */
static void resolve_builtins(acme_settings_t *st, server_rec *base, apr_pool_t *p)
{
    if (!st->ca_urls) {
        st->ca_urls = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(st->ca_urls, const char *) = ACME_DEFAULT_CA;
    }
    if (!st->contact && base->server_admin && strchr(base->server_admin, '@')
        && !strchr(base->server_admin, ' ')) {
        st->contact = apr_pstrcat(p, strncasecmp(base->server_admin, "mailto:", 7) ? "mailto:" : "",
                                  base->server_admin, NULL);
    }
    if (st->agree_tos == ACME_UNSET) st->agree_tos = 0;
    if (!st->challenges) {
        st->challenges = apr_array_make(p, 2, sizeof(const char *));
        APR_ARRAY_PUSH(st->challenges, const char *) = "http-01";
        APR_ARRAY_PUSH(st->challenges, const char *) = "tls-alpn-01";
    }
    if (!st->key_types) {
        st->key_types = apr_array_make(p, 1, sizeof(acme_key_type_t));
        APR_ARRAY_PUSH(st->key_types, acme_key_type_t) = ACME_KEY_P256;
    }
    if (st->retry_delay == ACME_UNSET) st->retry_delay = ACME_DEFAULT_RETRY_DELAY;
    if (!st->preflight) {
        st->preflight = apr_pcalloc(p, sizeof(*st->preflight));
        acme_preflight_conf_init(st->preflight); /* on */
    }
    if (st->eab_kid && !*st->eab_kid) {
        st->eab_kid = st->eab_hmac = NULL; /* "ManagedEAB none" */
    }
    if (st->profile_mandatory == ACME_UNSET) st->profile_mandatory = 0;
    if (st->ari == ACME_UNSET) st->ari = 1;
    if (st->require_https == ACME_UNSET) st->require_https = ACME_HTTPS_OFF;
    if (st->members == ACME_UNSET) st->members = 0;
    if (st->renew_mode == ACME_UNSET) st->renew_mode = ACME_RENEW_AUTO;
    if (st->renew_is_percent == ACME_UNSET) {
        st->renew_is_percent = 1;
        st->renew_percent = ACME_DEFAULT_RENEW_PERCENT;
    }
}

void acme_config_resolve(acme_global_t *g, acme_domain_t *d, server_rec *base, apr_pool_t *p)
{
    resolve_builtins(g->defaults, base, p);
    if (!d->settings) {
        d->settings = g->defaults; /* nothing of its own: one object for all such domains */
        return;
    }
    settings_merge(d->settings, g->defaults);
    resolve_builtins(d->settings, base, p); /* "ManagedEAB none" of its own */
}

int acme_config_renews(const acme_domain_t *d)
{
    switch (d->settings->renew_mode) {
    case ACME_RENEW_ALWAYS: return 1;
    case ACME_RENEW_MANUAL: return 0;
    default: return d->driven;
    }
}

apr_array_header_t *acme_config_publishers(apr_pool_t *p, const acme_settings_t *st)
{
    apr_array_header_t *pubs = apr_array_make(p, 3, sizeof(const acme_publisher_t *));

    APR_ARRAY_PUSH(pubs, const acme_publisher_t *) = &acme_publisher_http01;
    APR_ARRAY_PUSH(pubs, const acme_publisher_t *) = &acme_publisher_tlsalpn01;
    if (st->dns_update) {
        /* RFC 2136 updates, checked where ManagedDNSCheck says, else at the zone's NS */
        acme_dns_config_t *conf = apr_pmemdup(p, st->dns_update, sizeof(*conf));
        if (st->dns_check) conf->check = st->dns_check;
        if (st->dns_check_timeout > 0) conf->check_timeout = st->dns_check_timeout;
        APR_ARRAY_PUSH(pubs, const acme_publisher_t *) = acme_dns_publisher(p, conf);
    }
    else if (st->dns_hook && st->dns_hook->nelts > 0) {
        APR_ARRAY_PUSH(pubs, const acme_publisher_t *) = acme_publisher_dns_hook(p, st->dns_hook);
    }
    return pubs;
}

void acme_config_job_spec(acme_job_spec_t *spec, const acme_domain_t *d)
{
    const acme_settings_t *s = d->settings;

    memset(spec, 0, sizeof(*spec));
    spec->domain = d->name;
    spec->names = d->names;
    spec->status_cache = acme_mod_status_cache;
    spec->ca_urls = s->ca_urls;
    spec->ca_url = (s->ca_urls && s->ca_urls->nelts) ? APR_ARRAY_IDX(s->ca_urls, 0, const char *)
                                                     : ACME_DEFAULT_CA;
    spec->ca_file = s->ca_file;
    spec->proxy = s->http_proxy && *s->http_proxy ? s->http_proxy : NULL;
    spec->proxy_ca_file = s->http_proxy_ca_file;
    spec->eab_kid = s->eab_kid;
    spec->eab_hmac = s->eab_hmac;
    spec->profile = s->profile;
    spec->profile_mandatory = s->profile_mandatory;
    spec->ari = s->ari;
    spec->contact = s->contact;
    spec->agree_tos = s->agree_tos;
    spec->challenges = d->eff_challenges ? d->eff_challenges : s->challenges;
    spec->key_types = s->key_types;
    spec->window.is_percent = s->renew_is_percent;
    spec->window.percent = s->renew_percent;
    spec->window.duration = s->renew_duration;
    spec->retry_delay = s->retry_delay;
    spec->preflight = s->preflight;
}
