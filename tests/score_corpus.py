#!/usr/bin/env python3
"""Scores `kneebot --classify` over a labelled JSONL file against the project's floors.

Usage: score_corpus.py LABELLED.jsonl ACTUAL.jsonl [NAME]
Prints one "ok - ..." / "not ok - ..." line per floor (tests/run.sh counts them),
then the misses, so a failure says which messages went wrong.
Floors (issue 2): red-flag recall 100%, red-flag false alarms <= 5%,
top-1 condition >= 80%, reply precision and recall >= 95%.
"""
import json
import sys


def main():
    labelled, actual = sys.argv[1], sys.argv[2]
    name = sys.argv[3] if len(sys.argv) > 3 else "corpus"
    exp = [json.loads(l) for l in open(labelled, encoding="utf-8") if l.strip()]
    got = []
    for l in open(actual, encoding="utf-8"):
        try:
            got.append(json.loads(l))
        except ValueError:
            got.append({})
    ok_lines = len(got) == len(exp) and all(isinstance(g.get("reply"), bool) for g in got)
    print("%s - %s: one well-formed answer per message (%d for %d)" % ("ok" if ok_lines else "not ok", name, len(got), len(exp)))
    flags_exp = flags_hit = noflag = false_alarm = tp = fp = fn = conds = top1 = 0
    misses = []
    for i, e in enumerate(exp):
        # a missing or broken answer is wrong on every measure, as in shared/eval/score.py
        g = got[i] if i < len(got) and isinstance(got[i].get("reply"), bool) else None
        why = [] if g else ["no answer"]
        if g is None:
            g = {"reply": not e["expect_reply"], "red_flags": [], "conditions": []}
            if not e["red_flags"]:
                g["red_flags"] = ["(missing)"]
        gf = set(g.get("red_flags", []))
        ef = set(e["red_flags"])
        flags_exp += len(ef)
        flags_hit += len(ef & gf)
        if ef - gf:
            why.append("missed " + ",".join(sorted(ef - gf)))
        if not ef:
            noflag += 1
            if gf:
                false_alarm += 1
                why.append("false alarm " + ",".join(sorted(gf)))
        r = g.get("reply")
        if e["expect_reply"] and r:
            tp += 1
        elif e["expect_reply"]:
            fn += 1
            why.append("no reply")
        elif r:
            fp += 1
            why.append("unwanted reply")
        if e["expect_reply"] and e["conditions"]:
            conds += 1
            gc = g.get("conditions", [])
            if gc[:1] and gc[0] in e["conditions"]:
                top1 += 1
            else:
                why.append("top-1 %s, wanted %s" % (gc[:1], e["conditions"]))
        if why:
            misses.append("%s: %s (%s)" % (e["id"], "; ".join(why), e["text"][:70]))
    ratio = lambda a, b, empty: a / b if b else empty
    checks = [
        ("red-flag recall", ratio(flags_hit, flags_exp, 1.0), ">=", 1.0, "%d/%d" % (flags_hit, flags_exp)),
        ("red-flag false alarms", ratio(false_alarm, noflag, 0.0), "<=", 0.05, "%d/%d" % (false_alarm, noflag)),
        ("top-1 condition", ratio(top1, conds, 1.0), ">=", 0.80, "%d/%d" % (top1, conds)),
        ("reply precision", ratio(tp, tp + fp, 1.0), ">=", 0.95, "%d/%d" % (tp, tp + fp)),
        ("reply recall", ratio(tp, tp + fn, 1.0), ">=", 0.95, "%d/%d" % (tp, tp + fn)),
    ]
    for label, value, op, floor, count in checks:
        good = value >= floor - 1e-12 if op == ">=" else value <= floor + 1e-12
        print("%s - %s: %s %.1f%% (%s), floor %s %.0f%%" % ("ok" if good else "not ok", name, label, 100 * value, count, op, 100 * floor))
    for m in misses:
        print("# miss " + m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
