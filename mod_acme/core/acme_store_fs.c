/* acme_store_fs.c: the filesystem store, the embedded default backend.
 * Atomic writes (temp file, fsync, rename, fsync dir), lease locks, bounded archive. */

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "acme_json.h"
#include "acme_store.h"
#include "acme_util.h"

#define FS_SCHEMA_FILE "store.json"
/* Below jobs/ so the unprivileged child may create locks there; a dot name
 * so that it never shows up as a job name. */
#define FS_LOCKS_DIR ".locks"
#define FS_NAME_MAX 255
#define FS_TS_LEN 14      /* YYYYmmddHHMMSS */
#define FS_SEQ_MAX_LEN 9  /* archive collision counter ".n" */
#define FS_LOCK_MAX 4096
#define FS_LOCK_MAGIC "acme-lease 2"
#define FS_LOCK_GUARD ".guard"

typedef struct {
    apr_pool_t *pool;
    const char *base;
    acme_store_clock_cb *clock;
    void *clock_baton;
    const char *unwritable; /* why the store could not be set up for writing, or NULL */
} fs_t;

/* Failures of the disk rather than of the configuration: a full or
 * read-only disk, or a quota. */
static int disk_refuses(apr_status_t rv)
{
    return rv == APR_FROM_OS_ERROR(EROFS) || rv == APR_FROM_OS_ERROR(ENOSPC)
           || rv == APR_FROM_OS_ERROR(EDQUOT);
}

static apr_time_t fs_now(const fs_t *fs)
{
    return fs->clock ? fs->clock(fs->clock_baton) : apr_time_now();
}

static apr_status_t os_err(void)
{
    return APR_FROM_OS_ERROR(errno);
}

/* A name that cannot collide with a valid store name (leading dot) nor
 * with a concurrent writer (random). */
static const char *tmp_name(apr_pool_t *p, const char *kind)
{
    unsigned char rnd[8];
    char hex[sizeof(rnd) * 2 + 1];
    apr_size_t i;

    if (acme_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        /* still unique per process and call, which is what O_EXCL needs */
        static apr_uint32_t counter;
        apr_uint64_t v = ((apr_uint64_t)getpid() << 32) | ++counter;
        for (i = 0; i < sizeof(rnd); ++i) {
            rnd[i] = (unsigned char)(v >> (8 * i));
        }
    }
    for (i = 0; i < sizeof(rnd); ++i) {
        hex[2 * i] = "0123456789abcdef"[rnd[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[rnd[i] & 0x0f];
    }
    hex[sizeof(hex) - 1] = '\0';
    return apr_pstrcat(p, ".", kind, ".", hex, NULL);
}

static apr_status_t sync_dir(const char *dir)
{
    apr_status_t rv = APR_SUCCESS;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        return os_err();
    }
    /* some filesystems cannot fsync directories; nothing to do then */
    if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS) {
        rv = os_err();
    }
    close(fd);
    return rv;
}

/* As root, a new file or directory takes the owner of the directory it is
 * made in: non-zero when that is someone else, with *pst saying who. */
static int foreign_dir(struct stat *pst, const char *dir)
{
    return geteuid() == 0 && stat(dir, pst) == 0 && pst->st_uid != 0;
}

/* Writes data to a new temporary file in dir, created with its final mode
 * so a secret is never readable by others, not even for an instant. */

static apr_status_t write_tmp(const char **ptmp, const char *dir, const char *data,
                              apr_size_t len, mode_t mode, int sync, apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;
    const char *tmp = apr_pstrcat(p, dir, "/", tmp_name(p, "tmp"), NULL);
    apr_size_t done = 0;
    struct stat dst;
    int fd, created = 0;

    *ptmp = NULL;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        rv = os_err();
        goto leave;
    }
    created = 1;
    /* the umask may have taken bits away that we want (0644); root (the
     * parent, acmectl) writes files that the directory's owner, the
     * unprivileged child, must still be able to replace */
    if (fchmod(fd, mode) < 0 || (foreign_dir(&dst, dir) && fchown(fd, dst.st_uid, dst.st_gid) < 0)) {
        rv = os_err();
        goto leave;
    }
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rv = os_err();
            goto leave;
        }
        done += (apr_size_t)n;
    }
    if (sync && fsync(fd) < 0) {
        rv = os_err();
        goto leave;
    }
    if (close(fd) < 0) {
        fd = -1;
        rv = os_err();
        goto leave;
    }
    fd = -1;
    *ptmp = tmp;
leave:
    if (fd >= 0) {
        close(fd);
    }
    if (rv != APR_SUCCESS && created) {
        unlink(tmp);
    }
    return rv;
}

/* sync 0: for what can be made again (a temporary certificate, a lease
 * whose holders a crash ends too): atomic, but not synced. */
static apr_status_t write_atomic(const char *dir, const char *fname, const char *data,
                                 apr_size_t len, mode_t mode, int sync, apr_pool_t *p)
{
    apr_status_t rv;
    const char *tmp = NULL;
    const char *target = apr_pstrcat(p, dir, "/", fname, NULL);

    rv = write_tmp(&tmp, dir, data, len, mode, sync, p);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (rename(tmp, target) < 0) {
        rv = os_err();
        unlink(tmp);
        goto leave;
    }
    rv = sync ? sync_dir(dir) : APR_SUCCESS;
leave:
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0901) "store: writing %s failed", target);
    }
    return rv;
}

