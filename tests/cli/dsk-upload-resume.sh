#!/usr/bin/env bash
# dsk-upload when the server dies mid-upload (s3rver on loopback, killed with SIGKILL):
#  1. restarted within the retry budget: the same run retries with backoff and finishes;
#  2. restarted after the run gave up (exit 5): no half version is visible (the manifest is
#     written last), the state file keeps the upload id and finished parts, and rerunning the
#     same command resumes without re-sending them; what comes back is byte-identical;
#  3. the client itself killed (SIGKILL, no chance to clean up): the rerun resumes the same way.
set -euo pipefail
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/s3-server.sh"
start_s3_test
export DSK_REGISTRY=s3://models/team

mkdir -p ckpt
head -c $((160 << 20)) /dev/urandom >ckpt/model.safetensors
echo '{"model_type": "llama"}' >ckpt/config.json
upload=(dsk-upload ckpt --name vision --part-size 5MiB --concurrency 1)

# Part files s3rver has received for open multipart uploads (numbered files in its upload dirs).
parts_on_server() { find "$work/data/models" -path '*upload*' -type f -regex '.*/[0-9]+$' 2>/dev/null | wc -l; }
# kill_server_after N: SIGKILL s3rver once N part files exist (the upload runs meanwhile).
kill_server_after() {
  for _ in $(seq 600); do
    [ "$(parts_on_server)" -ge "$1" ] && { kill -9 "$S3_PID"; wait "$S3_PID" 2>/dev/null || true; S3_PID=; return 0; }
    sleep 0.02
  done
  echo "the upload never reached $1 parts" >&2; return 1
}

# 1. Killed, restarted 1 s later: retries (0.25 s doubling, 6 retries ~ 16 s) carry the run through.
"${upload[@]}" --version 1.0 --retries 6 -v >record1.txt 2>err1.txt &
run=$!
kill_server_after 3
sleep 1
start_s3_server "$work/data"
wait "$run"
grep -q 'manifest_sha256:' record1.txt
grep -q 'retrying in' err1.txt
dsk-upload get vision@1.0 -o got1 >/dev/null
cmp ckpt/model.safetensors got1/model.safetensors

# 2. Killed for good: the run gives up with exit 5 and keeps its state.
"${upload[@]}" --version 2.0 --retries 1 >/dev/null 2>err2.txt &
run=$!
kill_server_after 8  # 1.0's parts are gone (completed), so these are 2.0's
status=0; wait "$run" || status=$?
[ "$status" = 5 ] || { echo "expected exit 5, got $status" >&2; cat err2.txt >&2; exit 1; }
grep -q 'rerun the same command to resume' err2.txt
state=$(ls state/dsk/uploads/*.yaml)
sent=$(grep -cE '^  [0-9]+: ' "$state")
[ "$sent" -ge 5 ] || { echo "state file has $sent parts" >&2; exit 1; }

start_s3_server "$work/data"
# No half version: 2.0 has no manifest, so it is neither listed nor readable.
[ "$(dsk-upload list vision | cut -f1)" = "1.0" ]
status=0; dsk-upload show vision@2.0 2>/dev/null || status=$?
[ "$status" = 2 ]

"${upload[@]}" --version 2.0 >record2.txt 2>err2b.txt
grep -qE "resuming the upload of ckpt/model.safetensors .*: $sent of 32 parts already sent" err2b.txt
[ -z "$(ls state/dsk/uploads/)" ]
dsk-upload get vision@2.0 -o got2 >/dev/null
cmp ckpt/model.safetensors got2/model.safetensors
[ "$(dsk-upload list vision | cut -f1 | tr '\n' ' ')" = "1.0 2.0 " ]

# 3. The client killed mid-upload.
"${upload[@]}" --version 3.0 >/dev/null 2>/dev/null &
run=$!
wait_for_sent_parts 4
kill -9 "$run"; wait "$run" 2>/dev/null || true
sent=$(sent_parts)
[ "$sent" -ge 4 ] && [ "$sent" -lt 32 ] || { echo "FAIL: killed after $sent of 32 parts, expected 4..31" >&2; exit 1; }
"${upload[@]}" --version 3.0 >/dev/null 2>err3.txt
grep -qE "resuming the upload .*: $sent of 32 parts already sent" err3.txt
dsk-upload get vision@3.0 -o got3 >/dev/null
cmp ckpt/model.safetensors got3/model.safetensors
echo ok
