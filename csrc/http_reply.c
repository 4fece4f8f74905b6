/* http_reply: sans-IO HTTP/1.x reply framing for the nginx cosocket transport. The transport
 * feeds the bytes read so far; this says "need more" or returns status, headers, body and
 * whether the connection may be kept. Interim 1xx heads are skipped; bodies are framed by
 * chunked encoding, Content-Length or the end of the connection; gzip is inflated. */
#include <string.h>
#include "core.h"

#define HEAD_MAX (64 * 1024)       /* status line + headers */
#define HEADERS_MAX 100
#define BODY_MAX (64 * 1024 * 1024) /* framed body, before inflating */

typedef struct {
  int status, minor;
  size_t head_len; /* bytes up to and including the blank line */
  int chunked, has_length, conn_close, conn_keep, gzip, other_coding;
  size_t length;
  size_t count; /* header fields */
} head_info;

/* Position after the next line end (LF, optionally preceded by CR) from i, or 0 if none yet.
 * *end gets the line's end without the CR/LF. */
static size_t next_line(const char *s, size_t n, size_t i, size_t *end)
{
  const char *lf = memchr(s + i, '\n', n - i);
  size_t e;
  if (!lf) return 0;
  e = (size_t)(lf - s);
  *end = (e > i && s[e - 1] == '\r') ? e - 1 : e;
  return e + 1;
}

static int is_token_char(unsigned char c)
{
  if (c <= 0x20 || c >= 0x7f) return 0;
  switch (c) {
  case '(': case ')': case '<': case '>': case '@': case ',': case ';': case ':': case '\\': case '"': case '/':
  case '[': case ']': case '?': case '=': case '{': case '}':
    return 0;
  default:
    return 1;
  }
}

/* Does the comma-separated list value contain token tok (lowercase), in any case? */
static int list_has(const char *v, size_t n, const char *tok)
{
  size_t i = 0, tl = strlen(tok);
  while (i < n) {
    size_t a, b;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    a = i;
    while (i < n && v[i] != ',') i++;
    b = i;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
    if (b - a == tl && core_name_is(v + a, b - a, tok)) return 1;
  }
  return 0;
}

