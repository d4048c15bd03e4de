/*
 * replay_kafka: a topic into a Replay (see replay_kafka.h).
 */
#include "replay_kafka.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "clock.h"
#include "log.h"

#define STALL_S 60.0

/* A consumer of brokers that commits nothing.  NULL with err filled. */
static rd_kafka_t *consumer(const char *brokers, char *err, size_t errlen)
{
    char group[64], why[512];
    snprintf(group, sizeof(group), "txidsync-check-%d", (int)getpid());
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *settings[][2] = {{"bootstrap.servers", brokers},
                                 {"group.id", group},
                                 {"enable.auto.commit", "false"},
                                 {"enable.partition.eof", "true"},
                                 {"allow.auto.create.topics", "false"}};
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], why, sizeof(why)) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            err_printf(err, errlen, "kafka: %s", why);
            return NULL;
        }
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        err_printf(err, errlen, "kafka: %s", why);
    }
    return rk;
}

/* Assigns every partition of topic from its start; *ends gets each one's
 * high watermark.  Returns the number of partitions, or -1 (err filled). */
static int assign_all(rd_kafka_t *rk, const char *topic, int64_t **ends, char *err, size_t errlen)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    int n = -1;
    if (e)
        err_printf(err, errlen, "kafka: %s", rd_kafka_err2str(e));
    else if (md->topic_cnt < 1 || md->topics[0].err || md->topics[0].partition_cnt < 1)
        err_printf(err, errlen, "kafka: topic %s does not exist", topic);
    else
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    if (n < 0)
        return -1;
    *ends = calloc((size_t)n, sizeof(**ends));
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n && *ends; p++) {
        int64_t low = 0, high = 0;
        e = rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, 10000);
        if (e) {
            err_printf(err, errlen, "kafka: %s", rd_kafka_err2str(e));
            n = -1;
            break;
        }
        (*ends)[p] = high;
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (n > 0 && rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err_printf(err, errlen, "kafka: cannot read topic %s", topic);
        n = -1;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return n;
}

/* Takes one message into r; *done[p] once partition p is read to its end. */
static int take(Replay *r, const rd_kafka_message_t *m, const int64_t *ends, bool *done,
                uint64_t *tombstones, char *err, size_t errlen)
{
    char why[512];
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        done[m->partition] = true;
        return 0;
    }
    if (m->err)
        return err_printf(err, errlen, "kafka: %s", rd_kafka_message_errstr(m));
    if (!m->payload)
        (*tombstones)++;
    else if (replay_event(r, m->payload, m->len, why, sizeof(why)) < 0)
        return err_printf(err, errlen, "kafka: partition %d offset %lld: %s", (int)m->partition,
                          (long long)m->offset, why);
    if (m->offset + 1 >= ends[m->partition])
        done[m->partition] = true;
    return 0;
}

int replay_kafka(Replay *r, const char *brokers, const char *topic, uint64_t *tombstones, char *err,
                 size_t errlen)
{
    *tombstones = 0;
    rd_kafka_t *rk = consumer(brokers, err, errlen);
    if (!rk)
        return -1;
    int64_t *ends = NULL;
    bool *done = NULL;
    int rc = -1;
    int n = assign_all(rk, topic, &ends, err, errlen);
    if (n < 0 || !(done = calloc((size_t)n, sizeof(*done))))
        goto out;
    for (int p = 0; p < n; p++)
        done[p] = ends[p] == 0;
    double stall_at = clock_mono_s() + STALL_S;
    for (;;) {
        bool all = true;
        for (int p = 0; p < n; p++)
            all = all && done[p];
        if (all) {
            rc = 0;
            break;
        }
        if (clock_mono_s() > stall_at) {
            err_printf(err, errlen, "kafka: no progress reading topic %s for %.0f s", topic,
                       STALL_S);
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m)
            continue;
        stall_at = clock_mono_s() + STALL_S;
        int t = take(r, m, ends, done, tombstones, err, errlen);
        rd_kafka_message_destroy(m);
        if (t < 0)
            break;
    }
out:
    free(ends);
    free(done);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}
