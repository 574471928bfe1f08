#!/usr/bin/env bash
# dsk-scale --simulate: golden totals for a day of synthetic load under the default rule and
# under the proportional rule (tests/fixtures/scale/make-diurnal.py makes the trace), the
# decisions behind them, and the PNG drawn by gnuplot.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/slurm-scale-checks.sh"
cd "${DSK_SOURCE_DIR:?}"  # the goldens name the trace and policy by these relative paths
fixtures=tests/fixtures/scale

dsk-scale --simulate $fixtures/diurnal.jsonl >"$work/default.yaml"
diff -u $fixtures/diurnal-default.golden.yaml "$work/default.yaml" || fail "default rule: totals differ from the golden"
dsk-scale --simulate $fixtures/diurnal.jsonl -c configs/scale-serve.yaml --set metric=gpu_util \
  --set proportional.target=70 --set proportional.per_unit=false >"$work/proportional.yaml"
diff -u $fixtures/diurnal-proportional.golden.yaml "$work/proportional.yaml" || fail "proportional rule: totals differ from the golden"

# The decisions behind the totals (-v): the first scale-out comes when load first exceeds one
# node, at 06:05 of the trace, and every action line is a whole decision.
dsk-scale --simulate $fixtures/diurnal.jsonl -v 2>"$work/decisions" >/dev/null
first=$(grep -m1 'action=scale-out' "$work/decisions")
[[ "$first" == *"time=21900s "*"current=1 desired=2 action=scale-out"* ]] || fail "first scale-out: $first"
[ "$(grep -c 'action=scale-' "$work/decisions")" = "$(sed -n 's/^actions: //p' "$work/default.yaml")" ] ||
  fail "decision lines and the actions total disagree"

# The same trace as CSV gives the same totals.
{ echo "time,demand,phase"; sed 's/{"time": \([0-9]*\), "demand": \([0-9.]*\), "phase": "\([a-z]*\)"}/\1,\2,\3/' $fixtures/diurnal.jsonl; } >"$work/diurnal.csv"
dsk-scale --simulate "$work/diurnal.csv" | grep -v '^trace:' >"$work/csv.yaml"
grep -v '^trace:' "$work/default.yaml" | diff -u - "$work/csv.yaml" || fail "CSV and JSONL traces differ"

# Pricing: cost = capacity-hours x price.
dsk-scale --simulate $fixtures/diurnal.jsonl --set pricing.on_demand=2 --set pricing.spot=0.5 >"$work/priced.yaml"
grep -qx "cost_on_demand: 191" "$work/priced.yaml" && grep -qx "cost_spot: 47.75" "$work/priced.yaml" || fail "costs: $(cat "$work/priced.yaml")"

# The plot: a PNG, written whole.
if command -v gnuplot >/dev/null; then
  dsk-scale --simulate $fixtures/diurnal.jsonl --plot "$work/day.png" >"$work/plotted.yaml"
  [ "$(head -c 8 "$work/day.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "--plot did not write a PNG"
  grep -qx "plot: $work/day.png" "$work/plotted.yaml" || fail "the record does not name the plot"
  [ -z "$(ls "$work" | grep -E '\.(dat|gp|tmp)\.')" ] || fail "temporary plot files left: $(ls "$work")"
else
  fail "gnuplot is missing (scripts/deps/apt-scale.txt installs gnuplot-nox)"
fi
echo ok
