#!/usr/bin/env bash
# The tools as DESIGN.md chains them, each reading the previous one's record on stdin:
#   dsk-tokenize | dsk-train --data - | dsk-upload -        (to s3rver on loopback)
#   dsk-upload get | dsk-train sample -                     (back from the registry)
#   dsk-train --init-from registry://tiny@prod              (training starts from the registry)
# and the model that comes back samples exactly what the one that went up did.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
source "$(dirname "$0")/lib/s3-server.sh"
work=$(mktemp -d)
trap 'stop_s3_server; rm -rf "$work"' EXIT
cd "$work"
make_shards
write_config train.yaml deepseek_v3
start_s3_server "$work/s3"
export AWS_ENDPOINT_URL=$S3_URL DSK_REGISTRY=s3://models

dsk-tokenize -q -t tokenizer.json -o piped --documents paragraph --val-fraction 0.1 corpus.txt |
  dsk-train -q -c train.yaml --data - --steps 6 |
  dsk-upload -q - --name tiny --version 1.0 >uploaded.yaml
grep -q "^kind:" uploaded.yaml || fail "no record from dsk-upload: $(cat uploaded.yaml)"
grep -q "registry://tiny@1.0" uploaded.yaml || fail "upload record: $(cat uploaded.yaml)"

dsk-upload -q show tiny@1.0 >manifest.yaml
grep -q "model_type: deepseek_v3" manifest.yaml || fail "manifest: $(cat manifest.yaml)"

dsk-upload -q get tiny@1.0 -o restored | dsk-train sample - --prompt "And God" -n 12 --temperature 0 >restored.txt
dsk-train sample run/checkpoints/step-000006 --prompt "And God" -n 12 --temperature 0 >original.txt
cmp original.txt restored.txt || fail "the model from the registry samples differently"
[ -s restored.txt ] || fail "nothing sampled"

# A run starts from registry weights: fetched into the cache once, then read from it.
dsk-upload -q alias tiny prod 1.0=100 >/dev/null
sed '/^model:/,/^data:/{/^data:/!d}' train.yaml >continue.yaml
export DSK_CACHE_DIR=$work/cache
dsk-train -c continue.yaml --init-from registry://tiny@prod -o continued --steps 2 >continued.yaml 2>continued.err
grep -q "registry://tiny@prod is tiny@1.0, fetched into $work/cache" continued.err || fail "fetch: $(cat continued.err)"
[ "$(field step continued.yaml)" = 2 ] || fail "training from the registry: $(cat continued.yaml)"
rm -rf continued
dsk-train -c continue.yaml --init-from registry://tiny@prod -o continued --steps 2 >/dev/null 2>continued.err
grep -q "is tiny@1.0, cached in" continued.err || fail "second open not from the cache: $(cat continued.err)"
echo "pipeline: ok"
