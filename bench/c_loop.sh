#!/bin/sh
# Builds and runs the plain C baseline: bench/c_loop.sh URL N  -> calls_per_sec=<float>
set -e
cd "$(dirname "$0")/.."
mkdir -p build
cc -O2 -Wall -Wextra -o build/c_loop bench/c_loop.c -lcurl
exec build/c_loop "$@"