/* Calls fn for every entry of dir but . and .., with its path in a pool
 * cleared after each: a walk over thousands of domains keeps one entry's
 * memory, not all of them (what a pool held at its peak stays with the
 * process). Goes on after a failing entry; returns the first failure. */
typedef apr_status_t entry_fn(const char *path, const char *name, void *baton, apr_pool_t *p);

static apr_status_t each_entry(const char *dir, entry_fn *fn, void *baton, apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;
    struct dirent *de;
    apr_pool_t *pe;
    DIR *d = opendir(dir);

    if (!d) {
        return os_err();
    }
    apr_pool_create(&pe, p);
    while ((de = readdir(d)) != NULL) {
        apr_status_t rv2;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
            continue;
        }
        apr_pool_clear(pe);
        rv2 = fn(apr_pstrcat(pe, dir, "/", de->d_name, NULL), de->d_name, baton, pe);
        if (rv2 != APR_SUCCESS && rv == APR_SUCCESS) {
            rv = rv2;
        }
    }
    apr_pool_destroy(pe);
    closedir(d);
    return rv;
}

static apr_status_t rm_rf(const char *path, apr_pool_t *p);
static apr_status_t chown_r(const char *path, uid_t uid, gid_t gid, apr_pool_t *p);

static apr_status_t rm_entry(const char *path, const char *name, void *baton, apr_pool_t *p)
{
    (void)name; (void)baton;
    return rm_rf(path, p);
}

/* Removes path and everything below it, never following symlinks. */
static apr_status_t rm_rf(const char *path, apr_pool_t *p)
{
    apr_status_t rv;
    struct stat st;

    if (lstat(path, &st) < 0) {
        return errno == ENOENT ? APR_SUCCESS : os_err();
    }
    if (!S_ISDIR(st.st_mode)) {
        return (unlink(path) < 0 && errno != ENOENT) ? os_err() : APR_SUCCESS;
    }
    rv = each_entry(path, rm_entry, NULL, p);
    if (rv == APR_SUCCESS && rmdir(path) < 0 && errno != ENOENT) {
        rv = os_err();
    }
    return rv;
}

static apr_status_t make_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0) {
        char *parent = strdup(path), *slash = parent ? strrchr(parent, '/') : NULL;
        struct stat pst;
        int bad;
        if (slash) *slash = '\0';
        /* the umask must not loosen or tighten what we decided */
        bad = chmod(path, mode) < 0
              || (slash && foreign_dir(&pst, parent) && chown(path, pst.st_uid, pst.st_gid) < 0);
        bad = bad ? errno : 0;
        free(parent);
        return bad ? APR_FROM_OS_ERROR(bad) : APR_SUCCESS;
    }
    return errno == EEXIST ? APR_SUCCESS : os_err();
}

static mode_t name_dir_mode(acme_store_group_t g)
{
    return g == ACME_SG_ACCOUNTS ? 0700 : 0755;
}

static const char *group_dir(const fs_t *fs, acme_store_group_t g, apr_pool_t *p)
{
    return apr_pstrcat(p, fs->base, "/", acme_store_group_name(g), NULL);
}

/* The one place names become paths: everything is validated here. */
static apr_status_t item_path(const char **ppath, const fs_t *fs, acme_store_group_t g,
                              const char *name, const char *aspect, apr_pool_t *p)
{
    *ppath = NULL;
    if (!acme_store_group_name(g)) {
        return APR_EINVAL;
    }
    if (!name) {
        if (aspect) {
            return APR_EINVAL;
        }
        *ppath = group_dir(fs, g, p);
        return APR_SUCCESS;
    }
    if (!acme_store_name_is_valid(name) || (aspect && !acme_store_name_is_valid(aspect))) {
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, APR_EINVAL,
                 ACMELOG(0902) "store: refusing invalid item name in group %s", acme_store_group_name(g));
        return APR_EINVAL;
    }
    *ppath = aspect ? apr_pstrcat(p, fs->base, "/", acme_store_group_name(g), "/", name, "/", aspect, NULL)
                    : apr_pstrcat(p, fs->base, "/", acme_store_group_name(g), "/", name, NULL);
    return APR_SUCCESS;
}

static apr_status_t fs_load(acme_store_t *s, acme_store_group_t g, const char *name,
                            const char *aspect, const char **pdata, apr_size_t *plen,
                            apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *path;
    apr_status_t rv;

    *pdata = NULL;
    *plen = 0;
    if (!name || !aspect) {
        return APR_EINVAL;
    }
    rv = item_path(&path, fs, g, name, aspect, p);
    if (rv == APR_SUCCESS) {
        rv = acme_file_read(pdata, plen, path, 0, p);
    }
    return rv;
}

