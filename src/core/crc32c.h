/* CRC32C (Castagnoli): the checksum of brook's persisted formats (state snapshots). */
#ifndef BROOK_CORE_CRC32C_H
#define BROOK_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (0 to start) over n bytes; chaining calls over consecutive pieces gives the
 * CRC of the whole: bk_crc32c(0, "123456789", 9) == 0xE3069283. Any thread. */
uint32_t bk_crc32c(uint32_t crc, const void *data, size_t n);

/* The same without the CPU instruction (what bk_crc32c falls back to); for tests. */
uint32_t bk_crc32c_portable(uint32_t crc, const void *data, size_t n);

#endif
