#!/bin/sh
# Installs the Debian packages the build, tests and demo need, only those missing.
# nginx's Lua module needs OpenResty's LuaJIT branch (luajit2), which conflicts with
# Debian's plain luajit packages, so we use luajit2 + libluajit2-5.1-dev throughout.
set -eu
PKGS="make gcc pkg-config lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev libcurl4-openssl-dev
libssl-dev zlib1g-dev lua-cjson lua-busted lua-check luarocks nginx libnginx-mod-http-lua lua-socket lua-sec
lua-filesystem lua-argparse lua-nginx-redis lua-nginx-string
valgrind wrk openssl curl ca-certificates libsqlite3-dev redis-server"
[ "$#" -gt 0 ] && PKGS="$PKGS $*"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
  exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The Debian nginx package starts a system server on port 80; we never use it.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
[ -f /run/nginx.pid ] && kill "$(cat /run/nginx.pid)" 2>/dev/null || true
exit 0
