/* The crash-loop pipeline as a program of its own (crash_pipeline.h), for runs by hand or from
 * scripts against any cluster: `crash_pipeline --bootstrap HOST:PORT --group G [--state-dir
 * DIR] ...`; it reports on standard output and stops on SIGTERM. */
#include "crash_loop/crash_pipeline.h"

int main(int argc, char **argv) { return crash_pipeline_main(argc - 1, argv + 1); }
