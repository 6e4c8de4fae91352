/* test_store.c: unit tests for the filesystem store (acme_store_fs.c):
 * atomic saves, modes, names, archive moves, lease locks, schema file. */

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <fcntl.h>
#include <utime.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "acme_json.h"
#include "acme_store.h"
#include "acme_test.h"

#define SEC(n) apr_time_from_sec(n)
/* 2030-01-01T00:00:00Z */
#define T0 SEC(1893456000LL)

static apr_pool_t *pool;
static char base[256];
static acme_store_t *st;
static apr_time_t fake_now;

static apr_time_t fake_clock(void *baton)
{
    (void)baton;
    return fake_now;
}

static void rm_tree(const char *path)
{
    struct stat sb;
    struct dirent *de;
    DIR *d;

    if (lstat(path, &sb) < 0) {
        return;
    }
    if (S_ISDIR(sb.st_mode)) {
        chmod(path, 0700);
        d = opendir(path);
        if (d) {
            while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
                    rm_tree(apr_pstrcat(pool, path, "/", de->d_name, NULL));
                }
            }
            closedir(d);
        }
        rmdir(path);
    }
    else {
        unlink(path);
    }
}

static void setup(void)
{
    const char *err = NULL;

    apr_pool_create(&pool, NULL);
    apr_cpystrn(base, "/tmp/acme-store-test-XXXXXX", sizeof(base));
    ck_assert_ptr_nonnull(mkdtemp(base));
    ck_assert_int_eq(acme_store_fs_create(&st, pool, base, &err), APR_SUCCESS);
    ck_assert_ptr_null(err);
    fake_now = T0;
    acme_store_fs_set_clock(st, fake_clock, NULL);
}

static void teardown(void)
{
    rm_tree(base);
    apr_pool_destroy(pool);
}

static const char *bpath(const char *rel)
{
    return apr_pstrcat(pool, base, "/", rel, NULL);
}

static mode_t mode_of(const char *rel)
{
    struct stat sb;
    ck_assert_msg(lstat(bpath(rel), &sb) == 0, "%s missing", rel);
    return sb.st_mode & 07777;
}

static int exists(const char *rel)
{
    struct stat sb;
    return lstat(bpath(rel), &sb) == 0;
}

static void write_raw(const char *rel, const char *content)
{
    FILE *f = fopen(bpath(rel), "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
}

static const char *load_str(acme_store_group_t g, const char *name, const char *aspect)
{
    const char *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv = st->load(st, g, name, aspect, &data, &len, pool);
    ck_assert_msg(rv == APR_SUCCESS, "load %s/%s: %d", name, aspect, rv);
    ck_assert_uint_eq(strlen(data), len);
    return data;
}

static void save_str(acme_store_group_t g, const char *name, const char *aspect,
                     const char *data, int secret)
{
    ck_assert_int_eq(st->save(st, g, name, aspect, data, strlen(data), secret, pool),
                     APR_SUCCESS);
}

/* Names in a directory starting with '.', i.e. temp files left behind. */
static int count_dotfiles(const char *rel)
{
    DIR *d = opendir(bpath(rel));
    struct dirent *de;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            ++n;
        }
    }
    closedir(d);
    return n;
}

static const char *joined(apr_array_header_t *a)
{
    return apr_array_pstrcat(pool, a, ',');
}

/* ---- layout and basic I/O ---------------------------------------------------- */

static acme_store_claim_t *claim_ok(const char *name, const char *owner, apr_interval_time_t l);

START_TEST(create_layout_and_schema)
{
    static const char *groups[] = {"accounts", "domains", "staging", "challenges",
                                   "jobs", "archive", NULL};
    acme_store_t *again;
    const char *err = NULL;
    int i;

    for (i = 0; groups[i]; ++i) {
        ck_assert_msg(exists(groups[i]), "%s missing", groups[i]);
    }
    ck_assert_int_eq(mode_of("accounts"), 0700);
    ck_assert_int_eq(mode_of("domains"), 0755);
    ck_assert(exists("jobs/.locks"));
    ck_assert(exists("jobs/.locks/.guard"));
    ck_assert_int_eq(mode_of("store.json"), 0644);
    /* opening an existing store keeps working and keeps the schema file */
    ck_assert_int_eq(acme_store_fs_create(&again, pool, apr_pstrcat(pool, base, "//", NULL),
                                          &err), APR_SUCCESS);
    ck_assert_str_eq(again->where, base);
    ck_assert_str_eq(acme_store_group_name(ACME_SG_CHALLENGES), "challenges");
    ck_assert_ptr_null(acme_store_group_name(ACME_SG_COUNT));
}
END_TEST

START_TEST(schema_file_content)
{
    acme_json_t *j;
    const char *jerr = NULL;

    ck_assert_int_eq(acme_json_read_file(&j, pool, bpath("store.json"), &jerr), APR_SUCCESS);
    ck_assert_int_eq(acme_json_getl(j, "schema", NULL), 1);
}
END_TEST

START_TEST(save_load_roundtrip)
{
    static const char bin[] = "a\0b\nc";
    const char *data;
    apr_size_t len;

    save_str(ACME_SG_DOMAINS, "example.org", "cert.pem", "first", 0);
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "example.org", "cert.pem"), "first");
    save_str(ACME_SG_DOMAINS, "example.org", "cert.pem", "second, longer", 0);
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "example.org", "cert.pem"), "second, longer");
    save_str(ACME_SG_DOMAINS, "example.org", "cert.pem", "3", 0);
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "example.org", "cert.pem"), "3");
    /* binary content with NUL bytes and the empty file */
    ck_assert_int_eq(st->save(st, ACME_SG_STAGING, "x", "bin", bin, sizeof(bin) - 1, 0, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(st->load(st, ACME_SG_STAGING, "x", "bin", &data, &len, pool),
                     APR_SUCCESS);
    ck_assert_uint_eq(len, sizeof(bin) - 1);
    ck_assert(!memcmp(data, bin, len));
    ck_assert_int_eq(st->save(st, ACME_SG_STAGING, "x", "empty", "", 0, 0, pool), APR_SUCCESS);
    ck_assert_str_eq(load_str(ACME_SG_STAGING, "x", "empty"), "");
    /* no temp files stay behind */
    ck_assert_int_eq(count_dotfiles("domains/example.org"), 0);
    ck_assert_int_eq(count_dotfiles("staging/x"), 0);
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "example.org", "nope", &data, &len, pool),
                     APR_ENOENT);
    ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "nope.org", "cert.pem", &data, &len, pool),
                     APR_ENOENT);
}
END_TEST

