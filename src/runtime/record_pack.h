/* Packing a record with its bytes (key, value, headers and their names) into a byte area,
 * for records that outlive their batch: the push source's queue and the exchanges between
 * workers. The area is 8-byte aligned; each piece starts aligned. */
#ifndef BROOK_RUNTIME_RECORD_PACK_H
#define BROOK_RUNTIME_RECORD_PACK_H

#include <stddef.h>

#include <brook/record.h>

static inline size_t bk_align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Bytes bk_record_pack needs in the area for `rec`. */
size_t bk_record_packed_size(const brook_record_t *rec);

/* Writes `rec` to *out with its bytes copied to area + *used (which has
 * bk_record_packed_size(rec) bytes of room), and advances *used. */
void bk_record_pack(brook_record_t *out, const brook_record_t *rec, unsigned char *area,
                    size_t *used);

#endif
