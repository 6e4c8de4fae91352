/* acme_store_fs.c: the filesystem store, the embedded default backend.
 * Atomic writes (temp file, fsync, rename, fsync dir), lease locks, bounded archive.
 *
 * The unprivileged child (www-data: every web application's account) owns
 * accounts/, staging/, challenges/ and jobs/, and root works in them too. So
 * nothing here resolves a path below the store directory: every operation
 * walks from the store's descriptor, one component at a time, with
 * O_NOFOLLOW, and acts relative to the directory it opened (openat, fstatat,
 * unlinkat, renameat). A symlink or a swapped directory can then only lead
 * back into what its writer could reach anyway. */

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
/* The store is base/group/name/aspect; anything deeper was not made by us. */
#define FS_WALK_DEPTH 4
/* A staged result holds a few files; more is not a result. */
#define FS_COPY_MAX 64
/* The guard is held for microseconds; whoever holds it longer (a stopped
 * process, or the child's account on purpose) must not stall the parent. */
#define FS_GUARD_WAIT apr_time_from_sec(10)

typedef struct {
    apr_pool_t *pool;
    const char *base;
    int basefd;             /* base, open for the store's life; -1: opened for each use */
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

static void fd_close(int *pfd)
{
    if (*pfd >= 0) {
        int saved = errno;
        close(*pfd);
        errno = saved;
        *pfd = -1;
    }
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

static apr_status_t sync_fd(int fd)
{
    /* some filesystems cannot fsync directories; nothing to do then */
    return (fsync(fd) < 0 && errno != EINVAL && errno != EROFS) ? os_err() : APR_SUCCESS;
}

/* ---- descriptors ------------------------------------------------------------ */

/* Opens the directory name below dirfd; a symlink there is refused (ELOOP
 * or ENOTDIR), never followed. */
static int dir_open_at(int dirfd, const char *name)
{
    return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* As root, a new file or directory takes the owner of the directory it is
 * made in: non-zero when that is someone else, with *pst saying who. */
static int foreign_dir(struct stat *pst, int dirfd)
{
    return geteuid() == 0 && fstat(dirfd, pst) == 0 && pst->st_uid != 0;
}

/* Opens (and with mode != 0, when it is missing, makes) the directory name
 * below dirfd. What exists already is used only if it is a real directory. */
static apr_status_t sub_open(int *pfd, int dirfd, const char *name, mode_t mode)
{
    apr_status_t rv = APR_SUCCESS;
    struct stat dst;
    int made = 0;

    *pfd = dir_open_at(dirfd, name);
    if (*pfd >= 0) {
        return APR_SUCCESS;
    }
    if (!mode || errno != ENOENT) {
        return os_err();
    }
    if (mkdirat(dirfd, name, mode) == 0) {
        made = 1;
    }
    else if (errno != EEXIST) {
        return os_err();
    }
    *pfd = dir_open_at(dirfd, name);
    if (*pfd < 0) {
        return os_err();
    }
    /* the umask must not loosen or tighten what we decided */
    if (made && (fchmod(*pfd, mode) < 0
                 || (foreign_dir(&dst, dirfd) && fchown(*pfd, dst.st_uid, dst.st_gid) < 0))) {
        rv = os_err();
        fd_close(pfd);
    }
    return rv;
}

static mode_t name_dir_mode(acme_store_group_t g)
{
    return g == ACME_SG_ACCOUNTS ? 0700 : 0755;
}

/* Where an item is, for messages and for mod_ssl's hand-off (domains/ is
 * root's): never opened by this file. */
static const char *item_where(const fs_t *fs, acme_store_group_t g, const char *name,
                              const char *aspect, apr_pool_t *p)
{
    return apr_pstrcat(p, fs->base, "/", acme_store_group_name(g), name ? "/" : "",
                       name ? name : "", aspect ? "/" : "", aspect ? aspect : "", NULL);
}

/* The one place names are checked: they come from config and from the CA. */
static apr_status_t names_check(acme_store_group_t g, const char *name, const char *aspect)
{
    if (!acme_store_group_name(g) || (!name && aspect)) {
        return APR_EINVAL;
    }
    if ((name && !acme_store_name_is_valid(name)) || (aspect && !acme_store_name_is_valid(aspect))) {
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, APR_EINVAL,
                 ACMELOG(0902) "store: refusing invalid item name in group %s", acme_store_group_name(g));
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static apr_status_t base_open(int *pfd, const fs_t *fs)
{
    /* the configured directory itself is root's choice: it may be a symlink */
    *pfd = open(fs->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return *pfd < 0 ? os_err() : APR_SUCCESS;
}

/* The store directory, for a walk below it: the descriptor kept open
 * since the store was made; when it could not be opened then (a full or
 * read-only disk kept it from being made), opened now into *pown, which
 * the caller closes. */
static apr_status_t base_get(int *pfd, int *pown, const fs_t *fs)
{
    apr_status_t rv = APR_SUCCESS;

    *pown = -1;
    if (fs->basefd >= 0) {
        *pfd = fs->basefd;
    }
    else if ((rv = base_open(pown, fs)) == APR_SUCCESS) {
        *pfd = *pown;
    }
    return rv;
}

/* Opens group g's directory, or with name its directory for name; with
 * create, makes what is missing on the way. */
static apr_status_t dir_open(int *pfd, const fs_t *fs, acme_store_group_t g, const char *name,
                             int create)
{
    mode_t mode = create ? name_dir_mode(g) : 0;
    int base = -1, own = -1, gfd = -1;
    apr_status_t rv;

    *pfd = -1;
    if ((rv = names_check(g, name, NULL)) != APR_SUCCESS
        || (rv = base_get(&base, &own, fs)) != APR_SUCCESS
        || (rv = sub_open(&gfd, base, acme_store_group_name(g), mode)) != APR_SUCCESS) {
        goto leave;
    }
    if (!name) {
        *pfd = gfd;
        gfd = -1;
        goto leave;
    }
    rv = sub_open(pfd, gfd, name, mode);
leave:
    fd_close(&gfd);
    fd_close(&own);
    return rv;
}

/* Calls fn for every entry of the open directory dirfd but . and .., in a
 * pool cleared after each: a walk over thousands of domains keeps one
 * entry's memory, not all of them. Goes on after a failing entry; returns
 * the first failure. */
typedef apr_status_t entry_fn(int dirfd, const char *name, void *baton, apr_pool_t *p);

static apr_status_t each_entry(int dirfd, entry_fn *fn, void *baton, apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;
    struct dirent *de;
    apr_pool_t *pe;
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);

    if (!d) {
        rv = os_err();
        fd_close(&fd);
        return rv;
    }
    apr_pool_create(&pe, p);
    while ((de = readdir(d)) != NULL) {
        apr_status_t rv2;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
            continue;
        }
        apr_pool_clear(pe);
        rv2 = fn(dirfd, de->d_name, baton, pe);
        if (rv2 != APR_SUCCESS && rv == APR_SUCCESS) {
            rv = rv2;
        }
    }
    apr_pool_destroy(pe);
    closedir(d);
    return rv;
}

/* Removes the entry name of dirfd and everything below it, at most depth
 * directory levels deep, never following a symlink. */
static apr_status_t rm_at(int dirfd, const char *name, int depth, apr_pool_t *p);

static apr_status_t rm_entry(int dirfd, const char *name, void *baton, apr_pool_t *p)
{
    return rm_at(dirfd, name, *(const int *)baton, p);
}

static apr_status_t rm_at(int dirfd, const char *name, int depth, apr_pool_t *p)
{
    apr_status_t rv;
    struct stat st;
    int fd, below = depth - 1;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return errno == ENOENT ? APR_SUCCESS : os_err();
    }
    if (!S_ISDIR(st.st_mode)) {
        return (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) ? os_err() : APR_SUCCESS;
    }
    if (depth <= 0) {
        return APR_EINVAL; /* deeper than anything the store makes */
    }
    fd = dir_open_at(dirfd, name);
    if (fd < 0) {
        return errno == ENOENT ? APR_SUCCESS : os_err();
    }
    rv = each_entry(fd, rm_entry, &below, p);
    fd_close(&fd);
    if (rv == APR_SUCCESS && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
        rv = os_err();
    }
    return rv;
}

/* ---- files ------------------------------------------------------------------- */

/* Writes data to a new temporary file in dirfd, created with its final
 * mode so a secret is never readable by others, not even for an instant. */
static apr_status_t write_tmp(const char **ptmp, int dirfd, const char *data, apr_size_t len,
                              mode_t mode, int sync, apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;
    const char *tmp = tmp_name(p, "tmp");
    apr_size_t done = 0;
    struct stat dst;
    int fd;

    *ptmp = NULL;
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        return os_err();
    }
    /* the umask may have taken bits away that we want (0644); root (the
     * parent, acmectl) writes files that the directory's owner, the
     * unprivileged child, must still be able to replace */
    if (fchmod(fd, mode) < 0 || (foreign_dir(&dst, dirfd) && fchown(fd, dst.st_uid, dst.st_gid) < 0)) {
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
    fd_close(&fd);
    if (rv != APR_SUCCESS) {
        unlinkat(dirfd, tmp, 0);
    }
    return rv;
}

/* How a write is made durable. */
#define W_VOLATILE 0 /* can be made again (a temporary certificate, a lease whose
                      * holders a crash ends too): atomic, not synced */
#define W_DURABLE 1  /* the data, then the name (fsync of the file, then of its directory) */
#define W_DATA 2     /* the data; the caller syncs the directory once for all its files */

static apr_status_t fence_enter(int *pguard, acme_store_t *s, apr_pool_t *p);
static void guard_release(int fd);

/* Writes fname in dirfd atomically: a temporary file, then a rename. With
 * fenced (a claim's view of the store), only the rename is made under the
 * lock guard, once the claim is found current: the guard, which every job
 * of the store takes, is held for a rename, not for a file's creation and
 * fsync. where: dirfd's path, for the message. */
static apr_status_t write_atomic(int dirfd, const char *where, const char *fname,
                                 const char *data, apr_size_t len, mode_t mode, int durable,
                                 acme_store_t *fenced, apr_pool_t *p)
{
    apr_status_t rv;
    const char *tmp = NULL;
    int guard = -1;

    rv = write_tmp(&tmp, dirfd, data, len, mode, durable != W_VOLATILE, p);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (fenced && (rv = fence_enter(&guard, fenced, p)) != APR_SUCCESS) {
        guard_release(guard);
        unlinkat(dirfd, tmp, 0);
        return rv; /* said by the fence */
    }
    if (renameat(dirfd, tmp, dirfd, fname) < 0) {
        rv = os_err();
        unlinkat(dirfd, tmp, 0);
    }
    guard_release(guard);
    if (rv == APR_SUCCESS && durable == W_DURABLE) {
        rv = sync_fd(dirfd);
    }
leave:
    if (rv != APR_SUCCESS) {
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0901) "store: writing %s/%s failed",
                 where, fname);
    }
    return rv;
}

