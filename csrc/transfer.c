/* libcurl easy-handle plumbing shared by sessions and perform_multi. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "transfer.h"

/* ---- options ------------------------------------------------------------------------- */

static const char *const OPT_KEYS[] = {"connect_timeout_ms", "timeout_ms", "ca_file", "ca_path",
                                       "insecure", "proxy", "accept_encoding", "request_id_headers", NULL};

static long opt_ms(lua_State *L, int idx, const char *name, long dflt)
{
  lua_Number n;
  lua_getfield(L, idx, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return dflt;
  }
  if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "session option %s must be a number", name);
  n = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!(n >= 1 && n <= 86400000.0)) luaL_error(L, "session option %s must be between 1 and 86400000", name);
  return (long)n;
}

/* The string stays alive through the opts table, which the caller keeps on the stack. */
static const char *opt_string(lua_State *L, int idx, const char *name)
{
  const char *s = NULL;
  lua_getfield(L, idx, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "session option %s must be a string", name);
    s = lua_tostring(L, -1);
  }
  lua_pop(L, 1);
  return s;
}

void opts_read(lua_State *L, int idx, core_opts *o)
{
  int i;
  memset(o, 0, sizeof *o);
  o->connect_timeout_ms = 3000; /* lua/loyalty/timeouts.lua connect_ms */
  o->timeout_ms = 10000;        /* lua/loyalty/timeouts.lua request_ms */
  o->accept_encoding = "";
  if (lua_isnoneornil(L, idx)) {
    core_header_names_read(L, 0, &o->request_ids);
    return;
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  idx = compat_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    for (i = 0; k && OPT_KEYS[i] && strcmp(k, OPT_KEYS[i]) != 0; i++) {}
    if (!k || !OPT_KEYS[i]) luaL_error(L, "unknown session option '%s'", k ? k : "?");
    lua_pop(L, 1);
  }
  o->connect_timeout_ms = opt_ms(L, idx, "connect_timeout_ms", o->connect_timeout_ms);
  o->timeout_ms = opt_ms(L, idx, "timeout_ms", o->timeout_ms);
  o->ca_file = opt_string(L, idx, "ca_file");
  o->ca_path = opt_string(L, idx, "ca_path");
  o->proxy = opt_string(L, idx, "proxy");
  lua_getfield(L, idx, "accept_encoding");
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) o->accept_encoding = NULL;
  lua_pop(L, 1);
  if (o->accept_encoding) {
    const char *ae = NULL;
    lua_getfield(L, idx, "accept_encoding");
    if (lua_type(L, -1) == LUA_TSTRING) ae = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1)) luaL_error(L, "session option accept_encoding must be a string or false");
    lua_pop(L, 1);
    if (ae) o->accept_encoding = ae;
  }
  lua_getfield(L, idx, "insecure");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN) luaL_error(L, "session option insecure must be a boolean");
  o->insecure = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, idx, "request_id_headers");
  core_header_names_read(L, -1, &o->request_ids);
  lua_pop(L, 1);
}

/* ---- handle lifecycle ------------------------------------------------------------------ */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_status = CURLE_OK;

static void global_init_once(void) { global_status = curl_global_init(CURL_GLOBAL_DEFAULT); }

void transfer_global_init(lua_State *L)
{
  pthread_once(&global_once, global_init_once);
  if (global_status != CURLE_OK) luaL_error(L, "curl_global_init failed: %s", curl_easy_strerror(global_status));
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
  transfer *t = ud;
  size_t len = size * n;
  if (buf_append(&t->body, p, len, BODY_LIMIT)) return len;
  t->too_large = 1;
  return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Notes where the value of a header exchange reads lies (the first of each name counts); `at` is
 * where the line will start in t->head. */
static void note_header(transfer *t, const char *line, size_t len, size_t at)
{
  const char *colon = NULL, *v, *end = line + len;
  size_t name_len = 0;
  int k;
  for (k = 0; k < NOTED_MAX; k++) {
    const char *name;
    if (k == t->request_ids.count) k = NOTED_RETRY_AFTER; /* past the names given: Retry-After's slot */
    name = k < NOTED_RETRY_AFTER ? t->request_ids.name[k] : "retry-after";
    if (t->noted[k].at || (line[0] | 0x20) != name[0]) continue; /* most lines stop here */
    if (!colon) {
      colon = memchr(line, ':', len);
      if (!colon) return;
      for (name_len = (size_t)(colon - line); name_len > 0 && is_space(line[name_len - 1]); name_len--) {}
    }
    if (!core_name_is(line, name_len, name)) continue;
    for (v = colon + 1; v < end && is_space(*v); v++) {}
    while (end > v && is_space(end[-1])) end--;
    t->noted[k].at = at + (size_t)(v - line) + 1;
    t->noted[k].len = (size_t)(end - v);
    return;
  }
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
  transfer *t = ud;
  size_t len = size * n;
  /* A new status line (after 1xx or a redirect) starts a new header block. */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    t->head.len = 0;
    memset(t->noted, 0, sizeof t->noted);
  } else if (len > 0) {
    note_header(t, p, len, t->head.len);
  }
  if (buf_append(&t->head, p, len, HEAD_LIMIT)) return len;
  t->too_large = 1;
  return 0;
}

