/* The Kafka source's and sink's (de)serialisers: the serde chain (serde/serde.h) each of key
 * and value runs, built from the options' key_serde / value_serde tables, or from the
 * deprecated brook_kafka_serde_t formats (bytes, string, int64, custom callback), which map
 * onto the same chains. Runs where the topology is built; the chains then run per record on
 * the loop thread (bk_serde_chain_run). */
#ifndef BROOK_KAFKA_SERDE_H
#define BROOK_KAFKA_SERDE_H

#include <brook/kafka.h>

#include "core/errmsg.h"
#include "serde/serde.h"

/* Builds *chain for `which` (e.g. "value deserialiser") running `dir`: from `serde` if not
 * NULL, else from the deprecated `legacy` format. `legacy` must stay where it is for as long
 * as the chain is used (a CUSTOM format's chain calls through it): pass the source's or
 * sink's own copy of the options. NULL if the chain can run, else what is wrong (formatted
 * into *why): both set, an unknown format, CUSTOM without fn, or what bk_serde_chain_init
 * refuses. */
const char *bk_kafka_serde_chain(bk_serde_chain_t *chain, const brook_kafka_serde_t *legacy,
                                 const brook_serde_t *serde, bk_serde_dir_t dir, const char *which,
                                 bk_errmsg_t *why);

#endif
