# Sourced by tests/cli/dsk-train-*.sh: a small real corpus (the first 300 kB of the bundled KJV)
# tokenized with the tiny GPT-2 fixture tokenizer (267 tokens) into ./shards, and write_config
# for a tiny model that trains in a fraction of a second a step on one core.
#   make_shards                      ./shards, ./tokenizer.json, ./tokenizer_config.json
#   write_config FILE MODEL_TYPE     a dsk-train config (llama or deepseek_v3) training on ./shards
#   make_tiny_base                   a 2-step llama checkpoint (its path); expect_error CODE PATTERN cmd...
#   in_scratch_dir, fail, field, expect   (test-helpers.sh)
#   use_mpi; mpi N command...        ranks under OpenMPI (the test is skipped without mpirun)
#   max_relative_difference A B      of the losses of two metrics.jsonl files
#   step_columns METRICS             step, loss, grad norm, lr and expert load of each line: what a
#                                    resumed run must repeat bit for bit
#   optimizer_state CHECKPOINT       its whole optimizer state as bytes (ZeRO-1's parts joined)
#   stop_after_lines N METRICS cmd...  runs cmd in the background (stdout interrupted.yaml, stderr
#                                    interrupted.err), SIGTERM once METRICS has N lines; expects 143
source "$(dirname "${BASH_SOURCE[0]}")/test-helpers.sh"  # fail, field, in_scratch_dir, expect

make_shards() {
  cp "${DSK_SOURCE_DIR:?}/tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json" tokenizer.json
  echo '{"eos_token": "<|endoftext|>", "add_bos_token": false}' >tokenizer_config.json
  # zstdcat stops on a closed pipe once head has its bytes: not an error.
  (zstdcat "$DSK_SOURCE_DIR/assets/corpus/kjv.txt.zst" 2>/dev/null || true) | head -c 300000 >corpus.txt
  dsk-tokenize -q -t tokenizer.json -o shards --documents paragraph --val-fraction 0.1 corpus.txt >shards.yaml
}

write_config() {
  local file=$1 model_type=$2
  {
    echo "model:"
    echo "  config:"
    echo "    model_type: $model_type"
    echo "    vocab_size: 272"
    echo "    hidden_size: 32"
    echo "    intermediate_size: 64"
    echo "    num_hidden_layers: 2"
    echo "    num_attention_heads: 4"
    echo "    max_position_embeddings: 128"
    if [ "$model_type" = llama ]; then
      echo "    num_key_value_heads: 2"
    else
      cat <<'EOF'
    num_key_value_heads: 4
    first_k_dense_replace: 1
    q_lora_rank: 16
    kv_lora_rank: 16
    qk_nope_head_dim: 8
    qk_rope_head_dim: 8
    v_head_dim: 8
    moe_intermediate_size: 16
    n_routed_experts: 6
    n_shared_experts: 1
    num_experts_per_tok: 2
    n_group: 3
    topk_group: 2
EOF
    fi
    cat <<'EOF'
data:
  train: shards
  seq_len: 32
  micro_batch: 4
  grad_accum: 2
optim:
  lr: 0.003
schedule:
  warmup_steps: 3
steps: 40
eval:
  every: 8
  batches: 2
checkpoint:
  dir: run
  every: 5
  keep: 2
logging:
  every: 1
EOF
  } >"$file"
}

# A tiny llama after two CPU steps of dsk-train (its checkpoint carries the tokenizer); prints the
# checkpoint's path. Needs make_shards first.
make_tiny_base() {
  write_config base.yaml llama
  sed -i "s/^steps: 40\$/steps: 2/; s/^  batches: 2\$/  batches: 1/; s/^  dir: run\$/  dir: base-run/" base.yaml
  dsk-train -q -c base.yaml --device cpu >base.out
  field path base.out
}

# expect_error CODE PATTERN command...: the command exits CODE with PATTERN (grep) on stderr.
expect_error() {
  local code=$1 pattern=$2
  shift 2
  local got=0
  "$@" >/dev/null 2>err.txt || got=$?
  [ "$got" = "$code" ] || fail "$*: exit $got, expected $code: $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "$*: message: $(cat err.txt)"
}

# Several ranks on this machine through OpenMPI, as root too and with more ranks than cores.
use_mpi() {
  command -v mpirun >/dev/null || { echo "SKIP: no mpirun (OpenMPI)"; exit 77; }
  export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
}
mpi() { timeout 300 mpirun --oversubscribe -np "$1" --mca btl self,vader "${@:2}"; }

# Largest relative difference of the losses of two metrics.jsonl files (same steps).
max_relative_difference() { python3 -c '
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
assert len(a) == len(b), (len(a), len(b))
print(max(abs(x - y) / abs(x) for x, y in zip(a, b)))' "$1" "$2"; }

step_columns() { metric_lines "$1" loss grad_norm lr expert_load; }

stop_after_lines() {
  local lines=$1 metrics=$2
  shift 2
  "$@" >interrupted.yaml 2>interrupted.err &
  local pid=$! code=0
  for _ in $(seq 3000); do
    [ -f "$metrics" ] && [ "$(wc -l <"$metrics")" -ge "$lines" ] && break
    sleep 0.01
  done
  kill -TERM "$pid"
  wait "$pid" || code=$?
  [ "$code" = 143 ] || fail "SIGTERM: exit $code: $(cat interrupted.err)"
}

# The whole optimizer state of a checkpoint (adam steps, then master, m, v): its
# dsk/optimizer.bin.zst, or the ranks' parts of a ZeRO-1 run joined (man/dsk-formats.5).
optimizer_state() { python3 -c '
import glob, os, struct, subprocess, sys
dsk = sys.argv[1] + "/dsk"
def raw(path): return subprocess.run(["zstd", "-dcq", path], check=True, capture_output=True).stdout
if os.path.exists(dsk + "/optimizer.bin.zst"):
    data = raw(dsk + "/optimizer.bin.zst")
    assert data[:8] == b"DSKADAM1"
    count, steps = struct.unpack("<Qq", data[8:24])
    arrays = [data[24 + i * 4 * count:24 + (i + 1) * 4 * count] for i in range(3)]
else:
    arrays, count = [b"", b"", b""], 0
    for path in sorted(glob.glob(dsk + "/optimizer.rank-*.bin.zst")):
        data = raw(path)
        assert data[:8] == b"DSKADAMS", path
        count, begin, length, steps = struct.unpack("<QQQq", data[8:40])
        assert begin * 4 == len(arrays[0]), (path, begin)
        for i in range(3): arrays[i] += data[40 + i * 4 * length:40 + (i + 1) * 4 * length]
assert len(arrays[0]) == 4 * count and count > 0
sys.stdout.buffer.write(struct.pack("<q", steps) + b"".join(arrays))' "$1"; }