/* Last coding of a Transfer-Encoding list is chunked? */
static int last_is_chunked(const char *v, size_t n)
{
  size_t b = n, a;
  while (b > 0 && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
  a = b;
  while (a > 0 && v[a - 1] != ',' && v[a - 1] != ' ' && v[a - 1] != '\t') a--;
  return core_name_is(v + a, b - a, "chunked");
}

/* Where one header field's name and value are in the head (offsets from its start). */
typedef struct {
  size_t name, name_len, value, value_len;
} field_at;

/* Parses one head at s[0..n). Returns 1 done, 0 need more, -1 error (*msg set). The fields are
 * noted in fields[0..h->count), so the headers table is made without a second parse. */
static int parse_head(const char *s, size_t n, head_info *h, field_at *fields, const char **msg)
{
  size_t i, end, count = 0;
  memset(h, 0, sizeof *h);
  i = next_line(s, n, 0, &end);
  if (!i) {
    if (n > HEAD_MAX) return *msg = "reply header too large", -1;
    return 0;
  }
  if (end < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
      s[9] < '0' || s[9] > '9' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
      (end > 12 && s[12] != ' '))
    return *msg = "not an HTTP/1.x status line", -1;
  h->minor = s[7] - '0';
  h->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  if (h->status < 100) return *msg = "bad HTTP status", -1;
  for (;;) {
    size_t start = i, colon, vs, ve;
    i = next_line(s, n, start, &end);
    if (!i) {
      if (n > HEAD_MAX) return *msg = "reply header too large", -1;
      return 0;
    }
    if (i > HEAD_MAX) return *msg = "reply header too large", -1;
    if (end == start) break; /* blank line */
    if (s[start] == ' ' || s[start] == '\t') return *msg = "folded header line in reply", -1;
    for (colon = start; colon < end && is_token_char((unsigned char)s[colon]); colon++) {}
    if (colon == start || colon == end || s[colon] != ':') return *msg = "malformed header line in reply", -1;
    if (count >= HEADERS_MAX) return *msg = "too many reply headers", -1;
    vs = colon + 1;
    ve = end;
    while (vs < ve && (s[vs] == ' ' || s[vs] == '\t')) vs++;
    while (ve > vs && (s[ve - 1] == ' ' || s[ve - 1] == '\t')) ve--;
    {
      const char *name = s + start, *v = s + vs;
      size_t nl = colon - start, vl = ve - vs;
      field_at *f = &fields[count++];
      f->name = start;
      f->name_len = nl;
      f->value = vs;
      f->value_len = vl;
      /* (by length first: most names are none of these four) */
      if (nl == 14 && core_name_is(name, nl, "content-length")) {
        size_t len = 0, k;
        if (vl == 0 || vl > 15) return *msg = "bad Content-Length in reply", -1;
        for (k = 0; k < vl; k++) {
          if (v[k] < '0' || v[k] > '9') return *msg = "bad Content-Length in reply", -1;
          len = len * 10 + (size_t)(v[k] - '0');
        }
        if (h->has_length && h->length != len) return *msg = "conflicting Content-Length in reply", -1;
        h->has_length = 1;
        h->length = len;
      } else if (nl == 17 && core_name_is(name, nl, "transfer-encoding")) {
        h->chunked = last_is_chunked(v, vl);
        if (!h->chunked) return *msg = "unsupported Transfer-Encoding in reply", -1;
      } else if (nl == 10 && core_name_is(name, nl, "connection")) {
        if (list_has(v, vl, "close")) h->conn_close = 1;
        if (list_has(v, vl, "keep-alive")) h->conn_keep = 1;
      } else if (nl == 16 && core_name_is(name, nl, "content-encoding")) {
        if (list_has(v, vl, "gzip") || list_has(v, vl, "x-gzip")) h->gzip = 1;
        else if (!list_has(v, vl, "identity")) h->other_coding = 1;
      }
    }
  }
  h->count = count;
  h->head_len = i;
  return 1;
}

/* The noted fields into the table at headers_idx: lowercase names, repeats joined by ", ". */
static void set_headers(lua_State *L, int headers_idx, const char *s, const field_at *fields, size_t count)
{
  size_t i, k;
  for (i = 0; i < count; i++) {
    const field_at *f = &fields[i];
    const char *name = s + f->name;
    char lower[256];
    for (k = 0; k < f->name_len; k++) lower[k] = (char)((name[k] >= 'A' && name[k] <= 'Z') ? name[k] + 32 : name[k]);
    lua_pushlstring(L, lower, f->name_len);
    lua_pushvalue(L, -1);
    lua_rawget(L, headers_idx);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, s + f->value, f->value_len);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, s + f->value, f->value_len);
      lua_concat(L, 3);
    }
    lua_rawset(L, headers_idx);
  }
}

/* Chunked body at s[0..n): 1 complete (*total = payload bytes, *used = bytes incl. trailers),
 * 0 need more, -1 error. With out non-NULL the payload is copied there. */
static int dechunk(const char *s, size_t n, char *out, size_t *total, size_t *used, const char **msg)
{
  size_t i = 0, sum = 0, end;
  for (;;) {
    size_t next = next_line(s, n, i, &end), size = 0, k;
    int digits = 0;
    if (!next) return (n - i > 1024) ? (*msg = "bad chunk size line in reply", -1) : 0;
    for (k = i; k < end; k++) {
      char c = s[k];
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) break;
      if (++digits > 8) return *msg = "chunk too large in reply", -1;
      size = size * 16 + (size_t)d;
    }
    if (!digits || (k < end && s[k] != ';' && s[k] != ' ' && s[k] != '\t'))
      return *msg = "bad chunk size line in reply", -1;
    i = next;
    if (size == 0) break;
    if (sum + size > BODY_MAX) return *msg = "reply body too large", -1;
    if (n - i < size + 1) return 0;
    if (out) memcpy(out + sum, s + i, size);
    sum += size;
    i += size;
    if (s[i] == '\r') {
      if (n - i < 2) return 0;
      i++;
    }
    if (s[i] != '\n') return *msg = "chunk not followed by CRLF in reply", -1;
    i++;
  }
  for (;;) { /* trailer fields, then the blank line */
    size_t next = next_line(s, n, i, &end);
    if (!next) return (n - i > HEAD_MAX) ? (*msg = "reply trailers too large", -1) : 0;
    if (end == i) {
      i = next;
      break;
    }
    i = next;
  }
  *total = sum;
  *used = i;
  return 1;
}

/* Pushes the body (inflated when gzip) or returns 0 after pushing nil, message. */
static int push_body(lua_State *L, const head_info *h, const char *s, size_t n)
{
  if (!h->gzip) {
    lua_pushlstring(L, s, n);
    return 1;
  }
  if (core_gunzip(L, s, n, BODY_MAX)) return 1;
  return 0;
}

