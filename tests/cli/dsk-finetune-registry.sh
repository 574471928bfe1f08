#!/usr/bin/env bash
# dsk-finetune with the model registry (s3rver on loopback): the base comes from
# registry://name@version, the adapter record on stdout is what dsk-upload publishes, the
# published adapter comes back whole, and merge takes the registry base too.
set -euo pipefail
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/s3-server.sh"
source "$DSK_SOURCE_DIR/tests/cli/lib/train-fixture.sh"
start_s3_test
export DSK_REGISTRY=s3://models/team XDG_CACHE_HOME=$work/cache
make_shards
write_config base.yaml llama
sed -i "s/^steps: 40\$/steps: 2/; s/^  batches: 2\$/  batches: 1/" base.yaml
dsk-train -q -c base.yaml --device cpu | dsk-upload - --name tiny --version 1.0 >base-upload.yaml
[ "$(field ref base-upload.yaml)" = "registry://tiny@1.0" ] || fail "base upload: $(cat base-upload.yaml)"

head -40 "$DSK_SOURCE_DIR/assets/finetune/train.jsonl" >train.jsonl
dsk-finetune train --base registry://tiny@1.0 --data train.jsonl --steps 2 --device cpu -o lora \
  --set data.seq_len=160 --set lora.r=2 2>train.err | dsk-upload - --name tiny-lora --version 1 >upload.yaml ||
  fail "train | upload: $(cat train.err)"
grep -q "registry://tiny@1.0 is tiny@1.0" train.err || fail "the base did not come from the registry: $(cat train.err)"
[ "$(field ref upload.yaml)" = "registry://tiny-lora@1" ] || fail "adapter upload: $(cat upload.yaml)"
dsk-upload get tiny-lora@1 -o fetched >/dev/null
for file in adapter_config.json adapter_model.safetensors; do
  cmp "lora/adapter/$file" "fetched/$file" || fail "$file differs after the round trip"
done
dsk-finetune merge registry://tiny@1.0 fetched -o merged >merged.yaml 2>merge.err || fail "merge: $(cat merge.err)"
[ "$(field kind merged.yaml)" = checkpoint ] && [ -f merged/model.safetensors ] || fail "merge: $(cat merged.yaml)"
echo ok