static apr_status_t fs_load(acme_store_t *s, acme_store_group_t g, const char *name,
                            const char *aspect, const char **pdata, apr_size_t *plen,
                            apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    apr_status_t rv;
    int fd = -1;

    *pdata = NULL;
    *plen = 0;
    if (!name || !aspect) {
        return APR_EINVAL;
    }
    if ((rv = names_check(g, name, aspect)) == APR_SUCCESS
        && (rv = dir_open(&fd, fs, g, name, 0)) == APR_SUCCESS) {
        rv = acme_file_read_at(pdata, plen, fd, aspect, 0, p);
        if (rv == APR_EINVAL) {
            acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, rv, ACMELOG(0920) "store: %s is not a "
                     "regular file of at most %d bytes; it is ignored",
                     item_where(fs, g, name, aspect, p), ACME_FILE_MAX);
        }
    }
    fd_close(&fd);
    return rv;
}

/* Writes are fenced when s is a claim's view (acme_store_fenced). */
static apr_status_t fs_save(acme_store_t *s, acme_store_group_t g, const char *name,
                            const char *aspect, const char *data, apr_size_t len,
                            int flags, apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    apr_status_t rv;
    int fd = -1;

    if (!name || !aspect || (!data && len)) {
        return APR_EINVAL;
    }
    if ((rv = names_check(g, name, aspect)) == APR_SUCCESS
        && (rv = dir_open(&fd, fs, g, name, 1)) == APR_SUCCESS) {
        rv = write_atomic(fd, item_where(fs, g, name, NULL, p), aspect, data ? data : "", len,
                          (flags & ACME_STORE_SECRET) ? 0600 : 0644,
                          (flags & ACME_STORE_VOLATILE) ? W_VOLATILE
                          : (flags & ACME_STORE_PART) ? W_DATA : W_DURABLE,
                          s->fence ? s : NULL, p);
    }
    fd_close(&fd);
    return rv;
}