#define SET(opt, val) \
  if (curl_easy_setopt(e, opt, val) != CURLE_OK) return 0

static int configure(transfer *t, const core_opts *o)
{
  CURL *e = t->easy;
  SET(CURLOPT_ERRORBUFFER, t->errbuf);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, t);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, t);
  SET(CURLOPT_PRIVATE, t);
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  SET(CURLOPT_TIMEOUT_MS, o->timeout_ms);
  t->timeout_ms = t->set_timeout_ms = o->timeout_ms;
  t->connect_timeout_ms = t->set_connect_ms = o->connect_timeout_ms;
  if (o->accept_encoding) SET(CURLOPT_ACCEPT_ENCODING, o->accept_encoding);
  if (o->ca_file) SET(CURLOPT_CAINFO, o->ca_file);
  if (o->ca_path) SET(CURLOPT_CAPATH, o->ca_path);
  /* Only the configured proxy: an ambient http_proxy must not reroute CRM traffic and its credentials,
   * nor an ambient no_proxy bypass the configured one (an empty list also spares two getenv a call). */
  SET(CURLOPT_PROXY, o->proxy ? o->proxy : "");
  SET(CURLOPT_NOPROXY, "");
  SET(CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
  SET(CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
  return 1;
}

int transfer_init(transfer *t, const core_opts *o)
{
  memset(t, 0, sizeof *t);
  t->request_ids = o->request_ids;
  t->easy = curl_easy_init();
  if (!t->easy) return 0;
  if (!configure(t, o)) {
    transfer_cleanup(t);
    return 0;
  }
  return 1;
}

void transfer_cleanup(transfer *t)
{
  if (t->easy) curl_easy_cleanup(t->easy);
  t->easy = NULL;
  curl_slist_free_all(t->headers);
  t->headers = NULL;
  free(t->url);
  t->url = NULL;
  buf_free(&t->body);
  buf_free(&t->head);
}

/* ---- requests -------------------------------------------------------------------------- */

long transfer_opt_ms(lua_State *L, int idx, const char *name)
{
  lua_Number n;
  if (lua_isnoneornil(L, idx)) return 0;
  if (lua_type(L, idx) != LUA_TNUMBER) luaL_error(L, "request %s must be a number", name);
  n = lua_tonumber(L, idx);
  if (!(n >= 1 && n <= 86400000.0)) luaL_error(L, "request %s must be between 1 and 86400000", name);
  return (long)n;
}

void request_check(lua_State *L, int idx)
{
  size_t i, n;
  idx = compat_absindex(L, idx);
  lua_getfield(L, idx, "timeout_ms");
  transfer_opt_ms(L, -1, "timeout_ms");
  lua_getfield(L, idx, "connect_timeout_ms");
  transfer_opt_ms(L, -1, "connect_timeout_ms");
  lua_pop(L, 2);
  if (lua_type(L, idx) != LUA_TTABLE) luaL_error(L, "request must be a table");
  lua_getfield(L, idx, "method");
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "request method must be a string");
  lua_getfield(L, idx, "url");
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "request url must be a string");
  lua_getfield(L, idx, "body");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "request body must be a string");
  lua_getfield(L, idx, "headers");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TTABLE) luaL_error(L, "request headers must be an array of strings");
    n = compat_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, (int)i);
      if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "request headers must be an array of strings");
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 4);
}

/* Rebuilds the header list only when it differs from the previous call's. An upload ends it
 * with an empty Expect:, which stops libcurl from waiting for 100-continue on bodies. */
