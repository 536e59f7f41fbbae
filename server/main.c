/* main.c: driftrec-server's entry point: flags and environment, signals, start, drain.
 *
 * Signals are blocked before grpc_init() starts its threads, and main waits for them with
 * sigwait(): a handler installed after grpc_init() can miss SIGTERM delivered to one of
 * gRPC's threads.
 */
#include "auth.h"
#include "log.h"
#include "model_source.h"
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: driftrec-server [options]\n"
            "Serves driftrec.v1.Recommender, driftrec.v1.Admin and grpc.health.v1.Health over "
            "gRPC.\n"
            "  --listen ADDR        host:port to listen on (env DR_LISTEN; default "
            "127.0.0.1:50051)\n"
            "  --history DIR|URL    the event history (env DR_HISTORY; default var/history):\n"
            "                       an LMDB directory, this server's own; or a Redis shared\n"
            "                       by many replicas: redis://HOST:PORT[/DB] or\n"
            "                       unix:///PATH/TO/SOCKET.  Redis must run with appendonly\n"
            "                       yes and appendfsync always (else acknowledged events can\n"
            "                       be lost: the start is refused); no TLS, no AUTH: keep it\n"
            "                       on loopback, a socket or a private network\n"
            "                       (docs/history.md).  A Redis history needs --log-key-file\n"
            "  --history-map-mb N   LMDB map size in MiB (default 1024)\n"
            "  --history-prefix P   Redis: prefix of every key (env DR_HISTORY_PREFIX; default\n"
            "                       driftrec:)\n"
            "  --history-timeout-ms N  Redis: connect and command timeout (default 2000); a\n"
            "                       call that gets no answer fails with UNAVAILABLE\n"
            "  --history-allow-volatile yes|no  Redis: serve even when Redis would lose\n"
            "                       acknowledged events (a WARN line and the metric\n"
            "                       driftrec_history_durable 0; default no)\n"
            "  --history-replicas N Redis: each write waits (WAIT) until N replicas have it,\n"
            "                       else fails with UNAVAILABLE (default 0)\n");
    fprintf(out,
            "  --workers N          handler threads (default: number of CPUs)\n"
            "  --pollers N          completion-queue threads (default 2)\n"
            "  --queue N            work queue slots; a full queue answers RESOURCE_EXHAUSTED "
            "(default 1024)\n"
            "  --admit-by-deadline on|off\n"
            "                       refuse at once (RESOURCE_EXHAUSTED) a call that the queue\n"
            "                       ahead of it (its length x the mean compute time / workers)\n"
            "                       would make miss its deadline (default on); a call whose\n"
            "                       deadline passes in the queue anyway is dropped before\n"
            "                       compute (DEADLINE_EXCEEDED, driftrec_deadline_dropped_total)\n"
            "  --max-batch N        users (interest model) or texts (BERT) per batch of model\n"
            "                       work grouped across calls (driftrec_batch_size); 1: no\n"
            "                       batching, each call runs its own (default 1: batching\n"
            "                       measured slower on 2 cores; try 32 on more)\n"
            "  --max-queue-delay-us D\n"
            "                       how long a batch may wait for more work, from its oldest\n"
            "                       item (default 0: it takes what is queued at once)\n"
            "  --max-message-mb N   largest request accepted (default 4)\n"
            "  --variant NAME       A/B arm reported in the x-variant reply header (env "
            "DR_VARIANT);\n"
            "                       a call whose x-ab-variant header names another arm is\n"
            "                       served, logged and counted (driftrec_ab_misrouted_total)\n"
            "  --require-user-header on|off\n"
            "                       on: Recommend, Rank and Ingest need an x-user-id header\n"
            "                       (behind an A/B proxy; default off).  Either way a given\n"
            "                       x-user-id must equal the message's user id(s), else\n"
            "                       INVALID_ARGUMENT (env DR_REQUIRE_USER_HEADER)\n"
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
            "                       UNAVAILABLE; a bad bundle stops the server, exit 2\n");
    fprintf(out,
            "  --model-root DIR     a model registry instead of --model: DIR/NAME/VERSION/\n"
            "                       bundles; the highest VERSION (version order: 9 < 10) is\n"
            "                       served; names starting with '.' are skipped (copy a new\n"
            "                       version in as .tmp-V, then rename it) (env DR_MODEL_ROOT)\n"
            "  --model-name NAME    the model's directory in the registry (env DR_MODEL_NAME)\n"
            "  --model-poll-ms N    with --model-root: look for a new version every N ms and\n"
            "                       load it; 0: only at SIGHUP (env DR_MODEL_POLL_MS;\n"
            "                       default 5000)\n"
            "  --allow-step-time yes|no  serve bundles trained on order-only data\n"
            "                       (preprocessing.time_unit \"steps\"), whose gap buckets and\n"
            "                       half-life count events while requests carry seconds\n"
            "                       (default no: such a bundle is refused at load)\n"
            "  --query-weight W     w in [0, 1] of Recommend's query-text heuristic: the user\n"
            "                       vector u becomes (1-w) u + w |u| q/|q|, q the query's\n"
            "                       item-space vector (env DR_QUERY_WEIGHT; default 0.5;\n"
            "                       docs/api.md)\n"
            "  --warmup N           index searches the model's warm-up runs before it is\n"
            "                       served (item vectors as queries; default 100)\n"
            "  --state-cache N      users whose interest state is cached, 0 for none "
            "(default 100000);\n"
            "                       per replica: with a Redis history shared by replicas,\n"
            "                       route each user to one replica, or 0 (docs/history.md)\n"
            "  --impression-queue N Recommend's impressions (one per returned item) buffered\n"
            "                       for the event log's group-commit writer; when full, a\n"
            "                       response's impressions are dropped and counted in\n"
            "                       driftrec_impressions_dropped_total; 0: none are logged\n"
            "                       (default 65536)\n");
    /* Two parts: C compilers need only support string literals of 4095 characters. */
    fprintf(out,
            "  --tls-cert FILE      PEM certificate chain: serve TLS (env DR_TLS_CERT); with\n"
            "  --tls-key FILE       its PEM private key, unencrypted (env DR_TLS_KEY).  Both or\n"
            "                       neither; read and checked at start (a bad file: exit 2);\n"
            "                       plaintext clients cannot connect.  Rotation: restart\n"
            "  --tls-client-ca FILE mTLS: clients must present a certificate from this PEM CA\n"
            "                       (env DR_TLS_CLIENT_CA)\n"
            "  --token-file FILE    Recommender calls must carry 'authorization: Bearer TOKEN'\n"
            "                       metadata, TOKEN the file's one line (16 to 1024 visible\n"
            "                       ASCII characters); otherwise UNAUTHENTICATED (env\n"
            "                       DR_TOKEN_FILE).  Health never needs a token\n"
            "  --admin-token-file FILE\n"
            "                       enables driftrec.v1.Admin, whose calls must carry this\n"
            "                       token (different from --token-file's); without it Admin\n"
            "                       answers UNIMPLEMENTED (env DR_ADMIN_TOKEN_FILE)\n"
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
            "SIGINT or SIGTERM drains and stops the server: exit status 0 when every call was\n"
            "answered, 3 when the grace period ran out and calls were cancelled (the log's\n"
            "\"calls_cut\").  SIGHUP reloads the model: --model's\n"
            "directory again, or the registry's highest version; the new model is warmed up\n"
            "beside the served one and swapped in without failing a call; a bad one is\n"
            "refused (logged, driftrec_model_loads_total{result=\"failed\"}) and the served\n"
            "one stays.\n");
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