/* fenced: s, when the removal is a claim's (only its unlink or rename is
 * made under the guard). durable: the removal is synced (0: its loss in a
 * crash costs nothing). */
static apr_status_t remove_item(acme_store_t *s, acme_store_group_t g, const char *name,
                                const char *aspect, acme_store_t *fenced, int durable,
                                apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *aside;
    struct stat st;
    apr_status_t rv;
    int fd = -1, guard = -1;

    if (!name) {
        return APR_EINVAL;
    }
    if ((rv = names_check(g, name, aspect)) != APR_SUCCESS
        || (rv = dir_open(&fd, fs, g, aspect ? name : NULL, 0)) != APR_SUCCESS) {
        goto leave;
    }
    if (fstatat(fd, aspect ? aspect : name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        rv = os_err(); /* missing: nothing to remove, nothing to fence */
        goto leave;
    }
    if (fenced && (rv = fence_enter(&guard, fenced, p)) != APR_SUCCESS) {
        guard_release(guard);
        goto leave;
    }
    if (aspect) {
        rv = unlinkat(fd, aspect, 0) < 0 ? os_err() : APR_SUCCESS;
        guard_release(guard);
        if (rv == APR_SUCCESS && durable) {
            rv = sync_fd(fd);
        }
        goto leave;
    }
    /* Rename first so the name vanishes at once; a crash during the
     * recursive delete leaves only a dot directory that nobody lists. */
    aside = tmp_name(p, "del");
    rv = renameat(fd, name, fd, aside) < 0 ? os_err() : APR_SUCCESS;
    guard_release(guard);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = durable ? sync_fd(fd) : APR_SUCCESS;
    if (rv == APR_SUCCESS) {
        rv = rm_at(fd, aside, FS_WALK_DEPTH, p);
    }
leave:
    fd_close(&fd);
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Entries of the open directory dirfd that are valid store names, of the
 * wanted type. */
typedef struct {
    apr_array_header_t *names;
    int want_dirs;
    apr_pool_t *p;
} list_t;

static apr_status_t list_entry(int dirfd, const char *name, void *baton, apr_pool_t *p)
{
    list_t *l = baton;
    struct stat st;

    (void)p;
    /* dotfiles, temp files, anything we would not create; removed meanwhile */
    if (acme_store_name_is_valid(name) && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
        && (l->want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode))) {
        APR_ARRAY_PUSH(l->names, const char *) = apr_pstrdup(l->p, name);
    }
    return APR_SUCCESS;
}

static apr_status_t list_dir(apr_array_header_t **pnames, int dirfd, int want_dirs,
                             apr_pool_t *p)
{
    list_t l = {apr_array_make(p, 10, sizeof(const char *)), want_dirs, p};
    apr_status_t rv = each_entry(dirfd, list_entry, &l, p);

    qsort(l.names->elts, (size_t)l.names->nelts, sizeof(const char *), cmp_str);
    *pnames = l.names;
    return rv;
}

static apr_status_t fs_list(acme_store_t *s, acme_store_group_t g, const char *name,
                            apr_array_header_t **pnames, apr_pool_t *p)
{
    apr_status_t rv;
    int fd = -1;

    *pnames = apr_array_make(p, 1, sizeof(const char *));
    rv = dir_open(&fd, s->baton, g, name, 0);
    if (rv == APR_SUCCESS) {
        rv = list_dir(pnames, fd, name == NULL, p);
    }
    fd_close(&fd);
    return rv;
}

static apr_status_t fs_mtime(acme_store_t *s, acme_store_group_t g, const char *name,
                             const char *aspect, apr_time_t *pmtime, apr_pool_t *p)
{
    struct stat st;
    apr_status_t rv;
    int fd = -1;

    (void)p;
    *pmtime = 0;
    if (!name) {
        return APR_EINVAL;
    }
    if ((rv = names_check(g, name, aspect)) == APR_SUCCESS
        && (rv = dir_open(&fd, s->baton, g, aspect ? name : NULL, 0)) == APR_SUCCESS) {
        if (fstatat(fd, aspect ? aspect : name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rv = os_err();
        }
        else {
            *pmtime = apr_time_from_sec(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec / 1000;
        }
    }
    fd_close(&fd);
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

static apr_status_t archive_prune(int afd, const char *name, int keep, apr_pool_t *p)
{
    apr_array_header_t *entries, *mine;
    apr_status_t rv;
    int i;

    rv = list_dir(&entries, afd, 1, p);
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
        apr_status_t rv2 = rm_at(afd, victim, FS_WALK_DEPTH, p);
        if (rv2 != APR_SUCCESS) {
            acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, rv2,
                     ACMELOG(0903) "store: could not prune archive/%s", victim);
        }
    }
    return APR_SUCCESS;
}

static apr_status_t archive_pick(const char **pentry, const fs_t *fs, int afd, const char *name,
                                 apr_pool_t *p)
{
    const char *entry;
    apr_time_exp_t tm;
    char ts[32];
    apr_size_t tslen = 0;
    struct stat st;
    long n;

    *pentry = NULL;
    apr_time_exp_gmt(&tm, fs_now(fs));
    apr_strftime(ts, &tslen, sizeof(ts), "%Y%m%d%H%M%S", &tm);
    if (tslen != FS_TS_LEN) {
        return APR_EGENERAL;
    }
    entry = apr_pstrcat(p, name, ".", ts, NULL);
    for (n = 1; fstatat(afd, entry, &st, AT_SYMLINK_NOFOLLOW) == 0; ++n) {
        if (n > 999999999L) {
            return APR_EEXIST;
        }
        entry = apr_psprintf(p, "%s.%s.%ld", name, ts, n);
    }
    if (errno != ENOENT) {
        return os_err();
    }
    *pentry = entry;
    return APR_SUCCESS;
}

/* Copies the regular files of the directory src below sfd into a new
 * directory tmp below dfd, made by us: what lands in root's domains/ is
 * root's, whatever the child left in staging/ (a FIFO, a sparse giant, a
 * symlink, a subdirectory: the move is refused). */
static apr_status_t copy_entry(int sfd, const char *name, void *baton, apr_pool_t *p)
{
    int tfd = *(const int *)baton;
    const char *data;
    apr_size_t len;
    struct stat st;
    apr_status_t rv;

    if (!acme_store_name_is_valid(name)) {
        return APR_SUCCESS; /* an interrupted write's temporary file */
    }
    if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return os_err();
    }
    if (!S_ISREG(st.st_mode)) {
        return APR_EINVAL;
    }
    rv = acme_file_read_at(&data, &len, sfd, name, 0, p);
    if (rv == APR_SUCCESS) {
        /* a file only its owner may read stays so: a key */
        rv = write_atomic(tfd, "(a copy)", name, data, len, (st.st_mode & 077) ? 0644 : 0600,
                          W_DATA, NULL, p);   /* copy_dir syncs the directory */
    }
    return rv;
}

static apr_status_t count_entry(int dirfd, const char *name, void *baton, apr_pool_t *p)
{
    (void)dirfd; (void)name; (void)p;
    return ++*(int *)baton > FS_COPY_MAX ? APR_EINVAL : APR_SUCCESS;
}

static apr_status_t copy_dir(int sgfd, const char *src, int dfd, const char *tmp, apr_pool_t *p)
{
    int sfd = -1, tfd = -1, n = 0;
    apr_status_t rv;

    if ((sfd = dir_open_at(sgfd, src)) < 0) {
        return os_err();
    }
    if ((rv = each_entry(sfd, count_entry, &n, p)) == APR_SUCCESS
        && (rv = sub_open(&tfd, dfd, tmp, 0755)) == APR_SUCCESS
        && (rv = each_entry(sfd, copy_entry, &tfd, p)) == APR_SUCCESS) {
        rv = sync_fd(tfd);
    }
    fd_close(&tfd);
    fd_close(&sfd);
    if (rv != APR_SUCCESS) {
        rm_at(dfd, tmp, 1, p);
    }
    return rv;
}

static apr_status_t move_item(acme_store_t *s, acme_store_group_t from, acme_store_group_t to,
                              const char *name, int keep_archived, apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *archived = NULL, *tmp = NULL;
    struct stat st, sst, dst;
    apr_status_t rv;
    int sfd = -1, dfd = -1, afd = -1;

    if (!name || from == to || to == ACME_SG_ARCHIVE) {
        return APR_EINVAL;
    }
    if ((rv = names_check(from, name, NULL)) != APR_SUCCESS
        || (rv = dir_open(&sfd, fs, from, NULL, 0)) != APR_SUCCESS
        || (rv = dir_open(&dfd, fs, to, NULL, 1)) != APR_SUCCESS
        || (rv = dir_open(&afd, fs, ACME_SG_ARCHIVE, NULL, 1)) != APR_SUCCESS) {
        goto leave;
    }
    /* Nothing to move: the current one must stay, not go to the archive.
     * This is also what a repeated move after full completion sees. */
    if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        rv = os_err();
        goto leave;
    }
    if (!S_ISDIR(st.st_mode) || fstat(sfd, &sst) < 0 || fstat(dfd, &dst) < 0) {
        rv = APR_EINVAL;
        goto leave;
    }
    /* Between owners (the child's staging/ and root's domains/) the files
     * are copied, not renamed: root never takes over a directory someone
     * else could still change, nor walks it to change its owner. */
    if (sst.st_uid != dst.st_uid) {
        tmp = tmp_name(p, "tmp");
        if ((rv = copy_dir(sfd, name, dfd, tmp, p)) != APR_SUCCESS) {
            tmp = NULL;
            if (rv == APR_EINVAL) acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0921) "store: %s holds something "
                     "other than at most %d regular files of at most %d bytes; it is not moved",
                     item_where(fs, from, name, NULL, p), FS_COPY_MAX, ACME_FILE_MAX);
            goto leave;
        }
    }
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if ((rv = archive_pick(&archived, fs, afd, name, p)) != APR_SUCCESS) {
            goto leave;
        }
        if (renameat(dfd, name, afd, archived) < 0) {
            rv = os_err();
            goto leave;
        }
        /* the archive entry must be durable before the name is reused */
        if ((rv = sync_fd(afd)) != APR_SUCCESS || (rv = sync_fd(dfd)) != APR_SUCCESS) {
            goto leave;
        }
    }
    else if (errno != ENOENT) {
        rv = os_err();
        goto leave;
    }
    /* A crash here leaves the source in place and the target missing: the
     * move done again completes it. */
    if (renameat(tmp ? dfd : sfd, tmp ? tmp : name, dfd, name) < 0) {
        rv = os_err();
        goto leave;
    }
    tmp = NULL;
    if ((rv = sync_fd(dfd)) != APR_SUCCESS
        || (sst.st_uid == dst.st_uid && (rv = sync_fd(sfd)) != APR_SUCCESS)) {
        goto leave;
    }
    /* The copy is durable (synced above); the source's removal need not be:
     * back after a crash, it is the active result again, nothing new. */
    if (sst.st_uid != dst.st_uid && (rv = remove_item(s, from, name, NULL, NULL, 0, p)) != APR_SUCCESS) {
        goto leave;
    }
    rv = archive_prune(afd, name, keep_archived, p);
