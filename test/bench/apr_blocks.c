/* apr_blocks.c: a measurement aid for bench_memory.py, not part of the
 * module. Preloaded into apache2, it keeps every anonymous mmap made
 * through the PLT (Debian's APR takes its pool blocks that way) with the
 * first callers outside libapr and libc, resolved at once (httpd unloads and
 * reloads modules between its configuration passes). When the file
 * $APR_BLOCKS_DIR/trigger.<pid> appears, the process writes its live blocks
 * to $APR_BLOCKS_DIR/blocks.<pid>: "size address object+offset...". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_BLOCKS 200000
#define FRAMES 5

typedef struct {
    void *addr;
    size_t len;
    const char *obj[FRAMES];
    unsigned long off[FRAMES];
} block_t;

static block_t blocks[MAX_BLOCKS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int inside; /* no recording of our own allocations */
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);

static int skipped(const char *obj)
{
    return !obj || strstr(obj, "libapr") || strstr(obj, "libc.so") || strstr(obj, "apr_blocks");
}

static void record(void *addr, size_t len)
{
    void *bt[32];
    block_t *b = NULL;
    int n, i, k = 0;

    inside = 1;
    n = backtrace(bt, 32);
    pthread_mutex_lock(&mu);
    for (i = 0; i < MAX_BLOCKS && !b; i++) {
        if (!blocks[i].addr) b = &blocks[i];
    }
    if (b) {
        memset(b, 0, sizeof(*b));
        b->addr = addr;
        b->len = len;
        for (i = 1; i < n && k < FRAMES; i++) {
            Dl_info di;
            if (!dladdr(bt[i], &di) || (k == 0 && skipped(di.dli_fname))) continue;
            b->obj[k] = strdup(di.dli_fname);
            b->off[k++] = (unsigned long)bt[i] - (unsigned long)di.dli_fbase - 1;
        }
    }
    pthread_mutex_unlock(&mu);
    inside = 0;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *r;

    if (!real_mmap) real_mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
    r = real_mmap(addr, len, prot, flags, fd, off);
    if (r != MAP_FAILED && !inside && (flags & MAP_ANONYMOUS) && len <= (1 << 20)) record(r, len);
    return r;
}

int munmap(void *addr, size_t len)
{
    int i;

    if (!real_munmap) real_munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
    pthread_mutex_lock(&mu);
    for (i = 0; i < MAX_BLOCKS; i++) {
        if (blocks[i].addr == addr) {
            blocks[i].addr = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return real_munmap(addr, len);
}

static void *watch(void *unused)
{
    const char *dir = getenv("APR_BLOCKS_DIR");
    char trigger[512], out[512];

    (void)unused;
    inside = 1;
    if (!dir) return NULL;
    for (;;) {
        usleep(200000);
        snprintf(trigger, sizeof(trigger), "%s/trigger.%d", dir, (int)getpid());
        snprintf(out, sizeof(out), "%s/blocks.%d", dir, (int)getpid());
        if (access(trigger, F_OK) == 0) {
            FILE *f = fopen(out, "w");
            int i, k;
            pthread_mutex_lock(&mu);
            for (i = 0; f && i < MAX_BLOCKS; i++) {
                if (!blocks[i].addr) continue;
                fprintf(f, "%zu %p", blocks[i].len, blocks[i].addr);
                for (k = 0; k < FRAMES && blocks[i].obj[k]; k++) {
                    fprintf(f, " %s+0x%lx", blocks[i].obj[k], blocks[i].off[k]);
                }
                fputc('\n', f);
            }
            pthread_mutex_unlock(&mu);
            if (f) fclose(f);
            unlink(trigger);
        }
    }
    return NULL;
}

static void start_watch(void)
{
    pthread_t t;
    pthread_create(&t, NULL, watch, NULL);
}

__attribute__((constructor)) static void init(void)
{
    void *bt[2];

    inside = 1;
    backtrace(bt, 2); /* loads the unwinder before any recording */
    inside = 0;
    start_watch();
    pthread_atfork(NULL, NULL, start_watch); /* the children too */
}
