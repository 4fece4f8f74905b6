/* One HTTP exchange on a libcurl easy handle, shared by session.c and multi.c.
 * Lua values are read before libcurl runs and results pushed after it returns, so no
 * Lua error can unwind through libcurl or OpenSSL frames. */
#ifndef LOYALTY_TRANSFER_H
#define LOYALTY_TRANSFER_H

#include <curl/curl.h>
#include "core.h"
#include "buf.h"

#define BODY_LIMIT ((size_t)64 << 20)
#define HEAD_LIMIT ((size_t)256 << 10)
#define KEEP_BYTES ((size_t)1 << 20)

/* Session options; strings point into the Lua opts table (libcurl copies them). */
typedef struct {
  long connect_timeout_ms, timeout_ms;
  const char *ca_file, *ca_path, *proxy, *accept_encoding;
  int insecure;
  core_header_names request_ids; /* the reply headers that name the request id (request_id_headers) */
} core_opts;

/* A reply header session:exchange reads: its value at head.data + at - 1 (at 0: not received). */
typedef struct {
  size_t at, len;
} noted_header;
/* One slot per request-id header name (request_ids), then Retry-After. */
#define NOTED_RETRY_AFTER CORE_REQUEST_ID_MAX
#define NOTED_MAX (NOTED_RETRY_AFTER + 1)

typedef struct {
  CURL *easy;
  struct curl_slist *headers; /* kept between calls and reused while unchanged */
  char *url;                  /* the URL libcurl holds, to skip setting it again */
  int get_set;                /* the handle is set up for a plain GET */
  buf body, head;
  noted_header noted[NOTED_MAX]; /* found as each header line arrives: no second pass */
  core_header_names request_ids; /* what noted[0 .. request_ids.count - 1] look for */
  int too_large;
  long timeout_ms, connect_timeout_ms; /* the session's defaults */
  long set_timeout_ms, set_connect_ms; /* what the handle holds now */
  char errbuf[CURL_ERROR_SIZE];
} transfer;

/* Outcome of a finished exchange, detached from its easy handle. */
typedef struct {
  CURLcode code;
  int too_large;
  long status;
  long connects;
  curl_off_t total_us;
  buf body, head;
  char errbuf[CURL_ERROR_SIZE];
} outcome;

/* Raises on bad option types or unknown keys (programmer errors). */
void opts_read(lua_State *L, int idx, core_opts *o);
/* Global libcurl init once per process; raises if it fails. */
void transfer_global_init(lua_State *L);
/* 1 on success; 0 if libcurl could not make or configure a handle. */
int transfer_init(transfer *t, const core_opts *o);
void transfer_cleanup(transfer *t);
/* Checks a req table's field types (raises on programmer errors). */
void request_check(lua_State *L, int idx);
/* A request as C values; headers is the stack index of a "Name: value" array, or 0.
 * timeout_ms / connect_timeout_ms: this exchange's limits (0: the session's). */
typedef struct {
  const char *method, *url, *body;
  size_t url_len, body_len;
  int headers;
  long timeout_ms, connect_timeout_ms;
} transfer_req;

/* A per-request limit in ms from the value at idx: 0 when nil; raises unless 1..86400000. */
long transfer_opt_ms(lua_State *L, int idx, const char *name);

/* Loads a checked req table into the handle; the req's strings must stay alive until done.
 * Returns 0 (with t->errbuf set) when libcurl refuses it. */
int transfer_prepare(transfer *t, lua_State *L, int idx);
/* The same from C values (strings kept alive by the caller until the exchange ends). */
int transfer_prepare_req(transfer *t, lua_State *L, const transfer_req *r);
/* Collects the result of the last exchange; with detach the buffers move into out
 * (free with outcome_free), otherwise out borrows them until the next prepare. */
void transfer_finish(transfer *t, CURLcode code, outcome *out, int detach);
/* Pushes res, or {kind, curl_code, message}; returns 1 if res, 0 if err. */
int outcome_push(lua_State *L, outcome *out);
/* The trimmed value of noted header k of the last header block, borrowed from t->head; {NULL, 0}
 * when it did not come. */
core_text transfer_noted(const transfer *t, int k);
void outcome_free(outcome *out);

#endif