static apr_status_t save_item(acme_store_t *s, acme_store_group_t g, const char *name,
                              const char *aspect, const char *data, apr_size_t len,
                              int flags, apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *dir;
    apr_status_t rv;

    if (!name || !aspect || (!data && len)) {
        return APR_EINVAL;
    }
    rv = item_path(&dir, fs, g, name, NULL, p);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (!acme_store_name_is_valid(aspect)) {
        rv = APR_EINVAL;
        goto leave;
    }
    rv = make_dir(dir, name_dir_mode(g));
    if (APR_STATUS_IS_ENOENT(rv) && (rv = make_dir(group_dir(fs, g, p), name_dir_mode(g)))
                                        == APR_SUCCESS) {
        /* the group is missing: the store could not be set up at start */
        rv = make_dir(dir, name_dir_mode(g));
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = write_atomic(dir, aspect, data ? data : "", len, (flags & ACME_STORE_SECRET) ? 0600 : 0644,
                      !(flags & ACME_STORE_VOLATILE), p);
leave:
    return rv;
}

static apr_status_t remove_item(acme_store_t *s, acme_store_group_t g, const char *name,
                                const char *aspect, apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *path, *dir, *aside;
    apr_status_t rv;

    if (!name) {
        return APR_EINVAL;
    }
    rv = item_path(&path, fs, g, name, aspect, p);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (aspect) {
        if (unlink(path) < 0) {
            rv = errno == ENOENT ? APR_SUCCESS : os_err();
            goto leave;
        }
        rv = sync_dir(apr_pstrcat(p, group_dir(fs, g, p), "/", name, NULL));
        goto leave;
    }
    /* Rename first so the name vanishes at once; a crash during the
     * recursive delete leaves only a dot directory that nobody lists. */
    dir = group_dir(fs, g, p);
    aside = apr_pstrcat(p, dir, "/", tmp_name(p, "del"), NULL);
    if (rename(path, aside) < 0) {
        rv = errno == ENOENT ? APR_SUCCESS : os_err();
        goto leave;
    }
    rv = sync_dir(dir);
    if (rv == APR_SUCCESS) {
        rv = rm_rf(aside, p);
    }
leave:
    return rv;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Entries of dir that are valid store names, of the wanted type. */
static apr_status_t list_dir(apr_array_header_t **pnames, const char *dir, int want_dirs,
                             apr_pool_t *p)
{
    apr_array_header_t *names = apr_array_make(p, 10, sizeof(const char *));
    struct dirent *de;
    struct stat st;
    DIR *d;

    *pnames = names;
    d = opendir(dir);
    if (!d) {
        return os_err();
    }
    while ((de = readdir(d)) != NULL) {
        const char *full;
        if (!acme_store_name_is_valid(de->d_name)) {
            continue; /* dotfiles, temp files, anything we would not create */
        }
        full = apr_pstrcat(p, dir, "/", de->d_name, NULL);
        if (lstat(full, &st) < 0) {
            continue; /* removed meanwhile */
        }
        if (want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)) {
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p, de->d_name);
        }
    }
    closedir(d);
    qsort(names->elts, (size_t)names->nelts, sizeof(const char *), cmp_str);
    return APR_SUCCESS;
}

static apr_status_t fs_list(acme_store_t *s, acme_store_group_t g, const char *name,
                            apr_array_header_t **pnames, apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *dir;
    apr_status_t rv;

    *pnames = apr_array_make(p, 1, sizeof(const char *));
    rv = item_path(&dir, fs, g, name, NULL, p);
    if (rv == APR_SUCCESS) {
        rv = list_dir(pnames, dir, name == NULL, p);
    }
    return rv;
}

static apr_status_t fs_mtime(acme_store_t *s, acme_store_group_t g, const char *name,
                             const char *aspect, apr_time_t *pmtime, apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *path;
    apr_finfo_t fi;
    apr_status_t rv;

    *pmtime = 0;
    if (!name) {
        return APR_EINVAL;
    }
    rv = item_path(&path, fs, g, name, aspect, p);
    if (rv == APR_SUCCESS) {
        rv = apr_stat(&fi, path, APR_FINFO_MTIME, p);
        if (rv == APR_INCOMPLETE) {
            rv = APR_SUCCESS;
        }
        if (rv == APR_SUCCESS) {
            *pmtime = fi.mtime;
        }
    }
    return rv;
}

/* ---- archive ------------------------------------------------------------ */

typedef struct {
    const char *entry;
    const char *ts;
    long seq;
} archived_t;

/* Is entry "<name>.<14 digits>[.<1-9 digits>]"? The strict shape keeps
 * "example.org" from claiming "example.org.uk.2024..." entries. */
static int archive_parse(archived_t *a, const char *entry, const char *name, apr_pool_t *p)
{
    apr_size_t nlen = strlen(name), i;
    const char *rest;

    if (strncmp(entry, name, nlen) || entry[nlen] != '.') {
        return 0;
    }
    rest = entry + nlen + 1;
    for (i = 0; i < FS_TS_LEN; ++i) {
        if (rest[i] < '0' || rest[i] > '9') {
            return 0;
        }
    }
    a->entry = entry;
    a->ts = apr_pstrndup(p, rest, FS_TS_LEN);
    a->seq = 0;
    rest += FS_TS_LEN;
    if (!*rest) {
        return 1;
    }
    if (*rest++ != '.' || !*rest) {
        return 0;
    }
    for (i = 0; rest[i]; ++i) {
        if (i >= FS_SEQ_MAX_LEN || rest[i] < '0' || rest[i] > '9') {
            return 0;
        }
        a->seq = a->seq * 10 + (rest[i] - '0');
    }
    return 1;
}

static int cmp_archived_newest_first(const void *a, const void *b)
{
    const archived_t *x = a, *y = b;
    int c = strcmp(y->ts, x->ts);

    if (c) {
        return c;
    }
    return (y->seq > x->seq) - (y->seq < x->seq);
}

