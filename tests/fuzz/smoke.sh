#!/bin/sh
# make fuzz-smoke: each libFuzzer target briefly, from its seed corpus in tests/fuzz/corpus/NAME.
cd "$(dirname "$0")/../.." || exit 1
secs=${FUZZ_SECONDS:-20}
status=0
for f in "$@"; do
	corpus=tests/fuzz/corpus/$f
	work=$(mktemp -d)
	[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
	echo "== $f ($secs s)"
	mkdir -p build/fuzz/artifacts
	if ./build/fuzz/"$f" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix=build/fuzz/artifacts/"$f"- \
		-print_final_stats=1 "$work" > "$work.log" 2>&1; then
		grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$work.log" | sed 's/^/   /'
	else
		echo "   FAILED: $f"
		tail -n 40 "$work.log"
		status=1
	fi
	rm -rf "$work" "$work.log"
done
exit $status