START_TEST(save_modes)
{
    umask(0077);
    save_str(ACME_SG_DOMAINS, "a.org", "pub.pem", "public", 0);
    umask(0);
    save_str(ACME_SG_DOMAINS, "a.org", "key.pem", "secret", 1);
    save_str(ACME_SG_DOMAINS, "a.org", "pub2.pem", "public", 0);
    umask(022);
    ck_assert_int_eq(mode_of("domains/a.org/pub.pem"), 0644);
    ck_assert_int_eq(mode_of("domains/a.org/pub2.pem"), 0644);
    ck_assert_int_eq(mode_of("domains/a.org/key.pem"), 0600);
    ck_assert_int_eq(mode_of("domains/a.org"), 0755);
    /* a secret stays secret when overwritten, a public file gets public */
    save_str(ACME_SG_DOMAINS, "a.org", "key.pem", "secret2", 1);
    ck_assert_int_eq(mode_of("domains/a.org/key.pem"), 0600);
    save_str(ACME_SG_DOMAINS, "a.org", "key.pem", "now public", 0);
    ck_assert_int_eq(mode_of("domains/a.org/key.pem"), 0644);
    /* account directories are private */
    save_str(ACME_SG_ACCOUNTS, "ca-1", "account.json", "{}", 0);
    ck_assert_int_eq(mode_of("accounts/ca-1"), 0700);
    /* however durable a save is made, a secret is as private */
    save_str(ACME_SG_STAGING, "a.org", "key.pem", "part", ACME_STORE_SECRET | ACME_STORE_PART);
    save_str(ACME_SG_STAGING, "a.org", "key2.pem", "volatile",
             ACME_STORE_SECRET | ACME_STORE_VOLATILE);
    save_str(ACME_SG_STAGING, "a.org", "meta.json", "{}", 0);
    ck_assert_int_eq(mode_of("staging/a.org/key.pem"), 0600);
    ck_assert_int_eq(mode_of("staging/a.org/key2.pem"), 0600);
    ck_assert_str_eq(load_str(ACME_SG_STAGING, "a.org", "key.pem"), "part");
    ck_assert_int_eq(count_dotfiles("staging/a.org"), 0);
}
END_TEST

START_TEST(invalid_names_rejected)
{
    static const char *bad[] = {"..", ".", "a/b", "/abs", "", ".hidden", "a..b", "x/../y",
                                "tab\there", "nl\n", "caf\xc3\xa9", "del\x7f", NULL};
    char longname[300];
    const char *data;
    apr_size_t len;
    apr_array_header_t *names;
    apr_time_t mt;
    int i;

    for (i = 0; bad[i]; ++i) {
        const char *b = bad[i];
        ck_assert_msg(!acme_store_name_is_valid(b), "valid: \"%s\"", b);
        ck_assert_int_eq(st->save(st, ACME_SG_DOMAINS, b, "f", "x", 1, 0, pool), APR_EINVAL);
        ck_assert_int_eq(st->save(st, ACME_SG_DOMAINS, "ok.org", b, "x", 1, 0, pool),
                         APR_EINVAL);
        ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, b, "f", &data, &len, pool), APR_EINVAL);
        ck_assert_int_eq(st->load(st, ACME_SG_DOMAINS, "ok.org", b, &data, &len, pool),
                         APR_EINVAL);
        ck_assert_int_eq(st->remove(st, ACME_SG_DOMAINS, b, NULL, pool), APR_EINVAL);
        ck_assert_int_eq(st->remove(st, ACME_SG_DOMAINS, "ok.org", b, pool), APR_EINVAL);
        ck_assert_int_eq(st->list(st, ACME_SG_DOMAINS, b, &names, pool), APR_EINVAL);
        ck_assert_int_eq(st->mtime(st, ACME_SG_DOMAINS, b, NULL, &mt, pool), APR_EINVAL);
        ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, b, 3, pool),
                         APR_EINVAL);
        {
            acme_store_claim_t *c;
            ck_assert_int_eq(st->claim(st, &c, b, "me", SEC(60), pool), APR_EINVAL);
        }
        ck_assert_ptr_null(st->path(st, ACME_SG_DOMAINS, b, NULL, pool));
    }
    /* the traversal did not write anything anywhere */
    ck_assert(!exists("f"));
    ck_assert(!exists("domains/ok.org"));
    ck_assert_int_eq(count_dotfiles("domains"), 0);
    /* length limit: 255 is fine, 256 is not */
    memset(longname, 'a', sizeof(longname));
    longname[255] = '\0';
    ck_assert(acme_store_name_is_valid(longname));
    save_str(ACME_SG_DOMAINS, longname, longname, "x", 0);
    longname[255] = 'a';
    longname[256] = '\0';
    ck_assert(!acme_store_name_is_valid(longname));
    ck_assert_int_eq(st->save(st, ACME_SG_DOMAINS, longname, "f", "x", 1, 0, pool), APR_EINVAL);
    /* ordinary names pass */
    ck_assert(acme_store_name_is_valid("example.org"));
    ck_assert(acme_store_name_is_valid("*.example.org"));
    ck_assert(acme_store_name_is_valid("cert.p256.pem"));
    ck_assert(acme_store_name_is_valid("a.b-c_D~9"));
    /* bad group */
    ck_assert_int_eq(st->save(st, ACME_SG_COUNT, "a", "b", "x", 1, 0, pool), APR_EINVAL);
    ck_assert_int_eq(st->save(st, (acme_store_group_t)-1, "a", "b", "x", 1, 0, pool),
                     APR_EINVAL);
    ck_assert_ptr_null(st->path(st, ACME_SG_COUNT, "a", NULL, pool));
}
END_TEST

START_TEST(path_of_items)
{
    ck_assert_str_eq(st->path(st, ACME_SG_DOMAINS, "example.org", "cert.pem", pool),
                     bpath("domains/example.org/cert.pem"));
    ck_assert_str_eq(st->path(st, ACME_SG_STAGING, "example.org", NULL, pool),
                     bpath("staging/example.org"));
    ck_assert_str_eq(st->path(st, ACME_SG_JOBS, NULL, NULL, pool), bpath("jobs"));
    ck_assert_ptr_null(st->path(st, ACME_SG_JOBS, NULL, "x", pool));
}
END_TEST

START_TEST(list_sorted_skips_temp_and_dotfiles)
{
    apr_array_header_t *names;

    save_str(ACME_SG_DOMAINS, "c.org", "z.pem", "1", 0);
    save_str(ACME_SG_DOMAINS, "a.org", "x", "1", 0);
    save_str(ACME_SG_DOMAINS, "b.org", "x", "1", 0);
    save_str(ACME_SG_DOMAINS, "c.org", "a.pem", "1", 0);
    save_str(ACME_SG_DOMAINS, "c.org", "m.pem", "1", 0);
    /* things the store must not report */
    ck_assert_int_eq(mkdir(bpath("domains/.hidden"), 0755), 0);
    ck_assert_int_eq(mkdir(bpath("domains/.tmp.0123"), 0755), 0);
    write_raw("domains/stray-file", "not a name dir");
    write_raw("domains/c.org/.tmp.abcdef", "half written");
    write_raw("domains/c.org/.hidden", "x");
    ck_assert_int_eq(mkdir(bpath("domains/c.org/subdir"), 0755), 0);
    ck_assert_int_eq(symlink("a.pem", bpath("domains/c.org/link.pem")), 0);

    ck_assert_int_eq(st->list(st, ACME_SG_DOMAINS, NULL, &names, pool), APR_SUCCESS);
    ck_assert_str_eq(joined(names), "a.org,b.org,c.org");
    ck_assert_int_eq(st->list(st, ACME_SG_DOMAINS, "c.org", &names, pool), APR_SUCCESS);
    ck_assert_str_eq(joined(names), "a.pem,m.pem,z.pem");
    ck_assert_int_eq(st->list(st, ACME_SG_DOMAINS, "nope.org", &names, pool), APR_ENOENT);
    ck_assert_int_eq(names->nelts, 0);
    ck_assert_int_eq(st->list(st, ACME_SG_STAGING, NULL, &names, pool), APR_SUCCESS);
    ck_assert_int_eq(names->nelts, 0);
    /* the lock directory is not a job */
    claim_ok("renew", "me", SEC(60));
    ck_assert_int_eq(st->list(st, ACME_SG_JOBS, NULL, &names, pool), APR_SUCCESS);
    ck_assert_int_eq(names->nelts, 0);
}
END_TEST

