#!/usr/bin/env bash
# dsk-upload never publishes bytes other than those its manifest describes when a file changes
# between runs or during one (s3rver on loopback; 60 MiB in 12 parts of 5 MiB, one at a time):
#  1. killed (SIGKILL) after about 2 parts, the file rewritten with new bytes of the same size
#     and modification time (touch -r): the rerun starts afresh, since the resume state keeps
#     the content's sha256, and `get` gives back the new bytes;
#  2. the file's last part rewritten while the upload is stopped (SIGSTOP) after 2 parts: the
#     upload fails with exit 3 before completing, nothing is stored under the version, and the
#     next run publishes the file as it is then.
set -euo pipefail
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/s3-server.sh"
start_s3_test
export DSK_REGISTRY=s3://models/team

mkdir -p ckpt
head -c $((60 << 20)) /dev/urandom >ckpt/model.safetensors
upload=(dsk-upload ckpt --name vision --part-size 5MiB -j 1)

stored_sha256() {  # the x-amz-meta-sha256 of an object, through a HEAD request
  curl -sfI "$S3_URL/models/team/vision/$1" | tr -d '\r' | sed -n 's/^x-amz-meta-sha256: //Ip'
}

# 1. Killed after 2 parts, rewritten keeping size and mtime, rerun.
"${upload[@]}" --version 1.0 >/dev/null 2>err1.txt &
run=$!
wait_for_sent_parts 2
kill -9 "$run"; wait "$run" 2>/dev/null || true
sent=$(sent_parts)
[ "$sent" -ge 2 ] && [ "$sent" -lt 12 ] || { echo "FAIL: killed after $sent of 12 parts" >&2; exit 1; }
touch -r ckpt/model.safetensors stamp
head -c $((60 << 20)) /dev/urandom >ckpt/model.safetensors
touch -r stamp ckpt/model.safetensors
new_sha=$(sha256sum ckpt/model.safetensors | cut -d' ' -f1)
"${upload[@]}" --version 1.0 >/dev/null 2>err1b.txt ||
  { echo "FAIL: the rerun failed: $(cat err1b.txt)" >&2; exit 1; }
! grep -q 'resuming the upload' err1b.txt && grep -q 'changed since its interrupted upload' err1b.txt ||
  { echo "FAIL: resumed an upload of other bytes: $(cat err1b.txt)" >&2; exit 1; }
[ "$(stored_sha256 1.0/model.safetensors)" = "$new_sha" ]
dsk-upload show vision@1.0 | grep -q "sha256: $new_sha"
dsk-upload get vision@1.0 -o got1 >/dev/null
cmp ckpt/model.safetensors got1/model.safetensors
[ -z "$(ls state/dsk/uploads/)" ]

# 2. Changed during the upload: the last part's bytes rewritten while parts 1-2 are stored.
"${upload[@]}" --version 2.0 >/dev/null 2>err2.txt &
run=$!
wait_for_sent_parts 2
kill -STOP "$run"
dd if=/dev/urandom of=ckpt/model.safetensors bs=1M seek=55 count=5 conv=notrunc status=none
kill -CONT "$run"
status=0; wait "$run" || status=$?
[ "$status" = 3 ] && grep -q 'ckpt/model.safetensors changed while it was being uploaded' err2.txt ||
  { echo "FAIL: a file changed mid-upload: exit $status: $(cat err2.txt)" >&2; exit 1; }
status=0; dsk-upload show vision@2.0 2>/dev/null || status=$?
[ "$status" = 2 ]
[ "$(curl -s -o /dev/null -w '%{http_code}' -I "$S3_URL/models/team/vision/2.0/model.safetensors")" = 404 ] ||
  { echo "FAIL: the object of a failed upload was stored" >&2; exit 1; }
[ -z "$(ls state/dsk/uploads/)" ]
"${upload[@]}" --version 2.0 >/dev/null
dsk-upload get vision@2.0 -o got2 >/dev/null
cmp ckpt/model.safetensors got2/model.safetensors
echo ok
