/*
 * crash: crash injection.  With a probability set, crash_point() kills
 * the process with SIGKILL at the named point with that probability, the
 * way a power cut or the OOM killer would: no cleanup, no flush.  It exists
 * so that tests and the demo can prove that a crash anywhere loses nothing.
 */
#ifndef TXIDSYNC_CRASH_H
#define TXIDSYNC_CRASH_H

#include <stdint.h>

/* Sets the probability (0 = never, the default) and seeds the choice. */
void crash_configure(double probability, uint64_t seed);

/* Maybe dies here; where names the point in the message written first. */
void crash_point(const char *where);

#endif
