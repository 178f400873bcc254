/* push_attach: brook inside an application that owns its libuv loop.
 *
 * The application runs its own uv loop with its own handle (a timer printing a heartbeat
 * every 100 ms) and attaches a brook pipeline to that loop with brook_runtime_start(). brook
 * processes in slices of at most slice_us, so the heartbeat keeps ticking while records flow.
 *
 * A producer thread pushes 100,000 numbers into a push source whose queue holds at most 256
 * records: when the queue is full, brook_push() refuses (BROOK_ERR_FULL) and the producer
 * waits for credit with brook_push_wait() -- that is backpressure: a fast producer cannot
 * grow memory without bound. The pipeline squares each number and a sink adds them up.
 *
 *   push source "numbers" -> map "square" -> callback sink (sum)
 *
 * When everything is processed, on_done prints the stats and frees the runtime, the app
 * closes its timer, uv_run returns and uv_loop_close() succeeds: brook left nothing behind. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <brook/brook.h>
#include <uv.h>

#define N_RECORDS 100000u
#define BURST 10000u /* the producer pushes in bursts, pausing between them */

typedef struct app {
  uv_loop_t loop;
  uv_timer_t heartbeat;
  unsigned beats;
  brook_runtime_t *rt;
  brook_push_source_t *numbers;
  uv_thread_t producer;
  int producer_running;
  /* Written by the producer thread, read by the loop thread only after joining it. */
  uint64_t pushed, waited_for_credit;
  brook_err_t push_err;
  /* Written by the sink, on the loop thread. */
  uint64_t received, sum;
} app_t;

/* ---- the producer thread: only the push functions are called from here ---------------- */

static void produce(void *arg) {
  app_t *app = arg;
  for (uint64_t i = 1; i <= N_RECORDS; i++) {
    brook_record_t rec = {.value = &i, .value_len = sizeof(i)}; /* copied by the push */
    brook_err_t err = brook_push(app->numbers, &rec);           /* never blocks */
    if (err == BROOK_ERR_FULL) {
      app->waited_for_credit++; /* backpressure: wait until the pipeline catches up */
      err = brook_push_wait(app->numbers, &rec, -1);
    }
    if (err != BROOK_OK) { /* BROOK_ERR_STOPPED: the runtime stopped or failed */
      app->push_err = err;
      break;
    }
    app->pushed++;
    if (i % BURST == 0)
      uv_sleep(20); /* a bursty producer: the heartbeat shows progress between bursts */
  }
  brook_push_end(app->numbers); /* no more records: the source ends once they are processed */
}

/* ---- the pipeline's callbacks: on the loop thread ------------------------------------- */

static brook_err_t square(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  uint64_t n;
  memcpy(&n, rec->value, sizeof(n));
  uint64_t *sq = brook_ctx_alloc(ctx, sizeof(*sq));
  if (!sq)
    return BROOK_ERR_NOMEM;
  *sq = n * n;
  rec->value = sq;
  rec->value_len = sizeof(*sq);
  return BROOK_OK;
}

static brook_err_t add_up(const brook_record_t *rec, void *opaque) {
  app_t *app = opaque;
  app->received++;
  app->sum += *(const uint64_t *)rec->value;
  return BROOK_OK;
}

/* ---- the application's own handle ----------------------------------------------------- */

static void on_heartbeat(uv_timer_t *timer) {
  app_t *app = timer->data;
  brook_runtime_stats_t stats = {.struct_size = sizeof(stats)};
  brook_runtime_stats(app->rt, &stats); /* loop thread: allowed */
  printf("heartbeat %u: %" PRIu64 " records processed so far\n", ++app->beats, stats.records_out);
  fflush(stdout);
}

/* Called on the loop thread once the pipeline has finished and closed its handles. */
static void on_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  app_t *app = opaque;
  /* Join the producer before freeing the runtime: the push source handle it uses belongs to
   * the runtime. It is not blocked: its last call, brook_push_end, is returning, or a push
   * is returning BROOK_ERR_STOPPED because the runtime has finished. */
  if (app->producer_running) {
    uv_thread_join(&app->producer);
    app->producer_running = 0;
  }
  brook_runtime_stats_t stats = {.struct_size = sizeof(stats)};
  brook_runtime_stats(rt, &stats);
  printf("pipeline done: %s%s%s\n", brook_errname(status), status ? ": " : "",
         status ? brook_runtime_last_error(rt) : "");
  printf("pushed %" PRIu64 " records; the producer waited for credit %" PRIu64 " times\n",
         app->pushed, app->waited_for_credit);
  printf("processed %" PRIu64 " records, sum of squares %" PRIu64 "\n", app->received, app->sum);
  printf("runtime: %" PRIu64 " records in, %" PRIu64 " out, %" PRIu64 " batches, %" PRIu64
         " slices\n",
         stats.records_in, stats.records_out, stats.batches, stats.slices);
  brook_runtime_free(rt); /* allowed inside on_done */
  app->rt = NULL;
  uv_close((uv_handle_t *)&app->heartbeat, NULL); /* our last handle: uv_run returns */
}

int main(void) {
  static app_t app; /* static: zeroed, and outlives everything */
  if (uv_loop_init(&app.loop) != 0)
    return 1;
  uv_timer_init(&app.loop, &app.heartbeat);
  app.heartbeat.data = &app;
  uv_timer_start(&app.heartbeat, on_heartbeat, 100, 100);

  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    return 1;
  brook_push_opts_t popts;
  brook_push_opts_init(&popts);
  popts.max_records = 256; /* a small queue, so backpressure shows */
  brook_stream_t *numbers = brook_source_push(t, "numbers", &popts);
  brook_stream_t *squares = brook_stream_set_name(brook_map(numbers, square, NULL), "square");
  brook_sink_callback(squares, add_up, NULL, &app);

  brook_runtime_opts_t ropts;
  brook_runtime_opts_init(&ropts);
  ropts.slice_us = 500; /* yield to the app's handles at least every 0.5 ms */
  ropts.on_done = on_done;
  ropts.on_done_opaque = &app;
  brook_err_t err = brook_runtime_new(&app.rt, t, &ropts);
  if (err != BROOK_OK) {
    fprintf(stderr, "push_attach: %s\n", brook_topology_last_error(t));
    brook_topology_free(t);
    return 1;
  }
  brook_topology_free(t);
  app.numbers = brook_runtime_push_source(app.rt, "numbers");

  if ((err = brook_runtime_start(app.rt, &app.loop)) != BROOK_OK) {
    fprintf(stderr, "push_attach: start: %s\n", brook_runtime_last_error(app.rt));
    brook_runtime_free(app.rt);
    uv_close((uv_handle_t *)&app.heartbeat, NULL);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_loop_close(&app.loop);
    return 1;
  }
  if (uv_thread_create(&app.producer, produce, &app) != 0) {
    fprintf(stderr, "push_attach: cannot start the producer thread\n");
    brook_push_end(app.numbers); /* the pipeline ends with nothing pushed */
  } else {
    app.producer_running = 1;
  }

  uv_run(&app.loop, UV_RUN_DEFAULT); /* the application's loop: brook runs inside it */

  int rc = uv_loop_close(&app.loop);
  printf("loop closed: %s\n", rc == 0 ? "ok, no handle left behind" : uv_strerror(rc));
  uint64_t n = N_RECORDS;
  int ok = rc == 0 && app.received == n && app.sum == n * (n + 1) * (2 * n + 1) / 6;
  return ok ? 0 : 1;
}
