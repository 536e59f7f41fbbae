/* selfcheck.h: the start-up report and the kernel self-test (driftrec-server --self-check). */
#ifndef DR_SELFCHECK_H
#define DR_SELFCHECK_H

#include <stdio.h>

/* Prints version, CPU features, the kernel table chosen and why, then runs every chosen
 * integer kernel against the scalar reference on random data.  Returns 0 if all agree. */
int dr_selfcheck_run(FILE *out);

#endif /* DR_SELFCHECK_H */