/* core.http_reply(bytes [, eof [, head_request]]) ->
 *   false [, total_bytes_needed, framing]     need more bytes; once the head is complete also the
 *                                             framing: "length" (with the total), "chunked", "close"
 *   status, headers, body, keepalive          a whole reply (1xx heads skipped)
 *   nil, message                              not a valid reply (close the connection) */
static int l_http_reply(lua_State *L)
{
  size_t n, off = 0;
  const char *buf = luaL_checklstring(L, 1, &n), *msg = NULL;
  int eof = lua_toboolean(L, 2), head_req = lua_toboolean(L, 3), r, keep, hidx;
  head_info h;
  field_at fields[HEADERS_MAX];
  lua_settop(L, 3);
  for (;;) { /* skip interim 1xx heads (not 101: we never ask to switch protocols) */
    r = parse_head(buf + off, n - off, &h, fields, &msg);
    if (r < 0) goto bad;
    if (r == 0) goto more;
    if (h.status >= 200 || h.status == 101) break;
    off += h.head_len;
  }
  if (h.status == 101) {
    msg = "unexpected 101 Switching Protocols";
    goto bad;
  }
  if (h.other_coding) {
    msg = "unsupported Content-Encoding in reply";
    goto bad;
  }
  keep = h.minor == 1 ? !h.conn_close : (h.conn_keep && !h.conn_close);
  {
    const char *body = buf + off + h.head_len;
    size_t avail = n - off - h.head_len, blen, used, k;
    if (head_req || h.status == 204 || h.status == 304) {
      blen = used = 0;
    } else if (h.chunked) {
      r = dechunk(body, avail, NULL, &blen, &used, &msg);
      if (r < 0) goto bad;
      if (r == 0) {
        if (eof) goto truncated;
        lua_pushboolean(L, 0);
        lua_pushnil(L);
        lua_pushliteral(L, "chunked");
        return 3;
      }
    } else if (h.has_length) {
      if (h.length > BODY_MAX) {
        msg = "reply body too large";
        goto bad;
      }
      if (avail < h.length) {
        if (eof) goto truncated;
        lua_pushboolean(L, 0);
        compat_pushint(L, (long long)(off + h.head_len + h.length));
        lua_pushliteral(L, "length");
        return 3;
      }
      blen = used = h.length;
    } else { /* until the connection closes */
      if (!eof) {
        lua_pushboolean(L, 0);
        lua_pushnil(L);
        lua_pushliteral(L, "close");
        return 3;
      }
      if (avail > BODY_MAX) {
        msg = "reply body too large";
        goto bad;
      }
      blen = used = avail;
      keep = 0;
    }
    if (used < avail) keep = 0; /* bytes we did not ask for: do not reuse the connection */
    for (k = 0; k < h.count; k++) {
      if (fields[k].name_len >= 256) {
        msg = "reply header name too long";
        goto bad;
      }
    }
    compat_pushint(L, h.status);
    lua_createtable(L, 0, 8);
    hidx = lua_gettop(L);
    lua_pushlightuserdata(L, (void *)&core_lowercase_headers_key); /* decode_reply needs no case scan */
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, hidx);
    set_headers(L, hidx, buf + off, fields, h.count);
    if (h.chunked && blen > 0) {
      char *tmp = lua_newuserdata(L, blen); /* collected with the stack on any error */
      dechunk(body, avail, tmp, &blen, &used, &msg);
      if (!push_body(L, &h, tmp, blen)) return 2;
      lua_remove(L, -2);
    } else if (!push_body(L, &h, body, blen)) {
      return 2;
    }
    lua_pushboolean(L, keep);
    return 4;
  }
more:
  if (eof) goto truncated;
  lua_pushboolean(L, 0);
  return 1;
truncated:
  msg = "connection closed before the reply was complete";
bad:
  lua_settop(L, 3);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

static const luaL_Reg http_reply_funcs[] = {
  {"http_reply", l_http_reply},
  {NULL, NULL}
};

void core_open_http_reply(lua_State *L)
{
  lua_pushlightuserdata(L, (void *)&core_lowercase_headers_key);
  lua_newtable(L);
  lua_pushliteral(L, "lowercase headers");
  lua_setfield(L, -2, "__name");
  lua_rawset(L, LUA_REGISTRYINDEX);
  compat_setfuncs(L, http_reply_funcs, 0);
}