START_TEST(remove_aspect_and_name)
{
    apr_array_header_t *names;

    save_str(ACME_SG_STAGING, "a.org", "cert.pem", "1", 0);
    save_str(ACME_SG_STAGING, "a.org", "key.pem", "2", 1);
    ck_assert_int_eq(mkdir(bpath("staging/a.org/deep"), 0755), 0);
    write_raw("staging/a.org/deep/file", "x");
    ck_assert_int_eq(st->remove(st, ACME_SG_STAGING, "a.org", "cert.pem", pool), APR_SUCCESS);
    ck_assert(!exists("staging/a.org/cert.pem"));
    ck_assert(exists("staging/a.org/key.pem"));
    /* missing is success */
    ck_assert_int_eq(st->remove(st, ACME_SG_STAGING, "a.org", "cert.pem", pool), APR_SUCCESS);
    ck_assert_int_eq(st->remove(st, ACME_SG_STAGING, "b.org", "cert.pem", pool), APR_SUCCESS);
    /* the whole name, recursively */
    ck_assert_int_eq(st->remove(st, ACME_SG_STAGING, "a.org", NULL, pool), APR_SUCCESS);
    ck_assert(!exists("staging/a.org"));
    ck_assert_int_eq(count_dotfiles("staging"), 0);
    ck_assert_int_eq(st->list(st, ACME_SG_STAGING, NULL, &names, pool), APR_SUCCESS);
    ck_assert_int_eq(names->nelts, 0);
    ck_assert_int_eq(st->remove(st, ACME_SG_STAGING, "a.org", NULL, pool), APR_SUCCESS);
    /* a symlink inside is removed, not followed */
    save_str(ACME_SG_DOMAINS, "keep.org", "precious", "x", 0);
    save_str(ACME_SG_STAGING, "c.org", "x", "x", 0);
    ck_assert_int_eq(symlink(bpath("domains/keep.org"), bpath("staging/c.org/evil")), 0);
    ck_assert_int_eq(st->remove(st, ACME_SG_STAGING, "c.org", NULL, pool), APR_SUCCESS);
    ck_assert(!exists("staging/c.org"));
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "keep.org", "precious"), "x");
}
END_TEST

/* The store directory is opened once, when the store is made: every walk
 * starts from that descriptor, not from the path again. */
START_TEST(walks_start_from_the_directory_opened_at_creation)
{
    const char *moved = apr_pstrcat(pool, base, ".moved", NULL);

    save_str(ACME_SG_JOBS, "a.org", "job.json", "1", 0);
    ck_assert_int_eq(rename(base, moved), 0);
    save_str(ACME_SG_JOBS, "a.org", "job.json", "2", 0);
    ck_assert_str_eq(load_str(ACME_SG_JOBS, "a.org", "job.json"), "2");
    ck_assert_int_eq(rename(moved, base), 0);
    ck_assert_str_eq(load_str(ACME_SG_JOBS, "a.org", "job.json"), "2");
    ck_assert_int_eq(count_dotfiles("jobs/a.org"), 0);
}
END_TEST

START_TEST(mtime_of_item)
{
    apr_time_t mt = 0;
    struct stat sb;

    save_str(ACME_SG_JOBS, "a.org", "job.json", "{}", 0);
    ck_assert_int_eq(st->mtime(st, ACME_SG_JOBS, "a.org", "job.json", &mt, pool), APR_SUCCESS);
    ck_assert_int_eq(stat(bpath("jobs/a.org/job.json"), &sb), 0);
    ck_assert_int_eq(apr_time_sec(mt), sb.st_mtime);
    ck_assert_int_eq(st->mtime(st, ACME_SG_JOBS, "a.org", NULL, &mt, pool), APR_SUCCESS);
    ck_assert(mt > 0);
    ck_assert(APR_STATUS_IS_ENOENT(st->mtime(st, ACME_SG_JOBS, "a.org", "x", &mt, pool)));
    ck_assert_int_eq(mt, 0);
}
END_TEST

START_TEST(json_roundtrip_and_corrupt)
{
    acme_json_t *j = acme_json_new_object(pool), *back = NULL;

    ck_assert_int_eq(acme_json_sets(j, "valid", "status", NULL), APR_SUCCESS);
    ck_assert_int_eq(acme_json_setl(j, 3, "errors", NULL), APR_SUCCESS);
    ck_assert_int_eq(acme_store_save_json(st, ACME_SG_JOBS, "a.org", "job.json", j, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(acme_store_load_json(st, ACME_SG_JOBS, "a.org", "job.json", &back, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(acme_json_gets(back, "status", NULL), "valid");
    ck_assert_int_eq(acme_json_getl(back, "errors", NULL), 3);
    ck_assert_int_eq(mode_of("jobs/a.org/job.json"), 0644);
    save_str(ACME_SG_JOBS, "a.org", "bad.json", "{\"status\": ", 0);
    ck_assert_int_eq(acme_store_load_json(st, ACME_SG_JOBS, "a.org", "bad.json", &back, pool),
                     APR_EINVAL);
    ck_assert_ptr_null(back);
    ck_assert_int_eq(acme_store_load_json(st, ACME_SG_JOBS, "a.org", "none.json", &back, pool),
                     APR_ENOENT);
}
END_TEST

/* ---- failures leave the old content ------------------------------------------- */

START_TEST(save_fails_when_target_is_directory)
{
    /* Root ignores a read-only directory, so the failure is produced by a
     * rename that cannot succeed: the target name is a directory. */
    save_str(ACME_SG_DOMAINS, "a.org", "cert.pem", "old", 0);
    ck_assert_int_eq(mkdir(bpath("domains/a.org/busy"), 0755), 0);
    write_raw("domains/a.org/busy/inside", "x");
    ck_assert_int_ne(st->save(st, ACME_SG_DOMAINS, "a.org", "busy", "new", 3, 0, pool),
                     APR_SUCCESS);
    ck_assert(exists("domains/a.org/busy/inside"));
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "a.org", "cert.pem"), "old");
    ck_assert_int_eq(count_dotfiles("domains/a.org"), 0);
}
END_TEST

START_TEST(save_fails_mid_write_keeps_old_content)
{
    /* Disk full, simulated with a file size limit (works for root too):
     * the write stops half way with EFBIG instead of ENOSPC. */
    struct rlimit rl;
    char big[8192];

    save_str(ACME_SG_DOMAINS, "a.org", "cert.pem", "old content", 0);
    memset(big, 'N', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    ck_assert_int_eq(st->save(st, ACME_SG_DOMAINS, "a.org", "cert.pem", big, strlen(big), 0,
                              pool), APR_FROM_OS_ERROR(EFBIG));
    rl.rlim_cur = rl.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "a.org", "cert.pem"), "old content");
    ck_assert_int_eq(count_dotfiles("domains/a.org"), 0);
}
END_TEST

START_TEST(save_fails_in_readonly_dir)
{
    /* registered only when not root: root writes into 0555 directories */
    save_str(ACME_SG_DOMAINS, "a.org", "cert.pem", "old", 0);
    ck_assert_int_eq(chmod(bpath("domains/a.org"), 0555), 0);
    ck_assert_int_eq(st->save(st, ACME_SG_DOMAINS, "a.org", "cert.pem", "new", 3, 0, pool),
                     APR_EACCES);
    ck_assert_int_eq(chmod(bpath("domains/a.org"), 0755), 0);
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "a.org", "cert.pem"), "old");
    ck_assert_int_eq(count_dotfiles("domains/a.org"), 0);
}
END_TEST