leave:
    if (tmp) {
        rm_at(dfd, tmp, 1, p);
    }
    fd_close(&afd);
    fd_close(&dfd);
    fd_close(&sfd);
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
static apr_status_t lease_read(lease_t *l, int lfd, const char *name, apr_pool_t *p)
{
    const char *data;
    char *lines[6], *last = NULL, *text;
    apr_int64_t n[3];
    apr_size_t len;
    apr_status_t rv;
    int i;

    memset(l, 0, sizeof(*l));
    rv = acme_file_read_at(&data, &len, lfd, name, FS_LOCK_MAX, p);
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

static const char *lock_where(const fs_t *fs, const char *name, apr_pool_t *p)
{
    return apr_pstrcat(p, item_where(fs, ACME_SG_JOBS, NULL, NULL, p), "/" FS_LOCKS_DIR,
                       name ? "/" : "", name ? name : "", NULL);
}

/* Opens jobs/.locks (made if missing when create). */
static apr_status_t locks_open(int *pfd, const fs_t *fs, int create, apr_pool_t *p)
{
    int jfd = -1;
    apr_status_t rv = dir_open(&jfd, fs, ACME_SG_JOBS, NULL, create);

    *pfd = -1;
    if (rv == APR_SUCCESS) {
        rv = sub_open(pfd, jfd, FS_LOCKS_DIR, create ? 0755 : 0);
    }
    if (create && (rv == APR_FROM_OS_ERROR(ELOOP) || rv == APR_FROM_OS_ERROR(ENOTDIR))) {
        /* something else in its place (a symlink): every claim needs it */
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, rv, ACMELOG(0924) "store: %s is not a "
                 "directory; it is replaced", lock_where(fs, NULL, p));
        if ((rv = rm_at(jfd, FS_LOCKS_DIR, 0, p)) == APR_SUCCESS) {
            rv = sub_open(pfd, jfd, FS_LOCKS_DIR, 0755);
        }
    }
    fd_close(&jfd);
    return rv;
}

