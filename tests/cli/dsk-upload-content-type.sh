#!/usr/bin/env bash
# Every object dsk-upload stores carries a Content-Type that says what it holds (read back with
# HEAD requests to s3rver on loopback): weights and other binary files, sent whole or in parts,
# application/octet-stream; .json application/json; the manifest, the aliases and other YAML
# application/yaml; .txt text/plain.
set -euo pipefail
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/s3-server.sh"
start_s3_test
export DSK_REGISTRY=s3://models/team

mkdir -p ckpt/tokenizer ckpt/dsk
head -c $((6 << 20)) /dev/urandom >ckpt/model.safetensors  # multipart: over --part-size
head -c 4096 /dev/urandom >ckpt/dsk/optimizer.bin
echo '{"model_type": "llama"}' >ckpt/config.json
printf 'optim:\n  lr: 0.001\n' >ckpt/dsk/config.yaml
echo 'vocab' >ckpt/tokenizer/vocab.txt
dsk-upload ckpt --name vision --version 1.0 --part-size 5MiB >/dev/null
dsk-upload alias vision prod 1.0 >/dev/null

content_type() { curl -sfI "$S3_URL/models/team/vision/$1" | tr -d '\r' | sed -n 's/^content-type: //Ip'; }
failed=0
expect() {  # expect KEY TYPE
  local got
  got=$(content_type "$1")
  [ "$got" = "$2" ] || { echo "FAIL: $1 has Content-Type '$got', expected '$2'" >&2; failed=1; }
}
expect 1.0/model.safetensors application/octet-stream
expect 1.0/dsk/optimizer.bin application/octet-stream
expect 1.0/config.json application/json
expect 1.0/dsk/config.yaml application/yaml
expect 1.0/tokenizer/vocab.txt text/plain
expect 1.0/manifest.yaml application/yaml
expect aliases.yaml application/yaml
[ "$failed" = 0 ]
echo ok
