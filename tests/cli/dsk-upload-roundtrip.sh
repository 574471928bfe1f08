#!/usr/bin/env bash
# dsk-upload against s3rver on loopback: publish a checkpoint spanning several multipart parts,
# the record's URL and manifest sha256, version collisions (exit 2), an unknown key (exit 5),
# fetching back verified, aliases with weights; cross-checked with the AWS CLI both ways.
set -euo pipefail
work=$(mktemp -d)
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/s3-server.sh"
trap 'stop_s3_server; rm -rf "$work"' EXIT
cd "$work"
start_s3_server "$work/data"
export AWS_ENDPOINT_URL=$S3_URL

mkdir -p ckpt/tokenizer
head -c $((12 << 20)) /dev/urandom >ckpt/model.safetensors
echo '{"model_type": "llama"}' >ckpt/config.json
echo 'vocab' >ckpt/tokenizer/vocab.txt

dsk-upload ckpt --name vision --model-version 1.0 --to s3://models/team --part-size 5MiB \
  --concurrency 3 >record.txt
grep -q 's3://models/team/vision/1.0/manifest.yaml' record.txt
status=0; dsk-upload ckpt --name vision --model-version 1.0 --to s3://models/team 2>err.txt || status=$?
[ "$status" = 2 ] && grep -q "immutable" err.txt
status=0; AWS_ACCESS_KEY_ID=WRONG dsk-upload ckpt --name vision --model-version 2.0 \
  --to s3://models/team 2>err.txt || status=$?
[ "$status" = 5 ] && grep -q "InvalidAccessKeyId" err.txt && ! grep -q S3RVER err.txt

dsk-upload --name vision --model-version 1.0 --to s3://models/team --get restored >/dev/null
cmp ckpt/model.safetensors restored/model.safetensors
cmp ckpt/tokenizer/vocab.txt restored/tokenizer/vocab.txt

dsk-upload ckpt --name vision --model-version 1.1 --to s3://models/team --part-size 5MiB >/dev/null
dsk-upload --name vision --to s3://models/team --alias prod --weights 1.0=90,1.1=10 >/dev/null
status=0; dsk-upload --name vision --to s3://models/team --alias prod --weights 7.0 2>/dev/null || status=$?
[ "$status" = 2 ]

# The AWS CLI reads what dsk wrote, and dsk reads what the AWS CLI wrote.
if command -v aws >/dev/null; then
  aws="aws --endpoint-url $S3_URL"
  $aws s3 cp s3://models/team/vision/1.0/model.safetensors via-aws.bin >/dev/null
  cmp ckpt/model.safetensors via-aws.bin
  $aws s3 cp s3://models/team/vision/aliases.yaml - | grep -q '"1.1": 10'
  mkdir -p aws-ckpt && head -c $((7 << 20)) /dev/urandom >aws-ckpt/w.bin
  sha=$(sha256sum aws-ckpt/w.bin | cut -d' ' -f1)
  $aws s3 cp aws-ckpt/w.bin s3://models/team/vision/3.0/w.bin >/dev/null
  printf 'name: vision\nversion: "3.0"\ncreated: 2026-01-01T00:00:00Z\nfiles:\n  - {path: w.bin, size: %d, sha256: %s}\n' \
    $((7 << 20)) "$sha" >manifest.yaml
  $aws s3 cp manifest.yaml s3://models/team/vision/3.0/manifest.yaml >/dev/null
  dsk-upload --name vision --model-version 3.0 --to s3://models/team --get from-aws >/dev/null
  cmp aws-ckpt/w.bin from-aws/w.bin
else
  echo "no AWS CLI: cross-check left out" >&2
  exit 1
fi
echo ok
