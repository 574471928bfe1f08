#!/usr/bin/env bash
# dsk-scale against a real Slurm controller and three node daemons on loopback
# (tests/cli/lib/slurm-scale-cluster.sh), with dsk-scale also as Slurm's ResumeProgram and
# SuspendProgram: idle nodes are powered down and drained (scale-in), jobs
# submitted with sbatch wait in the queue, and dsk-scale powers nodes up through Slurm's
# ResumeProgram until they run (scale-out). Then Slurm goes down: a clear error and no action.
set -euo pipefail
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/slurm-scale-cluster.sh"
if missing=$(slurm_cluster_missing); then
  echo "skipped: $missing is not installed (scripts/install-deps installs scripts/deps/apt-scale.txt)" >&2
  exit 77
fi
work=$(mktemp -d)
trap 'slurm_cluster_stop; rm -rf "$work"' EXIT
source "$DSK_SOURCE_DIR/tests/cli/lib/slurm-scale-checks.sh"
policy="$DSK_SOURCE_DIR/configs/scale-slurm.yaml"
# No cooldowns, so that each step acts at once; the rest is the shipped policy.
scale() {
  dsk-scale -c "$policy" --set source.partition=gpu --set cooldown.in=0s --set cooldown.out=0s \
    --set stabilization.in=0s --set step.max_in=2 "$@"
}

slurm_cluster_start "$work/slurm" 3

# Three idle nodes, nothing queued: scale in by two (step.max_in), the last nodes first.
line=$(scale --once --apply)
echo "$line"
[ "$(field action "$line")" = scale-in ] || fail "expected scale-in: $line"
[ "$(field current "$line")" = 3 ] && [ "$(field desired "$line")" = 1 ] || fail "expected 3 -> 1: $line"
slurm_wait "n2 and n3 powered down" 30 \
  bash -c '[ "$(sinfo -h -N -n n2,n3 -o %T | grep -c "~$")" = 2 ]'
grep -q "suspend n\[2-3\]" "$SLURM_DIR/log/power.log" || fail "SuspendProgram did not run: $(cat "$SLURM_DIR/log/power.log")"
grep -qx "suspend n3 pool= name=preemptible" "$SLURM_DIR/log/power.log" || fail "dsk-scale --slurm-suspend: $(cat "$SLURM_DIR/log/power.log")"
[ "$(slurm_node_state n1)" = idle ] || fail "n1 should stay up: $(slurm_node_state n1)"
sinfo -h -N -n n2 -o "%T %E" | grep -q "^drained~ dsk-scale: scale in" || fail "n2 not drained by dsk-scale: $(sinfo -h -N -n n2 -o '%T %E')"

# At the minimum with nothing to do: hold.
line=$(scale --once --apply)
[ "$(field action "$line")" = hold ] || fail "expected hold at capacity.min: $line"

# Three one-node jobs for one powered-up node: one runs, two pend (Slurm does not wake drained nodes).
for i in 1 2 3; do sbatch --quiet -N1 -o /dev/null --wrap "sleep 300"; done
slurm_wait "one job running, two pending" 20 \
  bash -c '[ "$(squeue -h -t R -o %i | wc -l)" = 1 ] && [ "$(squeue -h -t PD -o %i | wc -l)" = 2 ]'

# Dry run (the default): says scale-out, changes nothing.
line=$(scale --once)
[ "$(field action "$line")" = scale-out ] || fail "expected scale-out: $line"
[ "$(field node_util "$line")" = 100 ] && [ "$(field pending "$line")" = 2 ] || fail "metrics: $line"
sleep 1
[ "$(sinfo -h -N -n n2,n3 -o %T | grep -c "~$")" = 2 ] || fail "a dry run changed node states: $(sinfo -h -N -o '%N %T')"

# --apply: n2 and n3 power up through ResumeProgram, register, and the pending jobs run.
line=$(scale --once --apply)
echo "$line"
[ "$(field desired "$line")" = 3 ] || fail "expected desired=3: $line"
slurm_wait "all three jobs running" 60 bash -c '[ "$(squeue -h -t R -o %i | wc -l)" = 3 ]'
grep -q "resume n\[2-3\]" "$SLURM_DIR/log/power.log" || fail "ResumeProgram did not run: $(cat "$SLURM_DIR/log/power.log")"
# dsk-scale --slurm-resume ran the command once per node, on spot capacity of the pre-emptible
# pool (price 1.2 under its cap 2).
grep -qx "resume n2 pool=spot name=preemptible" "$SLURM_DIR/log/power.log" &&
  grep -qx "resume n3 pool=spot name=preemptible" "$SLURM_DIR/log/power.log" ||
  fail "dsk-scale --slurm-resume: $(cat "$SLURM_DIR/log/power.log")"
[ "$(sinfo -h -N -t alloc -o %N | wc -l)" = 3 ] || fail "expected 3 allocated nodes: $(sinfo -h -N -o '%N %T')"

# Busy with nothing pending: hold.
line=$(scale --once --apply)
[ "$(field action "$line")" = hold ] || fail "expected hold while busy: $line"

# Slurm down: --once fails with the remote-service code and a message naming Slurm; --watch
# holds capacity and says why instead of acting blind.
scancel --quiet --user="$(id -un)"
controller_pid=$(cat "$SLURM_DIR/slurmctld.pid")
scontrol shutdown >/dev/null
slurm_wait "slurmctld gone" 20 bash -c "! kill -0 $controller_pid 2>/dev/null"
code=0
scale --once --apply >"$work/out" 2>"$work/err" || code=$?
[ "$code" = 5 ] || fail "Slurm down: exit $code, expected 5: $(cat "$work/err")"
grep -q "Slurm node states: .sinfo" "$work/err" || fail "Slurm down: unclear message: $(cat "$work/err")"
[ ! -s "$work/out" ] || fail "Slurm down: printed a decision: $(cat "$work/out")"
scale --watch --apply --iterations 2 --set interval=0.2s >"$work/out" 2>"$work/err" || fail "--watch should survive a failing source"
[ "$(grep -c 'action=hold reason="metric source failed' "$work/out")" = 2 ] || fail "--watch did not hold: $(cat "$work/out" "$work/err")"
echo "ok"
