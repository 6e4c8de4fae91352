/* acme_conf.c: configuration text parsers without httpd: ManagedPortMap and
 * ManagedEAB values for the glue, and the httpd.conf scan acmectl relies on. */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <glob.h>
#include <dirent.h>
#include <sys/stat.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_file_io.h>
#include <apr_uri.h>

#include "acme_conf.h"
#include "acme_crypto.h"
#include "acme_json.h"
#include "acme_util.h"

/* Include nesting and file count limits: a config that includes itself
 * must end in an error, not in a stack overflow. */
#define CONF_MAX_DEPTH 16
#define CONF_MAX_FILES 4096
#define CONF_MAX_SIZE (16 * 1024 * 1024)

/* ---- directive values ------------------------------------------------------ */

static apr_status_t parse_port(int *pport, const char **perr, apr_pool_t *p, const char *s)
{
    char *end;
    apr_int64_t v;

    if (!strcmp(s, "-")) {
        *pport = 0;
        return APR_SUCCESS;
    }
    v = apr_strtoi64(s, &end, 10);
    if (!apr_isdigit(*s) || *end || v < 1 || v > 65535) {
        *perr = apr_psprintf(p, "ManagedPortMap: '%s' is not a port number or '-'", s);
        return APR_EINVAL;
    }
    *pport = (int)v;
    return APR_SUCCESS;
}

apr_status_t acme_conf_port_map(int *pfrom, int *pport, const char **perr, apr_pool_t *p,
                                const char *mapping)
{
    const char *colon = strchr(mapping, ':');
    const char *from;

    if (!colon) {
        *perr = apr_psprintf(p, "ManagedPortMap: '%s' is not of the form 80:PORT or 443:PORT",
                             mapping);
        return APR_EINVAL;
    }
    from = apr_pstrndup(p, mapping, (apr_size_t)(colon - mapping));
    if (!strcmp(from, "80")) *pfrom = 80;
    else if (!strcmp(from, "443")) *pfrom = 443;
    else {
        *perr = apr_psprintf(p, "ManagedPortMap: '%s' maps port %s, but only the CA's ports 80 "
                             "and 443 can be mapped", mapping, from);
        return APR_EINVAL;
    }
    return parse_port(pport, perr, p, colon + 1);
}