static apr_status_t archive_prune(const fs_t *fs, const char *name, int keep, apr_pool_t *p)
{
    const char *dir = group_dir(fs, ACME_SG_ARCHIVE, p);
    apr_array_header_t *entries, *mine;
    apr_status_t rv;
    int i;

    rv = list_dir(&entries, dir, 1, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    mine = apr_array_make(p, entries->nelts, sizeof(archived_t));
    for (i = 0; i < entries->nelts; ++i) {
        archived_t a;
        if (archive_parse(&a, APR_ARRAY_IDX(entries, i, const char *), name, p)) {
            APR_ARRAY_PUSH(mine, archived_t) = a;
        }
    }
    qsort(mine->elts, (size_t)mine->nelts, sizeof(archived_t), cmp_archived_newest_first);
    for (i = keep < 0 ? 0 : keep; i < mine->nelts; ++i) {
        const char *victim = APR_ARRAY_IDX(mine, i, archived_t).entry;
        apr_status_t rv2 = rm_rf(apr_pstrcat(p, dir, "/", victim, NULL), p);
        if (rv2 != APR_SUCCESS) {
            acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, rv2,
                     ACMELOG(0903) "store: could not prune archive/%s", victim);
        }
    }
    return APR_SUCCESS;
}

static apr_status_t archive_pick(const char **ppath, const fs_t *fs, const char *name,
                                 apr_pool_t *p)
{
    const char *dir = group_dir(fs, ACME_SG_ARCHIVE, p), *path;
    apr_time_exp_t tm;
    char ts[32];
    apr_size_t tslen = 0;
    struct stat st;
    long n;

    *ppath = NULL;
    apr_time_exp_gmt(&tm, fs_now(fs));
    apr_strftime(ts, &tslen, sizeof(ts), "%Y%m%d%H%M%S", &tm);
    if (tslen != FS_TS_LEN) {
        return APR_EGENERAL;
    }
    path = apr_pstrcat(p, dir, "/", name, ".", ts, NULL);
    for (n = 1; lstat(path, &st) == 0; ++n) {
        if (n > 999999999L) {
            return APR_EEXIST;
        }
        path = apr_psprintf(p, "%s/%s.%s.%ld", dir, name, ts, n);
    }
    if (errno != ENOENT) {
        return os_err();
    }
    *ppath = path;
    return APR_SUCCESS;
}

static apr_status_t move_item(acme_store_t *s, acme_store_group_t from, acme_store_group_t to,
                              const char *name, int keep_archived, apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *src, *dst, *archived = NULL;
    struct stat st;
    apr_status_t rv;

    if (!name || from == to || to == ACME_SG_ARCHIVE) {
        return APR_EINVAL;
    }
    rv = item_path(&src, fs, from, name, NULL, p);
    if (rv == APR_SUCCESS) {
        rv = item_path(&dst, fs, to, name, NULL, p);
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    /* Nothing to move: the current one must stay, not go to the archive.
     * This is also what a repeated move after full completion sees. */
    if (lstat(src, &st) < 0) {
        rv = os_err();
        goto leave;
    }
    if (!S_ISDIR(st.st_mode)) {
        rv = APR_EINVAL;
        goto leave;
    }
    if (lstat(dst, &st) == 0) {
        rv = archive_pick(&archived, fs, name, p);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        if (rename(dst, archived) < 0) {
            rv = os_err();
            goto leave;
        }
        /* the archive entry must be durable before dst is reused */
        if ((rv = sync_dir(group_dir(fs, ACME_SG_ARCHIVE, p))) != APR_SUCCESS
            || (rv = sync_dir(group_dir(fs, to, p))) != APR_SUCCESS) {
            goto leave;
        }
    }
    else if (errno != ENOENT) {
        rv = os_err();
        goto leave;
    }
    /* As root, what moves takes the owner of the group it lands in: the
     * child's staged files become root's in domains/. */
    if (geteuid() == 0 && stat(group_dir(fs, to, p), &st) == 0
        && (rv = chown_r(src, st.st_uid, st.st_gid, p)) != APR_SUCCESS) {
        goto leave;
    }
    /* A crash here leaves src in place and dst missing: move again completes. */
    if (rename(src, dst) < 0) {
        rv = os_err();
        goto leave;
    }
    if ((rv = sync_dir(group_dir(fs, to, p))) != APR_SUCCESS
        || (rv = sync_dir(group_dir(fs, from, p))) != APR_SUCCESS) {
        goto leave;
    }
    rv = archive_prune(fs, name, keep_archived, p);
leave:
    if (rv != APR_SUCCESS && rv != APR_ENOENT) {
        const char *gfrom = acme_store_group_name(from), *gto = acme_store_group_name(to);
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0904) "store: moving %s/%s to %s failed",
                 gfrom ? gfrom : "?", name, gto ? gto : "?");
    }
    return rv;
}

/* ---- lease locks ---------------------------------------------------------- */

/* A lease file says who holds a lock until when. All lease changes happen
 * under an flock() on a guard file: "create if absent" (O_EXCL) plus
 * "take over if expired, then re-read" lets two contenders both believe
 * they won when a third one releases or takes over in between (the unit
 * test with forked contenders shows it). The kernel drops the guard of a
 * process that dies, so the guard can never go stale; the lease is what
 * survives a crash, and it expires. flock, unlike fcntl locks, also works
 * between threads that open the guard separately. */

typedef struct {
    const char *owner;
    apr_time_t expires;      /* 0: released */
    apr_uint64_t token;
    long pid;                /* the holder's process, on host */
    const char *host;
} lease_t;

