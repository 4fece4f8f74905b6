/* core.sqlite_open(path [, opts]): a small SQLite handle for the outbox ("loyalty.SQLite" userdata).
 * WAL journal and synchronous=FULL, so a committed write survives a crash of the process or host.
 * Rows are copied into C memory while statements run and pushed to Lua only after the statement
 * is reset: a Lua error (out of memory) never unwinds through SQLite frames. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "core.h"

#define SQLITE_MT "loyalty.SQLite"
#define STMT_CACHE 24
#define MAX_PARAMS 32
#define MAX_SQL 8192

typedef struct {
  int type; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL */
  sqlite3_int64 i;
  double d;
  char *s;
  size_t len;
} cell;

typedef struct {
  cell *cells;
  size_t ncells, cap;
  char **names;
  int ncols;
} rows;

typedef struct {
  sqlite3 *db;
  sqlite3_stmt *stmts[STMT_CACHE];
  char *sqls[STMT_CACHE];
  int next_slot;
  rows scratch; /* freed on the next call, on close and by __gc */
} handle;

static void rows_free(rows *r)
{
  size_t k;
  int c;
  for (k = 0; k < r->ncells; k++) free(r->cells[k].s);
  free(r->cells);
  for (c = 0; c < r->ncols; c++) free(r->names[c]);
  free(r->names);
  memset(r, 0, sizeof *r);
}

static void handle_close(handle *h)
{
  int k;
  rows_free(&h->scratch);
  for (k = 0; k < STMT_CACHE; k++) {
    if (h->stmts[k]) sqlite3_finalize(h->stmts[k]);
    free(h->sqls[k]);
    h->stmts[k] = NULL;
    h->sqls[k] = NULL;
  }
  if (h->db) sqlite3_close_v2(h->db);
  h->db = NULL;
}

static handle *check_open(lua_State *L)
{
  handle *h = luaL_checkudata(L, 1, SQLITE_MT);
  if (!h->db) luaL_error(L, "loyalty.SQLite: database is closed");
  return h;
}

/* Pushes nil, {kind = "storage", message, code} and returns 2. */
static int storage_fail(lua_State *L, const char *message, int code)
{
  lua_pushnil(L);
  core_push_error(L, "storage", message);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "code");
  return 2;
}

/* A cached prepared statement for sql, or NULL with *rc set. */
static sqlite3_stmt *prepare(handle *h, const char *sql, size_t len, int *rc)
{
  int k;
  sqlite3_stmt *st = NULL;
  char *copy;
  for (k = 0; k < STMT_CACHE; k++) {
    if (h->sqls[k] && strcmp(h->sqls[k], sql) == 0) return h->stmts[k];
  }
  *rc = sqlite3_prepare_v2(h->db, sql, (int)len + 1, &st, NULL);
  if (*rc != SQLITE_OK) return NULL;
  if (!st) { *rc = SQLITE_MISUSE; return NULL; } /* empty statement */
  copy = malloc(len + 1);
  if (!copy) { sqlite3_finalize(st); *rc = SQLITE_NOMEM; return NULL; }
  memcpy(copy, sql, len + 1);
  k = h->next_slot;
  h->next_slot = (h->next_slot + 1) % STMT_CACHE;
  if (h->stmts[k]) sqlite3_finalize(h->stmts[k]);
  free(h->sqls[k]);
  h->stmts[k] = st;
  h->sqls[k] = copy;
  return st;
}

/* Checks every parameter before SQLite is touched: nil, boolean, number or string only. */
static int check_params(lua_State *L, int first, int last)
{
  int i;
  luaL_argcheck(L, last - first + 1 <= MAX_PARAMS, first, "too many parameters");
  for (i = first; i <= last; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
      return luaL_argerror(L, i, "nil, boolean, number or string expected");
  }
  return last - first + 1;
}

static int bind_params(lua_State *L, sqlite3_stmt *st, int first, int n)
{
  int k, rc = SQLITE_OK;
  for (k = 0; k < n && rc == SQLITE_OK; k++) {
    int i = first + k;
    switch (lua_type(L, i)) {
    case LUA_TNIL: rc = sqlite3_bind_null(st, k + 1); break;
    case LUA_TBOOLEAN: rc = sqlite3_bind_int(st, k + 1, lua_toboolean(L, i)); break;
    case LUA_TNUMBER: {
      lua_Number d = lua_tonumber(L, i);
      if (compat_isinteger(L, i)) {
#if COMPAT_HAS_INTEGERS
        rc = sqlite3_bind_int64(st, k + 1, (sqlite3_int64)lua_tointeger(L, i));
#endif
      } else if (d == (lua_Number)(sqlite3_int64)d && d > -9007199254740992.0 && d < 9007199254740992.0) {
        rc = sqlite3_bind_int64(st, k + 1, (sqlite3_int64)d);
      } else {
        rc = sqlite3_bind_double(st, k + 1, (double)d);
      }
      break;
    }
    default: { /* string: SQLite copies it */
      size_t len;
      const char *s = lua_tolstring(L, i, &len);
      rc = sqlite3_bind_text(st, k + 1, s, (int)len, SQLITE_TRANSIENT);
    }
    }
  }
  return rc;
}