/* ---- move and archive ---------------------------------------------------------- */

static void stage(const char *name, const char *content)
{
    save_str(ACME_SG_STAGING, name, "cert.pem", content, 0);
}

START_TEST(move_first_activation_no_archive)
{
    apr_array_header_t *names;

    stage("a.org", "v1");
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "a.org", 3, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "a.org", "cert.pem"), "v1");
    ck_assert(!exists("staging/a.org"));
    ck_assert_int_eq(st->list(st, ACME_SG_ARCHIVE, NULL, &names, pool), APR_SUCCESS);
    ck_assert_int_eq(names->nelts, 0);
    /* nothing staged: the active one stays, nothing archived */
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "a.org", 3, pool),
                     APR_ENOENT);
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "a.org", "cert.pem"), "v1");
    ck_assert_int_eq(st->list(st, ACME_SG_ARCHIVE, NULL, &names, pool), APR_SUCCESS);
    ck_assert_int_eq(names->nelts, 0);
    /* nonsense moves */
    ck_assert_int_eq(st->move(st, ACME_SG_DOMAINS, ACME_SG_DOMAINS, "a.org", 3, pool),
                     APR_EINVAL);
    ck_assert_int_eq(st->move(st, ACME_SG_DOMAINS, ACME_SG_ARCHIVE, "a.org", 3, pool),
                     APR_EINVAL);
}
END_TEST

START_TEST(move_archives_and_prunes)
{
    apr_array_header_t *names;

    /* another domain whose name extends ours: pruning must not touch it */
    ck_assert_int_eq(mkdir(bpath("archive/a.org.uk.20200101000000"), 0755), 0);
    ck_assert_int_eq(mkdir(bpath("archive/b.org.20200101000000"), 0755), 0);

    stage("a.org", "v1");
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "a.org", 2, pool),
                     APR_SUCCESS);
    stage("a.org", "v2");
    fake_now = T0 + SEC(61); /* 2030-01-01 00:01:01 */
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "a.org", 2, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "a.org", "cert.pem"), "v2");
    ck_assert_str_eq(load_str(ACME_SG_ARCHIVE, "a.org.20300101000101", "cert.pem"), "v1");
    /* same second again: a counter keeps both */
    stage("a.org", "v3");
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "a.org", 2, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(load_str(ACME_SG_ARCHIVE, "a.org.20300101000101.1", "cert.pem"), "v2");
    ck_assert_int_eq(st->list(st, ACME_SG_ARCHIVE, NULL, &names, pool), APR_SUCCESS);
    ck_assert_str_eq(joined(names), "a.org.20300101000101,a.org.20300101000101.1,"
                                    "a.org.uk.20200101000000,b.org.20200101000000");
    /* a third archived version: the oldest goes, the newest 2 stay */
    stage("a.org", "v4");
    fake_now = T0 + SEC(3600);
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "a.org", 2, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(st->list(st, ACME_SG_ARCHIVE, NULL, &names, pool), APR_SUCCESS);
    ck_assert_str_eq(joined(names), "a.org.20300101000101.1,a.org.20300101010000,"
                                    "a.org.uk.20200101000000,b.org.20200101000000");
    ck_assert_str_eq(load_str(ACME_SG_ARCHIVE, "a.org.20300101010000", "cert.pem"), "v3");
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "a.org", "cert.pem"), "v4");
    /* keep 0: no archive at all for this name */
    stage("a.org", "v5");
    fake_now = T0 + SEC(7200);
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "a.org", 0, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(st->list(st, ACME_SG_ARCHIVE, NULL, &names, pool), APR_SUCCESS);
    ck_assert_str_eq(joined(names), "a.org.uk.20200101000000,b.org.20200101000000");
    ck_assert_int_eq(count_dotfiles("archive"), 0);
}
END_TEST

START_TEST(move_interrupted_completes_on_retry)
{
    apr_array_header_t *names;

    stage("a.org", "v1");
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "a.org", 3, pool),
                     APR_SUCCESS);
    stage("a.org", "v2");
    /* the state a crash between the two renames leaves behind */
    ck_assert_int_eq(rename(bpath("domains/a.org"), bpath("archive/a.org.20291231235959")), 0);
    ck_assert(!exists("domains/a.org"));
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "a.org", 3, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "a.org", "cert.pem"), "v2");
    ck_assert(!exists("staging/a.org"));
    ck_assert_int_eq(st->list(st, ACME_SG_ARCHIVE, NULL, &names, pool), APR_SUCCESS);
    ck_assert_str_eq(joined(names), "a.org.20291231235959");
    ck_assert_str_eq(load_str(ACME_SG_ARCHIVE, "a.org.20291231235959", "cert.pem"), "v1");
}
END_TEST

/* ---- claims: lease locks with a fencing token ------------------------------- */

static acme_store_claim_t *claim_ok(const char *name, const char *owner, apr_interval_time_t l)
{
    acme_store_claim_t *c = NULL;

    ck_assert_int_eq(st->claim(st, &c, name, owner, l, pool), APR_SUCCESS);
    ck_assert_ptr_nonnull(c);
    return c;
}

static void claim_busy(const char *name, const char *owner, const char *holder)
{
    acme_store_claim_t *c = NULL;

    ck_assert_int_eq(st->claim(st, &c, name, owner, SEC(60), pool), APR_EBUSY);
    ck_assert_str_eq(c->owner, holder);
}

