/* Record helpers. */
#include <brook/record.h>

#include <string.h>

const brook_header_t *brook_record_header(const brook_record_t *rec, const char *name) {
  if (!rec || !name)
    return NULL;
  for (size_t i = 0; i < rec->header_count; i++)
    if (rec->headers[i].name && strcmp(rec->headers[i].name, name) == 0)
      return &rec->headers[i];
  return NULL;
}