static int grow(rows *r)
{
  size_t cap = r->cap ? r->cap * 2 : 64;
  cell *c = realloc(r->cells, cap * sizeof *c);
  if (!c) return 0;
  r->cells = c;
  r->cap = cap;
  return 1;
}

/* Steps st to the end, copying rows into r. Returns an SQLite result code. */
static int collect(sqlite3_stmt *st, rows *r)
{
  int rc, c;
  r->ncols = sqlite3_column_count(st);
  if (r->ncols > 0) {
    r->names = calloc((size_t)r->ncols, sizeof *r->names);
    if (!r->names) { r->ncols = 0; return SQLITE_NOMEM; }
    for (c = 0; c < r->ncols; c++) {
      const char *n = sqlite3_column_name(st, c);
      r->names[c] = strdup(n ? n : "?");
      if (!r->names[c]) return SQLITE_NOMEM;
    }
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (c = 0; c < r->ncols; c++) {
      cell *x;
      if (r->ncells == r->cap && !grow(r)) return SQLITE_NOMEM;
      x = &r->cells[r->ncells++];
      memset(x, 0, sizeof *x);
      x->type = sqlite3_column_type(st, c);
      if (x->type == SQLITE_INTEGER) {
        x->i = sqlite3_column_int64(st, c);
      } else if (x->type == SQLITE_FLOAT) {
        x->d = sqlite3_column_double(st, c);
      } else if (x->type == SQLITE_TEXT || x->type == SQLITE_BLOB) {
        const void *p = x->type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, c) : sqlite3_column_blob(st, c);
        x->len = (size_t)sqlite3_column_bytes(st, c);
        x->s = malloc(x->len + 1);
        if (!x->s) { x->type = SQLITE_NULL; return SQLITE_NOMEM; }
        if (x->len) memcpy(x->s, p, x->len);
        x->s[x->len] = '\0';
      }
    }
  }
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Runs one statement with params from stack index 3 on; fills h->scratch; returns rc and the
 * error message (copied) in *msg. No Lua call may raise between bind and reset. */
static int run(lua_State *L, handle *h, char *msg, size_t msgcap)
{
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  int n, rc = SQLITE_OK;
  sqlite3_stmt *st;
  luaL_argcheck(L, len > 0 && len <= MAX_SQL && strlen(sql) == len, 2, "SQL text expected");
  n = check_params(L, 3, lua_gettop(L));
  rows_free(&h->scratch);
  st = prepare(h, sql, len, &rc);
  if (st) {
    rc = bind_params(L, st, 3, n);
    if (rc == SQLITE_OK) rc = collect(st, &h->scratch);
    if (rc != SQLITE_OK) snprintf(msg, msgcap, "%s", rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(h->db));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  } else {
    snprintf(msg, msgcap, "%s", rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(h->db));
  }
  return rc;
}

static void push_cell(lua_State *L, const cell *x)
{
  switch (x->type) {
  case SQLITE_INTEGER:
#if COMPAT_HAS_INTEGERS
    lua_pushinteger(L, (lua_Integer)x->i);
#else
    lua_pushnumber(L, (lua_Number)x->i);
#endif
    break;
  case SQLITE_FLOAT: lua_pushnumber(L, (lua_Number)x->d); break;
  case SQLITE_TEXT:
  case SQLITE_BLOB: lua_pushlstring(L, x->s, x->len); break;
  default: lua_pushnil(L);
  }
}

/* db:query(sql, ...) -> { {col = value, ...}, ... } | nil, err */
static int l_query(lua_State *L)
{
  handle *h = check_open(L);
  char msg[256];
  int rc = run(L, h, msg, sizeof msg);
  rows *r = &h->scratch;
  size_t nrows, k;
  int c;
  if (rc != SQLITE_OK) {
    rows_free(r);
    return storage_fail(L, msg, rc);
  }
  nrows = r->ncols ? r->ncells / (size_t)r->ncols : 0;
  lua_createtable(L, (int)nrows, 0);
  for (k = 0; k < nrows; k++) {
    lua_createtable(L, 0, r->ncols);
    for (c = 0; c < r->ncols; c++) {
      push_cell(L, &r->cells[k * (size_t)r->ncols + (size_t)c]);
      lua_setfield(L, -2, r->names[c]);
    }
    lua_rawseti(L, -2, (int)k + 1);
  }
  rows_free(r);
  return 1;
}

