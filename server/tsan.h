/* tsan.h: happens-before annotations for ThreadSanitizer where our memory crosses a library
 * TSan cannot see into.
 *
 * Debian's libgrpc (and libgpr, libmicrohttpd, hiredis) are not instrumented: a struct call
 * one thread writes before handing its tag to grpc_call_start_batch and another frees after
 * grpc_completion_queue_next returns that tag is ordered by gRPC's own locks and atomics,
 * which TSan never sees, so it would report the free as a race.  The thread that hands an
 * object over calls DR_TSAN_RELEASE(obj) just before the library call; the thread that gets
 * it back calls DR_TSAN_ACQUIRE(obj) just after.  Only a TSan build (DR_SANITIZE=thread sets
 * DR_TSAN) includes the interface; elsewhere both are no-ops.
 */
#ifndef DR_TSAN_H
#define DR_TSAN_H

#if defined(DR_TSAN) && DR_TSAN
#include <sanitizer/tsan_interface.h>
#define DR_TSAN_RELEASE(addr) __tsan_release((void *)(addr))
#define DR_TSAN_ACQUIRE(addr) __tsan_acquire((void *)(addr))
#else
#define DR_TSAN_RELEASE(addr) ((void)(addr))
#define DR_TSAN_ACQUIRE(addr) ((void)(addr))
#endif

#endif /* DR_TSAN_H */
