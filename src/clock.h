/*
 * clock: the monotonic clock, for durations, deadlines and rates.
 */
#ifndef TXIDSYNC_CLOCK_H
#define TXIDSYNC_CLOCK_H

/* Seconds of the monotonic clock (an arbitrary origin). */
double clock_mono_s(void);

/* Sleeps s seconds (a blocking wait, for code outside the event loop); a
 * signal whose handler runs meanwhile cuts it short. */
void clock_sleep_s(double s);

#endif
