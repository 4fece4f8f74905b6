/* core.perform_multi(opts, reqs, max_in_flight): concurrent requests over curl_multi. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "transfer.h"

#define RUN_MT "loyalty.MultiRun"

typedef struct {
  transfer t;
  int attached; /* added to the multi handle */
  size_t req;   /* index (0-based) of the request it is running */
} slot;

/* All C state of one call lives here so that __gc frees it even if a push raises. */
typedef struct {
  CURLM *multi;
  slot *slots;
  size_t nslots;
  outcome *results;
  size_t nresults;
} run;

static void run_free(run *r)
{
  size_t i;
  for (i = 0; r->slots && i < r->nslots; i++) {
    if (r->slots[i].attached) curl_multi_remove_handle(r->multi, r->slots[i].t.easy);
    transfer_cleanup(&r->slots[i].t);
  }
  for (i = 0; r->results && i < r->nresults; i++) outcome_free(&r->results[i]);
  if (r->multi) curl_multi_cleanup(r->multi);
  free(r->slots);
  free(r->results);
  memset(r, 0, sizeof *r);
}

static int run_gc(lua_State *L)
{
  run_free(luaL_checkudata(L, 1, RUN_MT));
  return 0;
}

/* Starts request `req` (a checked table in reqs[req + 1]) on slot s. */
static void start(lua_State *L, run *r, slot *s, int reqs, size_t req)
{
  s->req = req;
  lua_rawgeti(L, reqs, (int)req + 1);
  if (!transfer_prepare(&s->t, L, -1)) {
    lua_pop(L, 1);
    transfer_finish(&s->t, CURLE_BAD_FUNCTION_ARGUMENT, &r->results[req], 1);
    return;
  }
  lua_pop(L, 1); /* the reqs table keeps the strings alive */
  if (curl_multi_add_handle(r->multi, s->t.easy) != CURLM_OK) {
    snprintf(s->t.errbuf, sizeof s->t.errbuf, "curl_multi_add_handle failed");
    transfer_finish(&s->t, CURLE_FAILED_INIT, &r->results[req], 1);
    return;
  }
  s->attached = 1;
}

static int l_perform_multi(lua_State *L)
{
  core_opts o;
  run *r;
  size_t n, i, next = 0, active = 0;
  lua_Number max_in_flight;

  opts_read(L, 1, &o);
  luaL_checktype(L, 2, LUA_TTABLE);
  max_in_flight = luaL_checknumber(L, 3);
  luaL_argcheck(L, max_in_flight >= 1 && max_in_flight <= 1024, 3, "max_in_flight must be 1..1024");
  lua_settop(L, 3);
  n = compat_rawlen(L, 2);
  /* Validate every request before any traffic: bad input raises without side effects. */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, (int)i);
    request_check(L, -1);
    lua_pop(L, 1);
  }
  transfer_global_init(L);

  r = lua_newuserdata(L, sizeof *r); /* 4 */
  memset(r, 0, sizeof *r);
  luaL_getmetatable(L, RUN_MT);
  lua_setmetatable(L, -2);
  r->nslots = n < (size_t)max_in_flight ? n : (size_t)max_in_flight;
  r->nresults = n;
  r->slots = calloc(r->nslots ? r->nslots : 1, sizeof(slot));
  r->results = calloc(n ? n : 1, sizeof(outcome));
  r->multi = curl_multi_init();
  if (!r->slots || !r->results || !r->multi) {
    run_free(r);
    return luaL_error(L, "perform_multi: out of memory");
  }
  for (i = 0; i < r->nslots; i++) {
    if (!transfer_init(&r->slots[i].t, &o)) {
      run_free(r);
      return core_fail(L, "config", "cannot create a libcurl handle with these options");
    }
  }
  if (o.insecure && n > 0)
    fputs("loyalty.core: WARNING: TLS certificate verification is disabled (insecure=true)\n", stderr);

  for (i = 0; i < r->nslots; i++) {
    start(L, r, &r->slots[i], 2, next++);
    if (r->slots[i].attached) active++;
  }
  while (active > 0) {
    int running, queued;
    CURLMsg *msg;
    CURLMcode mc = curl_multi_perform(r->multi, &running);
    if (mc != CURLM_OK) break;
    while ((msg = curl_multi_info_read(r->multi, &queued)) != NULL) {
      slot *s = NULL;
      if (msg->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
      {
        CURLcode code = msg->data.result; /* msg is invalid after remove_handle */
        curl_multi_remove_handle(r->multi, s->t.easy);
        s->attached = 0;
        active--;
        transfer_finish(&s->t, code, &r->results[s->req], 1);
      }
      /* Keep the slot busy; requests that fail to start are recorded and skipped. */
      while (!s->attached && next < n) {
        start(L, r, s, 2, next++);
        if (s->attached) active++;
      }
    }
    if (active > 0 && curl_multi_poll(r->multi, NULL, 0, 1000, NULL) != CURLM_OK) break;
  }
  /* Requests never finished (multi failure): report them instead of dropping them. */
  for (i = 0; i < r->nslots; i++) {
    slot *s = &r->slots[i];
    if (s->attached) {
      curl_multi_remove_handle(r->multi, s->t.easy);
      s->attached = 0;
      snprintf(s->t.errbuf, sizeof s->t.errbuf, "curl_multi failed");
      transfer_finish(&s->t, CURLE_FAILED_INIT, &r->results[s->req], 1);
    }
  }
  for (; next < n; next++) {
    r->results[next].code = CURLE_FAILED_INIT;
    snprintf(r->results[next].errbuf, sizeof r->results[next].errbuf, "curl_multi failed");
  }

  lua_createtable(L, (int)n, 0); /* 5 */
  for (i = 0; i < n; i++) {
    if (!outcome_push(L, &r->results[i])) {
      lua_createtable(L, 0, 1);
      lua_insert(L, -2);
      lua_setfield(L, -2, "err");
    }
    lua_rawseti(L, 5, (int)i + 1);
    outcome_free(&r->results[i]);
  }
  run_free(r);
  return 1;
}

static const luaL_Reg multi_funcs[] = {
  {"perform_multi", l_perform_multi},
  {NULL, NULL}
};

void core_open_multi(lua_State *L)
{
  if (luaL_newmetatable(L, RUN_MT)) {
    lua_pushcfunction(L, run_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  compat_setfuncs(L, multi_funcs, 0);
}