START_TEST(claim_busy_expiry_owner_token)
{
    acme_store_claim_t *a, *b;

    a = claim_ok("renew", "child-1", SEC(60));
    ck_assert(exists("jobs/.locks/renew"));
    ck_assert_uint_eq(a->token, 1);
    claim_busy("renew", "child-2", "child-1");
    /* the same owner renews its lease, with the same token */
    fake_now = T0 + SEC(50);
    ck_assert_int_eq(st->renew(st, a, pool), APR_SUCCESS);
    ck_assert_uint_eq(a->token, 1);
    fake_now = T0 + SEC(100); /* the first lease would be over, the renewed not */
    claim_busy("renew", "child-2", "child-1");
    /* other names are independent */
    ck_assert_uint_eq(claim_ok("other", "child-2", SEC(60))->token, 1);
    /* expired: taken over, with a greater token */
    fake_now = T0 + SEC(111);
    b = claim_ok("renew", "child-2", SEC(60));
    ck_assert_uint_eq(b->token, 2);
    claim_busy("renew", "child-1", "child-2");
    ck_assert_int_eq(st->renew(st, a, pool), ACME_STORE_EFENCED);
    /* a released claim is not taken back by a late renewal */
    {
        acme_store_claim_t *o = claim_ok("other2", "child-3", SEC(60));
        ck_assert_int_eq(st->release(st, o, pool), APR_SUCCESS);
        ck_assert_int_eq(st->renew(st, o, pool), ACME_STORE_EFENCED);
        ck_assert_uint_eq(claim_ok("other2", "child-4", SEC(60))->token, 2);
    }
    /* releasing a lost claim changes nothing */
    ck_assert_int_eq(st->release(st, a, pool), APR_SUCCESS);
    claim_busy("renew", "child-1", "child-2");
    ck_assert_int_eq(st->release(st, b, pool), APR_SUCCESS);
    /* released: free, and the next token is still greater */
    ck_assert_uint_eq(claim_ok("renew", "child-1", SEC(60))->token, 3);
    ck_assert_int_eq(count_dotfiles("jobs/.locks"), 1); /* .guard */
}
END_TEST

/* A holder paused past its lease while another took over: its writes are
 * refused, the new holder's go through. */
START_TEST(claim_stale_holder_write_refused)
{
    acme_store_claim_t *a, *b;
    acme_store_t *va, *vb;
    const char *data;
    apr_size_t len;

    a = claim_ok("a.org", "server-1", SEC(30));
    va = acme_store_fenced(pool, st, a);
    ck_assert_int_eq(va->save(va, ACME_SG_JOBS, "a.org", "job.json", "{\"by\":1}", 8, 0, pool),
                     APR_SUCCESS);
    fake_now = T0 + SEC(31);
    b = claim_ok("a.org", "server-2", SEC(30));
    vb = acme_store_fenced(pool, st, b);
    ck_assert_int_eq(vb->save(vb, ACME_SG_STAGING, "a.org", "cert.pem", "new", 3, 0, pool),
                     APR_SUCCESS);
    /* server-1 wakes up and goes on where it was */
    ck_assert_int_eq(va->save(va, ACME_SG_STAGING, "a.org", "cert.pem", "old", 3, 0, pool),
                     ACME_STORE_EFENCED);
    ck_assert_int_eq(va->remove(va, ACME_SG_STAGING, "a.org", NULL, pool), ACME_STORE_EFENCED);
    ck_assert_int_eq(va->move(va, ACME_SG_STAGING, ACME_SG_DOMAINS, "a.org", 3, pool),
                     ACME_STORE_EFENCED);
    ck_assert_int_eq(st->load(st, ACME_SG_STAGING, "a.org", "cert.pem", &data, &len, pool),
                     APR_SUCCESS);
    ck_assert_str_eq(data, "new");
    /* even after server-2 let go, the old token stays refused */
    ck_assert_int_eq(st->release(st, b, pool), APR_SUCCESS);
    ck_assert_int_eq(va->save(va, ACME_SG_STAGING, "a.org", "cert.pem", "old", 3, 0, pool),
                     ACME_STORE_EFENCED);
    /* reads are never fenced */
    ck_assert_int_eq(va->load(va, ACME_SG_STAGING, "a.org", "cert.pem", &data, &len, pool),
                     APR_SUCCESS);
}
END_TEST

/* A holder that died on this host does not make the next one wait. */
START_TEST(claim_of_dead_process_is_free)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        apr_pool_t *cp;
        acme_store_claim_t *c;
        apr_pool_create(&cp, NULL);
        _exit(st->claim(st, &c, "a.org", "dead-child", SEC(600), cp) == APR_SUCCESS ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_uint_eq(claim_ok("a.org", "next-child", SEC(60))->token, 2);
}
END_TEST

START_TEST(claim_file_names_owner_and_expiry)
{
    FILE *f;
    char buf[512];
    size_t n;

    claim_ok("renew", "pid 42 on host", SEC(60));
    f = fopen(bpath("jobs/.locks/renew"), "r");
    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    ck_assert_ptr_nonnull(strstr(buf, "owner pid 42 on host\n"));
    ck_assert_ptr_nonnull(strstr(buf, "token 1\n"));
    ck_assert_ptr_nonnull(strstr(buf, apr_psprintf(pool, "expires %" APR_TIME_T_FMT "\n",
                                                   T0 + SEC(60))));
}
END_TEST

START_TEST(claim_corrupt_file_taken_over)
{
    write_raw("jobs/.locks/renew", "garbage\n");
    claim_ok("renew", "child-1", SEC(60));
    claim_busy("renew", "child-2", "child-1");
    /* an empty file, like a create that crashed before writing */
    write_raw("jobs/.locks/other", "");
    claim_ok("other", "child-2", SEC(60));
    ck_assert_int_eq(count_dotfiles("jobs/.locks"), 1); /* .guard */
}
END_TEST

/* Several processes find the same expired lease at once: exactly one may
 * come out holding it, whatever the interleaving. */
START_TEST(claim_takeover_race_has_one_winner)
{
    enum { CONTENDERS = 8, ROUNDS = 25 };
    int round;

    for (round = 0; round < ROUNDS; ++round) {
        pid_t pids[CONTENDERS];
        int i, winners = 0, status, results[2], hold[2];
        char r;

        ck_assert_int_eq(pipe(results), 0);
        ck_assert_int_eq(pipe(hold), 0);
        fake_now = T0 + SEC(round * 100);
        claim_ok("race", "old-owner", SEC(1));
        fake_now += SEC(10); /* expired for everyone below */
        for (i = 0; i < CONTENDERS; ++i) {
            pids[i] = fork();
            ck_assert_int_ge(pids[i], 0);
            if (pids[i] == 0) {
                apr_pool_t *cp;
                acme_store_claim_t *c;
                apr_status_t rv;
                close(hold[1]);
                apr_pool_create(&cp, NULL);
                rv = st->claim(st, &c, "race", apr_psprintf(cp, "contender-%d", i), SEC(60), cp);
                r = rv == APR_SUCCESS ? 'w' : rv == APR_EBUSY ? 'b' : 'e';
                if (write(results[1], &r, 1) != 1) _exit(3);
                /* stay alive until all have tried: a dead holder is no holder */
                while (read(hold[0], &r, 1) > 0) {}
                _exit(0);
            }
        }
        close(hold[0]);
        for (i = 0; i < CONTENDERS; ++i) {
            ck_assert_int_eq(read(results[0], &r, 1), 1);
            ck_assert(r != 'e');
            winners += r == 'w';
        }
        close(hold[1]);
        for (i = 0; i < CONTENDERS; ++i) {
            ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        }
        close(results[0]);
        close(results[1]);
        ck_assert_int_eq(winners, 1);
        ck_assert_int_eq(count_dotfiles("jobs/.locks"), 1); /* .guard */
        ck_assert(unlink(bpath("jobs/.locks/race")) == 0);
    }
}
END_TEST

/* A claim's write makes and syncs its file before it takes the lock guard
 * (which every job of the store takes): while another holds the guard, the
 * file is there already, and the rename follows once the guard is free. */
