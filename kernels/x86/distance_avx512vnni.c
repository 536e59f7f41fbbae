/* distance_avx512vnni.c: dot_s8 through vpdpbusd (see distance_avx512.c). */
#define DR_DIST_VNNI 1
#include "distance_avx512.c"
