#!/usr/bin/env bash
# dsk-scale --once and --watch with the other sources and actuators: a Prometheus text endpoint
# served over loopback HTTP, a samples file, the GPU source where there is no GPU, a command
# given the decision in its environment, Kubernetes without kubectl, and --watch holding while
# the endpoint is down.
set -euo pipefail
work=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/slurm-scale-checks.sh"

# A metrics endpoint as dsk-serve will expose it, from Python's http.server on a free port.
mkdir www
cat >www/metrics <<'METRICS'
# HELP dsk_serve_queue_depth Requests waiting for a slot.
# TYPE dsk_serve_queue_depth gauge
dsk_serve_queue_depth{replica="0"} 14
dsk_serve_queue_depth{replica="1"} 18
# HELP dsk_serve_tokens_per_second Generated tokens per second.
# TYPE dsk_serve_tokens_per_second gauge
dsk_serve_tokens_per_second 5120.5
METRICS
python3 - >port.txt <<'PY' &
import http.server, functools, socketserver, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="www")
http.server.SimpleHTTPRequestHandler.log_message = lambda *args: None
server = socketserver.TCPServer(("127.0.0.1", 0), handler)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
server_pid=$!
for i in $(seq 1 50); do [ -s port.txt ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat port.txt)/metrics"

cat >serve.yaml <<YAML
capacity: {min: 1, max: 10}
rule: proportional
metric: dsk_serve_queue_depth
proportional: {target: 8, tolerance: 0.1, per_unit: true}
step: {max_out: 8}
source: {prometheus: [$url]}
actuator:
  kind: command
  command: 'echo "\$DSK_SCALE_ACTION \$DSK_SCALE_CURRENT \$DSK_SCALE_DESIRED \$DSK_SCALE_DELTA" >>actions.log'
YAML

# 32 waiting over 2 replicas, 16 each, at a target of 8 each: ceil(2 x 16 / 8) = 4. Dry run: no command.
line=$(dsk-scale -c serve.yaml --once --current 2)
[ "$(field dsk_serve_queue_depth "$line")" = 32 ] || fail "queue depth summed over replicas: $line"
[ "$(field dsk_serve_tokens_per_second "$line")" = 5120.5 ] || fail "tokens/s: $line"
[ "$(field desired "$line")" = 4 ] && [ "$(field action "$line")" = scale-out ] || fail "proportional: $line"
[ ! -e actions.log ] || fail "a dry run ran the actuator command"
# --apply runs the command with the decision in its environment.
dsk-scale -c serve.yaml --once --current 2 --apply >/dev/null
[ "$(cat actions.log)" = "scale-out 2 4 2" ] || fail "command actuator got: $(cat actions.log)"
# Within tolerance (32 over 4 replicas is the target): hold, and no command.
line=$(dsk-scale -c serve.yaml --once --current 4 --apply)
[ "$(field action "$line")" = hold ] || fail "expected hold at target: $line"
[ "$(wc -l <actions.log)" = 1 ] || fail "the command ran on a hold"

# --state keeps the cooldown between --once runs: a second scale-out right after is held.
dsk-scale -c serve.yaml --once --current 2 --apply --state state.json >/dev/null
line=$(dsk-scale -c serve.yaml --once --current 3 --apply --state state.json)
[ "$(field action "$line")" = hold ] && [[ "$line" == *"cooldown"* ]] || fail "cooldown across --once runs: $line"

# A samples file as the source (its last row), with the training phase's CPU ratio.
printf '{"time": %s, "gpu_util": 95, "pending": 2, "running": 2, "current": 2, "phase": "warmup"}\n' "$(date +%s)" >samples.jsonl
line=$(dsk-scale -c "$DSK_SOURCE_DIR/configs/scale-train.yaml" --set source.gpu=false --set source.slurm=false \
  --set source.samples=samples.jsonl --once)
[ "$(field desired "$line")" = 4 ] && [ "$(field cpus "$line")" = 64 ] || fail "phase ratio: $line"

# A collector that stopped: a last sample older than source.samples_max_age fails the source,
# --once with bad data (3) and no decision, --watch by holding.
printf '{"time": %s, "gpu_util": 95, "pending": 2, "current": 2}\n' "$(( $(date +%s) - 3600 ))" >stale.jsonl
expect 3 "stale.jsonl: the last sample is 36[0-9][0-9]s old, over source.samples_max_age (600s)" \
  dsk-scale --set source.samples=stale.jsonl --once --apply
