/*
 * sink_kafka: a change stream in a Kafka topic, behind the sink
 * interface, through librdkafka.
 *
 * Each change is one message of the table's topic: key = the key's id
 * (keys.h, as the index's _id), value = the same event as the NDJSON
 * sink's (the document with "op": "upsert", or the metadata member with
 * "op": "delete"); a delete is followed by a tombstone (null value), so
 * that a compacted topic ends as the table.  The producer is idempotent
 * with acks=all, and a change counts as applied only once the broker
 * acknowledged every message of it (the delivery report): the cursor
 * never covers a change a broker could lose.  One key always goes to one
 * partition (librdkafka's key hash), so a consumer sees one key's
 * versions in the order written; after a crash it may see a version
 * again (at least once), never a lower one after a higher one within a
 * run.  Delivery reports reach the event loop through a pipe the loop
 * watches.  A message the broker refuses for good (too large) is
 * rejected; any other failure is retried.
 */
#ifndef TXIDSYNC_SINK_KAFKA_H
#define TXIDSYNC_SINK_KAFKA_H

#include <stddef.h>

#include "sink.h"

typedef struct SinkKafkaConfig {
    const char *brokers; /* bootstrap servers, "host:port,..." */
    const char *topic;
    int partitions;                /* of the topic txidsync creates (compacted) */
    int replicas;                  /* its replication factor */
    size_t max_in_flight;          /* requests */
    size_t max_bytes;              /* the most bytes of one request */
    const char *dead_letter_topic; /* NULL: no dead letters (--on-reject stop) */
} SinkKafkaConfig;

/* Creates the driver and its producer in loop (borrowed; it must outlive
 * the sink).  Strings of cfg are copied.  Returns the sink, or NULL with
 * err filled. */
Sink *sink_kafka_new(const SinkKafkaConfig *cfg, Loop *loop, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
