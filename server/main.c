/* main.c: driftrec-server's entry point.
 *
 * Today it reports what the host runs and self-tests the kernels (--self-check, what
 * `make run` shows); serving gRPC requests is not built yet, and saying so plainly beats
 * pretending to listen.
 */
#include "selfcheck.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: driftrec-server [--self-check | --version | --help]\n"
                 "  --self-check  print CPU features and the kernel table chosen, then check\n"
                 "                the chosen integer kernels against the scalar reference\n"
                 "  --version     print the version and commit\n"
                 "environment:\n"
                 "  DR_ISA_MAX    cap the kernel ISA (ref, avx2, avx512, avx512vnni, neon,\n"
                 "                neondot) for A/B runs and bug reproduction\n");
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--self-check") == 0)
        return dr_selfcheck_run(stdout);
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("driftrec-server %s (commit %s)\n", DR_VERSION, DR_GIT_SHA);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 1) {
        fprintf(stderr, "driftrec-server: the gRPC service is not built yet; "
                        "--self-check reports the kernels\n");
        return 2;
    }
    fprintf(stderr, "driftrec-server: unknown argument '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
