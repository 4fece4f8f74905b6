#include <stdlib.h>
#include <string.h>
#include "buf.h"

int buf_append(buf *b, const char *p, size_t n, size_t limit)
{
  if (n > limit || b->len > limit - n) return 0;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *data;
    while (cap < b->len + n) cap *= 2;
    if (cap > limit) cap = limit;
    data = realloc(b->data, cap);
    if (!data) return 0;
    b->data = data;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 1;
}

void buf_reset(buf *b, size_t keep)
{
  b->len = 0;
  if (b->cap > keep) buf_free(b);
}

void buf_free(buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