static int owner_is_valid(const char *owner)
{
    apr_size_t i;

    if (!owner || !owner[0]) {
        return 0;
    }
    for (i = 0; owner[i]; ++i) {
        if (i >= FS_NAME_MAX || (unsigned char)owner[i] < 0x20
            || (unsigned char)owner[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

static const char *this_host(apr_pool_t *p)
{
    char host[256];

    if (gethostname(host, sizeof(host)) != 0) {
        return "-";
    }
    host[sizeof(host) - 1] = '\0';
    return apr_pstrdup(p, host);
}

static const char *lease_format(const lease_t *l, apr_pool_t *p)
{
    return apr_psprintf(p, FS_LOCK_MAGIC "\nexpires %" APR_TIME_T_FMT "\ntoken %" APR_UINT64_T_FMT
                        "\npid %ld\nhost %s\nowner %s\n", l->expires, l->token, l->pid, l->host,
                        l->owner);
}

static apr_status_t lease_number(apr_int64_t *pn, const char *line, const char *key,
                                 apr_pool_t *p)
{
    char *end = NULL;
    apr_size_t klen = strlen(key);

    if (strncmp(line, key, klen) || line[klen] != ' ') {
        return APR_EINVAL;
    }
    *pn = apr_strtoi64(apr_pstrdup(p, line + klen + 1), &end, 10);
    return (end && !*end && *pn >= 0) ? APR_SUCCESS : APR_EINVAL;
}

/* APR_ENOENT when missing, APR_EINVAL when not a lease file. */
static apr_status_t lease_read(lease_t *l, const char *path, apr_pool_t *p)
{
    const char *data;
    char *lines[6], *last = NULL, *text;
    apr_int64_t n[3];
    apr_size_t len;
    apr_status_t rv;
    int i;

    memset(l, 0, sizeof(*l));
    rv = acme_file_read(&data, &len, path, FS_LOCK_MAX, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (strlen(data) != len || len == 0 || data[len - 1] != '\n') {
        return APR_EINVAL;
    }
    text = apr_pstrdup(p, data);
    for (i = 0; i < 6; ++i) {
        lines[i] = apr_strtok(i ? NULL : text, "\n", &last);
        if (!lines[i]) return APR_EINVAL;
    }
    if (apr_strtok(NULL, "\n", &last) || strcmp(lines[0], FS_LOCK_MAGIC)
        || lease_number(&n[0], lines[1], "expires", p) != APR_SUCCESS
        || lease_number(&n[1], lines[2], "token", p) != APR_SUCCESS
        || lease_number(&n[2], lines[3], "pid", p) != APR_SUCCESS
        || strncmp(lines[4], "host ", 5) || strncmp(lines[5], "owner ", 6)) {
        return APR_EINVAL;
    }
    l->expires = (apr_time_t)n[0];
    l->token = (apr_uint64_t)n[1];
    l->pid = (long)n[2];
    l->host = lines[4] + 5;
    l->owner = lines[5] + 6;
    return owner_is_valid(l->owner) ? APR_SUCCESS : APR_EINVAL;
}

/* A lease is held while it has not expired and its process lives: a
 * holder killed on this host does not make the next one wait. */
static int lease_held(const lease_t *l, apr_time_t now, apr_pool_t *p)
{
    if (!l->owner || l->expires <= now) {
        return 0;
    }
    if (l->pid > 0 && !strcmp(l->host, this_host(p)) && kill((pid_t)l->pid, 0) < 0
        && errno == ESRCH) {
        return 0;
    }
    return 1;
}

static const char *locks_dir(const fs_t *fs, apr_pool_t *p)
{
    return apr_pstrcat(p, group_dir(fs, ACME_SG_JOBS, p), "/" FS_LOCKS_DIR, NULL);
}

/* Returns the guard's descriptor in *pfd, held exclusively. */
static apr_status_t guard_acquire(int *pfd, const char *dir, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/" FS_LOCK_GUARD, NULL);
    int fd;

    *pfd = -1;
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        return os_err();
    }
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            apr_status_t rv = os_err();
            close(fd);
            return rv;
        }
    }
    *pfd = fd;
    return APR_SUCCESS;
}

static void guard_release(int fd)
{
    if (fd >= 0) {
        close(fd); /* drops the flock */
    }
}


static const char *lock_path(const fs_t *fs, const char *name, apr_pool_t *p)
{
    return apr_pstrcat(p, locks_dir(fs, p), "/", name, NULL);
}

/* Under the guard: is c still the current claim? */
static apr_status_t fence_check(const fs_t *fs, const acme_store_claim_t *c, apr_pool_t *p)
{
    lease_t cur;

    if (lease_read(&cur, lock_path(fs, c->name, p), p) != APR_SUCCESS
        || cur.token != c->token || strcmp(cur.owner, c->owner)
        || !lease_held(&cur, fs_now(fs), p)) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, 0, ACMELOG(0907) "store: a write for %s with the "
                 "claim token %" APR_UINT64_T_FMT " of '%s' is refused: that claim is no longer "
                 "current (its lease ran out and %s)", c->name, c->token, c->owner,
                 cur.owner && cur.token != c->token
                     ? apr_psprintf(p, "'%s' holds token %" APR_UINT64_T_FMT, cur.owner, cur.token)
                     : "nobody holds it now");
        return ACME_STORE_EFENCED;
    }
    return APR_SUCCESS;
}

/* Runs a write under the guard when s is a fenced view. */
static apr_status_t fence_enter(int *pguard, acme_store_t *s, apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    apr_status_t rv;

    *pguard = -1;
    if (!s->fence) {
        return APR_SUCCESS;
    }
    rv = guard_acquire(pguard, locks_dir(fs, p), p);
    if (rv == APR_SUCCESS) {
        rv = fence_check(fs, s->fence, p);
    }
    return rv;
}