START_TEST(fenced_write_takes_the_guard_only_to_rename)
{
    acme_store_claim_t *a = claim_ok("a.org", "server-1", SEC(30));
    acme_store_t *va = acme_store_fenced(pool, st, a);
    int gfd, status, i;
    pid_t pid;

    ck_assert_int_eq(va->save(va, ACME_SG_STAGING, "a.org", "cert.pem", "old", 3, 0, pool),
                     APR_SUCCESS);
    gfd = open(bpath("jobs/.locks/.guard"), O_RDWR | O_CLOEXEC);
    ck_assert_int_ge(gfd, 0);
    ck_assert_int_eq(flock(gfd, LOCK_EX), 0);  /* another's change is under way */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(gfd); /* the lock is the open file's: this copy would hold it too */
        _exit(va->save(va, ACME_SG_STAGING, "a.org", "cert.pem", "new", 3, 0, pool)
              == APR_SUCCESS ? 0 : 1);
    }
    for (i = 0; i < 500 && count_dotfiles("staging/a.org") == 0; ++i) {
        usleep(10000);
    }
    ck_assert_int_eq(count_dotfiles("staging/a.org"), 1);
    ck_assert_str_eq(load_str(ACME_SG_STAGING, "a.org", "cert.pem"), "old");
    close(gfd);  /* drops the guard */
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_str_eq(load_str(ACME_SG_STAGING, "a.org", "cert.pem"), "new");
    ck_assert_int_eq(count_dotfiles("staging/a.org"), 0);
}
END_TEST

START_TEST(claim_bad_arguments)
{
    acme_store_claim_t *c;

    ck_assert_int_eq(st->claim(st, &c, "renew", "me", 0, pool), APR_EINVAL);
    ck_assert_int_eq(st->claim(st, &c, "renew", "me", -5, pool), APR_EINVAL);
    ck_assert_int_eq(st->claim(st, &c, "renew", "", SEC(1), pool), APR_EINVAL);
    ck_assert_int_eq(st->claim(st, &c, "renew", "two\nlines", SEC(1), pool), APR_EINVAL);
    ck_assert_int_eq(st->claim(st, &c, "../renew", "me", SEC(1), pool), APR_EINVAL);
    ck_assert(!exists("jobs/renew"));
}
END_TEST

START_TEST(sweep_removes_only_stale_temporaries)
{
    struct utimbuf old;

    save_str(ACME_SG_JOBS, "a.org", "job.json", "{}", 0);
    write_raw("jobs/a.org/.tmp.0123456789abcdef", "half");
    write_raw("jobs/.tmp.fedcba9876543210", "half");
    write_raw("accounts/.tmp.1111111111111111", "young");
    ck_assert_int_eq(mkdir(bpath("domains/.del.2222222222222222"), 0755), 0);
    old.actime = old.modtime = (time_t)apr_time_sec(T0) - 3600;
    ck_assert_int_eq(utime(bpath("jobs/a.org/.tmp.0123456789abcdef"), &old), 0);
    ck_assert_int_eq(utime(bpath("jobs/.tmp.fedcba9876543210"), &old), 0);
    ck_assert_int_eq(utime(bpath("domains/.del.2222222222222222"), &old), 0);
    old.actime = old.modtime = (time_t)apr_time_sec(T0) - 60; /* a write under way */
    ck_assert_int_eq(utime(bpath("accounts/.tmp.1111111111111111"), &old), 0);
    fake_now = T0;
    ck_assert_int_eq(acme_store_fs_sweep(st, ACME_STORE_STALE_AGE, pool), 3);
    ck_assert(!exists("jobs/a.org/.tmp.0123456789abcdef"));
    ck_assert(!exists("jobs/.tmp.fedcba9876543210"));
    ck_assert(!exists("domains/.del.2222222222222222"));
    ck_assert(exists("accounts/.tmp.1111111111111111"));
    ck_assert(exists("jobs/a.org/job.json"));
    ck_assert(exists("jobs/.locks/.guard"));
}
END_TEST

/* ---- schema file -------------------------------------------------------------------- */

START_TEST(schema_newer_refused)
{
    acme_store_t *s2 = NULL;
    const char *err = NULL;

    write_raw("store.json", "{\"schema\": 2}\n");
    ck_assert_int_eq(acme_store_fs_create(&s2, pool, base, &err), APR_EGENERAL);
    ck_assert_ptr_null(s2);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, "schema 2") && strstr(err, "newer"), "message: %s", err);
    ck_assert_ptr_nonnull(strstr(err, base));
    /* the file was not "fixed" behind the operator's back */
    s2 = NULL;
    ck_assert_int_eq(acme_store_fs_create(&s2, pool, base, &err), APR_EGENERAL);
    ck_assert_ptr_null(s2);
}
END_TEST

START_TEST(schema_corrupt_names_file)
{
    static const char *bad[] = {"{\"schema\": ", "not json", "{}", "{\"schema\": \"1\"}",
                                "{\"schema\": 0}", "{\"schema\": 1.5}", "[1]", "", NULL};
    const char *file = bpath("store.json");
    int i;

    for (i = 0; bad[i]; ++i) {
        acme_store_t *s2 = NULL;
        const char *err = NULL;
        write_raw("store.json", bad[i]);
        ck_assert_msg(acme_store_fs_create(&s2, pool, base, &err) != APR_SUCCESS,
                      "accepted \"%s\"", bad[i]);
        ck_assert_ptr_null(s2);
        ck_assert_ptr_nonnull(err);
        ck_assert_msg(strstr(err, file) && strstr(err, "corrupt"), "message: %s", err);
    }
}
END_TEST

START_TEST(create_in_new_nested_dir)
{
    acme_store_t *s2 = NULL;
    const char *err = NULL;

    ck_assert_int_eq(acme_store_fs_create(&s2, pool, bpath("x/y/z"), &err), APR_SUCCESS);
    ck_assert(exists("x/y/z/store.json"));
    ck_assert(exists("x/y/z/domains"));
    ck_assert_int_eq(acme_store_fs_create(&s2, pool, "", &err), APR_EINVAL);
    ck_assert_ptr_nonnull(err);
    /* a file where the store directory should be */
    write_raw("afile", "x");
    ck_assert_int_ne(acme_store_fs_create(&s2, pool, bpath("afile"), &err), APR_SUCCESS);
    ck_assert_ptr_nonnull(err);
}
END_TEST

/* ---- ownership (root only) -------------------------------------------------------- */

static uid_t owner_of(const char *rel)
{
    struct stat sb;
    ck_assert_msg(lstat(bpath(rel), &sb) == 0, "%s missing", rel);
    return sb.st_uid;
}

