# A real Slurm cluster on loopback for dsk-scale's tests: munged with a private key and socket,
# slurmctld, and one slurmd per node (slurmd -N NAME, each node on 127.0.0.1 with its own port),
# all state under one temporary directory. Power saving is on, with dsk-scale as ResumeProgram and
# SuspendProgram: resuming a node starts its slurmd (with -b, so that it reports a fresh boot as a
# powered-up cloud node must) and suspending stops it, as a cloud's instance start/stop would.
#
#   source tests/cli/lib/slurm-scale-cluster.sh
#   slurm_cluster_start "$work/slurm" 3    # nodes n1..n3, SLURM_CONF exported
#   ...
#   slurm_cluster_stop                     # also run from the caller's EXIT trap
#
# Needs Debian's slurmctld, slurmd, slurm-client and munge (scripts/deps/apt-scale.txt), and
# dsk-scale on PATH.

slurm_cluster_missing() {
  local program
  for program in munged slurmctld slurmd sinfo squeue sbatch scontrol; do
    command -v "$program" >/dev/null 2>&1 || { echo "$program"; return 0; }
  done
  return 1
}

slurm_cluster_start() {
  SLURM_DIR=$1
  local node_count=$2 user base_port i
  user=$(id -un)
  # Below the kernel's ephemeral range (32768 and up here): a port drawn from inside it can be
  # taken at that moment by any outgoing connection of a test running beside this one (seen in CI:
  # slurmd "Address already in use").
  local ephemeral_low
  ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  base_port=$((20000 + RANDOM % (ephemeral_low - 20000 - 64)))
  mkdir -p "$SLURM_DIR"/{munge,state,log,spool}
  chmod 700 "$SLURM_DIR/munge"
  head -c 1024 /dev/urandom >"$SLURM_DIR/munge/munge.key"
  chmod 400 "$SLURM_DIR/munge/munge.key"
  munged --force --key-file="$SLURM_DIR/munge/munge.key" --socket="$SLURM_DIR/munge/socket" \
    --pid-file="$SLURM_DIR/munge/munged.pid" --seed-file="$SLURM_DIR/munge/seed" \
    --log-file="$SLURM_DIR/log/munged.log"

  # ResumeProgram and SuspendProgram are dsk-scale itself (--slurm-resume/--slurm-suspend), whose
  # policy command "powers up" a node by starting its slurmd and "powers down" one by stopping it.
  # n1 is a reserved pool, the other nodes a pre-emptible one (spot at 1.2 under its cap of 2).
  # slurmd gets /dev/null for stdin/stdout/stderr: a daemon must not hold dsk-scale's pipes, and
  # slurmctld starts these programs without fds 0-2, so a log file opened there would be lost.
  cat >"$SLURM_DIR/power.yaml" <<YAML
pricing: {spot: 1.2}
pools:
  reserved: {nodes: "n1"}
  preemptible: {nodes: "n[2-$node_count]", preemptible: true, spot_price_cap: 2.0}
actuator:
  command: |
    echo "\$DSK_SCALE_ACTION \$DSK_SCALE_NODE pool=\$DSK_SCALE_POOL name=\$DSK_SCALE_POOL_NAME" >>"$SLURM_DIR/log/power.log"
    pid_file="$SLURM_DIR/spool/\$DSK_SCALE_NODE.pid"
    # The node's previous slurmd must be gone before another starts (it holds the node's port),
    # and a powered-down node's slurmd must really stop: wait for either, up to 10 s.
    wait_gone() {
      for _ in \$(seq 100); do
        [ -f "\$pid_file" ] && kill -0 "\$(cat "\$pid_file")" 2>/dev/null || return 0
        sleep 0.1
      done
    }
    # slurmctld takes a resumed node as up only if it booted after the resume began, comparing
    # whole seconds; slurmd -b reports its own start as the boot, so it starts a second after
    # (with the boot in the same second, n2 once stayed "not resumed" until ResumeTimeout).
    if [ "\$DSK_SCALE_ACTION" = resume ]; then
      wait_gone
      sleep 1
      slurmd -b -N "\$DSK_SCALE_NODE" </dev/null >/dev/null 2>&1
    else
      kill "\$(cat "\$pid_file")"
      wait_gone
    fi
YAML
  local mode
  for mode in resume suspend; do
    cat >"$SLURM_DIR/$mode.sh" <<SCRIPT
#!/bin/sh
echo "\$(date +%T) $mode \$1" >>"$SLURM_DIR/log/power.log"
exec "$(command -v dsk-scale)" -c "$SLURM_DIR/power.yaml" --slurm-$mode "\$1" 2>>"$SLURM_DIR/log/power.log"
SCRIPT
  done
  chmod +x "$SLURM_DIR/resume.sh" "$SLURM_DIR/suspend.sh"

  cat >"$SLURM_DIR/slurm.conf" <<CONF
ClusterName=dsk-scale-test
SlurmctldHost=localhost
SlurmctldPort=$base_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$SLURM_DIR/munge/socket
CredType=cred/munge
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool/%n
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/spool/%n.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/%n.log
MailProg=/bin/true
MessageTimeout=3
TCPTimeout=1
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/linear
MpiDefault=none
ReturnToService=2
SuspendProgram=$SLURM_DIR/suspend.sh
ResumeProgram=$SLURM_DIR/resume.sh
SuspendTime=3600
SuspendTimeout=3
ResumeTimeout=60
SlurmctldParameters=power_save_interval=1,power_save_min_interval=0
NodeName=n[1-$node_count] NodeHostname=localhost NodeAddr=127.0.0.1 Port=[$((base_port + 1))-$((base_port + node_count))] CPUs=1 RealMemory=100 State=UNKNOWN
PartitionName=gpu Nodes=n[1-$node_count] Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$SLURM_DIR/slurm.conf"
  slurmctld -c -i
  for i in $(seq 1 "$node_count"); do
    mkdir -p "$SLURM_DIR/spool/n$i"
    slurmd -N "n$i"
  done
  slurm_wait "all $node_count nodes idle" 30 \
    bash -c "[ \"\$(sinfo -h -N -t idle -o %N 2>/dev/null | wc -l)\" = $node_count ]"
}

