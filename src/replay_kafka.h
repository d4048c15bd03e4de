/*
 * replay_kafka: the change events of a Kafka topic, read from the
 * beginning of every partition to its end (the high watermark when the
 * read starts) into a Replay (replay.h).  Tombstones (null values) are
 * passed over: the delete event before each says the same.  For the
 * checker.
 */
#ifndef TXIDSYNC_REPLAY_KAFKA_H
#define TXIDSYNC_REPLAY_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "replay.h"

/* Reads topic at brokers into r.  *tombstones counts the null values.
 * Returns 0, or -1 with err filled (no such topic, a broker that does not
 * answer, a message that is not an event, no progress for a minute). */
int replay_kafka(Replay *r, const char *brokers, const char *topic, uint64_t *tombstones, char *err,
                 size_t errlen) __attribute__((warn_unused_result));

#endif
