#!/usr/bin/env bash
# dsk-finetune on 2 ranks (mpirun, the CPU backend: the same training loop as dsk-train's data
# parallelism): the adapter follows the 1-rank run at the same global batch (losses within 1e-6
# relative), and rank 0 alone speaks for the run: one adapter record, one published adapter.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
use_mpi
in_scratch_dir
make_shards
base=$(make_tiny_base)
assets="$DSK_SOURCE_DIR/assets/finetune"
common=(--base "$base" --data "$assets/train.jsonl" --steps 6 --device cpu --set data.seq_len=160
        --set data.micro_batch=2 --set data.grad_accum=2 --set eval.every=0 --set logging.every=1)
dsk-finetune train -q "${common[@]}" -o one >one.yaml
mpi 2 dsk-finetune train -q "${common[@]}" -o two >two.yaml 2>two.err || fail "2 ranks: $(cat two.err)"
[ "$(grep -c '^kind: adapter$' two.yaml)" = 1 ] || fail "2 ranks printed $(grep -c '^kind:' two.yaml) records: $(cat two.yaml)"
[ -f two/adapter/adapter_model.safetensors ] || fail "2 ranks published no adapter"
diff=$(max_relative_difference one/metrics.jsonl two/metrics.jsonl)
python3 -c "import sys; sys.exit(0 if $diff < 1e-6 else 1)" || fail "2 ranks differ from 1 rank by $diff (relative)"
echo ok