/* Returns the guard's descriptor in *pfd, held exclusively. */
static apr_status_t guard_acquire(int *pfd, const fs_t *fs, int lfd, apr_pool_t *p)
{
    apr_time_t until = apr_time_now() + FS_GUARD_WAIT;
    apr_interval_time_t pause = 100; /* held for a rename: a short wait first */
    apr_status_t rv = APR_SUCCESS;
    struct stat st, dst;
    int fd;

    *pfd = -1;
    fd = openat(lfd, FS_LOCK_GUARD, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) {
        return os_err();
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rv = APR_EINVAL;
        goto leave;
    }
    /* made by root: the child must be able to take it too */
    if (foreign_dir(&dst, lfd) && st.st_uid != dst.st_uid && fchown(fd, dst.st_uid, dst.st_gid) < 0) {
        rv = os_err();
        goto leave;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            rv = os_err();
            goto leave;
        }
        if (apr_time_now() >= until) {
            rv = APR_TIMEUP;
            acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0922) "store: the lock guard %s "
                     "has been held for %d s; giving up on this change", lock_where(fs, FS_LOCK_GUARD, p),
                     (int)apr_time_sec(FS_GUARD_WAIT));
            goto leave;
        }
        apr_sleep(pause);
        pause = pause < 10000 ? pause * 2 : pause;
    }
    *pfd = fd;
    fd = -1;
