/* Internal declarations shared by the loyalty.core C files. */
#ifndef LOYALTY_CORE_H
#define LOYALTY_CORE_H

#include <stddef.h>
#include "compat.h"

#define LOYALTY_CORE_VERSION "0.1.0"
#define LOYALTY_DEFAULT_RAW_CAP 2048

/* A borrowed piece of text (not NUL-terminated). */
typedef struct {
  const char *s;
  size_t len;
} core_text;

/* Pushes {kind = kind, message = message}. */
void core_push_error(lua_State *L, const char *kind, const char *message);
/* Pushes nil, {kind, message}; returns 2 for `return core_fail(...)`. */
int core_fail(lua_State *L, const char *kind, const char *message);

/* json.c */
void core_json_init(lua_State *L, int module_index);
/* Decodes s; pushes the value (1) or nil, err (2); returns the count pushed. */
int core_json_decode_buffer(lua_State *L, const char *s, size_t len, size_t raw_cap);
/* json_fast.c: pushes the decoded value (1) or leaves the stack as it was (0: let cjson decode). */
int core_json_fast_decode(lua_State *L, const char *s, size_t len);
/* Encodes the value at idx; pushes the string (1) or nil, err (2). */
int core_json_encode_value(lua_State *L, int idx);

/* request.c: pushes base_url .. path .. "?" .. encoded query (the table at query_idx, or 0), or
 * nil, err (2) for text that can't go in a URL; raises on programmer errors. Returns the count pushed. */
int core_push_url(lua_State *L, core_text base, core_text path, int query_idx);
/* The same URL, NUL-terminated, written to local (cap bytes) or, when longer, to a userdata it
 * pushes; NULL after pushing nil, err. Valid while local and the stack above it live. */
const char *core_build_url(lua_State *L, core_text base, core_text path, int query_idx, char *local, size_t cap,
                           size_t *len);
/* request.c: 1 if method is one build_request accepts. */
int core_method_known(const char *method);

/* reply.c: the reply for status, the request id and Retry-After texts (s NULL when absent) and the body:
 * pushes {status, request_id, retry_after, body = decoded} (1) or nil, err{kind="decode"} (2). */
int core_push_reply(lua_State *L, long status, core_text request_id, core_text retry_after, const char *body,
                    size_t body_len, size_t raw_cap);
/* reply.c: registry key of the metatable marking a headers table whose names are all lowercase. */
extern const char core_lowercase_headers_key;
/* reply.c: true when the n bytes at s spell the lowercase header name lname, in any case. */
int core_name_is(const char *s, size_t n, const char *lname);
/* The reply headers a request id may come under: the provider's list (lowercase, the first
 * found wins), given as an array of names; without one, the generic CORE_REQUEST_ID_DEFAULT. */
#define CORE_REQUEST_ID_MAX 4
#define CORE_HEADER_NAME_MAX 64
#define CORE_REQUEST_ID_DEFAULT "x-request-id"
typedef struct {
  int count;
  char name[CORE_REQUEST_ID_MAX][CORE_HEADER_NAME_MAX]; /* NUL-terminated, lowercase */
} core_header_names;
/* reply.c: copies the array of names at idx (none or nil: the default); raises unless it holds 1 to
 * CORE_REQUEST_ID_MAX lowercase strings shorter than CORE_HEADER_NAME_MAX (programmer errors). */
void core_header_names_read(lua_State *L, int idx, core_header_names *names);

/* gunzip.c: pushes the gzip data at s inflated (1) or nil, message (returns 0); at most cap bytes. */
int core_gunzip(lua_State *L, const char *s, size_t n, size_t cap);

/* Registration of each concern into the module table at the top of the stack. */
void core_open_auth(lua_State *L);
void core_open_json(lua_State *L);
void core_open_request(lua_State *L);
void core_open_reply(lua_State *L);
void core_open_http_reply(lua_State *L);
void core_open_session(lua_State *L);
void core_open_multi(lua_State *L);
void core_open_clock(lua_State *L);
void core_open_outbox_sqlite(lua_State *L);
void core_open_memcap(lua_State *L);

#endif
