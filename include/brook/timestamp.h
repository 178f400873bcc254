/* Event time. Every record carries a brook_time_t: MILLISECONDS since the Unix epoch (UTC),
 * the unit Kafka and Flink use. Durations are in the same unit. */
#ifndef BROOK_TIMESTAMP_H
#define BROOK_TIMESTAMP_H

#include <brook/export.h>

#include <stdint.h>

typedef int64_t brook_time_t;

#define BROOK_MS ((brook_time_t)1)
#define BROOK_S ((brook_time_t)1000)
#define BROOK_MIN ((brook_time_t)60 * BROOK_S)
#define BROOK_H ((brook_time_t)60 * BROOK_MIN)

/* Smallest and largest representable times (used as "no time yet" / "end of time"). */
#define BROOK_TIME_MIN INT64_MIN
#define BROOK_TIME_MAX INT64_MAX

#endif
