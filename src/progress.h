/*
 * progress: the text of a progress report on long work (a backfill, a
 * refresh): rows done, of how many, the rate and the time left.
 */
#ifndef TXIDSYNC_PROGRESS_H
#define TXIDSYNC_PROGRESS_H

#include <stddef.h>

/*
 * Writes into out (len bytes, always terminated) "DONE rows", then when
 * total is known (> 0) " of ~TOTAL (P%)", then when rate > 0
 * ", RATE rows/s", then with both ", ETA T" (T like 45s, 3m05s, 2h07m; the
 * ETA and percentage are left out once done reaches the estimate, which
 * is only a guess).
 */
void progress_text(char *out, size_t len, long long done, long long total, double rate);

/* Writes a duration of s seconds as 45s, 3m05s or 2h07m into out. */
void progress_duration(char *out, size_t len, double s);

#endif
