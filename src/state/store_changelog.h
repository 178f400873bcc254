/* A store's changelog options (brook_store_opts_t.changelog_disabled and
 * .changelog_configs), kept on the store for the runtime that creates its changelog topic
 * and logs it (src/kafka/changelog_writer.h). Single-threaded, like the store. */
#ifndef BROOK_STATE_STORE_CHANGELOG_H
#define BROOK_STATE_STORE_CHANGELOG_H

#include <brook/error.h>
#include <brook/state.h>

#include "core/errmsg.h"

/* Copies the options' changelog settings into the store (at creation). BROOK_OK,
 * BROOK_ERR_INVALID_ARG (an odd count of configs, an empty name) or BROOK_ERR_NOMEM, with
 * *why set. */
brook_err_t bk_store_changelog_init(brook_store_t *s, const brook_store_opts_t *o,
                                    bk_errmsg_t *why);

/* Frees the copy (at destruction). */
void bk_store_changelog_fini(brook_store_t *s);

/* Whether the store is logged to a changelog (in a Kafka pipeline). */
int bk_store_logged(const brook_store_t *s);

/* The user's topic configs (name, value pairs, NULL-terminated), or NULL. */
const char *const *bk_store_changelog_configs(const brook_store_t *s);

#endif
