/* One instance of the crash-loop pipeline as a child process. See crash_child.h. */
#include "crash_loop/crash_child.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "broker_proc.h"
#include "kafka_helpers.h"

void crash_child_spawn(crash_child_t *c, const char *name, const char *const *args) {
  memset(c, 0, sizeof(*c));
  snprintf(c->name, sizeof(c->name), "%s", name);
  const char *argv[32] = {"--crash-child"};
  size_t n = 1;
  while (args[n - 1] && n < 31) {
    argv[n] = args[n - 1];
    n++;
  }
  argv[n] = NULL;
  c->pid = self_exec_spawn_piped(argv, &c->out.fd);
}

static void on_written(crash_child_t *c, const char *line) {
  int task, used = 0;
  if (sscanf(line, "written %d%n", &task, &used) != 1)
    return;
  c->writes++;
  char item[256];
  /* Items " TOPIC:P=OFF" (a Kafka topic name has no ':' and no space). */
  for (const char *p = line + used; sscanf(p, " %255s%n", item, &used) == 1; p += used) {
    char *colon = strchr(item, ':');
    crash_pos_t x = {.task = task};
    long long off;
    if (!colon || sscanf(colon + 1, "%d=%lld", &x.partition, &off) != 2)
      return;
    snprintf(x.topic, sizeof(x.topic), "%.*s", (int)(colon - item), item);
    x.offset = off;
    int i = 0;
    while (i < c->n_pos &&
           !(strcmp(c->pos[i].topic, x.topic) == 0 && c->pos[i].partition == x.partition))
      i++;
    if (i < CC_MAX_POS) {
      c->pos[i] = x;
      c->n_pos += i == c->n_pos;
    }
  }
}

static void on_phase(crash_child_t *c, const char *line) {
  char what[8], name[32];
  int task;
  if (sscanf(line, "phase %7s %31s %d", what, name, &task) != 3)
    return;
  int i = 0;
  while (i < c->n_open && !(strcmp(c->open[i].name, name) == 0 && c->open[i].task == task))
    i++;
  if (strcmp(what, "open") == 0 && i == c->n_open && i < CC_MAX_PHASES) {
    snprintf(c->open[i].name, sizeof(c->open[i].name), "%s", name);
    c->open[i].task = task;
    c->n_open++;
  } else if (strcmp(what, "close") == 0 && i < c->n_open) {
    c->open[i] = c->open[--c->n_open];
  }
}

static void on_line(crash_child_t *c, const char *line) {
  int task, old, state;
  if (strcmp(line, "ready") == 0) {
    c->ready = 1;
    c->ready_at = kh_now_ms();
  } else if (sscanf(line, "task %d %d %d", &task, &old, &state) == 3) {
    c->running += (state == 2) - (old == 2); /* BROOK_TASK_RUNNING */
  } else if (strncmp(line, "written ", 8) == 0) {
    on_written(c, line);
  } else if (strncmp(line, "phase ", 6) == 0) {
    on_phase(c, line);
  }
}

void crash_child_drain(crash_child_t *c, int wait_ms) {
  char line[4096];
  if (c->out.fd <= 0)
    return;
  for (int first = 1;
       child_read_line(&c->out, line, sizeof(line), first && wait_ms > 1 ? wait_ms : 1) == 0;
       first = 0)
    on_line(c, line);
}

int crash_child_exited(crash_child_t *c, int *code) {
  if (!c->pid)
    return 1;
  int rc = wait_child(c->pid, 0);
  if (rc < 0)
    return 0;
  self_exec_forget(c->pid);
  crash_child_drain(c, 0);
  close(c->out.fd);
  c->out.fd = -1;
  c->pid = 0;
  *code = rc;
  return 1;
}

int crash_child_end(crash_child_t *c, int sig, int timeout_ms) {
  int code;
  if (sig)
    code = self_exec_end(c->pid, sig, timeout_ms);
  else if ((code = wait_child(c->pid, timeout_ms)) >= 0)
    self_exec_forget(c->pid);
  else
    code = self_exec_end(c->pid, SIGKILL, timeout_ms); /* it did not die by itself */
  char line[4096];
  while (child_read_line(&c->out, line, sizeof(line), 200) == 0) /* to the end of its output */
    on_line(c, line);
  close(c->out.fd);
  c->out.fd = -1;
  c->pid = 0;
  c->ready = 0;
  return code;
}

int crash_child_ahead_of_commit(const crash_child_t *c, const char *bootstrap, const char *group,
                                char *detail, size_t cap) {
  if (c->n_pos == 0)
    return 0;
  rd_kafka_t *k = kh_client(
      RD_KAFKA_CONSUMER, bootstrap,
      (const char *const[]){"group.id", group, "enable.auto.commit", "false", NULL}, NULL, NULL);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(c->n_pos);
  for (int i = 0; i < c->n_pos; i++)
    rd_kafka_topic_partition_list_add(l, c->pos[i].topic, c->pos[i].partition);
  assert_int_equal(rd_kafka_committed(k, l, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  int ahead = 0;
  for (int i = 0; i < c->n_pos; i++) {
    rd_kafka_topic_partition_t *e =
        rd_kafka_topic_partition_list_find(l, c->pos[i].topic, c->pos[i].partition);
    int64_t committed = e && !e->err ? e->offset : -1;
    if (c->pos[i].offset > committed) {
      if (!ahead++)
        snprintf(detail, cap, "task %d: %s:%d state at %lld, committed %lld", (int)c->pos[i].task,
                 c->pos[i].topic, (int)c->pos[i].partition, (long long)c->pos[i].offset,
                 (long long)committed);
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(k);
  return ahead;
}
