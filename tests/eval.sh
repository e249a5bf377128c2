#!/bin/sh
# make eval: --classify over the shared development set, scored by its scorer.
here=$(cd "$(dirname "$0")/.." && pwd)
shared="$here/../shared/eval"
if [ ! -f "$shared/dev.jsonl" ] || [ ! -f "$shared/score.py" ]; then
	echo "eval: ../shared/eval is not here; skipping (it sits beside the repository in CI)"
	exit 0
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$here/build/kneebot" --classify < "$shared/dev.jsonl" > "$out" || exit 1
python3 "$shared/score.py" "$shared/dev.jsonl" "$out"
