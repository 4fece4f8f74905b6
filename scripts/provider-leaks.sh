#!/bin/sh
# `make lint`: fails when a provider's endpoint path, header, error code or name shows outside its
# folder. Searched: lua/loyalty/ (every line, comments included: a comment naming a provider's
# code is knowledge that belongs in its folder too) and csrc/. Not searched: providers/<name>/
# (each provider's own), sandbox/ and cli/sandbox.lua (the imitation CRMs and their command).
# providers/init.lua may name the built-in providers (the registry loads them by name) and nothing
# else of theirs. Usage: scripts/provider-leaks.sh [ROOT]
root=${1:-.}
cd "$root" || exit 2

# Paths and headers of the built-in providers, then their codes (whole numbers), then their names.
PATHS='/v1\.1/|/v2/|/v3/|/crmapi/|x-cap-'
CODES='461|517|521|602|604|625|626|628|633|634|668|801|803|804|807|808|813|815|816|818|819|821|878|881|886|887|889'
CODES="$CODES|894|898|1011|1012|1013|1020|3802|4001"
NAMES='capillary|crmcom|crm\.com'

files=$(find lua/loyalty csrc -type f \( -name '*.lua' -o -name '*.c' -o -name '*.h' \) |
  grep -v -E '^lua/loyalty/(providers/[^/]+/|sandbox/)' | grep -v -x 'lua/loyalty/cli/sandbox.lua' | sort)

found=$(
  for f in $files; do
    grep -H -n -i -E "$PATHS" "$f"
    grep -H -n -E "(^|[^0-9.])($CODES)([^0-9.]|$)" "$f"
    if [ "$f" = lua/loyalty/providers/init.lua ]; then
      grep -H -n -i -E "$NAMES" "$f" | grep -v -E '^[^:]*:[0-9]+:local BUILT_IN = \{ "capillary", "crmcom" \}$'
    else
      grep -H -n -i -E "$NAMES" "$f"
    fi
  done
)

if [ -n "$found" ]; then
  echo "provider knowledge outside its folder (move it into lua/loyalty/providers/<name>/):" >&2
  echo "$found" >&2
  exit 1
fi
echo "provider-leaks: no provider path, header, code or name outside providers/<name>/ ($(echo "$files" | wc -l) files)"
