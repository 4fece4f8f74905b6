/* Growable byte buffer with a hard size limit; plain C, never touches Lua. */
#ifndef LOYALTY_BUF_H
#define LOYALTY_BUF_H

#include <stddef.h>

typedef struct {
  char *data;
  size_t len, cap;
} buf;

/* Appends n bytes unless the result would exceed limit or memory runs out; 0 on failure. */
int buf_append(buf *b, const char *p, size_t n, size_t limit);
/* Empties the buffer, releasing its memory when it grew beyond keep bytes. */
void buf_reset(buf *b, size_t keep);
void buf_free(buf *b);

#endif