static apr_status_t fs_claim(acme_store_t *s, acme_store_claim_t **pclaim, const char *name,
                             const char *owner, apr_interval_time_t lease, apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *dir, *content;
    acme_store_claim_t *c;
    apr_time_t now;
    lease_t cur, next;
    apr_status_t rv;
    int guard = -1;

    *pclaim = NULL;
    if (!acme_store_name_is_valid(name) || !owner_is_valid(owner) || lease <= 0) {
        return APR_EINVAL;
    }
    dir = locks_dir(fs, p);
    if ((rv = make_dir(dir, 0755)) != APR_SUCCESS
        || (rv = guard_acquire(&guard, dir, p)) != APR_SUCCESS) {
        goto leave;
    }
    /* the clock is read once we may act, not while we waited */
    now = fs_now(fs);
    rv = lease_read(&cur, lock_path(fs, name, p), p);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)) {
        /* we never write partial leases, so this is damage, not a holder:
         * blocking renewals forever would be worse than taking it */
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, rv,
                 ACMELOG(0905) "store: lock file %s is unreadable, taking it over",
                 lock_path(fs, name, p));
        memset(&cur, 0, sizeof(cur));
    }
    c = apr_pcalloc(p, sizeof(*c));
    c->name = apr_pstrdup(p, name);
    c->lease = lease;
    if (lease_held(&cur, now, p) && strcmp(cur.owner, owner)) {
        c->owner = apr_pstrdup(p, cur.owner);
        *pclaim = c; /* says who holds it */
        rv = APR_EBUSY;
        goto leave;
    }
    next.owner = owner;
    next.expires = now + lease;
    /* ours again: the same token; taken over: a greater one */
    next.token = lease_held(&cur, now, p) ? cur.token : cur.token + 1;
    next.pid = (long)getpid();
    next.host = this_host(p);
    content = lease_format(&next, p);
    rv = write_atomic(dir, name, content, strlen(content), 0644, 0, p);
    if (rv == APR_SUCCESS) {
        c->owner = apr_pstrdup(p, owner);
        c->token = next.token;
        *pclaim = c;
    }
leave:
    guard_release(guard);
    return rv;
}

/* Renews (extends) or releases (ends) c's lease while c is still the
 * current claim: never takes back a claim that was released or taken
 * over. The file stays after a release, so the next token is greater than
 * every earlier one. */
static apr_status_t lease_rewrite(acme_store_t *s, acme_store_claim_t *c, int release,
                                  apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *dir = locks_dir(fs, p), *content;
    lease_t cur;
    apr_status_t rv;
    int guard = -1;

    rv = guard_acquire(&guard, dir, p);
    if (rv == APR_SUCCESS && (lease_read(&cur, lock_path(fs, c->name, p), p) != APR_SUCCESS
                              || cur.token != c->token || strcmp(cur.owner, c->owner)
                              || !lease_held(&cur, fs_now(fs), p))) {
        rv = release ? APR_SUCCESS : ACME_STORE_EFENCED; /* not ours (any more) */
        goto leave;
    }
    if (rv == APR_SUCCESS) {
        cur.expires = release ? 0 : fs_now(fs) + c->lease;
        content = lease_format(&cur, p);
        rv = write_atomic(dir, c->name, content, strlen(content), 0644, 0, p);
    }
    else if (release && APR_STATUS_IS_ENOENT(rv)) {
        rv = APR_SUCCESS; /* no locks directory, no lock */
    }
leave:
    guard_release(guard);
    return rv;
}

static apr_status_t fs_renew(acme_store_t *s, acme_store_claim_t *c, apr_pool_t *p)
{
    return lease_rewrite(s, c, 0, p);
}

static apr_status_t fs_release(acme_store_t *s, acme_store_claim_t *c, apr_pool_t *p)
{
    return lease_rewrite(s, c, 1, p);
}

/* ---- writes, fenced when the view carries a claim ------------------------ */

static apr_status_t fs_save(acme_store_t *s, acme_store_group_t g, const char *name,
                            const char *aspect, const char *data, apr_size_t len, int flags,
                            apr_pool_t *p)
{
    int guard;
    apr_status_t rv = fence_enter(&guard, s, p);

    if (rv == APR_SUCCESS) rv = save_item(s, g, name, aspect, data, len, flags, p);
    guard_release(guard);
    return rv;
}

static apr_status_t fs_remove(acme_store_t *s, acme_store_group_t g, const char *name,
                              const char *aspect, apr_pool_t *p)
{
    int guard;
    apr_status_t rv = fence_enter(&guard, s, p);

    if (rv == APR_SUCCESS) rv = remove_item(s, g, name, aspect, p);
    guard_release(guard);
    return rv;
}

static apr_status_t fs_move(acme_store_t *s, acme_store_group_t from, acme_store_group_t to,
                            const char *name, int keep_archived, apr_pool_t *p)
{
    int guard;
    apr_status_t rv = fence_enter(&guard, s, p);

    if (rv == APR_SUCCESS) rv = move_item(s, from, to, name, keep_archived, p);
    guard_release(guard);
    return rv;
}

static const char *fs_path(acme_store_t *s, acme_store_group_t g, const char *name,
                           const char *aspect, apr_pool_t *p)
{
    const char *path;

    return item_path(&path, s->baton, g, name, aspect, p) == APR_SUCCESS ? path : NULL;
}

