/* main.c: driftrec-server's entry point: flags and environment, signals, start, drain.
 *
 * Signals are blocked before grpc_init() starts its threads, and main waits for them with
 * sigwait(): a handler installed after grpc_init() can miss SIGTERM delivered to one of
 * gRPC's threads.
 */
#include "bundle.h"
#include "log.h"
#include "recommend.h"
#include "selfcheck.h"
#include "server.h"
#include "workpool.h" /* dr_now_ns */

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: driftrec-server [options]\n"
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
            "  --drain-delay-ms N   at SIGTERM, health answers NOT_SERVING for N ms while\n"
            "                       calls are still served, so load balancers stop routing\n"
            "                       here before the port closes (default 0)\n"
            "  --max-connection-age-ms N\n"
            "                       send each client connection GOAWAY after about N ms\n"
            "                       (+-10%%), so clients reconnect and a connection-level load\n"
            "                       balancer (a Kubernetes Service) spreads them over new\n"
            "                       replicas (default 0: never)\n"
            "  --max-connection-age-grace-ms N\n"
            "                       after that GOAWAY, the connection's calls get N ms to\n"
            "                       finish before it is closed (default 0: no limit)\n");
    /* Two strings, each under the 4095 characters C99 compilers must support. */
    fprintf(out,
            "  --log-level LEVEL    error, warn, info (default) or debug: debug adds a line per\n"
            "                       request (env DR_LOG_LEVEL).  Logs are JSON lines on stderr\n"
            "  --log-key-file FILE  key of the user-id hash in log lines: 32 to 128 hex digits,\n"
            "                       mode 0600; made when absent (env DR_LOG_KEY_FILE; default\n"
            "                       HISTORY/log-key).  Log lines name users only by\n"
            "                       HMAC-SHA256(key, user id), 16 hex digits; the history\n"
            "                       and its event log keep real ids (files of mode 0600)\n"
            "  --metrics ADDR       Prometheus /metrics on host:port, 'off' to disable (env "
            "DR_METRICS; default 127.0.0.1:9090)\n"
            "  --text-model DIR     BERT model directory served by Embed (env "
            "DR_TEXT_MODEL);\n"
            "                       Embed's only: query text uses the bundle's text encoder\n"
            "  --model DIR          model bundle served by Recommend and Rank (env DR_MODEL;\n"
            "                       docs/bundle.md), loaded after the port opens: until it\n"
            "                       is loaded and warm, health says NOT_SERVING for\n"
            "                       driftrec.v1.Recommender and Recommend and Rank answer\n"
            "                       UNAVAILABLE; a bad bundle stops the server, exit 2\n"
            "  --query-weight W     w in [0, 1] of Recommend's query-text heuristic: the user\n"
            "                       vector u becomes (1-w) u + w |u| q/|q|, q the query's\n"
            "                       item-space vector (env DR_QUERY_WEIGHT; default 0.5;\n"
            "                       docs/api.md)\n"
            "  --warmup N           index searches the model's warm-up runs before it is\n"
            "                       served (item vectors as queries; default 100)\n"
            "  --state-cache N      users whose interest state is cached, 0 for none "
            "(default 100000)\n"
            "  --impression-queue N Recommend's impressions (one per returned item) buffered\n"
            "                       for the event log's group-commit writer; when full, a\n"
            "                       response's impressions are dropped and counted in\n"
            "                       driftrec_impressions_dropped_total; 0: none are logged\n"
            "                       (default 65536)\n"
            "  --config FILE        a JSON object of these options without the dashes, e.g.\n"
            "                       {\"listen\": \"0.0.0.0:50051\", \"workers\": 8} (env "
            "DR_CONFIG)\n"
            "  precedence: flags, then environment, then the config file, then defaults\n"
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

/* Parses a number in [0, 1]; exits with a message on a bad one. */
static float parse_unit(const char *flag, const char *value)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !(v >= 0 && v <= 1)) {
        fprintf(stderr, "driftrec-server: %s %s: expected a number in [0, 1]\n", flag, value);
        exit(2);
    }
    return (float)v;
}