static int set_headers(transfer *t, lua_State *L, int hidx, int upload)
{
  size_t i, n = hidx ? compat_rawlen(L, hidx) : 0;
  struct curl_slist *node = t->headers, *list = NULL;
  int same = 1;
  for (i = 1; same && i <= n; i++) {
    size_t len;
    const char *s;
    lua_rawgeti(L, hidx, (int)i);
    s = lua_tolstring(L, -1, &len);
    same = node && strlen(node->data) == len && memcmp(node->data, s, len) == 0;
    if (same) node = node->next;
    lua_pop(L, 1);
  }
  if (same && (upload ? node && strcmp(node->data, "Expect:") == 0 && node->next == NULL : node == NULL)) return 1;

  for (i = 1; i <= n; i++) {
    struct curl_slist *next;
    lua_rawgeti(L, hidx, (int)i);
    next = curl_slist_append(list, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (!next) goto oom;
    list = next;
  }
  if (upload) {
    struct curl_slist *next = curl_slist_append(list, "Expect:");
    if (!next) goto oom;
    list = next;
  }
  if (curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, list) != CURLE_OK) goto oom;
  curl_slist_free_all(t->headers);
  t->headers = list;
  return 1;
oom:
  curl_slist_free_all(list);
  snprintf(t->errbuf, sizeof t->errbuf, "out of memory building headers");
  return 0;
}

/* Sets CURLOPT_URL unless libcurl already holds this URL (a keep-alive loop repeats it). */
static int set_url(transfer *t, const char *url, size_t len)
{
  char *copy;
  if (t->url && strlen(t->url) == len && memcmp(t->url, url, len) == 0) return 1;
  copy = malloc(len + 1);
  if (!copy) return 0;
  memcpy(copy, url, len + 1);
  if (curl_easy_setopt(t->easy, CURLOPT_URL, url) != CURLE_OK) {
    free(copy);
    free(t->url);
    t->url = NULL;
    return 0;
  }
  free(t->url);
  t->url = copy;
  return 1;
}

int transfer_prepare(transfer *t, lua_State *L, int idx)
{
  transfer_req r;
  int top = lua_gettop(L), ok;
  idx = compat_absindex(L, idx);
  lua_getfield(L, idx, "method");
  r.method = lua_tostring(L, -1);
  lua_getfield(L, idx, "url");
  r.url = lua_tolstring(L, -1, &r.url_len);
  lua_getfield(L, idx, "body");
  r.body_len = 0;
  r.body = lua_tolstring(L, -1, &r.body_len);
  lua_getfield(L, idx, "headers");
  r.headers = lua_isnil(L, -1) ? 0 : lua_gettop(L);
  lua_getfield(L, idx, "timeout_ms");
  r.timeout_ms = transfer_opt_ms(L, -1, "timeout_ms");
  lua_getfield(L, idx, "connect_timeout_ms");
  r.connect_timeout_ms = transfer_opt_ms(L, -1, "connect_timeout_ms");
  ok = transfer_prepare_req(t, L, &r);
  lua_settop(L, top); /* the req table keeps the strings alive */
  return ok;
}

int transfer_prepare_req(transfer *t, lua_State *L, const transfer_req *r)
{
  CURL *e = t->easy;
  const char *method = r->method;
  int get = strcmp(method, "GET") == 0, head = strcmp(method, "HEAD") == 0;
  int bodiless = !r->body && (strcmp(method, "DELETE") == 0 || strcmp(method, "OPTIONS") == 0);
  int ok;
  long timeout = r->timeout_ms > 0 ? r->timeout_ms : t->timeout_ms;
  long connect = r->connect_timeout_ms > 0 ? r->connect_timeout_ms : t->connect_timeout_ms;

  t->errbuf[0] = 0;
  /* This exchange's limits; the handle keeps them, so set only on change. */
  if (connect > timeout) connect = timeout;
  if (timeout != t->set_timeout_ms) {
    if (curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout) != CURLE_OK) goto refused;
    t->set_timeout_ms = timeout;
  }
  if (connect != t->set_connect_ms) {
    if (curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect) != CURLE_OK) goto refused;
    t->set_connect_ms = connect;
  }
  t->too_large = 0;
  buf_reset(&t->body, KEEP_BYTES);
  buf_reset(&t->head, KEEP_BYTES);
  memset(t->noted, 0, sizeof t->noted);
  if (!set_headers(t, L, r->headers, !get && !head && !bodiless)) return 0;

  if (!set_url(t, r->url, r->url_len)) {
    snprintf(t->errbuf, sizeof t->errbuf, "libcurl refused the request URL");
    return 0;
  }
  if (get && t->get_set) return 1;
  t->get_set = 0;
  ok = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL) == CURLE_OK &&
       curl_easy_setopt(e, CURLOPT_NOBODY, 0L) == CURLE_OK;
  if (ok && get) {
    ok = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK;
    t->get_set = ok;
  } else if (ok && head) {
    ok = curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK;
  } else if (ok && bodiless) {
    ok = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
  } else if (ok) {
    /* POST-style upload of the body (possibly empty: Content-Length: 0). */
    ok = curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "") == CURLE_OK &&
         (strcmp(method, "POST") == 0 || curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK);
  }
  if (!ok) snprintf(t->errbuf, sizeof t->errbuf, "libcurl refused the request options");
  return ok;
