/* custom_operator: the heartbeat-absence detector, a custom operator written against
 * brook_operator_t (operator.h) with keyed state in a store (state.h) and both kinds of timers
 * (time.h). It is the template to copy for an operator of your own: custom_operator.c says
 * what each part is for; main.c runs it; tests/test_example_custom_operator.c tests it with
 * the test driver.
 *
 * Input: one record per heartbeat. key = the device id (required, any bytes), value = anything
 * (ignored), timestamp = when the device sent it (event time).
 *
 * Output 0, the events (key = the device, value = heartbeat_event_t):
 *   SILENT  no heartbeat for `silence` ms of event time after the device's last one: emitted
 *           when the watermark reaches last_seen + silence, with that as its timestamp;
 *   BACK    the first heartbeat of a silent device (timestamp = that heartbeat's).
 * Output 1, the reports (empty key, value = heartbeat_report_t): every `report_every` ms of
 *   processing time, and once at the end of the input.
 *
 * Configuration (brook_operator_opts_t.config, all in milliseconds):
 *   silence       how long a device may be quiet (event time); default 30000
 *   report_every  the report's period (processing time); default 60000; 0 = no periodic report
 *   forget_after  a silent device is forgotten (its state deleted) once it has sent nothing
 *                 for this long (event time); must be > silence; default 0 = never
 *
 * Tasks (operator.h): downstream of a Kafka source each partition gets its own instance, with
 * its own store, timers and reports; the devices must be partitioned by their id (the
 * producer keys heartbeats by device). */
#ifndef CUSTOM_OPERATOR_H
#define CUSTOM_OPERATOR_H

#include <stdint.h>

#include <brook/brook.h>

typedef enum heartbeat_event_kind {
  HEARTBEAT_SILENT = 1,
  HEARTBEAT_BACK = 2
} heartbeat_event_kind_t;

typedef struct heartbeat_event {
  int32_t kind;           /* heartbeat_event_kind_t */
  brook_time_t last_seen; /* the device's previous heartbeat (event time) */
  brook_time_t silent_ms; /* SILENT: the configured silence; BACK: how long it was quiet */
} heartbeat_event_t;

typedef struct heartbeat_report {
  uint64_t devices;       /* devices in the store now */
  uint64_t silent;        /* ... of which silent */
  uint64_t heartbeats;    /* heartbeats received since the previous report */
  brook_time_t watermark; /* the operator's event-time watermark (BROOK_TIME_MAX at the end) */
} heartbeat_report_t;

/* The operator's function table (brook_operator_add copies it). */
extern const brook_operator_t heartbeat_watch_operator;

#endif
