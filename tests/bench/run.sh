#!/bin/sh
# make bench: runs every tests/bench/bench_*.sh and bench_*.py in turn; each prints its figures.
cd "$(dirname "$0")/../.." || exit 1
status=0
for b in tests/bench/bench_*; do
	[ -f "$b" ] || continue
	echo "== $(basename "$b")"
	case "$b" in
	*.py) /usr/bin/python3 "$b" || status=1 ;;
	*.sh) sh "$b" || status=1 ;;
	esac
done
exit $status