leave:
    fd_close(&fd);
    return rv;
}

static void guard_release(int fd)
{
    if (fd >= 0) {
        close(fd); /* drops the flock */
    }
}

/* Under the guard: is c still the current claim? */
static apr_status_t fence_check(int lfd, const fs_t *fs, const acme_store_claim_t *c, apr_pool_t *p)
{
    lease_t cur;

    if (lease_read(&cur, lfd, c->name, p) != APR_SUCCESS
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
    int lfd = -1;

    *pguard = -1;
    if (!s->fence) {
        return APR_SUCCESS;
    }
    if ((rv = locks_open(&lfd, fs, 0, p)) == APR_SUCCESS
        && (rv = guard_acquire(pguard, fs, lfd, p)) == APR_SUCCESS) {
        rv = fence_check(lfd, fs, s->fence, p);
    }
    fd_close(&lfd);
    return rv;
}

static apr_status_t fs_claim(acme_store_t *s, acme_store_claim_t **pclaim, const char *name,
                             const char *owner, apr_interval_time_t lease, apr_pool_t *p)
{
    const fs_t *fs = s->baton;
    const char *content;
    acme_store_claim_t *c;
    apr_time_t now;
    lease_t cur, next;
    apr_status_t rv;
    int guard = -1, lfd = -1;

    *pclaim = NULL;
    if (!acme_store_name_is_valid(name) || !owner_is_valid(owner) || lease <= 0) {
        return APR_EINVAL;
    }
    if ((rv = locks_open(&lfd, fs, 1, p)) != APR_SUCCESS
        || (rv = guard_acquire(&guard, fs, lfd, p)) != APR_SUCCESS) {
        goto leave;
    }
    /* the clock is read once we may act, not while we waited */
    now = fs_now(fs);
    rv = lease_read(&cur, lfd, name, p);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)) {
        /* we never write partial leases, so this is damage, not a holder:
         * blocking renewals forever would be worse than taking it */
        acme_log(ACME_LOG_MARK, ACME_LOG_WARNING, rv,
                 ACMELOG(0905) "store: lock file %s is unreadable, taking it over",
                 lock_where(fs, name, p));
        memset(&cur, 0, sizeof(cur));
        /* whatever it is (a directory, a FIFO), the lease replaces it */
        rm_at(lfd, name, 1, p);
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
    rv = write_atomic(lfd, lock_where(fs, NULL, p), name, content, strlen(content), 0644,
                      W_VOLATILE, NULL, p);
    if (rv == APR_SUCCESS) {
        c->owner = apr_pstrdup(p, owner);
        c->token = next.token;
        *pclaim = c;
    }
leave:
    guard_release(guard);
    fd_close(&lfd);
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
    const char *content;
    lease_t cur;
    apr_status_t rv;
    int guard = -1, lfd = -1;

    rv = locks_open(&lfd, fs, 0, p);
    if (rv == APR_SUCCESS) {
        rv = guard_acquire(&guard, fs, lfd, p);
    }
    if (rv == APR_SUCCESS && (lease_read(&cur, lfd, c->name, p) != APR_SUCCESS
                              || cur.token != c->token || strcmp(cur.owner, c->owner)
                              || !lease_held(&cur, fs_now(fs), p))) {
        rv = release ? APR_SUCCESS : ACME_STORE_EFENCED; /* not ours (any more) */
        goto leave;
    }
    if (rv == APR_SUCCESS) {
        cur.expires = release ? 0 : fs_now(fs) + c->lease;
        content = lease_format(&cur, p);
        rv = write_atomic(lfd, lock_where(fs, NULL, p), c->name, content, strlen(content), 0644,
                          W_VOLATILE, NULL, p);
    }
    else if (release && APR_STATUS_IS_ENOENT(rv)) {
        rv = APR_SUCCESS; /* no locks directory, no lock */
    }
leave:
    guard_release(guard);
    fd_close(&lfd);
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

static apr_status_t fs_remove(acme_store_t *s, acme_store_group_t g, const char *name,
                              const char *aspect, apr_pool_t *p)
{
    return remove_item(s, g, name, aspect, s->fence ? s : NULL, 1, p);
}

/* A move (the parent's activation) is made under the guard as a whole. */
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
    return names_check(g, name, aspect) == APR_SUCCESS ? item_where(s->baton, g, name, aspect, p)
                                                         : NULL;
}

