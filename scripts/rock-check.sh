#!/bin/sh
# `make spec-rock`: both rocks installed into throwaway trees for Lua 5.4 and LuaJIT, offline, and
# used as a newcomer would: from /, with nothing in the environment but PATH, through the tree's
# own wrappers. Also packs the installed rock and installs that binary rock into a tree without
# the sandbox. Every sandbox started here is stopped, even on failure.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
t=$(mktemp -d)
pids=""
cleanup() {
  for p in $pids; do kill -TERM "-$p" 2>/dev/null || true; done
  rm -rf "$t"
}
trap cleanup EXIT INT TERM

CLEAN="env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
fail() { echo "rock check: $*" >&2; exit 1; }
# expect NAME PATTERN COMMAND...: runs COMMAND from / in the clean environment; its output must match.
expect() {
  name=$1 pattern=$2
  shift 2
  out=$(cd / && $CLEAN "$@" 2>&1) && rc=0 || rc=$?
  printf '%s\n' "$out" | grep -q -- "$pattern" || fail "$name: expected /$pattern/, got (exit $rc): $out"
}
free_port() {
  lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); print(p)'
}

# Built from a copy in a private (0700) directory, as from a clone in root's home, and from the
# sources alone (no build/ left by `make`).
mkdir -p "$t/src"
(cd "$here" && cp -R Makefile csrc lua bin examples lua-loyalty-0.1.0-1.rockspec sandbox-rock "$t/src/")
chmod 700 "$t"
cd "$t/src"
for rs in lua-loyalty-0.1.0-1.rockspec sandbox-rock/lua-loyalty-sandbox-0.1.0-1.rockspec; do
  luarocks lint "$rs" >"$t/lint" 2>&1 || fail "luarocks lint $rs: $(cat "$t/lint")"
done
build() { # tree lua-version [VAR=value]; the product rock as the issue's users typed it (no rockspec named)
  for rs in "" sandbox-rock/lua-loyalty-sandbox-0.1.0-1.rockspec; do
    luarocks --lua-version "$2" make --deps-mode=none --tree "$1" ${rs:+"$rs"} ${3:+"$3"} >"$t/build.log" 2>&1 ||
      fail "luarocks --lua-version $2 make ${rs:-(default rockspec)}: $(tail -20 "$t/build.log")"
  done
}
build "$t/54" 5.4
build "$t/51" 5.1 LUA_INCDIR=/usr/include/luajit-2.1

for tree in 54 51; do
  T="$t/$tree"
  if [ "$tree" = 51 ]; then ver=5.1 vm="LuaJIT"; else ver=5.4 vm="Lua 5.4"; fi
  expect "$tree --version" "lua-loyalty 0.1.0 ($vm" "$T/bin/loyalty" --version
  X=$(cd / && $CLEAN "$T/bin/loyalty" --examples-dir)
  expect "$tree rules check" "^ok: .*is rule set" "$T/bin/loyalty" rules check "$X/rules"
  expect "$tree rules test" "passed, 0 failed" "$T/bin/loyalty" rules test "$X/rules"
  expect "$tree rules explain" "Verdict" "$T/bin/loyalty" rules explain "$X/rules" "$X/rules/sample-cart.json"
  expect "$tree rules test examples/rules from /" "passed, 0 failed" "$T/bin/loyalty" rules test examples/rules
  expect "$tree usage error" "unknown option '--bogus'" "$T/bin/loyalty" rules check "$X/rules" --bogus
  expect "$tree outbox status" "0 pending, 0 delivered (kept 3 days), 0 dead" \
    env LOYALTY_OUTBOX="$t/outbox-$tree.db" "$T/bin/loyalty" outbox status --config "$X/outbox.conf.lua"
  expect "$tree missing seed" "cannot read the seed /nonexistent.json" "$T/bin/loyalty-sandbox" --seed /nonexistent.json
  # The sandbox in the foreground, in its own process group (stopped by cleanup whatever happens).
  port=$(free_port)
  (cd / && exec setsid $CLEAN "$T/bin/loyalty-sandbox" --port "$port") >"$t/sandbox-$tree.log" 2>&1 &
  pids="$pids $!"
  up=""
  for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/sandbox/state" >/dev/null 2>&1; then up=1; break; fi
    sleep 0.05
  done
  [ -n "$up" ] || fail "$tree sandbox did not answer: $(cat "$t/sandbox-$tree.log")"
  expect "$tree call" '"firstname":"Tom"' env LOYALTY_USERNAME=store.server LOYALTY_PASSWORD=server123 \
    "$T/bin/loyalty" call --base-url "http://127.0.0.1:$port" customer_get mobile=919999000001
  expect "$tree busy port" "port $port is already in use" "$T/bin/loyalty" sandbox --port "$port"
  # From a Lua program with the paths `luarocks path` gives (a LUA_CPATH of this VM's C modules):
  # nginx's LuaJIT must not see them.
  if [ "$tree" = 51 ]; then lua=luajit; else lua=lua5.4; fi
  expect "$tree sandbox from Lua" "^answered" env LUA_PATH="$T/share/lua/$ver/?.lua;$T/share/lua/$ver/?/init.lua;;" \
    LUA_CPATH="$T/lib/lua/$ver/?.so;/usr/lib/x86_64-linux-gnu/lua/$ver/?.so;;" $lua -e \
    'local sb = assert(require("loyalty.sandbox").start{}); local st = sb:state(); sb:stop(); print(st and "answered")'
  # Lua modules are listed by name, never as X.init.
  luarocks --lua-version "$ver" --tree "$T" show lua-loyalty >"$t/show" 2>&1
  grep -q "loyalty.core" "$t/show" || fail "$tree: luarocks show lists no loyalty.core: $(cat "$t/show")"
  if grep -q "\.init (" "$t/show"; then fail "$tree: luarocks show lists an .init module"; fi
done

# The installed rock packs, and the binary rock installs alone: no sandbox, and `loyalty sandbox`
# says which rock to add.
for r in lua-loyalty lua-loyalty-sandbox; do
  (cd "$t" && luarocks --lua-version 5.4 --tree "$t/54" pack "$r" >"$t/pack.log" 2>&1) ||
    fail "luarocks pack $r: $(cat "$t/pack.log")"
done
[ -f "$t"/lua-loyalty-sandbox-0.1.0-1.*.rock ] || fail "luarocks pack lua-loyalty-sandbox made no rock"
rock=$(ls "$t"/lua-loyalty-0.1.0-1.*.rock)
luarocks --lua-version 5.4 install --deps-mode=none --tree "$t/only" "$rock" >"$t/only.log" 2>&1 ||
  fail "installing the packed rock: $(cat "$t/only.log")"
expect "product rock alone: sandbox" "luarocks install lua-loyalty-sandbox" "$t/only/bin/loyalty" sandbox
expect "product rock alone: rules" "passed, 0 failed" "$t/only/bin/loyalty" rules test \
  "$t/only/lib/luarocks/rocks-5.4/lua-loyalty/0.1.0-1/examples/rules"
[ ! -e "$t/only/share/lua/5.4/loyalty/sandbox.lua" ] || fail "the product rock ships the sandbox"
echo "luarocks: both rocks on Lua 5.4 and LuaJIT install, run from / with an empty environment, and pack"
