#!/usr/bin/env bash
# Upload and download one checkpoint file (default 1 GiB) to s3rver on loopback with
# dsk-upload and with the AWS CLI in the same run; prints MB/s, CPU seconds and dsk/aws ratios.
# Usage: scripts/bench/upload.sh [BUILD_DIR]   (SIZE_MIB=1024 by default)
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
build_dir=${1:-$source_dir/build}
export DSK_SOURCE_DIR=$source_dir PATH=$build_dir/tools:$PATH
size_mib=${SIZE_MIB:-1024}
work=$(mktemp -d)
source "$source_dir/tests/cli/lib/s3-server.sh"
trap 'stop_s3_server; rm -rf "$work"' EXIT
start_s3_server "$work/data"
export AWS_ENDPOINT_URL=$S3_URL
mkdir -p "$work/ckpt"
head -c $((size_mib << 20)) /dev/urandom >"$work/ckpt/model.bin"

# measure LABEL COMMAND...: wall seconds, user+sys CPU seconds of the client (not the server).
measure() {
  local label=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" >/dev/null
  read -r wall user sys <"$work/time"
  printf '%-14s %8.1f MB/s  wall %6.2f s  cpu %6.2f s\n' "$label" \
    "$(echo "$size_mib * 1.048576 / $wall" | bc -l)" "$wall" "$(echo "$user + $sys" | bc -l)"
  echo "$label $wall" >>"$work/results"
}
export XDG_STATE_HOME=$work/state
measure dsk-upload dsk-upload -q "$work/ckpt" --name bench --version 1 --to s3://models \
  --part-size 64MiB --concurrency 4
measure aws-upload aws s3 cp "$work/ckpt/model.bin" s3://models/aws/model.bin
# Downloads use the default 8MiB ranges x4: 64MiB ranges cost a page-faulting allocation each.
measure dsk-download dsk-upload -q get bench@1 --to s3://models -o "$work/d1" --concurrency 4
measure aws-download aws s3 cp s3://models/aws/model.bin "$work/d2.bin"
cmp "$work/ckpt/model.bin" "$work/d1/model.bin"
awk '{t[$1]=$2} END {printf "ratio (aws time / dsk time): upload %.2f  download %.2f\n",
  t["aws-upload"]/t["dsk-upload"], t["aws-download"]/t["dsk-download"]}' "$work/results"
