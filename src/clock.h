/*
 * clock: the monotonic clock, for durations, deadlines and rates.
 */
#ifndef TXIDSYNC_CLOCK_H
#define TXIDSYNC_CLOCK_H

/* Seconds of the monotonic clock (an arbitrary origin). */
double clock_mono_s(void);

#endif
