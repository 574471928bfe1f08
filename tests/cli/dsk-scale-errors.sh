#!/usr/bin/env bash
# dsk-scale on bad input: the exit codes of dsk(7), a message naming the file, line or command,
# and no action taken.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/slurm-scale-checks.sh"
printf '{"time": 0, "gpu_util": 95, "pending": 1, "current": 1}\n' >good.jsonl
printf '{"time": 0, "gpu_util": 95}\n{"time": 60, "gpu_util": "busy"}\n' >bad-field.jsonl
printf '{"time": 0, "gpu_util": 95}\n{"time": 60, "gpu_util": 9\n' >bad-json.jsonl
printf 'time,gpu_util\n0,95\n60,96,1\n' >bad-row.csv
printf 'capacity:\n  min: 1\n  maxx: 4\n' >unknown-key.yaml
printf 'capacity: {min: 6, max: 2}\n' >inverted.yaml
printf 'threshold: {scale_out_above: 20, scale_in_below: 30}\n' >crossed.yaml

# Usage: exit 2.
expect 2 "say what to do" dsk-scale --set source.samples=good.jsonl
expect 2 "give one mode (.*), not --once and --watch" dsk-scale --once --watch
dsk-scale --help >help.txt
grep -q "Excludes" help.txt && fail "--help shows CLI11's Excludes lists: $(grep Excludes help.txt)"
expect 2 "no metric source" dsk-scale --once --current 2
expect 2 "unknown-key.yaml:3.*capacity.maxx" dsk-scale -c unknown-key.yaml --once
expect 2 "capacity.min 6 is above capacity.max 2" dsk-scale -c inverted.yaml --once
expect 2 "scale_in_below must be below" dsk-scale -c crossed.yaml --once
expect 2 "^dsk-scale: error: --set cooldown.in=soon: cooldown.in: expected a duration" dsk-scale --set cooldown.in=soon --simulate good.jsonl
printf 'capacity: {max: 4}\ncooldown:\n  in: soon\n' >bad-duration.yaml
expect 2 "bad-duration.yaml:3: cooldown.in: expected a duration" dsk-scale -c bad-duration.yaml --simulate good.jsonl
printf 'phases:\n  warmup: {cpus: 4}\n' >bad-phase.yaml
expect 2 "bad-phase.yaml:1: unknown key 'phases.warmup.cpus'" dsk-scale -c bad-phase.yaml --simulate good.jsonl
expect 2 "rule" dsk-scale --set rule=magic --once
expect 2 "not --slurm-resume and --slurm-suspend" dsk-scale --slurm-resume n1 --slurm-suspend n2
expect 2 "run actuator.command per node" dsk-scale --slurm-resume n1
expect 2 "actuator.command is required" dsk-scale --set source.samples=good.jsonl --set actuator.kind=command --once

# Bad samples: exit 3, naming file and line, and no decision printed.
expect 3 "bad-field.jsonl:2: field \"gpu_util\" must be a number" dsk-scale --set source.samples=bad-field.jsonl --once
[ ! -s out.txt ] || fail "printed a decision from a malformed sample"
expect 3 "bad-json.jsonl:2: not valid JSON" dsk-scale --simulate bad-json.jsonl
expect 3 "bad-row.csv:3: expected 2 fields" dsk-scale --simulate bad-row.csv
expect 3 "missing.jsonl" dsk-scale --simulate missing.jsonl

# A missing actuator command: the decision is printed, the failure is a remote error (exit 5).
expect 5 "exited 127" dsk-scale --set source.samples=good.jsonl --set actuator.kind=command \
  --set actuator.command=no-such-scaler-command --once --apply
grep -q "action=scale-out" out.txt || fail "the decision should still be printed: $(cat out.txt)"
# Slurm commands missing or the controller down: exit 5 naming the command.
PATH_WITHOUT_SLURM=$(dirname "$(command -v dsk-scale)"):/usr/bin/../nonexistent
expect 5 "Slurm node states: .sinfo -h -N" env PATH="$PATH_WITHOUT_SLURM" dsk-scale --set source.slurm=true --once
[ ! -s out.txt ] || fail "printed a decision with Slurm unreachable"
# --plot where gnuplot cannot run: a resource error, and no PNG.
expect 4 "needs gnuplot" env PATH="$PATH_WITHOUT_SLURM" dsk-scale --simulate good.jsonl --plot p.png
[ ! -e p.png ] || fail "a PNG was left behind"
echo ok