apr_status_t acme_conf_eab(int *pnone, const char **perr, apr_pool_t *p, const char *kid,
                           const char *hmac)
{
    unsigned char *key;
    apr_size_t len;

    *pnone = 0;
    if (!strcasecmp(kid, "none")) {
        *pnone = 1;
        return APR_SUCCESS;
    }
    if (!hmac) {
        *perr = apr_psprintf(p, "ManagedEAB %s: the HMAC key is missing (ManagedEAB "
                             "<key id> <base64url HMAC key>, as the CA gave them, or "
                             "ManagedEAB file:PATH)", kid);
        return APR_EINVAL;
    }
    if (acme_b64url_decode(&key, &len, p, hmac) != APR_SUCCESS || len < 16) {
        /* The value is secret: name the key id, never the HMAC. */
        *perr = apr_psprintf(p, "ManagedEAB %s: the HMAC key is not base64url or is "
                             "shorter than 16 bytes", kid);
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t acme_conf_eab_file(const char **pkid, const char **phmac, const char **perr,
                                apr_pool_t *p, const char *path, int flags)
{
    const char *data, *kid = NULL, *hmac = NULL, *err = NULL;
    acme_json_t *j = NULL;
    apr_size_t len;
    apr_status_t rv;
    int none;

    *pkid = *phmac = NULL;
    rv = acme_secret_file_read(&data, &len, p, path, "the EAB file", 64 * 1024, flags, NULL,
                               &err);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    /* the parser's own message may quote the text, and so the HMAC key */
    rv = APR_EINVAL;
    if (acme_json_parse(&j, p, data, len, NULL) != APR_SUCCESS
        || acme_json_type(j, NULL) != ACME_JSON_OBJECT) {
        err = apr_psprintf(p, "the EAB file %s is not a JSON object: write "
                           "{\"kid\": \"KEY ID\", \"hmac\": \"BASE64URL HMAC KEY\"}, as the CA "
                           "gave them", path);
        goto leave;
    }
    kid = acme_json_gets(j, "kid", NULL);
    hmac = acme_json_gets(j, "hmac", NULL);
    if (!kid || !*kid || !strcasecmp(kid, "none") || !hmac) {
        err = apr_psprintf(p, "the EAB file %s needs a \"kid\" (the key id) and an \"hmac\" "
                           "(the base64url HMAC key) string, as the CA gave them", path);
        goto leave;
    }
    if (acme_conf_eab(&none, &err, p, kid, hmac) != APR_SUCCESS) {
        err = apr_psprintf(p, "the EAB file %s: %s", path, err);
        goto leave;
    }
    *pkid = apr_pstrdup(p, kid);
    *phmac = apr_pstrdup(p, hmac);
    rv = APR_SUCCESS;
leave:
    *perr = err;
    return rv;
}

apr_status_t acme_conf_http_proxy(const char **perr, apr_pool_t *p, const char *url)
{
    apr_uri_t uri;
    const char *shown = url;

    memset(&uri, 0, sizeof(uri));
    if (apr_uri_parse(p, url, &uri) == APR_SUCCESS) {
        /* a proxy URL may carry user:password: messages leave the password out */
        shown = apr_uri_unparse(p, &uri, APR_URI_UNP_OMITPASSWORD);
    }
    if (!uri.scheme || (strcasecmp(uri.scheme, "http") && strcasecmp(uri.scheme, "https"))
        || !uri.hostname || !*uri.hostname || (uri.path && strcmp(uri.path, "/"))
        || uri.query || uri.fragment || (uri.port_str && !uri.port)) {
        *perr = apr_psprintf(p, "ManagedHttpProxy: '%s' is not a proxy URL: write "
                             "http://HOST:PORT or https://HOST:PORT", shown);
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* ---- httpd.conf scan ------------------------------------------------------- */

void acme_conf_scan_init(acme_conf_scan_t *cs, apr_pool_t *p, const char *server_root)
{
    memset(cs, 0, sizeof(*cs));
    cs->pool = p;
    cs->defines = apr_table_make(p, 8);
    cs->domains = apr_array_make(p, 4, sizeof(apr_array_header_t *));
    cs->server_root = server_root;
}

static const char *status_text(apr_pool_t *p, apr_status_t rv)
{
    char buf[256];
    return apr_pstrdup(p, apr_strerror(rv, buf, sizeof(buf)));
}

static apr_status_t read_all(const char **pdata, apr_size_t *plen, const char *path,
                             apr_size_t max, apr_pool_t *p)
{
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;
    apr_size_t n = 0;
    apr_status_t rv;

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
    if (rv != APR_SUCCESS) return rv;
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS && (apr_size_t)fi.size > max) rv = APR_ENOSPC;
    if (rv == APR_SUCCESS) {
        buf = apr_palloc(p, (apr_size_t)fi.size + 1);
        n = (apr_size_t)fi.size;
        rv = n ? apr_file_read_full(f, buf, n, &n) : APR_SUCCESS;
        if (rv == APR_EOF) rv = APR_SUCCESS;
        buf[n] = '\0';
        *pdata = buf;
        *plen = n;
    }
    apr_file_close(f);
    return rv;
}

/* ${NAME}: Define'd variables first, then the environment (as httpd does). */
static const char *expand_vars(acme_conf_scan_t *cs, const char *s)
{
    apr_pool_t *p = cs->pool;
    const char *start, *end, *val;
    char *out = "";

    while ((start = strstr(s, "${")) && (end = strchr(start + 2, '}'))) {
        const char *name = apr_pstrndup(p, start + 2, (apr_size_t)(end - start - 2));
        val = apr_table_get(cs->defines, name);
        if (!val) val = getenv(name);
        out = apr_pstrcat(p, out, apr_pstrndup(p, s, (apr_size_t)(start - s)),
                          val ? val : apr_pstrndup(p, start, (apr_size_t)(end - start + 1)),
                          NULL);
        s = end + 1;
    }
    return apr_pstrcat(p, out, s, NULL);
}

/* One argument as httpd reads it: "quoted", 'quoted' (backslash escapes
 * the quote) or up to the next white space. NULL at the end of the line. */
static const char *next_word(const char **pline, apr_pool_t *p)
{
    const char *s = *pline, *start;
    char *out, *o;

    while (*s && apr_isspace(*s)) ++s;
    if (!*s) {
        *pline = s;
        return NULL;
    }
    if (*s == '"' || *s == '\'') {
        char q = *s++;
        o = out = apr_palloc(p, strlen(s) + 1);
        while (*s && *s != q) {
            if (*s == '\\' && (s[1] == q || s[1] == '\\')) ++s;
            *o++ = *s++;
        }
        *o = '\0';
        if (*s) ++s;
        *pline = s;
        return out;
    }
    start = s;
    while (*s && !apr_isspace(*s)) ++s;
    *pline = s;
    return apr_pstrndup(p, start, (apr_size_t)(s - start));
}

const char *acme_conf_root_relative(acme_conf_scan_t *cs, const char *path)
{
    if (!path || path[0] == '/') return path;
    return apr_pstrcat(cs->pool, cs->server_root ? cs->server_root : ".", "/", path, NULL);
}

static int is_conditional_section(const char *name)
{
    /* Sections that httpd evaluates at read time; we read both branches. */
    static const char *const cond[] = { "ifmodule", "ifdefine", "iffile", "ifdirective",
                                        "ifsection", "ifversion", NULL };
    int i;
    for (i = 0; cond[i]; ++i) {
        if (!strcasecmp(name, cond[i])) return 1;
    }
    return 0;
}

static apr_status_t scan_file(acme_conf_scan_t *cs, const char *path, int depth);

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A directory is included file by file, recursively, in sorted order. */
static apr_status_t scan_dir(acme_conf_scan_t *cs, const char *dir, int depth)
{
    apr_pool_t *p = cs->pool;
    apr_array_header_t *names = apr_array_make(p, 8, sizeof(const char *));
    struct dirent *de;
    DIR *d = opendir(dir);
    apr_status_t rv = APR_SUCCESS;
    int i;

    if (!d) return APR_FROM_OS_ERROR(errno);
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        APR_ARRAY_PUSH(names, const char *) = apr_pstrcat(p, dir, "/", de->d_name, NULL);
    }
    closedir(d);
    qsort(names->elts, (size_t)names->nelts, sizeof(const char *), cmp_str);
    for (i = 0; i < names->nelts && rv == APR_SUCCESS; ++i) {
        rv = scan_file(cs, APR_ARRAY_IDX(names, i, const char *), depth + 1);
    }
    return rv;
}

static apr_status_t scan_include(acme_conf_scan_t *cs, const char *arg, int optional, int depth,
                                 const char *where)
{
    apr_pool_t *p = cs->pool;
    const char *path = acme_conf_root_relative(cs, arg);
    apr_status_t rv = APR_SUCCESS;
    glob_t g;
    size_t i;
    int grv;

    if (cs->no_includes) return APR_SUCCESS;
    if (!strpbrk(path, "*?[")) {
        struct stat st;
        if (stat(path, &st) < 0) {
            if (optional) return APR_SUCCESS;
            cs->err = apr_psprintf(p, "%s: cannot read the included %s: %s", where, path,
                                   strerror(errno));
            return APR_FROM_OS_ERROR(errno);
        }
        return scan_file(cs, path, depth + 1);
    }
    memset(&g, 0, sizeof(g));
    grv = glob(path, 0, NULL, &g);
    if (grv == GLOB_NOMATCH) {
        globfree(&g);
        return APR_SUCCESS;  /* httpd accepts a wildcard that matches nothing */
    }
    if (grv != 0) {
        globfree(&g);
        cs->err = apr_psprintf(p, "%s: cannot expand %s", where, path);
        return APR_EGENERAL;
    }
    for (i = 0; i < g.gl_pathc && rv == APR_SUCCESS; ++i) {
        rv = scan_file(cs, apr_pstrdup(p, g.gl_pathv[i]), depth + 1);
    }
    globfree(&g);
    return rv;
}

/* A ManagedDomain's names, lower case, in the order given. */
static void add_domain(acme_conf_scan_t *cs, const char *words)
{
    apr_array_header_t *names = apr_array_make(cs->pool, 4, sizeof(const char *));
    const char *w;

    while ((w = next_word(&words, cs->pool))) {
        char *lc = apr_pstrdup(cs->pool, w), *c;
        for (c = lc; *c; ++c) *c = (char)apr_tolower(*c);
        APR_ARRAY_PUSH(names, const char *) = lc;
    }
    if (names->nelts > 0) {
        APR_ARRAY_PUSH(cs->domains, apr_array_header_t *) = names;
    }
}

static apr_status_t scan_line(acme_conf_scan_t *cs, const char *line, int depth,
                              const char *where)
{
    apr_pool_t *p = cs->pool;
    const char *s = line, *dir, *a1, *a2;

    while (*s && apr_isspace(*s)) ++s;
    if (!*s || *s == '#') return APR_SUCCESS;
    if (*s == '<') {
        int closing = s[1] == '/';
        const char *name = s + 1 + closing, *e = name;
        while (*e && !apr_isspace(*e) && *e != '>') ++e;
        name = apr_pstrndup(p, name, (apr_size_t)(e - name));
        if (!closing && !strcasecmp(name, "ManagedDomain")) {
            const char *rest = expand_vars(cs, e), *close = strchr(rest, '>');
            add_domain(cs, close ? apr_pstrndup(p, rest, (apr_size_t)(close - rest)) : rest);
        }
        if (!is_conditional_section(name)) {
            cs->section_depth += closing ? -1 : 1;
            if (cs->section_depth < 0) cs->section_depth = 0;
        }
        return APR_SUCCESS;
    }
    s = expand_vars(cs, s);
    dir = next_word(&s, p);
    if (dir && !strcasecmp(dir, "ManagedDomain")) {
        add_domain(cs, s);
        return APR_SUCCESS;
    }
    a1 = next_word(&s, p);
    a2 = a1 ? next_word(&s, p) : NULL;
    if (!dir || !a1) return APR_SUCCESS;
    if (!strcasecmp(dir, "Define")) {
        apr_table_set(cs->defines, a1, a2 ? a2 : "");
    }
    else if (!strcasecmp(dir, "ServerRoot")) {
        cs->server_root = a1;
    }
    else if (!strcasecmp(dir, "Include") || !strcasecmp(dir, "IncludeOptional")) {
        return scan_include(cs, a1, !strcasecmp(dir, "IncludeOptional"), depth, where);
    }
    else if (!strcasecmp(dir, "ManagedStoreDir")) {
        cs->store_dir = acme_conf_root_relative(cs, a1);
    }
    else if (!strcasecmp(dir, "ManagedStore") && cs->section_depth == 0) {
        const char *w;
        cs->etcd_urls = NULL;
        if (!strcasecmp(a1, "etcd")) {
            cs->etcd_urls = apr_array_make(p, 3, sizeof(const char *));
            for (w = a2; w; w = next_word(&s, p)) {
                APR_ARRAY_PUSH(cs->etcd_urls, const char *) = w;
            }
        }
    }
    else if (!strcasecmp(dir, "ManagedStoreEncryptionKey")) {
        cs->store_key = acme_conf_root_relative(cs, a1);
    }
    else if (!strcasecmp(dir, "ManagedStorePrefix")) {
        cs->store_prefix = a1;
    }
    else if (!strcasecmp(dir, "ManagedStoreTLS")) {
        const char *a3 = a2 ? next_word(&s, p) : NULL;
        cs->store_ca = acme_conf_root_relative(cs, a1);
        cs->store_cert = a2 && a3 ? acme_conf_root_relative(cs, a2) : NULL;
        cs->store_cert_key = a2 && a3 ? acme_conf_root_relative(cs, a3) : NULL;
    }
    else if (!strcasecmp(dir, "ManagedStoreAuth") && a2) {
        cs->store_user = a1;
        cs->store_password = acme_conf_root_relative(cs, a2);
    }
    else if (!strcasecmp(dir, "ManagedCACertificateFile")) {
        const char *f = acme_conf_root_relative(cs, a1);
        if (cs->section_depth == 0) cs->ca_file = f;
        if (!cs->ca_file_any) cs->ca_file_any = f;
    }
    else if (!strcasecmp(dir, "ManagedCA") && cs->section_depth == 0) {
        cs->ca_url = a1;
    }
    else if (!strcasecmp(dir, "ManagedRenewWindow") && cs->section_depth == 0) {
        cs->window = a1;
    }
    else if (!strcasecmp(dir, "ManagedEAB") && cs->section_depth == 0) {
        int file = !strncasecmp(a1, ACME_EAB_FILE_PREFIX, strlen(ACME_EAB_FILE_PREFIX));
        cs->eab_file = file ? acme_conf_root_relative(cs, a1 + strlen(ACME_EAB_FILE_PREFIX))
                            : NULL;
        cs->eab_kid = file || !strcasecmp(a1, "none") ? NULL : a1;
    }
    else if (!strcasecmp(dir, "ManagedHttpProxy") && cs->section_depth == 0) {
        cs->http_proxy = strcasecmp(a1, "none") ? a1 : NULL;
        cs->http_proxy_ca = cs->http_proxy && a2 ? acme_conf_root_relative(cs, a2) : NULL;
    }
    return APR_SUCCESS;
}

static apr_status_t scan_text(acme_conf_scan_t *cs, const char *data, apr_size_t len,
                              const char *path, int depth)
{
    apr_pool_t *p = cs->pool;
    char *buf, *line, *next;
    apr_status_t rv;
    int lineno = 0;

    buf = apr_pstrmemdup(p, data, len);
    for (line = buf; line; line = next) {
        char *end;
        apr_size_t l;
        int first = lineno + 1;

        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        ++lineno;
        /* a trailing backslash continues the line */
        l = strlen(line);
        while (l && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t')) {
            line[--l] = '\0';
        }
        while (l && line[l - 1] == '\\' && next) {
            line[l - 1] = ' ';
            end = strchr(next, '\n');
            if (end) *end++ = '\0';
            ++lineno;
            line = apr_pstrcat(p, line, next, NULL);
            next = end;
            l = strlen(line);
            while (l && (line[l - 1] == '\r' || line[l - 1] == ' ')) line[--l] = '\0';
        }
        rv = scan_line(cs, line, depth, apr_psprintf(p, "%s:%d", path, first));
        if (rv != APR_SUCCESS) return rv;
    }
    return APR_SUCCESS;
}

static apr_status_t scan_file(acme_conf_scan_t *cs, const char *path, int depth)
{
    apr_pool_t *p = cs->pool;
    const char *data;
    apr_size_t len;
    struct stat st;
    apr_status_t rv;

    if (depth > CONF_MAX_DEPTH || ++cs->files > CONF_MAX_FILES) {
        cs->err = apr_psprintf(p, "%s: includes nest too deep (does the config include itself?)",
                               path);
        return APR_EINVAL;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        return scan_dir(cs, path, depth);
    }
    rv = read_all(&data, &len, path, CONF_MAX_SIZE, p);
    if (rv != APR_SUCCESS) {
        cs->err = apr_psprintf(p, "cannot read %s: %s", path, status_text(p, rv));
        return rv;
    }
    return scan_text(cs, data, len, path, depth);
}

apr_status_t acme_conf_scan_file(acme_conf_scan_t *cs, const char *path)
{
    return scan_file(cs, path, 0);
}

apr_status_t acme_conf_scan_text(acme_conf_scan_t *cs, const char *data, apr_size_t len,
                                 const char *where)
{
    return scan_text(cs, data, len, where, 0);
}
