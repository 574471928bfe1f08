#!/usr/bin/env bash
# dsk-serve's fallback under an induced overload with the real engine (CPU): a burst of long requests
# queues behind a batch of one; while the oldest waits past max_queue_wait, new requests to "big" are
# answered by "small" (header x-dsk-fallback-from, model "small"); once the burst is over and the
# queue is empty, "big" answers again. /metrics counts it, and dsk-scale's prometheus source reads
# the server's /metrics.
set -euo pipefail
source "$(dirname "$0")/lib/serve-fixture.sh"
start_serve_test
cat >serve.yaml <<EOF2
models:
  - {name: big, source: $CHECKPOINT, fallback: small, max_queue_wait: 300ms, recover: 0.5, min_engaged: 1s}
  - {name: small, source: $CHECKPOINT}
engine: {max_batch: 1}
EOF2
start_server serve.log -c serve.yaml "${device_flags[@]}"
served_by() {  # the model that answered a small request to big, and the fallback header
  curl -s -D headers.txt -H 'Content-Type: application/json' "$BASE/v1/completions" \
    -d '{"model": "big", "prompt": "probe", "max_tokens": 2}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["model"])'
  tr -d '\r' <headers.txt | sed -n 's/^x-dsk-fallback-from: //p'
}
[ "$(served_by | head -1)" = big ] || fail "big does not answer when idle"

# The burst: 64 requests of ~120 tokens each, one at a time: seconds of queue on a fast machine, so
# that the probe below lands while big's oldest request still waits. They are sent by one curl at
# once (--parallel), so that all of them reach big's queue before its oldest wait passes the bound:
# with a curl process a request, they started over seconds on a loaded machine (CI's 2 cores), the
# late ones went to small once the fallback engaged, big's queue drained, and the probe found big
# answering again. Probe once the oldest has waited past max_queue_wait (polled, not a fixed sleep:
# how long the burst lasts depends on the machine).
burst_requests=()
for i in $(seq 64); do
  [ "$i" = 1 ] || burst_requests+=(--next)
  burst_requests+=(-s -o /dev/null -H 'Content-Type: application/json' "$BASE/v1/completions"
    -d "{\"model\": \"big\", \"prompt\": \"burst $i\", \"max_tokens\": 120, \"temperature\": 0}")
done
curl --parallel --parallel-immediate --parallel-max 64 "${burst_requests[@]}" 2>/dev/null &  # no progress meter
oldest_wait() { curl -s "$BASE/metrics" | sed -n 's/^dsk_serve_oldest_wait_seconds{model="big"[^}]*} //p'; }
for _ in $(seq 500); do
  python3 -c "import sys; sys.exit(0 if float('${wait:-0}' or 0) > 0.35 else 1)" 2>/dev/null && break
  sleep 0.01
  wait=$(oldest_wait)
done
during=$(served_by)
[ "$(head -1 <<<"$during")" = small ] || fail "under overload big still answers: $during (queue: $(curl -s "$BASE/metrics" | grep '^dsk_serve_oldest_wait'))"
[ "$(tail -1 <<<"$during")" = big ] || fail "no x-dsk-fallback-from header: $during"
grep -q '^dsk_serve_fallback_active{model="big"} 1' <(curl -s "$BASE/metrics") || fail "fallback_active is not 1 during overload"

# dsk-scale reads the live /metrics: the queue depth over the label sets.
cat >scale.yaml <<EOF2
capacity: {min: 1, max: 10}
rule: proportional
metric: dsk_serve_queue_depth
proportional: {target: 4, tolerance: 0.1, per_unit: true}
source: {prometheus: [$BASE/metrics]}
EOF2
line=$(dsk-scale -c scale.yaml --once --current 1)
grep -Eq 'dsk_serve_queue_depth=[0-9]' <<<"$line" || fail "dsk-scale did not read dsk_serve_queue_depth: $line"

# The burst's curl if it is still going (not a bare `wait`: that would wait for the server too).
burst=$(jobs -p | grep -v "^$SERVER_PID$" || true)
[ -z "$burst" ] || wait $burst 2>/dev/null || true
sleep 1.2  # past min_engaged, the queue empty
after=$(served_by)
[ "$(head -1 <<<"$after")" = big ] || fail "the fallback did not disengage after the overload: $after"
[ -z "$(tail -n +2 <<<"$after")" ] || fail "a fallback header without a fallback: $after"
metrics=$(curl -s "$BASE/metrics")
grep -q '^dsk_serve_fallback_active{model="big"} 0' <<<"$metrics" || fail "fallback_active is not back to 0"
grep -q '^dsk_serve_fallbacks_total{model="big",fallback="small"} [1-9]' <<<"$metrics" || fail "no fallback counted"
grep -q '^dsk_serve_fallback_switches_total{model="big",fallback="small"} 1$' <<<"$metrics" || fail "switches: $(grep switches <<<"$metrics")"
stop_server TERM
[ "$SERVER_STATUS" = 143 ] || fail "exit $SERVER_STATUS after SIGTERM"
echo "dsk-serve-fallback: ok"