/* What the flags, the environment and the config file set: the server's options and the
 * bundle directory main loads before starting it. */
struct options {
    struct dr_server_opts server;
    const char *model_dir; /* NULL or "": no recommendation model */
    enum dr_log_level log_level;
};

/* Applies one option by its flag name without dashes ("listen", "workers", ...).  Numbers
 * are checked here (a bad value exits with a message naming where it came from); strings are
 * borrowed and must outlive the server.  Returns false for an unknown name. */
static bool apply_option(struct options *o, const char *name, const char *v, const char *where)
{
    struct dr_server_opts *opts = &o->server;
    char label[160];
    snprintf(label, sizeof label, "%s%s", where, name);
    if (strcmp(name, "listen") == 0)
        opts->listen_addr = v;
    else if (strcmp(name, "history") == 0)
        opts->history_path = v;
    else if (strcmp(name, "history-map-mb") == 0)
        opts->history_map_bytes = (size_t)parse_count(label, v, 1L << 20) << 20;
    else if (strcmp(name, "workers") == 0)
        opts->n_workers = (int)parse_count(label, v, 1024);
    else if (strcmp(name, "pollers") == 0)
        opts->n_pollers = (int)parse_count(label, v, 64);
    else if (strcmp(name, "queue") == 0)
        opts->queue_capacity = (size_t)parse_count(label, v, 1L << 20);
    else if (strcmp(name, "max-message-mb") == 0)
        opts->max_message_bytes = (int)parse_count(label, v, 1024) << 20;
    else if (strcmp(name, "variant") == 0)
        opts->variant = v;
    else if (strcmp(name, "text-model") == 0)
        opts->text_model = v;
    else if (strcmp(name, "model") == 0)
        o->model_dir = v;
    else if (strcmp(name, "state-cache") == 0)
        opts->state_cache_users =
            strcmp(v, "0") == 0 ? 0 : (size_t)parse_count(label, v, 100000000L);
    else if (strcmp(name, "impression-queue") == 0)
        opts->impression_queue =
            strcmp(v, "0") == 0 ? 0 : (size_t)parse_count(label, v, 100000000L);
    else if (strcmp(name, "metrics") == 0)
        opts->metrics_addr = strcmp(v, "off") == 0 ? "" : v;
    else if (strcmp(name, "drain-grace-ms") == 0)
        opts->drain_grace_ms = (int)parse_count(label, v, 600000);
    else if (strcmp(name, "drain-delay-ms") == 0)
        opts->drain_delay_ms = strcmp(v, "0") == 0 ? 0 : (int)parse_count(label, v, 600000);
    else if (strcmp(name, "max-connection-age-ms") == 0)
        opts->max_connection_age_ms = strcmp(v, "0") == 0 ? 0 : (int)parse_count(label, v, INT_MAX);
    else if (strcmp(name, "max-connection-age-grace-ms") == 0)
        opts->max_connection_age_grace_ms =
            strcmp(v, "0") == 0 ? 0 : (int)parse_count(label, v, INT_MAX);
    else if (strcmp(name, "query-weight") == 0)
        opts->query_weight = parse_unit(label, v);
    else if (strcmp(name, "warmup") == 0)
        opts->warmup_queries = strcmp(v, "0") == 0 ? 0 : (size_t)parse_count(label, v, 10000000L);
    else if (strcmp(name, "log-key-file") == 0)
        opts->log_key_path = v;
    else if (strcmp(name, "log-level") == 0) {
        if (!dr_log_parse_level(v, &o->log_level)) {
            fprintf(stderr, "driftrec-server: %s %s: expected error, warn, info or debug\n", label,
                    v);
            exit(2);
        }
    } else
        return false;
    return true;
}

/* Reads a config file (a JSON object of option names to strings or integers) into opts.
 * Returns the parsed tree, which owns the strings opts now points to (free with cJSON_Delete
 * when the server has stopped); exits with a message on any problem. */
