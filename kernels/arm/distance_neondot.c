/* distance_neondot.c: dot_s8 through sdot (see distance_neon.c). */
#define DR_DIST_DOTPROD 1
#include "distance_neon.c"
