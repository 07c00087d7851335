/* Preloaded into h2load by bench/serve for the handshake scenarios.
 *
 * h2load keeps one SSL object per client and reuses it for every reconnection, and OpenSSL then
 * offers the previous connection's session (TLS 1.3 PSK ticket or TLS 1.2 session ID): with
 * `Connection: close`, all but each client's first connection are resumed, abbreviated
 * handshakes. h2load has no option to turn that off, so this shim drops the saved session just
 * before each connection starts (h2load calls SSL_set_fd once per connection): every connection
 * is then a full handshake with a certificate and a signature.
 *
 * Environment:
 *   BENCH_TLS12=1        also cap every connection at TLS 1.2 (h2load cannot do that either)
 *   BENCH_KEEP_SESSION=1 do not drop the session (h2load as it is; only count)
 *   BENCH_COUNT_FILE=F   at exit, write "<connections> <resumed>" to F: the connections h2load
 *                        started and how many of them resumed a session (the client's own view,
 *                        independent of the server)
 *
 *   cc -shared -fPIC -O2 -o noresume.so serve-noresume.c -ldl
 *   LD_PRELOAD=./noresume.so h2load ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
int SSL_set_session(SSL *ssl, SSL_SESSION *session);
int SSL_session_reused(const SSL *ssl);
long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg);

#define CTRL_SET_MAX_PROTO_VERSION 124 /* SSL_CTRL_SET_MAX_PROTO_VERSION */
#define TLS1_2 0x0303                  /* TLS1_2_VERSION */

/* h2load may run several threads (-t): atomic counters. */
static unsigned long connections, resumed;

static int set(const char *name) {
    const char *v = getenv(name);
    return v && *v;
}

static void *next(const char *symbol) {
    void *f = dlsym(RTLD_NEXT, symbol);
    if (!f) {
        abort();
    }
    return f;
}

int SSL_set_fd(SSL *ssl, int fd) {
    static int (*real)(SSL *, int);
    if (!real) {
        real = (int (*)(SSL *, int))next("SSL_set_fd");
    }
    /* The flag still describes this object's previous connection, if it had one. */
    if (SSL_session_reused(ssl)) {
        __atomic_fetch_add(&resumed, 1, __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(&connections, 1, __ATOMIC_RELAXED);
    if (!set("BENCH_KEEP_SESSION")) {
        SSL_set_session(ssl, (SSL_SESSION *)0);
    }
    if (set("BENCH_TLS12")) {
        SSL_ctrl(ssl, CTRL_SET_MAX_PROTO_VERSION, TLS1_2, 0);
    }
    return real(ssl, fd);
}

void SSL_free(SSL *ssl) {
    static void (*real)(SSL *);
    if (!real) {
        real = (void (*)(SSL *))next("SSL_free");
    }
    if (ssl && SSL_session_reused(ssl)) {
        __atomic_fetch_add(&resumed, 1, __ATOMIC_RELAXED);
    }
    real(ssl);
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("BENCH_COUNT_FILE");
    if (path && *path) {
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%lu %lu\n", connections, resumed);
            fclose(f);
        }
    }
}