# slurm_wait WHAT SECONDS command...: polls the command every half second.
slurm_wait() {
  local what=$1 seconds=$2 tries
  shift 2
  for tries in $(seq 1 $((seconds * 2))); do
    "$@" && return 0
    sleep 0.5
  done
  echo "timed out after ${seconds}s waiting for: $what" >&2
  sinfo -N -o "%N %T %E" >&2 || true
  squeue >&2 || true
  tail -n 20 "$SLURM_DIR/log/slurmctld.log" >&2 || true
  local log
  for log in "$SLURM_DIR"/log/power.log "$SLURM_DIR"/log/n*.log; do
    [ -f "$log" ] && { echo "== $log" >&2; tail -n 8 "$log" >&2; }
  done
  return 1
}

slurm_node_state() { sinfo -h -n "$1" -o %T | head -1; }

# Stops everything slurm_cluster_start started, by the pids in its own files.
slurm_cluster_stop() {
  [ -n "${SLURM_DIR:-}" ] && [ -d "$SLURM_DIR" ] || return 0
  local pid_file pid tries pids=()
  for pid_file in "$SLURM_DIR"/slurmctld.pid "$SLURM_DIR"/spool/*.pid; do
    [ -f "$pid_file" ] && pids+=("$(cat "$pid_file")")
  done
  scancel --quiet --user="$(id -un)" >/dev/null 2>&1 || true
  scontrol shutdown >/dev/null 2>&1 || true
  for pid in "${pids[@]}"; do
    for tries in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.3; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  done
  [ -f "$SLURM_DIR/munge/munged.pid" ] && kill "$(cat "$SLURM_DIR/munge/munged.pid")" 2>/dev/null
  SLURM_DIR=
}
