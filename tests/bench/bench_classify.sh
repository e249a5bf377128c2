#!/bin/sh
# Responder throughput, KB load time, and the --classify pipeline end to end.
cd "$(dirname "$0")/../.." || exit 1
make -s build/bench/classify_bench || exit 1
taskset -c 0 ./build/bench/classify_bench 2>/dev/null || ./build/bench/classify_bench
# the whole --classify pipeline (JSON in, JSON out) over 100,000 lines
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
i=0
while [ $i -lt 379 ]; do cat tests/corpus.jsonl; i=$((i + 1)); done > "$tmp"
lines=$(wc -l < "$tmp")
start=$(date +%s%N)
/usr/bin/time -f '%M' -o "$tmp.rss" ./build/kneebot --classify < "$tmp" > /dev/null
end=$(date +%s%N)
echo "kneebot --classify: $lines lines in $(( (end - start) / 1000000 )) ms, $(( lines * 1000000000 / (end - start) )) lines/s, peak RSS $(( $(cat "$tmp.rss") / 1024 )) MiB"
rm -f "$tmp.rss"
