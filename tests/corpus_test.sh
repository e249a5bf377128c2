#!/bin/sh
# The project's labelled corpus through --classify, plain and under ASan+UBSan, against the floors.
cd "$(dirname "$0")/.." || exit 1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for bin in build/kneebot build/asan/kneebot; do
	[ -x "$bin" ] || { echo "not ok - $bin is not built"; continue; }
	if ! "$bin" --classify < tests/corpus.jsonl > "$out" 2>"$out.err"; then
		echo "not ok - $bin --classify exited with an error: $(head -c 300 "$out.err")"
	fi
	python3 tests/score_corpus.py tests/corpus.jsonl "$out" "$bin corpus"
	rm -f "$out.err"
done
