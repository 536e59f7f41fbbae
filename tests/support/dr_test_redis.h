/* dr_test_redis.h: a real redis-server for a test, started and stopped by the test itself.
 *
 * The server listens on a unix socket only (no TCP port to race for) in a new temporary
 * directory, with the settings a history store needs: appendonly yes, appendfsync always and
 * no RDB snapshots, so what it acknowledged is in its AOF and a restart (after a kill -9
 * too) replays it.  DR_REDIS_SERVER names the binary (default: redis-server on the PATH); a
 * test whose binary is missing exits 77 (skipped) with a message.
 */
#ifndef DR_TEST_REDIS_H
#define DR_TEST_REDIS_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct dr_test_redis {
    pid_t pid;
    char dir[256], sock[300], url[320];
    bool is_volatile; /* appendonly no: what the history store must refuse */
};

static inline const char *dr_test_redis_binary(void)
{
    const char *bin = getenv("DR_REDIS_SERVER");
    if (bin && bin[0])
        return access(bin, X_OK) == 0 ? bin : NULL;
    static char found[512];
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/bin:/usr/sbin", path ? path : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(found, sizeof found, "%s/redis-server", d);
        if (access(found, X_OK) == 0)
            return found;
    }
    return NULL;
}

/* Exits 77 when redis-server is absent: the Redis variant of a test is skipped, not passed. */
static inline void dr_test_redis_require(void)
{
    if (!dr_test_redis_binary()) {
        printf("SKIP: redis-server not found (apt-get install redis-server, or set "
               "DR_REDIS_SERVER): the Redis history store is not tested\n");
        exit(77);
    }
}

/* Starts (or restarts, same directory and AOF) the server; exits the test on failure. */
static inline void dr_test_redis_spawn(struct dr_test_redis *r)
{
    const char *bin = dr_test_redis_binary();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that dies leaves no server behind */
        char log[300];
        snprintf(log, sizeof log, "%s/redis.log", r->dir);
        execl(bin, bin, "--port", "0", "--unixsocket", r->sock, "--dir", r->dir, "--appendonly",
              r->is_volatile ? "no" : "yes", "--appendfsync", "always", "--save", "", "--logfile",
              log, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    r->pid = pid;
    for (int i = 0; i < 1000; i++) { /* up to 10 s */
        redisContext *c = redisConnectUnix(r->sock);
        redisReply *rep = c && !c->err ? redisCommand(c, "PING") : NULL;
        bool is_up = rep && rep->type == REDIS_REPLY_STATUS;
        freeReplyObject(rep);
        if (c)
            redisFree(c);
        if (is_up)
            return;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "redis-server exited at start (see %s/redis.log)\n", r->dir);
            exit(1);
        }
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    fprintf(stderr, "redis-server did not answer PING within 10 s\n");
    exit(1);
}

static inline void dr_test_redis_start(struct dr_test_redis *r, bool is_volatile)
{
    dr_test_redis_require();
    memset(r, 0, sizeof *r);
    r->is_volatile = is_volatile;
    const char *tmp = getenv("TMPDIR");
    snprintf(r->dir, sizeof r->dir, "%s/dr_redis_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(r->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    snprintf(r->url, sizeof r->url, "unix://%s", r->sock);
    dr_test_redis_spawn(r);
}

/* Sends sig (SIGKILL: a crash; SIGTERM: a clean stop) and waits for the exit. */
static inline void dr_test_redis_kill(struct dr_test_redis *r, int sig)
{
    if (r->pid > 0) {
        kill(r->pid, sig);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

/* Stops the server and removes its directory. */
static inline void dr_test_redis_stop(struct dr_test_redis *r)
{
    dr_test_redis_kill(r, SIGKILL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", r->dir);
}

#endif /* DR_TEST_REDIS_H */