/* ---- creation and ownership ---------------------------------------------- */

static apr_status_t schema_check(int basefd, const char *base, const char **perr, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, base, "/" FS_SCHEMA_FILE, NULL);
    const char *data, *jerr = NULL;
    static const char fresh[] = "{\"schema\": 1}\n";
    acme_json_t *json;
    apr_size_t len;
    long long schema;
    apr_status_t rv;

    rv = acme_file_read_at(&data, &len, basefd, FS_SCHEMA_FILE, 64 * 1024, p);
    if (APR_STATUS_IS_ENOENT(rv)) {
        rv = write_atomic(basefd, base, FS_SCHEMA_FILE, fresh, sizeof(fresh) - 1, 0644,
                          W_DURABLE, NULL, p);
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

static apr_status_t base_close(void *data)
{
    fs_t *fs = data;

    fd_close(&fs->basefd);
    return APR_SUCCESS;
}

apr_status_t acme_store_fs_create(acme_store_t **pstore, apr_pool_t *p, const char *base_dir,
                                  const char **perr)
{
    acme_store_t *s = NULL;
    fs_t *fs = NULL;
    char *base;
    apr_size_t blen;
    apr_status_t rv;
    const char *err = NULL, *tmp;
    int g, guard = -1, basefd = -1, lfd = -1;

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
    fs = apr_pcalloc(p, sizeof(*fs));
    fs->pool = p;
    fs->base = base;
    fs->basefd = -1;
    rv = apr_dir_make_recursive(base, APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE
                                          | APR_FPROT_GREAD | APR_FPROT_GEXECUTE
                                          | APR_FPROT_WREAD | APR_FPROT_WEXECUTE, p);
    if (rv == APR_SUCCESS || APR_STATUS_IS_EEXIST(rv)) {
        rv = base_open(&basefd, fs);
    }
    if (rv != APR_SUCCESS) {
        /* The directory is not there, and cannot be made: an error in the
         * configuration, unless the disk is full or read-only, when the
         * server must still start (with temporary certificates). */
        err = apr_psprintf(p, "cannot create the store directory %s", base);
        if (!disk_refuses(rv)) {
            goto leave;
        }
    }
    else {
        /* every walk starts here: opened once, not by path for each item */
        fs->basefd = basefd;
        apr_pool_cleanup_register(p, fs, base_close, apr_pool_cleanup_null);
        rv = schema_check(basefd, base, &err, p);
        if (rv != APR_SUCCESS && !disk_refuses(rv)) {
            goto leave;
        }
    }
    for (g = 0; g < ACME_SG_COUNT && !err; ++g) {
        int gfd = -1;
        if (sub_open(&gfd, basefd, acme_store_group_name((acme_store_group_t)g),
                     name_dir_mode((acme_store_group_t)g)) != APR_SUCCESS) {
            err = apr_psprintf(p, "cannot create the store directory %s",
                               item_where(fs, (acme_store_group_t)g, NULL, NULL, p));
        }
        fd_close(&gfd);
    }
    /* the guard is made now, by the parent, like everything the child uses */
    if (!err && (locks_open(&lfd, fs, 1, p) != APR_SUCCESS
                 || guard_acquire(&guard, fs, lfd, p) != APR_SUCCESS)) {
        err = apr_psprintf(p, "cannot create the lock guard in %s", lock_where(fs, NULL, p));
    }
    guard_release(guard);
    fd_close(&lfd);
    /* everything exists, but does the disk still take a file? (full) */
    if (!err && write_tmp(&tmp, basefd, "probe", 5, 0644, 0, p) != APR_SUCCESS) {
        err = apr_psprintf(p, "cannot write a file in %s", base);
    }
    else if (!err) {
        unlinkat(basefd, tmp, 0);
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
    s->flags = ACME_STORE_LOCAL | ACME_STORE_CHEAP_MTIME;
    s->where = base;
    s->path = fs_path;
    s->sweep = acme_store_fs_sweep;
    *pstore = s;
leave:
    if (rv != APR_SUCCESS) {
        if (basefd >= 0) apr_pool_cleanup_run(p, fs, base_close);
        acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv, ACMELOG(0906) "store: %s", err ? err : "failed");
    }
    if (perr) {
        *perr = err;
    }
    return rv;
}

/* Removes what interrupted writes left: ".tmp.*" files and ".del.*"
 * directories last changed before 'before'; descends depth levels into
 * names. With files_before set (challenges/), also the files (answers)
 * written before it: what a run that died left published. */
typedef struct {
    apr_time_t before;
    int depth;
    int removed;
    apr_time_t files_before;
} sweep_t;

static apr_status_t sweep_entry(int dirfd, const char *name, void *baton, apr_pool_t *p)
{
    sweep_t *sw = baton;
    int stale = !strncmp(name, ".tmp.", 5) || !strncmp(name, ".del.", 5);
    struct stat st;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return APR_SUCCESS;
    }
    if ((stale && apr_time_from_sec(st.st_mtime) < sw->before)
        || (S_ISREG(st.st_mode) && apr_time_from_sec(st.st_mtime) < sw->files_before)) {
        sw->removed += rm_at(dirfd, name, FS_WALK_DEPTH, p) == APR_SUCCESS;
    }
    else if (!stale && sw->depth > 0 && S_ISDIR(st.st_mode) && acme_store_name_is_valid(name)) {
        sweep_t below = {sw->before, sw->depth - 1, 0, sw->files_before};
        int fd = dir_open_at(dirfd, name);
        if (fd >= 0) {
            each_entry(fd, sweep_entry, &below, p);
            fd_close(&fd);
        }
        sw->removed += below.removed;
    }
    return APR_SUCCESS;
}

