#!/usr/bin/env bash
# dsk-train's progress lines on stderr (not a terminal: plain lines, here one per step): each shows
# the loss of the step it counts, and a run with nothing left to do shows no rate.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
make_shards
write_config base.yaml llama

export DSK_PROGRESS_INTERVAL=0.000001
dsk-train -c base.yaml --steps 6 >first.yaml 2>first.err
[ "$(field step first.yaml)" = 6 ] || fail "record: $(cat first.yaml)"
# "train  50% 3 / 6  ... loss 5.43121": the loss is printed with 6 significant digits, so it must
# equal metrics.jsonl's loss of step 3 to a relative 1e-5.
python3 - first.err run/metrics.jsonl <<'PY' || fail "progress losses: $(grep '^train' first.err)"
import json, re, sys
exact = {m["step"]: m["loss"] for m in map(json.loads, open(sys.argv[2]))}
shown = {}
for line in open(sys.argv[1]):
    match = re.match(r"train\s+\d+% (\d+) / 6 .*loss (\S+)$", line.strip())
    if match:
        shown[int(match.group(1))] = float(match.group(2))
steps = sorted(shown)
if steps != [1, 2, 3, 4, 5, 6]:
    sys.exit(f"steps with a loss on the progress line: {steps}")
for step in steps:
    if abs(shown[step] - exact[step]) > 1e-5 * abs(exact[step]):
        sys.exit(f"step {step}: progress shows loss {shown[step]}, metrics.jsonl has {exact[step]}")
PY

# Rerun once finished: the same record, a progress line with the count but no steps/s.
dsk-train -c base.yaml --steps 6 >again.yaml 2>again.err
[ "$(field path again.yaml)" = "$(field path first.yaml)" ] || fail "rerun record: $(cat again.yaml)"
grep -q '^train 100% 6 / 6' again.err || fail "no final progress line: $(cat again.err)"
if grep '^train' again.err | grep -q 'steps/s'; then fail "a rate without work: $(grep '^train' again.err)"; fi
echo "dsk-train progress: ok"
