/* brook: an embeddable stream-processing library. Include this one header. */
#ifndef BROOK_BROOK_H
#define BROOK_BROOK_H

#include <brook/export.h>

#include <brook/aggregate.h>
#include <brook/alloc.h>
#include <brook/error.h>
#include <brook/kafka.h>
#include <brook/operator.h>
#include <brook/record.h>
#include <brook/runtime.h>
#include <brook/serde.h>
#include <brook/sink.h>
#include <brook/source.h>
#include <brook/state.h>
#include <brook/stateless.h>
#include <brook/store_backend.h>
#include <brook/store_rocksdb.h>
#include <brook/task.h>
#include <brook/test_driver.h>
#include <brook/time.h>
#include <brook/timestamp.h>
#include <brook/topology.h>
#include <brook/version.h>
#include <brook/window.h>

#endif