/* ---- creation and ownership ---------------------------------------------- */

static apr_status_t schema_check(const char *base, const char **perr, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, base, "/" FS_SCHEMA_FILE, NULL);
    const char *data, *jerr = NULL;
    static const char fresh[] = "{\"schema\": 1}\n";
    acme_json_t *json;
    apr_size_t len;
    long long schema;
    apr_status_t rv;

    rv = acme_file_read(&data, &len, path, 64 * 1024, p);
    if (APR_STATUS_IS_ENOENT(rv)) {
        rv = write_atomic(base, FS_SCHEMA_FILE, fresh, sizeof(fresh) - 1, 0644, 1, p);
        if (rv != APR_SUCCESS) {
            *perr = apr_psprintf(p, "cannot write the store schema file %s", path);
        }
        goto leave;
    }
    if (rv != APR_SUCCESS) {
        *perr = apr_psprintf(p, "cannot read the store schema file %s", path);
        goto leave;
    }
    if (acme_json_parse(&json, p, data, len, &jerr) != APR_SUCCESS) {
        rv = APR_EINVAL;
        *perr = apr_psprintf(p, "the store schema file %s is corrupt (%s); "
                             "it must contain {\"schema\": %d}",
                             path, jerr ? jerr : "not JSON", ACME_STORE_SCHEMA);
        goto leave;
    }
    schema = acme_json_getl(json, "schema", NULL);
    if (acme_json_type(json, "schema", NULL) != ACME_JSON_INT || schema < 1) {
        rv = APR_EINVAL;
        *perr = apr_psprintf(p, "the store schema file %s is corrupt: no valid \"schema\" "
                             "number; it must contain {\"schema\": %d}",
                             path, ACME_STORE_SCHEMA);
        goto leave;
    }
    if (schema > ACME_STORE_SCHEMA) {
        rv = APR_EGENERAL;
        /* APR's formatter has no %lld */
        *perr = apr_psprintf(p, "the store in %s has schema %" APR_INT64_T_FMT ", but this "
                             "mod_acme (%s) only knows schema %d: it was written by a newer "
                             "version; refusing to use it", base, (apr_int64_t)schema,
                             ACME_VERSION, ACME_STORE_SCHEMA);
        goto leave;
    }
leave:
    return rv;
}

apr_status_t acme_store_fs_create(acme_store_t **pstore, apr_pool_t *p, const char *base_dir,
                                  const char **perr)
{
    acme_store_t *s = NULL;
    fs_t *fs;
    char *base;
    apr_size_t blen;
    apr_status_t rv;
    const char *err = NULL;
    int g, guard = -1;

    *pstore = NULL;
    if (!base_dir || !base_dir[0]) {
        rv = APR_EINVAL;
        err = "no store directory given";
        goto leave;
    }
    base = apr_pstrdup(p, base_dir);
    blen = strlen(base);
    while (blen > 1 && base[blen - 1] == '/') {
        base[--blen] = '\0';
    }
    rv = apr_dir_make_recursive(base, APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE
                                          | APR_FPROT_GREAD | APR_FPROT_GEXECUTE
                                          | APR_FPROT_WREAD | APR_FPROT_WEXECUTE, p);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
        /* The directory is not there, and cannot be made: an error in the
         * configuration, unless the disk is full or read-only, when the
         * server must still start (with temporary certificates). */
        if (!disk_refuses(rv)) {
            err = apr_psprintf(p, "cannot create the store directory %s", base);
            goto leave;
        }
        err = apr_psprintf(p, "cannot create the store directory %s", base);
    }
    else {
        rv = schema_check(base, &err, p);
        if (rv != APR_SUCCESS && !disk_refuses(rv)) {
            goto leave;
        }
    }
    fs = apr_pcalloc(p, sizeof(*fs));
    fs->pool = p;
    fs->base = base;
    for (g = 0; g < ACME_SG_COUNT && !err; ++g) {
        const char *dir = group_dir(fs, (acme_store_group_t)g, p);
        if (make_dir(dir, name_dir_mode((acme_store_group_t)g)) != APR_SUCCESS) {
            err = apr_psprintf(p, "cannot create the store directory %s", dir);
        }
    }
    if (!err && make_dir(locks_dir(fs, p), 0755) != APR_SUCCESS) {
        err = apr_psprintf(p, "cannot create the store directory %s", locks_dir(fs, p));
    }
    /* created now, by the parent, so that set_owner hands it to the child */
    if (!err && guard_acquire(&guard, locks_dir(fs, p), p) != APR_SUCCESS) {
        err = apr_psprintf(p, "cannot create the lock guard in %s", locks_dir(fs, p));
    }
    guard_release(guard);
    if (!err) {
        /* everything exists, but does the disk still take a file? (full) */
        const char *tmp;
        if (write_tmp(&tmp, base, "probe", 5, 0644, 0, p) != APR_SUCCESS) {
            err = apr_psprintf(p, "cannot write a file in %s", base);
        }
        else {
            unlink(tmp);
        }
    }
    /* What is there can still be read and served; writes fail, each with
     * its own error, until the disk takes them again. */
    rv = APR_SUCCESS;
    fs->unwritable = err;
    s = apr_pcalloc(p, sizeof(*s));
    s->baton = fs;
    s->load = fs_load;
    s->save = fs_save;
    s->remove = fs_remove;
    s->list = fs_list;
    s->mtime = fs_mtime;
    s->move = fs_move;
    s->claim = fs_claim;
    s->renew = fs_renew;
    s->release = fs_release;
    s->kind = "file";
    s->where = base;
    s->path = fs_path;
    *pstore = s;