START_TEST(set_owner_hands_child_groups_over)
{
    const uid_t nobody = 65534;

    save_str(ACME_SG_ACCOUNTS, "ca", "account.key.pem", "k", 1);
    save_str(ACME_SG_STAGING, "a.org", "cert.pem", "c", 0);
    save_str(ACME_SG_CHALLENGES, "http-01", "token", "t", 0);
    save_str(ACME_SG_JOBS, "a.org", "job.json", "{}", 0);
    save_str(ACME_SG_DOMAINS, "a.org", "cert.pem", "c", 0);
    ck_assert_int_eq(mkdir(bpath("archive/a.org.20200101000000"), 0755), 0);
    claim_ok("renew", "me", SEC(60));

    ck_assert_int_eq(acme_store_fs_set_owner(st, nobody, nobody, pool), APR_SUCCESS);
    ck_assert_int_eq(owner_of("accounts"), nobody);
    ck_assert_int_eq(owner_of("accounts/ca/account.key.pem"), nobody);
    ck_assert_int_eq(owner_of("staging/a.org/cert.pem"), nobody);
    ck_assert_int_eq(owner_of("challenges/http-01/token"), nobody);
    ck_assert_int_eq(owner_of("jobs/.locks"), nobody);
    ck_assert_int_eq(owner_of("jobs/.locks/renew"), nobody);
    ck_assert_int_eq(owner_of("jobs/.locks/.guard"), nobody);
    ck_assert_int_eq(owner_of("jobs/a.org/job.json"), nobody);
    ck_assert_int_eq(owner_of("domains"), 0);
    ck_assert_int_eq(owner_of("domains/a.org/cert.pem"), 0);
    ck_assert_int_eq(owner_of("archive"), 0);
    ck_assert_int_eq(owner_of("archive/a.org.20200101000000"), 0);
    ck_assert_int_eq(owner_of("store.json"), 0);
    ck_assert_int_eq(owner_of("."), 0);
    /* modes are left as they were */
    ck_assert_int_eq(mode_of("accounts/ca/account.key.pem"), 0600);
}
END_TEST


/* ---- what the child's account may have left: never followed, never blocks ---- */

static char decoy[256];

static void decoy_setup(void)
{
    setup();
    apr_cpystrn(decoy, "/tmp/acme-store-decoy-XXXXXX", sizeof(decoy));
    ck_assert_ptr_nonnull(mkdtemp(decoy));
    ck_assert_int_eq(mkdir(apr_pstrcat(pool, decoy, "/sub", NULL), 0700), 0);
    {
        FILE *f = fopen(apr_pstrcat(pool, decoy, "/secret", NULL), "w");
        ck_assert_ptr_nonnull(f);
        fputs("root only", f);
        fclose(f);
    }
}

static void decoy_teardown(void)
{
    rm_tree(decoy);
    teardown();
}

static int decoy_has(const char *rel)
{
    struct stat sb;
    return lstat(apr_pstrcat(pool, decoy, "/", rel, NULL), &sb) == 0;
}

START_TEST(load_refuses_fifo_symlink_and_giant)
{
    const char *data = NULL;
    apr_size_t len = 0;
    int fd;

    save_str(ACME_SG_STAGING, "a.org", "meta.json", "{}", 0);
    ck_assert_int_eq(mkfifo(bpath("staging/a.org/fifo.json"), 0644), 0);
    ck_assert_int_eq(st->load(st, ACME_SG_STAGING, "a.org", "fifo.json", &data, &len, pool),
                     APR_EINVAL);  /* and at once: a blocking open would hang here */
    ck_assert_int_eq(symlink(apr_pstrcat(pool, decoy, "/secret", NULL),
                             bpath("staging/a.org/link.pem")), 0);
    ck_assert_int_ne(st->load(st, ACME_SG_STAGING, "a.org", "link.pem", &data, &len, pool),
                     APR_SUCCESS);
    ck_assert_ptr_null(data);
    fd = open(bpath("staging/a.org/giant.pem"), O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)64 << 30), 0); /* sparse: 64 GiB */
    close(fd);
    ck_assert_int_eq(st->load(st, ACME_SG_STAGING, "a.org", "giant.pem", &data, &len, pool),
                     APR_EINVAL);
    /* a symlinked name directory is not entered either */
    ck_assert_int_eq(symlink(apr_pstrcat(pool, decoy, "/sub", NULL), bpath("staging/b.org")), 0);
    ck_assert_int_ne(st->load(st, ACME_SG_STAGING, "b.org", "secret", &data, &len, pool),
                     APR_SUCCESS);
}
END_TEST

START_TEST(writes_never_go_through_a_symlink)
{
    ck_assert_int_eq(symlink(decoy, bpath("staging/b.org")), 0);
    ck_assert_int_ne(st->save(st, ACME_SG_STAGING, "b.org", "privkey.pem", "k", 1,
                              ACME_STORE_SECRET, pool), APR_SUCCESS);
    ck_assert(!decoy_has("privkey.pem"));
    /* removing the name removes the link, not what it points to */
    ck_assert_int_eq(st->remove(st, ACME_SG_STAGING, "b.org", NULL, pool), APR_SUCCESS);
    ck_assert(!exists("staging/b.org"));
    ck_assert(decoy_has("secret") && decoy_has("sub"));
}
END_TEST

START_TEST(locks_symlink_is_replaced_not_followed)
{
    const char *err = NULL;
    acme_store_t *again;

    rm_tree(bpath("jobs/.locks"));
    ck_assert_int_eq(symlink(decoy, bpath("jobs/.locks")), 0);
    ck_assert_int_eq(acme_store_fs_create(&again, pool, base, &err), APR_SUCCESS);
    ck_assert_ptr_null(err);
    ck_assert(!decoy_has(".guard"));
    ck_assert_int_eq(mode_of("jobs/.locks") & 0777, 0755);
    ck_assert(S_ISDIR(mode_of("jobs/.locks") | S_IFDIR) && !S_ISLNK(mode_of("jobs/.locks")));
    claim_ok("a.org", "me", SEC(60));
    ck_assert(!decoy_has("a.org"));
}
END_TEST

/* An answer a run that died left published goes after a day, a younger
 * one (the CA may be validating it) stays. */
START_TEST(sweep_removes_answers_older_than_a_day)
{
    struct utimbuf old;

    save_str(ACME_SG_CHALLENGES, "http-01", "old-token", "old.thumb", 0);
    save_str(ACME_SG_CHALLENGES, "http-01", "young-token", "young.thumb", 0);
    save_str(ACME_SG_CHALLENGES, "tls-alpn-01", "a.org.crt", "pem", 0);
    old.actime = old.modtime = (time_t)apr_time_sec(T0 - ACME_STORE_ANSWER_STALE) - 60;
    ck_assert_int_eq(utime(bpath("challenges/http-01/old-token"), &old), 0);
    ck_assert_int_eq(utime(bpath("challenges/tls-alpn-01/a.org.crt"), &old), 0);
    old.actime = old.modtime = (time_t)apr_time_sec(T0) - 3600;
    ck_assert_int_eq(utime(bpath("challenges/http-01/young-token"), &old), 0);
    save_str(ACME_SG_JOBS, "a.org", "job.json", "{}", 0);
    ck_assert_int_eq(utime(bpath("jobs/a.org/job.json"), &old), 0);
    fake_now = T0;
    ck_assert_int_eq(acme_store_fs_sweep(st, ACME_STORE_STALE_AGE, pool), 2);
    ck_assert(!exists("challenges/http-01/old-token"));
    ck_assert(!exists("challenges/tls-alpn-01/a.org.crt"));
    ck_assert(exists("challenges/http-01/young-token"));
    ck_assert(exists("jobs/a.org/job.json"));
}
END_TEST