[ ! -s out.txt ] || fail "decided on a stale sample: $(cat out.txt)"
line=$(dsk-scale --set source.samples=stale.jsonl --watch --iterations 1 2>/dev/null)
[[ "$line" == *'action=hold reason="metric source failed: holding capacity: stale.jsonl: the last sample'* ]] ||
  fail "--watch on a stale sample: $line"
line=$(dsk-scale --set source.samples=stale.jsonl --set source.samples_max_age=0s --once)
[ "$(field action "$line")" = scale-out ] || fail "samples_max_age=0s should lift the limit: $line"

# --watch: the endpoint goes away; each interval holds capacity and says why, exit 0.
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
dsk-scale -c serve.yaml --watch --apply --current 2 --iterations 3 --set interval=0.1s >watch.txt 2>watch.err ||
  fail "--watch exited non-zero: $(cat watch.err)"
[ "$(grep -c 'action=hold reason="metric source failed: holding capacity: metrics endpoint http://127.0.0.1' watch.txt)" = 3 ] ||
  fail "--watch did not hold with a reason: $(cat watch.txt)"
[ "$(wc -l <actions.log)" = 2 ] || fail "--watch acted blind"
# --watch stops at SIGTERM between decisions, with the signal's exit code.
dsk-scale --set source.samples=samples.jsonl --watch --set interval=30s >term.txt 2>&1 &
watch_pid=$!
for i in $(seq 1 50); do [ -s term.txt ] && break; sleep 0.1; done
kill -TERM "$watch_pid"
code=0; wait "$watch_pid" || code=$?
[ "$code" = 143 ] || fail "--watch after SIGTERM exited $code, expected 143: $(cat term.txt)"
# --once with the endpoint down: exit 5 and no decision.
expect 5 "metrics endpoint $url" dsk-scale -c serve.yaml --once --current 2 --apply
[ ! -s out.txt ] || fail "printed a decision with the source down"

# The GPU source where there is no GPU: a clear resource error (exit 4), unless this machine has one.
if ! command -v nvidia-smi >/dev/null && ! ldconfig -p 2>/dev/null | grep -q libnvidia-ml.so.1; then
  expect 4 "GPU metrics unavailable: libnvidia-ml.so.1 cannot be loaded and nvidia-smi is not on PATH" \
    dsk-scale --set source.gpu=true --once --current 1
fi

# The nvidia-smi fallback and kubectl's command lines, through stand-ins on PATH that record
# their arguments (there is no GPU nor cluster here): 4 replicas at 90% and 70% utilization.
mkdir bin
cat >bin/nvidia-smi <<'SH'
#!/bin/sh
echo "$*" >>nvidia-smi.args
printf '90, 40000, 81920\n70, 20480, 81920\n'
SH
cat >bin/kubectl <<'SH'
#!/bin/sh
echo "$*" >>kubectl.args
[ "$1" = get ] && printf 4
exit 0
SH
chmod +x bin/nvidia-smi bin/kubectl
if ! ldconfig -p 2>/dev/null | grep -q libnvidia-ml.so.1; then
  line=$(PATH="$PWD/bin:$PATH" dsk-scale --set source.gpu=true --set rule=proportional --set proportional.target=40 \
    --set actuator.kind=kubernetes --set actuator.kubernetes.name=dsk-serve --set actuator.kubernetes.namespace=serving \
    --once --apply)
  [ "$(field gpu_util "$line")" = 80 ] && [ "$(field gpu_memory "$line")" = 36.9141 ] || fail "nvidia-smi metrics: $line"
  [ "$(field current "$line")" = 4 ] && [ "$(field desired "$line")" = 8 ] || fail "replicas from kubectl: $line"
  [ "$(cat nvidia-smi.args)" = "--query-gpu=utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits" ] ||
    fail "nvidia-smi called as: $(cat nvidia-smi.args)"
  printf 'get deployment/dsk-serve -o jsonpath={.spec.replicas} -n serving\nscale deployment/dsk-serve --replicas=8 -n serving\n' |
    diff - kubectl.args || fail "kubectl command lines differ"
fi

# Kubernetes: the replica count comes from kubectl; without it, a clear remote error.
if ! command -v kubectl >/dev/null; then
  expect 5 "kubectl not found on PATH" dsk-scale --set source.samples=samples.jsonl --set actuator.kind=kubernetes \
    --set actuator.kubernetes.name=dsk-serve --once
fi
expect 2 "actuator.kubernetes.name is required" dsk-scale --set source.samples=samples.jsonl --set actuator.kind=kubernetes --once
echo ok
