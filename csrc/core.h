/* Internal declarations shared by the loyalty.core C files. */
#ifndef LOYALTY_CORE_H
#define LOYALTY_CORE_H

#include <stddef.h>
#include "compat.h"

#define LOYALTY_CORE_VERSION "0.1.0"
#define LOYALTY_DEFAULT_RAW_CAP 2048

/* Pushes {kind = kind, message = message}. */
void core_push_error(lua_State *L, const char *kind, const char *message);
/* Pushes nil, {kind, message}; returns 2 for `return core_fail(...)`. */
int core_fail(lua_State *L, const char *kind, const char *message);

/* json.c */
void core_json_init(lua_State *L, int module_index);
/* Decodes s; pushes the value (1) or nil, err (2); returns the count pushed. */
int core_json_decode_buffer(lua_State *L, const char *s, size_t len, size_t raw_cap);
/* Encodes the value at idx; pushes the string (1) or nil, err (2). */
int core_json_encode_value(lua_State *L, int idx);

/* Registration of each concern into the module table at the top of the stack. */
void core_open_auth(lua_State *L);
void core_open_json(lua_State *L);
void core_open_request(lua_State *L);
void core_open_reply(lua_State *L);
void core_open_session(lua_State *L);
void core_open_multi(lua_State *L);
void core_open_clock(lua_State *L);
void core_open_outbox_sqlite(lua_State *L);

#endif
