#!/bin/sh
# Crypto layer costs (tests/bench/bench_crypto.c), built with the Makefile's flags (-O2).
cd "$(dirname "$0")/../.." || exit 1
make -s build/tests/bench/bench_crypto || exit 1
exec ./build/tests/bench/bench_crypto