/* db:run(sql, ...) -> changes, last_insert_rowid | nil, err (rows, if any, are dropped) */
static int l_run(lua_State *L)
{
  handle *h = check_open(L);
  char msg[256];
  int rc = run(L, h, msg, sizeof msg);
  rows_free(&h->scratch);
  if (rc != SQLITE_OK) return storage_fail(L, msg, rc);
  compat_pushint(L, sqlite3_changes(h->db));
  compat_pushint(L, sqlite3_last_insert_rowid(h->db));
  return 2;
}

/* db:exec(sql) -> true | nil, err: several statements, no parameters (schema, BEGIN/COMMIT). */
static int l_exec(lua_State *L)
{
  handle *h = check_open(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  char *err = NULL;
  char msg[256];
  int rc;
  luaL_argcheck(L, len <= MAX_SQL && strlen(sql) == len, 2, "SQL text expected");
  rc = sqlite3_exec(h->db, sql, NULL, NULL, &err);
  if (rc == SQLITE_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  snprintf(msg, sizeof msg, "%s", err ? err : sqlite3_errmsg(h->db));
  sqlite3_free(err);
  return storage_fail(L, msg, rc);
}

static int l_in_transaction(lua_State *L)
{
  handle *h = check_open(L);
  lua_pushboolean(L, !sqlite3_get_autocommit(h->db));
  return 1;
}

static int l_close(lua_State *L)
{
  handle *h = luaL_checkudata(L, 1, SQLITE_MT);
  handle_close(h);
  return 0;
}

static int l_tostring(lua_State *L)
{
  handle *h = luaL_checkudata(L, 1, SQLITE_MT);
  lua_pushfstring(L, "loyalty.SQLite (%s): %p", h->db ? "open" : "closed", (void *)h);
  return 1;
}

static int pragma(sqlite3 *db, const char *sql, const char *want)
{
  sqlite3_stmt *st = NULL;
  int ok = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return 0;
  if (sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char *v = sqlite3_column_text(st, 0);
    ok = want == NULL || (v && strcmp((const char *)v, want) == 0);
  } else {
    ok = want == NULL;
  }
  sqlite3_finalize(st);
  return ok;
}

/* core.sqlite_open(path [, {busy_timeout_ms = 500}]) -> db | nil, err (lua/loyalty/timeouts.lua) */
static int l_open(lua_State *L)
{
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  long long busy = 500;
  handle *h;
  int rc;
  luaL_argcheck(L, len > 0 && len < 4096 && strlen(path) == len, 1, "database path expected");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "busy_timeout_ms");
    busy = compat_optcount(L, -1, 500);
    lua_pop(L, 1);
    luaL_argcheck(L, busy <= 600000, 2, "busy_timeout_ms must be at most 600000");
  }
  h = lua_newuserdata(L, sizeof *h);
  memset(h, 0, sizeof *h);
  luaL_getmetatable(L, SQLITE_MT);
  lua_setmetatable(L, -2);
  rc = sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
  if (rc != SQLITE_OK) {
    char msg[256];
    snprintf(msg, sizeof msg, "cannot open %s: %s", path, h->db ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc));
    handle_close(h);
    return storage_fail(L, msg, rc);
  }
  sqlite3_busy_timeout(h->db, (int)busy);
  if (!pragma(h->db, "PRAGMA journal_mode=WAL", "wal") || !pragma(h->db, "PRAGMA synchronous=FULL", NULL)) {
    char msg[256];
    int code = sqlite3_errcode(h->db) & 0xff; /* the primary code: NOTADB, CORRUPT, BUSY… */
    snprintf(msg, sizeof msg, "cannot set WAL mode on %s: %s", path, sqlite3_errmsg(h->db));
    handle_close(h);
    return storage_fail(L, msg, code != SQLITE_OK ? code : SQLITE_ERROR);
  }
  return 1;
}

static const luaL_Reg sqlite_methods[] = {
  {"query", l_query},
  {"run", l_run},
  {"exec", l_exec},
  {"in_transaction", l_in_transaction},
  {"close", l_close},
  {NULL, NULL}
};

static const luaL_Reg sqlite_meta[] = {
  {"__gc", l_close},
  {"__close", l_close},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

static const luaL_Reg sqlite_funcs[] = {
  {"sqlite_open", l_open},
  {NULL, NULL}
};

void core_open_outbox_sqlite(lua_State *L)
{
  if (luaL_newmetatable(L, SQLITE_MT)) {
    compat_setfuncs(L, sqlite_meta, 0);
    lua_newtable(L);
    compat_setfuncs(L, sqlite_methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  compat_setfuncs(L, sqlite_funcs, 0);
}
