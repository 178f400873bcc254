/* The crash-loop harness's pipeline (issue 13's acceptance: exactly-once state under SIGKILL):
 *
 *   Kafka "in" (key "p<partition>-<i>", value "k<key>", event time = message timestamp)
 *     -> key_by value ("by_key": crosses the repartition topic <group>-by_key-repartition)
 *     -> count per key ("counts")                                   -> Kafka "counts"
 *     -> tumbling window of CP_WINDOW_MS, grace CP_GRACE_MS, count ("windows") -> Kafka "windows"
 *
 * It runs as a child process (the driver, tests/test_crash_loop.c, starts it again and again
 * and kills it with SIGKILL), or standalone (tests/crash_loop/main.c: `crash_pipeline`).
 * Options:
 *   --bootstrap HOST:PORT   the cluster (required)
 *   --group G               the consumer group = application id (required)
 *   --instance NAME         this instance's name in its reports and logs (default "a")
 *   --state-dir DIR         state on disk (runtime option state_dir, RocksDB); without it the
 *                           state lives in memory (changelogs restore it once wired in)
 *   --arm-file PATH         once PATH exists, the process kills itself (SIGKILL) right after
 *                           the next task state write whose input positions moved on: a kill
 *                           between the state write and the offset commit that follows it
 * It reports on standard output, one line each (a single write, so lines never mix):
 *   ready                    once a task is RUNNING and a batch went through (once per run)
 *   task T OLD NEW           task T went from state OLD to NEW (brook_task_state_t numbers)
 *   written T TOPIC:P=OFF... task T's state was written with these input positions
 *   phase open NAME T        task T entered a crash-sensitive phase NAME ...
 *   phase close NAME T       ... and left it (for phases with both ends in hooks, e.g. a later
 *                           "changelog_marker": between a changelog write and its marker)
 * SIGTERM stops it cleanly (a final commit); exit 0 if the run ended OK. BROOK_TEST_LOG=1
 * sends the runtime's log to standard error. No cmocka here: the child runs it. */
#ifndef BROOK_TEST_CRASH_PIPELINE_H
#define BROOK_TEST_CRASH_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#define CP_TOPIC_IN "in"
#define CP_TOPIC_COUNTS "counts"
#define CP_TOPIC_WINDOWS "windows"
#define CP_NODE_KEY "by_key"
#define CP_NODE_COUNT "counts"
#define CP_NODE_WINDOW "windows"
#define CP_WINDOW_MS 1000
#define CP_GRACE_MS 500
#define CP_SESSION_TIMEOUT_MS "3000" /* a killed member's partitions move on after this */

/* The stores of the pipeline's stateful nodes (node, store), for their changelog topics
 * (<group>-<node>-<store>-changelog, src/kafka/internal_topic_names.h), NULL-terminated. */
extern const char *const cp_stores[][2];

/* The child's main: argv holds the options above (argv[0] is the first option). */
int crash_pipeline_main(int argc, char **argv);

#endif