START_TEST(sweep_removes_links_not_targets)
{
    struct timeval old[2] = {{1000, 0}, {1000, 0}};

    ck_assert_int_eq(symlink(decoy, bpath("staging/.del.0123456789abcdef")), 0);
    ck_assert_int_eq(lutimes(bpath("staging/.del.0123456789abcdef"), old), 0);
    ck_assert_int_eq(acme_store_fs_sweep(st, SEC(60), pool), 1);
    ck_assert(!exists("staging/.del.0123456789abcdef"));
    ck_assert(decoy_has("secret") && decoy_has("sub"));
}
END_TEST

/* Between owners a move copies: what lands in root's domains/ is root's,
 * and only regular files land there. */
START_TEST(move_between_owners_copies_regular_files)
{
    const uid_t nobody = 65534;

    ck_assert_int_eq(acme_store_fs_set_owner(st, nobody, nobody, pool), APR_SUCCESS);
    save_str(ACME_SG_STAGING, "d.org", "cert.pem", "c", 0);
    save_str(ACME_SG_STAGING, "d.org", "privkey.pem", "k", 1);
    ck_assert_int_eq(owner_of("staging/d.org/privkey.pem"), nobody);
    ck_assert_int_eq(mkfifo(bpath("staging/d.org/meta.json"), 0644), 0);
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "d.org", 3, pool), APR_EINVAL);
    ck_assert(!exists("domains/d.org"));
    ck_assert_int_eq(count_dotfiles("domains"), 0);
    ck_assert_int_eq(unlink(bpath("staging/d.org/meta.json")), 0);
    ck_assert_int_eq(symlink(apr_pstrcat(pool, decoy, "/secret", NULL),
                             bpath("staging/d.org/meta.json")), 0);
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "d.org", 3, pool), APR_EINVAL);
    ck_assert(!exists("domains/d.org"));
    ck_assert_int_eq(unlink(bpath("staging/d.org/meta.json")), 0);
    save_str(ACME_SG_STAGING, "d.org", "meta.json", "{}", 0);
    ck_assert_int_eq(st->move(st, ACME_SG_STAGING, ACME_SG_DOMAINS, "d.org", 3, pool),
                     APR_SUCCESS);
    ck_assert(!exists("staging/d.org"));
    ck_assert_int_eq(owner_of("domains/d.org"), 0);
    ck_assert_int_eq(owner_of("domains/d.org/privkey.pem"), 0);
    ck_assert_int_eq(mode_of("domains/d.org/privkey.pem"), 0600);
    ck_assert_int_eq(mode_of("domains/d.org/cert.pem"), 0644);
    ck_assert_str_eq(load_str(ACME_SG_DOMAINS, "d.org", "privkey.pem"), "k");
}
END_TEST

/* The hand-off walk changes owners only of what it opened itself: no
 * symlink, and no file with a second link (which could be anyone's). */
START_TEST(set_owner_walk_leaves_links_alone)
{
    const uid_t nobody = 65534;
    struct stat sb;

    ck_assert_int_eq(symlink(decoy, bpath("staging/x.org")), 0);
    ck_assert_int_eq(mkdir(bpath("staging/h.org"), 0755), 0);
    ck_assert_int_eq(link(apr_pstrcat(pool, decoy, "/secret", NULL), bpath("staging/h.org/f")), 0);
    ck_assert_int_eq(acme_store_fs_set_owner(st, nobody, nobody, pool), APR_SUCCESS);
    ck_assert_int_eq(owner_of("staging/h.org"), nobody);
    ck_assert_int_eq(lstat(apr_pstrcat(pool, decoy, "/secret", NULL), &sb), 0);
    ck_assert_int_eq(sb.st_uid, 0);
    ck_assert_int_eq(lstat(decoy, &sb), 0);
    ck_assert_int_eq(sb.st_uid, 0);
    /* handed over once: the next pass walks nothing */
    ck_assert_int_eq(chown(bpath("staging/h.org"), 0, 0), 0);
    ck_assert_int_eq(acme_store_fs_set_owner(st, nobody, nobody, pool), APR_SUCCESS);
    ck_assert_int_eq(owner_of("staging/h.org"), 0);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc;

    tc = tcase_create("basics");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, create_layout_and_schema);
    tcase_add_test(tc, schema_file_content);
    tcase_add_test(tc, save_load_roundtrip);
    tcase_add_test(tc, save_modes);
    tcase_add_test(tc, invalid_names_rejected);
    tcase_add_test(tc, path_of_items);
    tcase_add_test(tc, list_sorted_skips_temp_and_dotfiles);
    tcase_add_test(tc, remove_aspect_and_name);
    tcase_add_test(tc, mtime_of_item);
    tcase_add_test(tc, walks_start_from_the_directory_opened_at_creation);
    tcase_add_test(tc, json_roundtrip_and_corrupt);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, save_fails_when_target_is_directory);
    tcase_add_test(tc, save_fails_mid_write_keeps_old_content);
    if (geteuid() != 0) {
        tcase_add_test(tc, save_fails_in_readonly_dir);
    }
    suite_add_tcase(s, tc);

    tc = tcase_create("move");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, move_first_activation_no_archive);
    tcase_add_test(tc, move_archives_and_prunes);
    tcase_add_test(tc, move_interrupted_completes_on_retry);
    suite_add_tcase(s, tc);

    tc = tcase_create("lock");
    tcase_set_timeout(tc, 60); /* 200 processes racing: slow on a loaded machine, not wrong */
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, claim_busy_expiry_owner_token);
    tcase_add_test(tc, claim_stale_holder_write_refused);
    tcase_add_test(tc, claim_of_dead_process_is_free);
    tcase_add_test(tc, claim_file_names_owner_and_expiry);
    tcase_add_test(tc, claim_corrupt_file_taken_over);
    tcase_add_test(tc, claim_takeover_race_has_one_winner);
    tcase_add_test(tc, claim_bad_arguments);
    tcase_add_test(tc, fenced_write_takes_the_guard_only_to_rename);
    tcase_add_test(tc, sweep_removes_only_stale_temporaries);
    suite_add_tcase(s, tc);

    tc = tcase_create("schema");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, schema_newer_refused);
    tcase_add_test(tc, schema_corrupt_names_file);
    tcase_add_test(tc, create_in_new_nested_dir);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_add_checked_fixture(tc, decoy_setup, decoy_teardown);
    tcase_add_test(tc, load_refuses_fifo_symlink_and_giant);
    tcase_add_test(tc, writes_never_go_through_a_symlink);
    tcase_add_test(tc, locks_symlink_is_replaced_not_followed);
    tcase_add_test(tc, sweep_removes_links_not_targets);
    tcase_add_test(tc, sweep_removes_answers_older_than_a_day);
    if (geteuid() == 0) {
        tcase_add_test(tc, move_between_owners_copies_regular_files);
        tcase_add_test(tc, set_owner_walk_leaves_links_alone);
    }
    suite_add_tcase(s, tc);

    if (geteuid() == 0) {
        tc = tcase_create("owner");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, set_owner_hands_child_groups_over);
        suite_add_tcase(s, tc);
    }
    return s;
}

ACME_TEST_MAIN(store_suite)