leave:
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0906) "store: %s", err ? err : "failed");
    }
    if (perr) {
        *perr = err;
    }
    return rv;
}

/* Removes what interrupted writes left: ".tmp.*" files and ".del.*"
 * directories last changed before 'before'; descends depth levels into
 * names. */
typedef struct {
    apr_time_t before;
    int depth;
    int removed;
} sweep_t;

static apr_status_t sweep_entry(const char *path, const char *name, void *baton, apr_pool_t *p)
{
    sweep_t *sw = baton;
    int stale = !strncmp(name, ".tmp.", 5) || !strncmp(name, ".del.", 5);
    struct stat st;

    if (lstat(path, &st) < 0) {
        return APR_SUCCESS;
    }
    if (stale && apr_time_from_sec(st.st_mtime) < sw->before) {
        sw->removed += rm_rf(path, p) == APR_SUCCESS;
    }
    else if (!stale && sw->depth > 0 && S_ISDIR(st.st_mode) && acme_store_name_is_valid(name)) {
        sweep_t below = {sw->before, sw->depth - 1, 0};
        each_entry(path, sweep_entry, &below, p);
        sw->removed += below.removed;
    }
    return APR_SUCCESS;
}

static int sweep_dir(const char *dir, apr_time_t before, int depth, apr_pool_t *p)
{
    sweep_t sw = {before, depth, 0};

    each_entry(dir, sweep_entry, &sw, p);
    return sw.removed;
}

int acme_store_fs_sweep(acme_store_t *s, apr_interval_time_t age, apr_pool_t *p)
{
    const fs_t *fs;
    int g, n = 0;

    if (!s || s->load != fs_load) {
        return 0;
    }
    fs = s->baton;
    for (g = 0; g < ACME_SG_COUNT; ++g) {
        n += sweep_dir(group_dir(fs, (acme_store_group_t)g, p), fs_now(fs) - age, 1, p);
    }
    n += sweep_dir(fs->base, fs_now(fs) - age, 0, p);
    return n;
}

apr_status_t acme_store_fs_remove_all(acme_store_t *s, apr_pool_t *p)
{
    return s && s->load == fs_load ? rm_rf(((const fs_t *)s->baton)->base, p) : APR_EINVAL;
}


static int is_fs_store(const acme_store_t *s)
{
    return s && s->load == fs_load;
}


void acme_store_fs_set_clock(acme_store_t *s, acme_store_clock_cb *cb, void *baton)
{
    if (is_fs_store(s)) {
        fs_t *fs = s->baton;
        fs->clock = cb;
        fs->clock_baton = baton;
    }
}

typedef struct {
    uid_t uid;
    gid_t gid;
} owner_t;

static apr_status_t chown_entry(const char *path, const char *name, void *baton, apr_pool_t *p)
{
    const owner_t *o = baton;
    apr_status_t rv = chown_r(path, o->uid, o->gid, p);

    (void)name;
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv; /* removed meanwhile */
}

static apr_status_t chown_r(const char *path, uid_t uid, gid_t gid, apr_pool_t *p)
{
    owner_t o = {uid, gid};
    struct stat st;

    if (lstat(path, &st) < 0) {
        return os_err();
    }
    /* lchown: a symlink planted below must not hand out a foreign file */
    if (lchown(path, uid, gid) < 0) {
        return os_err();
    }
    return S_ISDIR(st.st_mode) ? each_entry(path, chown_entry, &o, p) : APR_SUCCESS;
}

apr_status_t acme_store_fs_set_owner(acme_store_t *s, apr_uid_t uid, apr_gid_t gid,
                                     apr_pool_t *p)
{
    static const acme_store_group_t child_groups[] = {
        ACME_SG_ACCOUNTS, ACME_SG_STAGING, ACME_SG_CHALLENGES, ACME_SG_JOBS
    };
    const fs_t *fs;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t i;

    if (!is_fs_store(s)) {
        return APR_EINVAL;
    }
    fs = s->baton;
    for (i = 0; i < sizeof(child_groups) / sizeof(child_groups[0]); ++i) {
        const char *dir = group_dir(fs, child_groups[i], p);
        apr_status_t rv2 = chown_r(dir, (uid_t)uid, (gid_t)gid, p);
        if (rv2 != APR_SUCCESS) {
            acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv2,
                     ACMELOG(0907) "store: cannot hand %s to uid %ld gid %ld", dir, (long)uid, (long)gid);
            if (rv == APR_SUCCESS) {
                rv = rv2;
            }
        }
    }
    /* Activated results were written by the child: domains/ and the
     * archive belong to the parent alone. */
    {
        static const acme_store_group_t parent_groups[] = {ACME_SG_DOMAINS, ACME_SG_ARCHIVE};
        for (i = 0; i < sizeof(parent_groups) / sizeof(parent_groups[0]); ++i) {
            const char *dir = group_dir(fs, parent_groups[i], p);
            apr_status_t rv2 = chown_r(dir, geteuid(), getegid(), p);
            if (rv2 != APR_SUCCESS && rv == APR_SUCCESS) {
                rv = rv2;
            }
        }
    }
    return rv;
}

/* ---- JSON convenience ------------------------------------------------------ */

