#!/usr/bin/env bash
# dsk-upload keeps its state directory clean (s3rver on loopback):
#  1. a temporary state file (<id>.yaml.tmp.<pid>) that a process killed while rewriting its
#     state left behind is removed by the next run once that process is gone; one of a live
#     process stays;
#  2. the state of an upload that was completed but not forgotten (the process killed between
#     completing the upload and removing its state) is removed by the next run that finds the
#     object stored whole.
set -euo pipefail
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/s3-server.sh"
start_s3_test
export DSK_REGISTRY=s3://models/team

mkdir -p ckpt state/dsk/uploads
head -c $((30 << 20)) /dev/urandom >ckpt/model.safetensors
upload=(dsk-upload ckpt --name vision --part-size 5MiB -j 1)
states=state/dsk/uploads

# 1. Temporary files of a dead and of a live process, as old as a killed run's would be.
sh -c 'exit 0' & dead=$!
wait "$dead"
stale=$states/0123456789abcdef0123456789abcdef.yaml.tmp.$dead
live=$states/fedcba9876543210fedcba9876543210.yaml.tmp.$$
printf 'upload_id: half-writ' >"$stale"
cp "$stale" "$live"
touch -d '10 minutes ago' "$stale" "$live"
"${upload[@]}" --version 1.0 >/dev/null
[ ! -e "$stale" ] || { echo "FAIL: the temporary file of dead process $dead was left" >&2; exit 1; }
[ -e "$live" ] || { echo "FAIL: the temporary file of a live process was removed" >&2; exit 1; }
rm "$live"
[ -z "$(ls $states)" ]

# 2. A completed upload's state: kept from an interrupted run, put back after the rerun
#    completed the upload and removed it.
"${upload[@]}" --version 2.0 >/dev/null 2>&1 &
run=$!
wait_for_sent_parts 2
kill -9 "$run"; wait "$run" 2>/dev/null || true
state=$(ls $states/*.yaml)
cp "$state" interrupted.yaml
"${upload[@]}" --version 2.0 >/dev/null
[ ! -e "$state" ]
cp interrupted.yaml "$state"
"${upload[@]}" --version 2.0 --force -v >/dev/null 2>err.txt
grep -q 'already stored whole' err.txt
[ -z "$(ls $states)" ] || { echo "FAIL: the state of a completed upload was left: $(ls $states)" >&2; exit 1; }
echo ok