/* Parses a two-word switch (yes|no, on|off): true for the first word; exits with a message
 * on anything else. */
static bool parse_switch(const char *flag, const char *value, const char *yes, const char *no)
{
    if (strcmp(value, yes) != 0 && strcmp(value, no) != 0) {
        fprintf(stderr, "driftrec-server: %s %s: expected %s or %s\n", flag, value, yes, no);
        exit(2);
    }
    return strcmp(value, yes) == 0;
}

/* What the flags, the environment and the config file set: the server's options and where
 * main loads the recommendation model from once the server listens. */
struct options {
    struct dr_server_opts server;
    struct dr_auth_opts auth;
    struct dr_model_source model; /* nothing set: no recommendation model */
    int model_poll_ms;            /* registry: look for a new version this often; 0 = never */
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
    else if (strcmp(name, "history-prefix") == 0)
        opts->history_prefix = v;
    else if (strcmp(name, "history-timeout-ms") == 0)
        opts->history_timeout_ms = (int)parse_count(label, v, 600000);
    else if (strcmp(name, "history-replicas") == 0)
        opts->history_wait_replicas = strcmp(v, "0") == 0 ? 0 : (int)parse_count(label, v, 100);
    else if (strcmp(name, "allow-step-time") == 0)
        opts->allow_step_time = parse_switch(label, v, "yes", "no");
    else if (strcmp(name, "history-allow-volatile") == 0)
        opts->history_allow_volatile = parse_switch(label, v, "yes", "no");
    else if (strcmp(name, "workers") == 0)
        opts->n_workers = (int)parse_count(label, v, 1024);
    else if (strcmp(name, "pollers") == 0)
        opts->n_pollers = (int)parse_count(label, v, 64);
    else if (strcmp(name, "queue") == 0)
        opts->queue_capacity = (size_t)parse_count(label, v, 1L << 20);
    else if (strcmp(name, "max-batch") == 0)
        opts->max_batch = (size_t)parse_count(label, v, 4096);
    else if (strcmp(name, "max-queue-delay-us") == 0)
        opts->max_queue_delay_us =
            strcmp(v, "0") == 0 ? 0 : (uint64_t)parse_count(label, v, 10000000L);
    else if (strcmp(name, "admit-by-deadline") == 0)
        opts->admit_by_deadline = parse_switch(label, v, "on", "off");
    else if (strcmp(name, "max-message-mb") == 0)
        opts->max_message_bytes = (int)parse_count(label, v, 1024) << 20;
    else if (strcmp(name, "variant") == 0)
        opts->variant = v;
    else if (strcmp(name, "require-user-header") == 0)
        opts->is_user_header_required = parse_switch(label, v, "on", "off");
    else if (strcmp(name, "text-model") == 0)
        opts->text_model = v;
    else if (strcmp(name, "model") == 0)
        o->model.bundle_dir = v;
    else if (strcmp(name, "model-root") == 0)
        o->model.root = v;
    else if (strcmp(name, "model-name") == 0)
        o->model.name = v;
    else if (strcmp(name, "model-poll-ms") == 0)
        o->model_poll_ms = strcmp(v, "0") == 0 ? 0 : (int)parse_count(label, v, 86400000L);
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
    else if (strcmp(name, "tls-cert") == 0)
        o->auth.tls_cert_path = v;
    else if (strcmp(name, "tls-key") == 0)
        o->auth.tls_key_path = v;
    else if (strcmp(name, "tls-client-ca") == 0)
        o->auth.tls_client_ca_path = v;
    else if (strcmp(name, "token-file") == 0)
        o->auth.token_path = v;
    else if (strcmp(name, "admin-token-file") == 0)
        o->auth.admin_token_path = v;
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

/* A registry version that failed to load is not retried at every poll: only once its
 * manifest changes (or at SIGHUP). */
struct failed_version {
    char dir[DR_MODEL_PATH_MAX];
    struct timespec manifest_mtime;
};

static bool manifest_mtime(const char *dir, struct timespec *out)
{
    char path[DR_MODEL_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    *out = st.st_mtim;
    return true;
}

/* The registry's poll: loads its highest version when that is not the one served. */
static void poll_registry(struct dr_server *srv, const struct dr_model_source *src,
                          struct failed_version *failed)
{
    char dir[DR_MODEL_PATH_MAX], served[DR_MODEL_PATH_MAX];
    if (dr_model_source_resolve(src, dir, NULL) != DR_OK)
        return; /* the registry is being changed, or emptied: keep serving */
    if (dr_server_model_dir(srv, served, sizeof served) && strcmp(dir, served) == 0)
        return;
    struct timespec mtime = {0};
    manifest_mtime(dir, &mtime);
    if (strcmp(dir, failed->dir) == 0 && mtime.tv_sec == failed->manifest_mtime.tv_sec &&
        mtime.tv_nsec == failed->manifest_mtime.tv_nsec)
        return;
    struct dr_error err = {0};
    if (dr_server_load_model(srv, dir, &err) != DR_OK) {
        snprintf(failed->dir, sizeof failed->dir, "%s", dir);
        failed->manifest_mtime = mtime;
    }
}

int main(int argc, char **argv)
{
    struct options opts = {.log_level = DR_LOG_INFO, .model_poll_ms = 5000};
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
        {"DR_HISTORY_PREFIX", "history-prefix"},
        {"DR_VARIANT", "variant"},
        {"DR_REQUIRE_USER_HEADER", "require-user-header"},
        {"DR_METRICS", "metrics"},
        {"DR_TEXT_MODEL", "text-model"},
        {"DR_MODEL", "model"},
        {"DR_MODEL_ROOT", "model-root"},
        {"DR_MODEL_NAME", "model-name"},
        {"DR_MODEL_POLL_MS", "model-poll-ms"},
        {"DR_LOG_LEVEL", "log-level"},
        {"DR_LOG_KEY_FILE", "log-key-file"},
        {"DR_QUERY_WEIGHT", "query-weight"},
        {"DR_TLS_CERT", "tls-cert"},
        {"DR_TLS_KEY", "tls-key"},
        {"DR_TLS_CLIENT_CA", "tls-client-ca"},
        {"DR_TOKEN_FILE", "token-file"},
        {"DR_ADMIN_TOKEN_FILE", "admin-token-file"},
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
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    /* A write to a socket its peer closed (a Redis history that died mid-call) must fail
     * that call with EPIPE, not end the process. */
    signal(SIGPIPE, SIG_IGN);

    /* The server starts first and the bundle loads while it serves: health answers during
     * the load ("" SERVING: alive; driftrec.v1.Recommender NOT_SERVING until the model is
     * loaded and warm), so a liveness probe does not kill a server that is loading a large
     * model, and Recommend gets a retryable UNAVAILABLE meanwhile. */
    bool has_model = dr_model_source_is_set(&opts.model);
    {
        struct dr_error check = {0};
        if (dr_model_source_check(&opts.model, &check) != DR_OK) {
            fprintf(stderr, "driftrec-server: %s\n", check.msg);
            cJSON_Delete(config);
            return 2;
        }
    }
    opts.server.is_model_expected = has_model;
    opts.server.model_source = &opts.model;
    struct dr_server *srv = NULL;
    struct dr_error err = {0};
    struct dr_log_line line;
    /* TLS files and tokens before the port opens: a bad one is a configuration error (exit
     * status 2, like a bad flag), never a server that fails every handshake. */
    struct dr_auth *auth = NULL;
    if (dr_auth_load(&opts.auth, &auth, &err) != DR_OK) {
        dr_log_begin(&line, DR_LOG_ERROR, "cannot start: TLS or token configuration");
        dr_log_str(&line, "detail", err.msg);
        dr_log_end(&line);
        cJSON_Delete(config);
        return 2;
    }
    opts.server.auth = auth;
    if (dr_server_start(&opts.server, &srv, &err) != DR_OK) {
        dr_log_begin(&line, DR_LOG_ERROR, "cannot start");
        dr_log_str(&line, "detail", err.msg);
        dr_log_end(&line);
        dr_auth_destroy(auth);
        cJSON_Delete(config);
        return 1;
    }
    dr_log_begin(&line, DR_LOG_INFO, "serving");
    dr_log_str(&line, "listen", opts.server.listen_addr);
    dr_log_str(&line, "history", opts.server.history_path);
    dr_log_int(&line, "workers", opts.server.n_workers);
    dr_log_int(&line, "max_batch", (long long)opts.server.max_batch);
    dr_log_int(&line, "max_queue_delay_us", (long long)opts.server.max_queue_delay_us);
    dr_log_str(&line, "variant", opts.server.variant);
    dr_log_int(&line, "metrics_port", dr_server_metrics_port(srv));
    dr_log_str(&line, "transport", dr_auth_transport_name(auth));
    dr_log_str(&line, "token", dr_auth_has_token(auth) ? "required" : "none");
    dr_log_str(&line, "admin", dr_auth_has_admin(auth) ? "token" : "disabled");
    dr_log_str(&line, "model_dir", opts.model.bundle_dir ? opts.model.bundle_dir : "");
    dr_log_str(&line, "model_root", opts.model.root ? opts.model.root : "");
    dr_log_int(&line, "max_connection_age_ms", opts.server.max_connection_age_ms);
    dr_log_int(&line, "max_connection_age_grace_ms", opts.server.max_connection_age_grace_ms);
    dr_log_int(&line, "drain_delay_ms", opts.server.drain_delay_ms);
    dr_log_int(&line, "drain_grace_ms", opts.server.drain_grace_ms);
    dr_log_end(&line);

    if (has_model) {
        uint64_t start_ns = dr_now_ns();
        if (dr_server_reload(srv, &err) != DR_OK) {
            /* The start fails as a whole: exit status 2, like a bad flag. */
            dr_server_shutdown(srv);
            dr_auth_destroy(auth);
            cJSON_Delete(config);
            return 2;
        }
        dr_log_begin(&line, DR_LOG_INFO, "model ready");
        dr_log_int(&line, "state_cache", (long long)opts.server.state_cache_users);
        dr_log_int(&line, "impression_queue", (long long)opts.server.impression_queue);
        dr_log_int(&line, "warmup_queries", (long long)opts.server.warmup_queries);
        dr_log_double(&line, "query_weight", (double)opts.server.query_weight);
        dr_log_double(&line, "ms", (double)(dr_now_ns() - start_ns) / 1e6);
        dr_log_end(&line);
    }
    /* main waits for signals; with a registry it also looks for new versions meanwhile. */
    bool is_polling = has_model && opts.model.root && opts.model.root[0] && opts.model_poll_ms > 0;
    struct failed_version failed = {0};
    int sig = 0;
    for (;;) {
        if (is_polling) {
            struct timespec wait = {.tv_sec = opts.model_poll_ms / 1000,
                                    .tv_nsec = (long)(opts.model_poll_ms % 1000) * 1000000};
            sig = sigtimedwait(&signals, NULL, &wait);
            if (sig < 0) {
                if (errno == EAGAIN)
                    poll_registry(srv, &opts.model, &failed);
                continue;
            }
        } else if (sigwait(&signals, &sig) != 0) {
            continue;
        }
        if (sig != SIGHUP)
            break;
        if (!has_model) {
            dr_log(DR_LOG_WARN, "SIGHUP: no model source (--model or --model-root) to reload");
            continue;
        }
        dr_log(DR_LOG_INFO, "SIGHUP: reloading the model");
        dr_server_reload(srv, &err);
    }
    dr_log_begin(&line, DR_LOG_INFO, "draining");
    dr_log_int(&line, "signal", sig);
    dr_log_end(&line);
    long n_cut = dr_server_shutdown(srv);
    dr_log_begin(&line, n_cut ? DR_LOG_WARN : DR_LOG_INFO, "stopped");
    dr_log_int(&line, "calls_cut", n_cut);
    dr_log_end(&line);
    dr_auth_destroy(auth);
    cJSON_Delete(config);
    return n_cut ? 3 : 0; /* 3: the drain's grace period cut calls */
}