static cJSON *load_config(const char *path, struct options *opts)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "driftrec-server: config %s: cannot open it\n", path);
        exit(2);
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool too_big = !feof(f);
    fclose(f);
    if (too_big) {
        fprintf(stderr, "driftrec-server: config %s: larger than 64 KiB\n", path);
        exit(2);
    }
    buf[n] = '\0';
    cJSON *root = cJSON_Parse(buf);
    if (!cJSON_IsObject(root)) {
        fprintf(stderr, "driftrec-server: config %s: not a JSON object%s\n", path,
                root ? "" : " (syntax error)");
        cJSON_Delete(root); /* no leak report under the sanitizers */
        exit(2);
    }
    char where[128];
    snprintf(where, sizeof where, "config %s: ", path);
    for (cJSON *item = root->child; item; item = item->next) {
        char number[32];
        const char *v = NULL;
        if (cJSON_IsString(item)) {
            v = item->valuestring;
        } else if (cJSON_IsNumber(item) && strcmp(item->string, "query-weight") == 0) {
            snprintf(number, sizeof number, "%.17g", item->valuedouble); /* the one fraction */
            v = number;
        } else if (cJSON_IsNumber(item)) {
            snprintf(number, sizeof number, "%.0f", item->valuedouble);
            if (item->valuedouble != (double)(long long)item->valuedouble) {
                fprintf(stderr, "driftrec-server: %s%s: expected an integer\n", where,
                        item->string);
                cJSON_Delete(root);
                exit(2);
            }
            v = number;
        } else {
            fprintf(stderr, "driftrec-server: %s%s: expected a string or an integer\n", where,
                    item->string);
            cJSON_Delete(root);
            exit(2);
        }
        if (!apply_option(opts, item->string, v, where)) {
            fprintf(stderr, "driftrec-server: %sunknown option '%s' (see --help)\n", where,
                    item->string);
            cJSON_Delete(root);
            exit(2);
        }
    }
    return root;
}

/* The bundle --model names, loaded and checked in full before the server binds anything: a
 * bad one ends the start with exit status 2 and the loader's message, which names the file. */
static struct dr_bundle *load_bundle(const char *dir)
{
    struct dr_bundle *bundle = NULL;
    struct dr_error err = {0};
    uint64_t start_ns = dr_now_ns();
    struct dr_log_line line;
    if (dr_bundle_load(dir, NULL, &bundle, &err) != DR_OK) {
        dr_log_begin(&line, DR_LOG_ERROR, "cannot load the model bundle");
        dr_log_str(&line, "detail", err.msg);
        dr_log_end(&line);
        return NULL;
    }
    dr_log_begin(&line, DR_LOG_INFO, "model loaded");
    dr_log_str(&line, "model", dr_bundle_name(bundle));
    dr_log_str(&line, "version", dr_bundle_version(bundle));
    dr_log_int(&line, "items", (long long)dr_bundle_n_items(bundle));
    dr_log_int(&line, "dim", (long long)dr_bundle_item_dim(bundle));
    dr_log_double(&line, "ms", (double)(dr_now_ns() - start_ns) / 1e6);
    dr_log_end(&line);
    return bundle;
}

