#!/usr/bin/env bash
# dsk-upload against s3rver on loopback: publish a checkpoint spanning several multipart parts,
# the record's URL and manifest sha256, version collisions (exit 2), an unknown key (exit 5),
# fetching back verified, aliases with weights, the shared settings from -c/--set/--print-config;
# cross-checked with the AWS CLI both ways.
set -euo pipefail
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/s3-server.sh"
start_s3_test

mkdir -p ckpt/tokenizer
head -c $((12 << 20)) /dev/urandom >ckpt/model.safetensors
echo '{"model_type": "llama"}' >ckpt/config.json
echo 'vocab' >ckpt/tokenizer/vocab.txt

dsk-upload ckpt --name vision --version 1.0 --to s3://models/team --part-size 5MiB \
  --concurrency 3 >record.txt
grep -q '^url: s3://models/team/vision/1.0/manifest.yaml$' record.txt
grep -q "^manifest_sha256: $(aws s3 cp s3://models/team/vision/1.0/manifest.yaml - | sha256sum | cut -d' ' -f1)\$" record.txt
status=0; dsk-upload ckpt --name vision --version 1.0 --to s3://models/team 2>err.txt || status=$?
[ "$status" = 2 ] && grep -q "immutable" err.txt || { echo "FAIL: republishing: exit $status: $(cat err.txt)" >&2; exit 1; }
status=0; AWS_ACCESS_KEY_ID=WRONG dsk-upload ckpt --name vision --version 2.0 \
  --to s3://models/team 2>err.txt || status=$?
[ "$status" = 5 ] && grep -Eq "InvalidAccessKeyId|access denied: check the credentials" err.txt && ! grep -q S3RVER err.txt ||
  { echo "FAIL: wrong credentials: exit $status: $(cat err.txt)" >&2; exit 1; }
# --model-version is the same option; a bare --version is the tool's version.
dsk-upload --version | grep -q '^dsk '
status=0; dsk-upload ckpt --name vision --to s3://models/team --version 2>/dev/null || status=$?
[ "$status" = 2 ]

dsk-upload get vision@1.0 --to s3://models/team -o restored >/dev/null
cmp ckpt/model.safetensors restored/model.safetensors
cmp ckpt/tokenizer/vocab.txt restored/tokenizer/vocab.txt

export DSK_REGISTRY=s3://models/team
dsk-upload ckpt --name vision --model-version 1.1 --part-size 5MiB >/dev/null
dsk-upload alias vision prod 1.0=90,1.1=10 >/dev/null
status=0; dsk-upload alias vision prod 7.0 2>/dev/null || status=$?
[ "$status" = 2 ]
[ "$(dsk-upload list | tr '\n' ' ')" = "vision " ]
dsk-upload list vision | cut -f1,3 >listed.txt
printf '1.0\tprod=90\n1.1\tprod=10\n' | cmp - listed.txt
dsk-upload show vision@1.1 | grep -q 'model_type: llama'

# The shared settings from a config file (-c): the file wins over the environment, --set over the
# file, a flag over --set; --print-config prints what is in effect, itself a valid input.
printf 'registry:\n  root: s3://models/team\ntransfer:\n  concurrency: 3\n' >upload.yaml
[ "$(DSK_REGISTRY=s3://elsewhere dsk-upload -c upload.yaml list | tr '\n' ' ')" = "vision " ]
dsk-upload -c upload.yaml --set transfer.concurrency=5 --part-size 6MiB --print-config >printed.yaml
grep -q '^  root: s3://models/team$' printed.yaml
grep -q '^  concurrency: 5$' printed.yaml
grep -q '^  part_size: 6MiB$' printed.yaml
grep -q '^  retries: 4$' printed.yaml
dsk-upload -c upload.yaml --set transfer.concurrency=5 -j 2 --print-config | grep -q '^  concurrency: 2$'
dsk-upload -c printed.yaml --print-config | cmp - printed.yaml
printf 'transfer:\n  parts: 3\n' >unknown.yaml
status=0; dsk-upload -c unknown.yaml list 2>err.txt || status=$?
[ "$status" = 2 ]
grep -q "unknown.yaml:2: unknown key 'transfer.parts'" err.txt
status=0; dsk-upload list --set s3.retries=-1 2>err.txt || status=$?
[ "$status" = 2 ]
grep -q "s3.retries.*at least 0" err.txt
status=0; echo 'kind: checkpoint' | dsk-upload -c - - --name vision --version 9 2>err.txt || status=$?
[ "$status" = 2 ]
grep -q 'cannot both read stdin' err.txt