int acme_store_fs_sweep(acme_store_t *s, apr_interval_time_t age, apr_pool_t *p)
{
    const fs_t *fs;
    sweep_t sw;
    int g, fd = -1, own = -1;

    if (!s || s->load != fs_load) {
        return 0;
    }
    fs = s->baton;
    sw.before = fs_now(fs) - age;
    sw.removed = 0;
    for (g = 0; g < ACME_SG_COUNT; ++g) {
        if (dir_open(&fd, fs, (acme_store_group_t)g, NULL, 0) == APR_SUCCESS) {
            sw.depth = 1;
            sw.files_before = g == ACME_SG_CHALLENGES ? fs_now(fs) - ACME_STORE_ANSWER_STALE : 0;
            each_entry(fd, sweep_entry, &sw, p);
        }
        fd_close(&fd);
    }
    if (base_get(&fd, &own, fs) == APR_SUCCESS) {
        sw.depth = 0;
        sw.files_before = 0;
        each_entry(fd, sweep_entry, &sw, p);
    }
    fd_close(&own);
    return sw.removed;
}

apr_status_t acme_store_fs_remove_all(acme_store_t *s, apr_pool_t *p)
{
    char *parent, *slash;
    apr_status_t rv;
    int fd;

    if (!s || s->load != fs_load) {
        return APR_EINVAL;
    }
    parent = apr_pstrdup(p, ((const fs_t *)s->baton)->base);
    slash = strrchr(parent, '/');
    if (!slash || !slash[1]) {
        return APR_EINVAL;
    }
    *slash = '\0';
    fd = open(slash == parent ? "/" : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return os_err();
    }
    rv = rm_at(fd, slash + 1, FS_WALK_DEPTH + 1, p);
    fd_close(&fd);
    return rv;
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

/* Gives the entry name of dirfd, and what is below it, to uid:gid. Acts
 * on the inode it opened (O_PATH, O_NOFOLLOW), not on a name that could be
 * swapped meanwhile; leaves symlinks, and files with other links (a hard
 * link to a file elsewhere), alone. */
typedef struct {
    uid_t uid;
    gid_t gid;
    int depth;
} owner_t;

static apr_status_t chown_at(int dirfd, const char *name, void *baton, apr_pool_t *p)
{
    const owner_t *o = baton;
    owner_t below = {o->uid, o->gid, o->depth - 1};
    apr_status_t rv = APR_SUCCESS;
    struct stat st;
    int fd = dir_open_at(dirfd, name);

    if (fd >= 0) {
        if (fchown(fd, o->uid, o->gid) < 0) {
            rv = os_err();
        }
        else if (o->depth > 0) {
            rv = each_entry(fd, chown_at, &below, p);
        }
        fd_close(&fd);
        return rv;
    }
    if (errno != ENOTDIR && errno != ELOOP) {
        return errno == ENOENT ? APR_SUCCESS : os_err(); /* removed meanwhile */
    }
    fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? APR_SUCCESS : os_err();
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1
        && fchownat(fd, "", o->uid, o->gid, AT_EMPTY_PATH) < 0) {
        rv = os_err();
    }
    fd_close(&fd);
    return rv;
}

/* The groups the child writes are its own from when they are made: the
 * walk runs only where a group is not its owner's yet (a new store, or a
 * changed User), when nobody but root could have written below it. */
apr_status_t acme_store_fs_set_owner(acme_store_t *s, apr_uid_t uid, apr_gid_t gid,
                                     apr_pool_t *p)
{
    static const acme_store_group_t child_groups[] = {
        ACME_SG_ACCOUNTS, ACME_SG_STAGING, ACME_SG_CHALLENGES, ACME_SG_JOBS
    };
    const fs_t *fs;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t i;
    int base = -1, own = -1;

    if (!is_fs_store(s)) {
        return APR_EINVAL;
    }
    fs = s->baton;
    if ((rv = base_get(&base, &own, fs)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < sizeof(child_groups) / sizeof(child_groups[0]); ++i) {
        const char *gname = acme_store_group_name(child_groups[i]);
        owner_t o = {(uid_t)uid, (gid_t)gid, FS_WALK_DEPTH};
        struct stat st;
        apr_status_t rv2 = APR_SUCCESS;

        if (fstatat(base, gname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rv2 = os_err();
        }
        else if (st.st_uid != o.uid || st.st_gid != o.gid) {
            rv2 = chown_at(base, gname, &o, p);
        }
        if (rv2 != APR_SUCCESS) {
            acme_log(ACME_LOG_MARK, ACME_LOG_ERR, rv2, ACMELOG(0923) "store: cannot hand %s to "
                     "uid %ld gid %ld", item_where(fs, child_groups[i], NULL, NULL, p),
                     (long)uid, (long)gid);
            rv = rv == APR_SUCCESS ? rv2 : rv;
        }
    }
    fd_close(&own);
    return rv;
}
