#!/usr/bin/env bash
# dsk-finetune with data.packing: TRL's flat `packing: true` is mapped and shown by --print-config;
# the run reports how many rows packing made of the examples (and padding the hint); with the
# adapter left at its start (lr 0) the validation loss of packed rows equals that of padded rows,
# which holds only when attention stays within each example and positions restart with each;
# (measured: equal to the last digit; attention across examples would move it by ~1e-4 here)
# and a packed LoRA run learns (its loss falls) and writes its adapter.
# DSK_TEST_DEVICE=cuda (scripts/device/packing-gpu.sh) runs it on the GPU, where bf16 rounds
# packed and padded rows differently: the losses then agree to 5e-3.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
in_scratch_dir
export OMP_NUM_THREADS=2
device=${DSK_TEST_DEVICE:-cpu}
tolerance=$([ "$device" = cpu ] && echo 1e-6 || echo 5e-3)
make_shards
base=$(make_tiny_base)

assets="$DSK_SOURCE_DIR/assets/finetune"
head -24 "$assets/test.jsonl" >val.jsonl
config() {  # FILE PACKING LR STEPS [BATCH]
  printf '%s\n' "model_name: $base" "packing: $2" "lora_r: 4" "batch_size: ${5:-24}" "learning_rate: $3" \
    "data:" "  train: $assets/train.jsonl" "  val: val.jsonl" "  seq_len: 512" "steps: $4" \
    "eval:" "  every: 0" "checkpoint:" "  dir: run-$2-$4" "logging:" "  every: 1" "device: $device" >"$1"
}

config packed.yaml true 0 1
dsk-finetune train -c packed.yaml --print-config >printed.yaml
grep -qx "# packing -> data.packing (packed.yaml:2)" printed.yaml || fail "mapping not shown: $(head -12 printed.yaml)"
grep -qx "  packing: true" printed.yaml || fail "data.packing not set: $(cat printed.yaml)"

# lr 0: the adapter stays at its start (LoRA's B = 0), so both layouts evaluate the same model on
# the same 24 validation examples, all in one micro-batch: the same mean loss.
dsk-finetune train -c packed.yaml >packed.record 2>packed.err || fail "packed run: $(cat packed.err)"
config padded.yaml false 0 1
dsk-finetune train -c padded.yaml >padded.record 2>padded.err || fail "padded run: $(cat padded.err)"
line=$(grep "data.packing: 300 examples in" packed.err) || fail "no packing report: $(cat packed.err)"
rows=$(sed 's/.* examples in \([0-9]*\) rows of 512 positions (300 rows padded).*/\1/' <<<"$line")
[ "$rows" -gt 0 ] && [ "$rows" -lt 100 ] || fail "packing report: $line"
grep -q "data.train: 300 rows of 512 positions, .*% of them padding (data.packing: true would take $rows rows" padded.err ||
  fail "no padding report: $(cat padded.err)"
python3 - "$(field val_loss packed.record)" "$(field val_loss padded.record)" "$tolerance" <<'PY' ||
import sys
packed, padded, tolerance = map(float, sys.argv[1:])
assert abs(packed - padded) <= tolerance * abs(padded), (packed, padded)  # attention across examples: ~1e-4 (CPU)
PY
  fail "validation loss packed $(field val_loss packed.record) vs padded $(field val_loss padded.record)"

# A packed run learns: 8 steps of 4 full rows, the loss falls.
config train.yaml true 3e-3 8 4
dsk-finetune train -q -c train.yaml >train.record
[ "$(field kind train.record)" = adapter ] && [ -f run-true-8/adapter/adapter_model.safetensors ] ||
  fail "record: $(cat train.record)"
python3 - run-true-8/metrics.jsonl <<'PY' || fail "the packed training loss did not fall: $(cat run-true-8/metrics.jsonl)"
import json, sys
losses = [json.loads(line)["loss"] for line in open(sys.argv[1]) if "loss" in json.loads(line)]
assert len(losses) == 8 and sum(losses[-3:]) / 3 < losses[0], losses
PY
echo ok