# The manifest counts parameters in safetensors headers (2x3 + 4 here) and keeps an adapter's base.
mkdir -p adapter
header='{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}'
{ printf "\\x$(printf %02x ${#header})\\0\\0\\0\\0\\0\\0\\0"; printf %s "$header"; head -c 32 /dev/zero; } \
  >adapter/adapter_model.safetensors
echo '{"base_model_name_or_path": "deepseek-ai/base", "peft_type": "LORA"}' >adapter/adapter_config.json
dsk-upload adapter --name vision-lora --version 1 >/dev/null
dsk-upload show vision-lora@1 >adapter-manifest.txt
grep -q '^parameters: 10$' adapter-manifest.txt && grep -q '^base_model: deepseek-ai/base$' adapter-manifest.txt ||
  { echo "FAIL: adapter manifest: $(cat adapter-manifest.txt)" >&2; exit 1; }

# A record on stdin in place of the directory; the manifest keeps it.
printf -- '---\nkind: checkpoint\npath: ckpt\nstep: 500\n' | dsk-upload - --name vision --version 1.2 >/dev/null
dsk-upload show vision@1.2 | grep -q 'step: 500'
dsk-upload get vision@1.2 -o via-record | grep -q '^step: 500$'

# registry:// into the cache keyed by the manifest's sha256; a second open downloads nothing.
dsk-upload fetch registry://vision@1.1 --cache-dir cache >fetched.txt
sha=$(dsk-upload show vision@1.1 | sha256sum | cut -d' ' -f1)
grep -q "^path: cache/$sha\$" fetched.txt
cmp ckpt/model.safetensors "cache/$sha/model.safetensors"
dsk-upload fetch s3://models/team/vision/1.1 --cache-dir cache -v 2>err.txt | grep -q "$sha"
grep -q 'is cached in' err.txt

# Prune: keep the newest, delete the rest older than 0 s, but spare what prod points to.
dsk-upload prune vision --keep 1 --dry-run | grep -q '^deleted: ""$'  # 1.0, 1.1 aliased; 1.2 newest
dsk-upload alias vision prod 1.1 >/dev/null
dsk-upload prune vision --keep 1 | grep -q '^deleted: 1.0$'
[ "$(dsk-upload list vision | cut -f1 | tr '\n' ' ')" = "1.1 1.2 " ]
[ -z "$(aws s3 ls --recursive s3://models/team/vision/1.0/)" ]

# A corrupt manifest is bad data (exit 3), for show and get alike.
echo 'files: [oops' | aws s3 cp - s3://models/team/vision/1.2/manifest.yaml >/dev/null
status=0; dsk-upload show vision@1.2 2>err.txt || status=$?
[ "$status" = 3 ] && grep -q 'vision/1.2/manifest.yaml' err.txt ||
  { echo "FAIL: corrupt manifest: exit $status: $(cat err.txt)" >&2; exit 1; }
status=0; dsk-upload get vision@1.2 -o bad 2>/dev/null || status=$?
[ "$status" = 3 ]

# s3rver has no lifecycle support: a clear error, exit 5.
status=0; dsk-upload lifecycle set --abort-incomplete-days 7 2>err.txt || status=$?
[ "$status" = 5 ] && grep -q 'does not support bucket lifecycle rules' err.txt ||
  { echo "FAIL: lifecycle on s3rver: exit $status: $(cat err.txt)" >&2; exit 1; }

# The AWS CLI reads what dsk wrote, and dsk reads what the AWS CLI wrote.
if command -v aws >/dev/null; then
  aws="aws --endpoint-url $S3_URL"
  $aws s3 cp s3://models/team/vision/1.1/model.safetensors via-aws.bin >/dev/null
  cmp ckpt/model.safetensors via-aws.bin
  $aws s3 cp s3://models/team/vision/aliases.yaml - | grep -q '"1.1": 100'
  mkdir -p aws-ckpt && head -c $((7 << 20)) /dev/urandom >aws-ckpt/w.bin
  sha=$(sha256sum aws-ckpt/w.bin | cut -d' ' -f1)
  $aws s3 cp aws-ckpt/w.bin s3://models/team/vision/3.0/w.bin >/dev/null
  printf 'name: vision\nversion: "3.0"\ncreated: 2026-01-01T00:00:00Z\nfiles:\n  - {path: w.bin, size: %d, sha256: %s}\n' \
    $((7 << 20)) "$sha" >manifest.yaml
  $aws s3 cp manifest.yaml s3://models/team/vision/3.0/manifest.yaml >/dev/null
  dsk-upload get vision@3.0 -o from-aws --part-size 5MiB >/dev/null
  cmp aws-ckpt/w.bin from-aws/w.bin
else
  echo "no AWS CLI: cross-check left out" >&2
  exit 1
fi
echo ok