refused:
  snprintf(t->errbuf, sizeof t->errbuf, "libcurl refused the request timeouts");
  return 0;
}

/* ---- results --------------------------------------------------------------------------- */

void transfer_finish(transfer *t, CURLcode code, outcome *out, int detach)
{
  memset(out, 0, sizeof *out);
  out->code = code;
  out->too_large = t->too_large;
  memcpy(out->errbuf, t->errbuf, sizeof out->errbuf);
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &out->status);
  curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &out->connects);
  curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &out->total_us);
  /* Detached: the outcome owns the buffers. Otherwise it borrows them until the next call. */
  out->body = t->body;
  out->head = t->head;
  if (detach) {
    memset(&t->body, 0, sizeof t->body);
    memset(&t->head, 0, sizeof t->head);
  }
  /* The POSTFIELDS pointer belongs to a Lua string that may be collected now. Setting it
   * makes the handle a POST again, so a handle set up for GET (no POSTFIELDS) keeps it. */
  if (!t->get_set) curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, NULL);
}

void outcome_free(outcome *out)
{
  buf_free(&out->body);
  buf_free(&out->head);
}

static const char *kind_of(CURLcode c)
{
  switch (c) {
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CLIENTCERT:
  case CURLE_USE_SSL_FAILED:
    return "tls";
  default:
    return "network";
  }
}

/* Parses the last header block in place into {lowercase name = value}; repeats are joined. */
static void push_headers(lua_State *L, buf *head)
{
  char *p = head->data, *end = head->data + head->len;
  lua_createtable(L, 0, 8);
  if (!p) return;
  /* Skip the status line. */
  while (p < end && *p != '\n') p++;
  while (p < end) {
    char *line = ++p, *colon = NULL, *eol, *name_end, *v;
    while (p < end && *p != '\n') {
      if (!colon && *p == ':') colon = p;
      p++;
    }
    eol = p;
    if (!colon || colon == line) continue;
    for (name_end = colon; name_end > line && is_space(name_end[-1]); name_end--) {}
    for (v = line; v < name_end; v++)
      if (*v >= 'A' && *v <= 'Z') *v = (char)(*v - 'A' + 'a');
    for (v = colon + 1; v < eol && is_space(*v); v++) {}
    while (eol > v && is_space(eol[-1])) eol--;
    lua_pushlstring(L, line, (size_t)(name_end - line));
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, v, (size_t)(eol - v));
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, (size_t)(eol - v));
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
}

core_text transfer_noted(const transfer *t, int k)
{
  core_text v = {NULL, 0};
  if (t->noted[k].at) {
    v.s = t->head.data + t->noted[k].at - 1;
    v.len = t->noted[k].len;
  }
  return v;
}

int outcome_push(lua_State *L, outcome *out)
{
  if (out->code != CURLE_OK || out->too_large) {
    const char *msg = out->too_large ? "response too large" : out->errbuf[0] ? out->errbuf : curl_easy_strerror(out->code);
    core_push_error(L, out->too_large ? "network" : kind_of(out->code), msg);
    compat_pushint(L, (long long)out->code);
    lua_setfield(L, -2, "curl_code");
    return 0;
  }
  lua_createtable(L, 0, 5);
  compat_pushint(L, out->status);
  lua_setfield(L, -2, "status");
  push_headers(L, &out->head);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, out->body.data ? out->body.data : "", out->body.len);
  lua_setfield(L, -2, "body");
  lua_pushboolean(L, out->connects == 0);
  lua_setfield(L, -2, "reused");
  lua_pushnumber(L, (lua_Number)out->total_us / 1000.0);
  lua_setfield(L, -2, "total_ms");
  return 1;
}
