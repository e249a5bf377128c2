#!/bin/sh
# The test runner of `make check`: every unit test (plain and under ASan and
# UBSan), then every tests/*_test.sh and tests/*_test.py.  Each prints
# "ok - ..." or "not ok - ..." lines; the last line here is "N passed, M failed".
cd "$(dirname "$0")/.." || exit 1
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
passed=0
failed=0

count() {   # name, output file, exit status
	p=$(grep -c '^ok ' "$2")
	f=$(grep -c '^not ok ' "$2")
	grep '^not ok ' "$2" | sed "s|^|  $1: |"
	if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "  $1: exited with status $3 without a failing check:"
		tail -n 15 "$2" | sed 's/^/    | /'
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	printf '%-40s %4d passed, %d failed\n' "$1" "$p" "$f"
}

run() {   # name, command...
	name=$1
	shift
	out="$log/$(echo "$name" | tr '/ ' '__').out"
	"$@" > "$out" 2>&1
	count "$name" "$out" $?
}

for t in build/tests/*_test; do
	[ -x "$t" ] && run "$(basename "$t")" "$t"
done
for t in build/asan/tests/*_test; do
	[ -x "$t" ] && run "asan/$(basename "$t")" "$t"
done
for t in tests/*_test.sh; do
	[ -f "$t" ] && run "$(basename "$t")" sh "$t"
done
for t in tests/*_test.py; do
	[ -f "$t" ] && run "$(basename "$t")" /usr/bin/python3 "$t"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