int main(int argc, char **argv)
{
    struct options opts = {.log_level = DR_LOG_INFO};
    dr_server_opts_default(&opts.server);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    opts.server.n_workers = ncpu > 0 ? (int)ncpu : 2;

    /* The config file first (flags and environment override it). */
    const char *config_path = getenv("DR_CONFIG");
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--config") == 0)
            config_path = argv[i + 1];
    cJSON *config = config_path ? load_config(config_path, &opts) : NULL;

    static const char *const env_options[][2] = {
        {"DR_LISTEN", "listen"},
        {"DR_HISTORY", "history"},
        {"DR_VARIANT", "variant"},
        {"DR_METRICS", "metrics"},
        {"DR_TEXT_MODEL", "text-model"},
        {"DR_MODEL", "model"},
        {"DR_LOG_LEVEL", "log-level"},
        {"DR_LOG_KEY_FILE", "log-key-file"},
        {"DR_QUERY_WEIGHT", "query-weight"},
    };
    for (size_t i = 0; i < sizeof env_options / sizeof env_options[0]; i++)
        if (getenv(env_options[i][0]))
            apply_option(&opts, env_options[i][1], getenv(env_options[i][0]), "environment: ");

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
        } else if (!v || strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "driftrec-server: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--config") != 0 && !apply_option(&opts, a + 2, v, "--")) {
            fprintf(stderr, "driftrec-server: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }

    dr_log_set_level(opts.log_level);

    /* Blocked before anything may start a thread (the server's, the bundle loader's): a
     * SIGINT during a long load waits, and the server drains at once after it. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    /* The server starts first and the bundle loads while it serves: health answers during
     * the load ("" SERVING: alive; driftrec.v1.Recommender NOT_SERVING until the model is
     * loaded and warm), so a liveness probe does not kill a server that is loading a large
     * model, and Recommend gets a retryable UNAVAILABLE meanwhile. */
    bool has_model = opts.model_dir && opts.model_dir[0];
    opts.server.is_model_expected = has_model;
    struct dr_server *srv = NULL;
    struct dr_error err = {0};
    struct dr_log_line line;
    if (dr_server_start(&opts.server, &srv, &err) != DR_OK) {
        dr_log_begin(&line, DR_LOG_ERROR, "cannot start");
        dr_log_str(&line, "detail", err.msg);
        dr_log_end(&line);
        cJSON_Delete(config);
        return 1;
    }
    dr_log_begin(&line, DR_LOG_INFO, "serving");
    dr_log_str(&line, "listen", opts.server.listen_addr);
    dr_log_str(&line, "history", opts.server.history_path);
    dr_log_int(&line, "workers", opts.server.n_workers);
    dr_log_str(&line, "variant", opts.server.variant);
    dr_log_int(&line, "metrics_port", dr_server_metrics_port(srv));
    dr_log_str(&line, "model_dir", has_model ? opts.model_dir : "");
    dr_log_int(&line, "max_connection_age_ms", opts.server.max_connection_age_ms);
    dr_log_int(&line, "max_connection_age_grace_ms", opts.server.max_connection_age_grace_ms);
    dr_log_int(&line, "drain_delay_ms", opts.server.drain_delay_ms);
    dr_log_int(&line, "drain_grace_ms", opts.server.drain_grace_ms);
    dr_log_end(&line);

    struct dr_bundle *bundle = NULL;
    if (has_model) {
        bundle = load_bundle(opts.model_dir);
        uint64_t start_ns = dr_now_ns();
        if (bundle && dr_server_set_model(srv, bundle, &err) != DR_OK) {
            dr_log_begin(&line, DR_LOG_ERROR, "cannot serve the model bundle");
            dr_log_str(&line, "detail", err.msg);
            dr_log_end(&line);
            dr_bundle_destroy(bundle);
            bundle = NULL;
        }
        if (!bundle) { /* the start fails as a whole: exit status 2, like a bad flag */
            dr_server_shutdown(srv);
            cJSON_Delete(config);
            return 2;
        }
        dr_log_begin(&line, DR_LOG_INFO, "model ready");
        dr_log_str(&line, "model", dr_bundle_name(bundle));
        dr_log_int(&line, "state_cache", (long long)opts.server.state_cache_users);
        dr_log_int(&line, "impression_queue", (long long)opts.server.impression_queue);
        dr_log_int(&line, "warmup_queries", (long long)opts.server.warmup_queries);
        /* Recommend's query_text: served only with the bundle's text encoder and projection. */
        dr_log_str(&line, "query_text", dr_bundle_text_projection(bundle, NULL) ? "served" : "off");
        dr_log_double(&line, "query_weight", (double)opts.server.query_weight);
        dr_log_double(&line, "warmup_ms", (double)(dr_now_ns() - start_ns) / 1e6);
        dr_log_end(&line);
    }
    int sig = 0;
    sigwait(&signals, &sig);
    dr_log_begin(&line, DR_LOG_INFO, "draining");
    dr_log_int(&line, "signal", sig);
    dr_log_end(&line);
    dr_server_shutdown(srv);
    dr_bundle_destroy(bundle); /* after the server: its workers read the bundle until then */
    dr_log(DR_LOG_INFO, "stopped");
    cJSON_Delete(config);
    return 0;
}
