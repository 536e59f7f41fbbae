/* main.c: driftrec-server's entry point: flags and environment, signals, start, drain.
 *
 * Signals are blocked before grpc_init() starts its threads, and main waits for them with
 * sigwait(): a handler installed after grpc_init() can miss SIGTERM delivered to one of
 * gRPC's threads.
 */
#include "selfcheck.h"
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: driftrec-server [options]\n"
                 "Serves driftrec.v1.Recommender and grpc.health.v1.Health over gRPC.\n"
                 "  --listen ADDR        host:port to listen on (env DR_LISTEN; default "
                 "127.0.0.1:50051)\n"
                 "  --history DIR        LMDB directory of the event history (env DR_HISTORY; "
                 "default var/history)\n"
                 "  --history-map-mb N   LMDB map size in MiB (default 1024)\n"
                 "  --workers N          handler threads (default: number of CPUs)\n"
                 "  --pollers N          completion-queue threads (default 2)\n"
                 "  --queue N            work queue slots; a full queue answers RESOURCE_EXHAUSTED "
                 "(default 1024)\n"
                 "  --max-message-mb N   largest request accepted (default 4)\n"
                 "  --variant NAME       A/B arm reported in the x-variant reply header (env "
                 "DR_VARIANT)\n"
                 "  --drain-grace-ms N   in-flight calls' grace period at shutdown (default 5000)\n"
                 "  --metrics ADDR       Prometheus /metrics on host:port, 'off' to disable (env "
                 "DR_METRICS; default 127.0.0.1:9090)\n"
                 "  --self-check         print CPU features and the kernels chosen, check them, "
                 "exit\n"
                 "  --version, --help\n"
                 "environment:\n"
                 "  DR_ISA_MAX           cap the kernel ISA (ref, avx2, avx512, avx512vnni, neon, "
                 "neondot)\n"
                 "SIGINT or SIGTERM drains and stops the server.\n");
}

/* Parses a positive integer flag value; exits with a message on a bad one. */
static long parse_count(const char *flag, const char *value, long max)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || *end || v <= 0 || v > max) {
        fprintf(stderr, "driftrec-server: %s %s: expected an integer in 1..%ld\n", flag, value,
                max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    struct dr_server_opts opts;
    dr_server_opts_default(&opts);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    opts.n_workers = ncpu > 0 ? (int)ncpu : 2;
    if (getenv("DR_LISTEN"))
        opts.listen_addr = getenv("DR_LISTEN");
    if (getenv("DR_HISTORY"))
        opts.history_path = getenv("DR_HISTORY");
    if (getenv("DR_VARIANT"))
        opts.variant = getenv("DR_VARIANT");
    if (getenv("DR_METRICS"))
        opts.metrics_addr = getenv("DR_METRICS");
    if (getenv("DR_TEXT_MODEL"))
        opts.text_model = getenv("DR_TEXT_MODEL");

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("driftrec-server %s (commit %s)\n", DR_VERSION, DR_GIT_SHA);
            return 0;
        } else if (strcmp(a, "--self-check") == 0) {
            return dr_selfcheck_run(stdout);
        } else if (!v) {
            fprintf(stderr, "driftrec-server: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--listen") == 0) {
            opts.listen_addr = v;
        } else if (strcmp(a, "--history") == 0) {
            opts.history_path = v;
        } else if (strcmp(a, "--history-map-mb") == 0) {
            opts.history_map_bytes = (size_t)parse_count(a, v, 1L << 20) << 20;
        } else if (strcmp(a, "--workers") == 0) {
            opts.n_workers = (int)parse_count(a, v, 1024);
        } else if (strcmp(a, "--pollers") == 0) {
            opts.n_pollers = (int)parse_count(a, v, 64);
        } else if (strcmp(a, "--queue") == 0) {
            opts.queue_capacity = (size_t)parse_count(a, v, 1L << 20);
        } else if (strcmp(a, "--max-message-mb") == 0) {
            opts.max_message_bytes = (int)parse_count(a, v, 1024) << 20;
        } else if (strcmp(a, "--variant") == 0) {
            opts.variant = v;
        } else if (strcmp(a, "--text-model") == 0) {
            opts.text_model = v;
        } else if (strcmp(a, "--metrics") == 0) {
            opts.metrics_addr = strcmp(v, "off") == 0 ? "" : v;
        } else if (strcmp(a, "--drain-grace-ms") == 0) {
            opts.drain_grace_ms = (int)parse_count(a, v, 600000);
        } else {
            fprintf(stderr, "driftrec-server: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    struct dr_server *srv = NULL;
    struct dr_error err = {0};
    if (dr_server_start(&opts, &srv, &err) != DR_OK) {
        fprintf(stderr, "{\"level\":\"error\",\"msg\":\"cannot start\",\"detail\":\"%s\"}\n",
                err.msg);
        return 1;
    }
    fprintf(stderr,
            "{\"level\":\"info\",\"msg\":\"serving\",\"listen\":\"%s\",\"history\":\"%s\","
            "\"workers\":%d,\"variant\":\"%s\",\"metrics_port\":%d}\n",
            opts.listen_addr, opts.history_path, opts.n_workers, opts.variant,
            dr_server_metrics_port(srv));
    int sig = 0;
    sigwait(&signals, &sig);
    fprintf(stderr, "{\"level\":\"info\",\"msg\":\"draining\",\"signal\":%d}\n", sig);
    dr_server_shutdown(srv);
    fprintf(stderr, "{\"level\":\"info\",\"msg\":\"stopped\"}\n");
    return 0;
}
