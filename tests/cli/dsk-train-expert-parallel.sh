#!/usr/bin/env bash
# Expert-parallel dsk-train (dist.expert_parallel) on the CPU backend: 2 ranks under mpirun, each
# running 3 of the 6 routed experts of the deepseek_v3 fixture over the tokens both ranks send it
# through MPI_Alltoallv (the GPU build does the same through NCCL send/recv). Checks:
#   - the losses follow the 1-rank run at the same global batch (within 1e-6 relative: the expert
#     gradients are summed in another order), the expert-load shares are the same, and the final
#     checkpoint (an HF model.safetensors, F32 here) holds the same tensors within 1e-5;
#   - each rank keeps the AdamW state of its own routed experts only: rank 0's optimizer state (the
#     log's "optimizer state" line) is the 1-rank run's less m, v and decay mask (9 bytes an
#     element) of the 3 experts rank 1 owns, and the checkpoint, which gathers the experts' weights
#     and moments from their owners, is bit-identical to ZeRO-1's (which updates every expert);
#   - a rank holds the weights and gradients of its own experts only: the log's "parameter memory"
#     line gives rank 0's master-weight and gradient bytes as the 1-rank run's less half the
#     experts' (4 bytes an element);
#   - a rank never held the others' experts, not even at start-up: the log's "start-up memory"
#     peak (the backend's, before the optimizer state) is the 1-rank peak less half the experts'
#     weights and gradients (8 bytes an element), from random init (whose experts get the 1-rank
#     values: the losses follow), from an HF model (model.init_from) and when a run resumes;
#   - the gradient all-reduce leaves the routed experts out (the log's "gradient sync" line: the
#     model's bytes less the experts'), each rank keeps its own experts' gradients apart, summed
#     over nothing with one group and over the 2 ranks that hold the same experts with two;
#   - a save copies the model to the host on rank 0 alone: the log's "checkpoint copy" line gives
#     rank 0's peak as at least the weights and both moments (12 bytes an element), every other
#     rank's as less than its own experts' weights (it sends its part from the backend), with
#     ZeRO-1 too and on 4 ranks; ZeRO-1 without expert parallelism copies each rank's part;
#   - with train.recompute full (the exchange redone in backward; written here with
#     checkpoint.async false) and with ZeRO-1 the losses, the checkpoint's weights and the
#     gathered optimizer state are bit-identical to the plain expert-parallel run; ZeRO-1
#     shards only the state of what is not a routed expert (rank 0 keeps less than without it),
#     reduce-scatters the model less the experts, and a rank holds its own experts only;
#   - on 4 ranks with expert_parallel 2 (two groups of 2 ranks, each splitting the experts; the
#     experts' gradients summed over the two groups' same-place ranks) the losses and the final
#     weights follow 1 rank's at the same global batch too, with small buckets (several all-reduces
#     started during the backward) as with one, and with ZeRO-1 (the experts summed over 2 ranks
#     apart from its reduce-scatter), in one bucket and in small ones;
#   - ZeRO-1 in small buckets (reduce-scattered during the backward, the log's "gradient sync"
#     line: several buckets) gives the same bits as the plain expert-parallel run on 2 ranks;
#   - int8 gradients (dist.grad_dtype int8) on 2 ranks and on 4 ranks in 2 groups: the all-ranks
#     all-gather carries the model less the experts (a byte a level), each rank's experts go over
#     their replicas alone (nothing with one group), a rank holds its own experts' gradients only
#     (at start-up too), and the losses follow the uncompressed expert-parallel run's within the
#     int8 tolerance of dsk-train-data-parallel.sh for deepseek_v3 (2% relative), and differ; with
#     ZeRO-1 too, bit-identical to int8 without it (losses, weights, gathered optimizer state),
#     each rank holding its own experts only and the AdamW state of fp32's ZeRO-1 on the same ranks;
#   - an expert-parallel run of 2 ranks resumes on 1 rank to the end, as 1 rank alone would, and a
#     1-rank run resumes on 2 expert-parallel ranks;
#   - expert_parallel not dividing the number of ranks, or on a model without routed experts, is
#     a usage error.
set -euo pipefail
source "$(dirname "$0")/lib/train-fixture.sh"
use_mpi
in_scratch_dir
make_shards

# step, loss, grad norm and expert load of every line: what must agree bit for bit.
losses() { metric_lines "$1" loss grad_norm expert_load; }

expert_loads() { python3 -c '
import json, sys
for line in open(sys.argv[1]): print(json.loads(line)["expert_load"])' "$1"; }

# Largest difference of the tensors of two F32 model.safetensors (the same names and shapes).
max_weight_difference() { python3 -c '
import json, struct, sys
def tensors(path):
    data = open(path, "rb").read()
    size, = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + size])
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", name
        begin, end = t["data_offsets"]
        out[name] = (t["shape"], struct.unpack_from(f"<{(end - begin) // 4}f", data, 8 + size + begin))
    return out
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
worst = 0.0
for name in a:
    assert a[name][0] == b[name][0], name
    worst = max([worst] + [abs(x - y) for x, y in zip(a[name][1], b[name][1])])
print(worst)' "$1" "$2"; }

below() { python3 -c "import sys; sys.exit(0 if $1 < $2 else 1)"; }

write_config base.yaml deepseek_v3
sed -i 's/^steps: 40$/steps: 20/' base.yaml
sed -i 's/^checkpoint:$/checkpoint:\n  dtype: F32/' base.yaml  # weights compared to 1e-5

# "optimizer state: X MiB on rank 0 (N bytes of AdamW m, v and decay mask)" -> N
state_bytes() { sed -n 's/.*optimizer state: .* MiB on rank 0 (\([0-9]*\) bytes.*/\1/p' "$1"; }

# "gradient sync: N bytes a step all-reduced over R ranks in B buckets; routed experts: this
# rank's M bytes summed over K ranks ..." -> "N R M K"; with int8 gradients (a second argument)
# "all-gathered as int8 levels" in place of "all-reduced".
gradient_sync() {
  local sent='all-reduced'
  [ $# = 2 ] && sent='all-gathered as int8 levels'
  local pattern=".*gradient sync: \([0-9]*\) bytes a step $sent over \([0-9]*\) ranks in [0-9]* buckets*; "
  pattern+='routed experts: this rank.s \([0-9]*\) bytes summed over \([0-9]*\) ranks*.*'
  sed -n "s/$pattern/\1 \2 \3 \4/p" "$1"
}
# "parameter memory: X MiB on rank 0 (M bytes of fp32 master weights, G of fp32 gradients, W of
# working copy); the other ranks' routed experts: F bytes of master weights and D bytes of
# gradients not held" -> "M G F D" ("M G" without expert parallelism)
parameter_memory() {
  local pattern='.*parameter memory: .* MiB on rank 0 (\([0-9]*\) bytes of fp32 master weights, \([0-9]*\) of fp32 '
  sed -n -e "s/${pattern}gradients, .*other ranks. routed experts: \([0-9]*\) bytes of master weights and \([0-9]*\) bytes of gradients not held.*/\1 \2 \3 \4/p;t" \
    -e "s/${pattern}gradients, [0-9]* of working copy)$/\1 \2/p" "$1"
}
# "start-up memory: a peak of S bytes on rank 0 while the model was built" -> S
startup_peak() { sed -n 's/.*start-up memory: a peak of \([0-9]*\) bytes on rank 0.*/\1/p' "$1"; }
# "checkpoint copy: a peak of X bytes of host memory on rank 0, at most Y on another rank" -> "X Y"
checkpoint_copy() {
  local pattern='.*checkpoint copy: a peak of \([0-9]*\) bytes of host memory on rank 0, at most \([0-9]*\) on '
  sed -n "s/${pattern}another rank$/\1 \2/p" "$1"
}
# Rank 0 copies the weights and both moments whole; no other rank builds a copy of the model:
# less than its own experts' weights (the bytes of half the experts), plus RESIDUAL bytes (int8
# error feedback: its residual, as many as its gradients', which it writes itself).
expect_copy_on_rank_0_alone() {  # ERR WHAT [RESIDUAL]
  local copy limit=$((4 * experts / 2 + ${3:-0}))
  copy=$(checkpoint_copy "$1")
  [ -n "$copy" ] || fail "$2: no checkpoint copy line: $(cat "$1")"
  set -- "$1" "$2" $copy
  [ "$3" -ge $((12 * params)) ] && [ "$4" -lt $limit ] ||
    fail "$2: a save took $3 bytes of host memory on rank 0 and $4 on another rank: expected at least the \
$((12 * params)) of the weights and moments on rank 0 and less than the $limit of a rank's experts (and residual) elsewhere"
}
# "model: deepseek_v3, P parameters on ..." -> P
parameters() { sed -n 's/.*model: [a-z_0-9]*, \([0-9]*\) parameters on.*/\1/p' "$1"; }

# Elements of the routed experts of the model in a model.safetensors.
expert_elements() { python3 -c '
import json, struct, sys
data = open(sys.argv[1], "rb").read(1 << 20)
size, = struct.unpack_from("<Q", data, 0)
header = json.loads(data[8:8 + size])
header.pop("__metadata__", None)
print(sum((t["data_offsets"][1] - t["data_offsets"][0]) // 4 for name, t in header.items() if ".mlp.experts." in name))' "$1"; }

dsk-train -c base.yaml --device cpu --run-dir one >one.yaml 2>one.err
mpi 2 dsk-train -c base.yaml --device cpu --run-dir ep --set dist.expert_parallel=2 >ep.yaml 2>ep.err ||
  fail "2 ranks, expert parallel: $(cat ep.err)"
one_bytes=$(state_bytes one.err)
ep_bytes=$(state_bytes ep.err)
[ -n "$one_bytes" ] && [ -n "$ep_bytes" ] || fail "no optimizer state line: $(cat one.err ep.err)"
experts=$(expert_elements one/checkpoints/step-000020/model.safetensors)
[ "$experts" -gt 0 ] || fail "no routed experts in the fixture's checkpoint"
[ "$ep_bytes" = $((one_bytes - 9 * experts / 2)) ] ||
  fail "rank 0 keeps $ep_bytes bytes of optimizer state on 2 expert-parallel ranks, 1 rank $one_bytes: expected \
the state of half the $experts routed-expert elements less"
params=$(parameters ep.err)
[ -n "$params" ] || fail "no model line: $(cat ep.err)"
[ "$(gradient_sync ep.err)" = "$((4 * (params - experts))) 2 $((4 * experts / 2)) 1" ] ||
  fail "2 expert-parallel ranks: the all-reduce should carry the $params parameters less the $experts routed-expert \
elements (4 bytes each), rank 0 keep half the experts' to itself: $(grep 'gradient sync' ep.err)"
# Rank 0 holds the weights and gradients of its own experts only: the 1-rank bytes less half the
# experts' of each.
[ "$(parameter_memory one.err)" = "$((4 * params)) $((4 * params))" ] ||
  fail "1 rank: $(grep 'parameter memory' one.err)"
held="$((4 * (params - experts / 2))) $((4 * (params - experts / 2))) $((4 * experts / 2)) $((4 * experts / 2))"
[ "$(parameter_memory ep.err)" = "$held" ] ||
  fail "2 expert-parallel ranks: rank 0 should hold the weights and gradients of half the $experts routed-expert elements: \
$(grep 'parameter memory' ep.err)"
# Nor at start-up: the model was built with rank 0's experts only.
one_peak=$(startup_peak one.err)
ep_peak=$(startup_peak ep.err)
[ -n "$one_peak" ] && [ -n "$ep_peak" ] || fail "no start-up memory line: $(cat one.err ep.err)"
[ "$ep_peak" = $((one_peak - 8 * experts / 2)) ] ||
  fail "2 expert-parallel ranks: rank 0's start-up peak is $ep_peak bytes, 1 rank's $one_peak: expected the weights and \
gradients of half the $experts routed-expert elements less"
[ "$(grep -c '^kind: checkpoint' ep.yaml)" = 1 ] || fail "one record expected: $(cat ep.yaml)"
[ "$(field step ep.yaml)" = 20 ] || fail "expert parallel: $(cat ep.yaml)"
[ "$(wc -l <ep/metrics.jsonl)" = 20 ] || fail "metrics.jsonl written by one rank only"
diff=$(max_relative_difference one/metrics.jsonl ep/metrics.jsonl)
below "$diff" 1e-6 || fail "expert-parallel losses differ from 1 rank's by $diff (relative)"
cmp <(expert_loads one/metrics.jsonl) <(expert_loads ep/metrics.jsonl) ||
  fail "expert-load shares differ from 1 rank's"
diff=$(max_weight_difference one/checkpoints/step-000020/model.safetensors ep/checkpoints/step-000020/model.safetensors)
below "$diff" 1e-5 || fail "expert-parallel final weights differ from 1 rank's by $diff"
expect_copy_on_rank_0_alone ep.err "2 expert-parallel ranks"

mpi 2 dsk-train -q -c base.yaml --device cpu --run-dir recompute --set dist.expert_parallel=2 \
  --set train.recompute=full --set checkpoint.async=false >/dev/null 2>recompute.err ||
  fail "recompute full: $(cat recompute.err)"
cmp <(losses ep/metrics.jsonl) <(losses recompute/metrics.jsonl) || fail "recompute full changed the losses"
cmp <(optimizer_state ep/checkpoints/step-000020) <(optimizer_state recompute/checkpoints/step-000020) ||
  fail "recompute full, written in the step loop: the optimizer state differs"
cmp ep/checkpoints/step-000020/model.safetensors recompute/checkpoints/step-000020/model.safetensors ||
  fail "recompute full, written in the step loop: the weights differ"
mpi 2 dsk-train -c base.yaml --device cpu --run-dir zero --set dist.expert_parallel=2 --set dist.zero=1 \
  >/dev/null 2>zero.err || fail "ZeRO-1: $(cat zero.err)"
cmp <(losses ep/metrics.jsonl) <(losses zero/metrics.jsonl) || fail "ZeRO-1 changed the expert-parallel losses"
# ZeRO-1 shards the rest's AdamW state over the ranks, keeps the experts' with their owners, and
# reduce-scatters the model less the routed experts.
zero_bytes=$(state_bytes zero.err)
[ -n "$zero_bytes" ] && [ "$zero_bytes" -lt "$ep_bytes" ] && [ "$zero_bytes" -gt $((9 * experts / 2)) ] ||
  fail "ZeRO-1 with expert parallelism: rank 0 keeps $zero_bytes bytes of optimizer state, without ZeRO-1 $ep_bytes"
[ "$(parameter_memory zero.err)" = "$held" ] || fail "ZeRO-1 with expert parallelism: $(grep 'parameter memory' zero.err)"
[ "$(startup_peak zero.err)" = "$ep_peak" ] || fail "ZeRO-1 with expert parallelism: $(grep 'start-up memory' zero.err)"
grep -q "gradient sync: $((4 * (params - experts))) bytes a step reduce-scattered over 2 ranks (ZeRO-1, [0-9]* \
pieces) in 1 bucket; routed experts: this rank's $((4 * experts / 2)) bytes summed over 1 rank" zero.err ||
  fail "ZeRO-1 with expert parallelism: $(grep 'gradient sync' zero.err)"
cmp <(optimizer_state ep/checkpoints/step-000020) <(optimizer_state zero/checkpoints/step-000020) ||
  fail "ZeRO-1's gathered optimizer state differs"
cmp ep/checkpoints/step-000020/model.safetensors zero/checkpoints/step-000020/model.safetensors ||
  fail "the experts gathered from their owners differ from ZeRO-1's weights"
expect_copy_on_rank_0_alone zero.err "ZeRO-1 with expert parallelism"
# ZeRO-1 in 1 KiB buckets (a bucket's pieces reduce-scattered as its layers' backward finishes,
# a bucket straddling two ranks' shards, or a piece's edge): the same bits.
mpi 2 dsk-train -c base.yaml --device cpu --run-dir zero-small --set dist.expert_parallel=2 --set dist.zero=1 \
  --set dist.bucket_mb=0.001 >/dev/null 2>zero-small.err || fail "ZeRO-1 in small buckets: $(cat zero-small.err)"
grep -q "gradient sync: .* (ZeRO-1, [0-9]* pieces) in [2-9][0-9]* buckets" zero-small.err ||
  fail "ZeRO-1 with expert parallelism, small buckets: $(grep 'gradient sync' zero-small.err)"
cmp <(losses ep/metrics.jsonl) <(losses zero-small/metrics.jsonl) || fail "ZeRO-1 in small buckets changed the losses"
cmp <(optimizer_state ep/checkpoints/step-000020) <(optimizer_state zero-small/checkpoints/step-000020) ||
  fail "ZeRO-1 in small buckets: the gathered optimizer state differs"
cmp ep/checkpoints/step-000020/model.safetensors zero-small/checkpoints/step-000020/model.safetensors ||
  fail "ZeRO-1 in small buckets: the weights differ"
# Without expert parallelism ZeRO-1's ranks write their own parts: another rank copies its part
# of the weights and moments (half of each, but for the tail), rank 0 the whole weights besides.
mpi 2 dsk-train -c base.yaml --device cpu --run-dir zero-only --set dist.zero=1 --steps 5 >/dev/null \
  2>zero-only.err || fail "ZeRO-1 alone: $(cat zero-only.err)"
set -- $(checkpoint_copy zero-only.err)
[ "${2:-0}" -ge $((12 * (params / 2))) ] && [ "$2" -lt $((12 * params)) ] ||
  fail "ZeRO-1 without expert parallelism: $(grep 'checkpoint copy' zero-only.err)"

# Two groups of 2 ranks: 4 ranks, one micro-batch each, against 1 rank at the same global batch.
dsk-train -q -c base.yaml --device cpu --run-dir one4 --set data.grad_accum=4 >/dev/null
# ZeRO-1 (zero, and zero-small in small buckets): its reduce-scatter carries the model less the
# experts, summed over 2 ranks apart.
for buckets in one small zero zero-small; do
  bucket_mb=25 zero=0
  case $buckets in *small) bucket_mb=0.01 ;; esac  # 10 KiB: a bucket every few layers
  case $buckets in zero*) zero=1 ;; esac
  mpi 4 dsk-train -c base.yaml --device cpu --run-dir groups-$buckets --set data.grad_accum=4 \
    --set dist.expert_parallel=2 --set dist.bucket_mb=$bucket_mb --set dist.zero=$zero >/dev/null 2>groups.err ||
    fail "4 ranks, groups of 2, $buckets: $(cat groups.err)"
  expected_memory=$held expected_peak=$ep_peak
  [ "$(parameter_memory groups.err)" = "$expected_memory" ] ||
    fail "4 ranks in 2 groups, $buckets: $(grep 'parameter memory' groups.err)"
  [ "$(startup_peak groups.err)" = "$expected_peak" ] ||
    fail "4 ranks in 2 groups, $buckets: $(grep 'start-up memory' groups.err), expected $expected_peak bytes"
  expect_copy_on_rank_0_alone groups.err "4 ranks in 2 groups, $buckets"
  if [ $buckets = zero ]; then
    groups_zero_bytes=$(state_bytes groups.err)
  fi
  if [ $zero = 1 ]; then
    grep -q "gradient sync: $((4 * (params - experts))) bytes a step reduce-scattered over 4 ranks (ZeRO-1, \
[0-9]* pieces) in [0-9]* buckets*; routed experts: this rank's $((4 * experts / 2)) bytes summed over 2 \
ranks" groups.err ||
      fail "4 ranks in 2 groups, ZeRO-1: $(grep 'gradient sync' groups.err)"
  else
    [ "$(gradient_sync groups.err)" = "$((4 * (params - experts))) 4 $((4 * experts / 2)) 2" ] ||
      fail "4 ranks in 2 groups: the routed experts should be summed over 2 ranks only: $(grep 'gradient sync' groups.err)"
  fi
  if [ $bucket_mb != 25 ]; then
    grep -q "gradient sync: .* in [2-9][0-9]* buckets" groups.err || fail "one bucket only: $(grep 'gradient sync' groups.err)"
  fi
  diff=$(max_relative_difference one4/metrics.jsonl groups-$buckets/metrics.jsonl)
  below "$diff" 1e-6 || fail "4 ranks in 2 expert-parallel groups ($buckets bucket(s)) differ from 1 rank by $diff (relative)"
  cmp <(expert_loads one4/metrics.jsonl) <(expert_loads groups-$buckets/metrics.jsonl) ||
    fail "4 ranks in 2 groups: expert-load shares differ from 1 rank's"
  diff=$(max_weight_difference one4/checkpoints/step-000020/model.safetensors \
    groups-$buckets/checkpoints/step-000020/model.safetensors)
  below "$diff" 1e-5 || fail "4 ranks in 2 expert-parallel groups: final weights differ from 1 rank's by $diff"
done

# int8 gradients, several buckets: against the uncompressed run of the same ranks (ep: 2 ranks,
# groups-one: 4 ranks in 2 groups).
for ranks in 2 4; do
  reference=ep replicas=1 accum=2
  [ $ranks = 4 ] && reference=groups-one replicas=2 accum=4
  mpi $ranks dsk-train -c base.yaml --device cpu --run-dir int8-$ranks --set data.grad_accum=$accum \
    --set dist.expert_parallel=2 --set dist.grad_dtype=int8 --set dist.bucket_mb=0.001 >/dev/null 2>int8.err ||
    fail "int8 on $ranks expert-parallel ranks: $(cat int8.err)"
  [ "$(gradient_sync int8.err int8)" = "$((params - experts)) $ranks $((experts / 2)) $replicas" ] ||
    fail "int8 on $ranks expert-parallel ranks: the all-gather should carry the $params parameters less the $experts \
routed-expert elements (a byte each), rank 0's half of the experts go over $replicas rank(s): $(grep 'gradient sync' int8.err)"
  [ "$(parameter_memory int8.err)" = "$held" ] ||
    fail "int8 on $ranks expert-parallel ranks: rank 0 should hold the gradients of its own experts only: \
$(grep 'parameter memory' int8.err)"
  [ "$(startup_peak int8.err)" = "$ep_peak" ] ||
    fail "int8 on $ranks expert-parallel ranks: $(grep 'start-up memory' int8.err), expected $ep_peak bytes"
  diff=$(max_relative_difference $reference/metrics.jsonl int8-$ranks/metrics.jsonl)
  below 0 "$diff" && below "$diff" 2e-2 ||
    fail "int8 on $ranks expert-parallel ranks: losses differ from fp32's by $diff (relative; expected in (0, 2e-2))"
  # With ZeRO-1 too: the same int8 sums (every rank holds the whole sum of the rest), each rank
  # updating its shards and its own experts, so the same bits as without ZeRO-1; the experts'
  # weights, gradients and state with their owners alone, the rest's state sharded as fp32's
  # ZeRO-1 shards it.
  mpi $ranks dsk-train -c base.yaml --device cpu --run-dir int8-zero-$ranks --set data.grad_accum=$accum \
    --set dist.expert_parallel=2 --set dist.grad_dtype=int8 --set dist.bucket_mb=0.001 --set dist.zero=1 \
    >/dev/null 2>int8-zero.err || fail "int8 and ZeRO-1 on $ranks expert-parallel ranks: $(cat int8-zero.err)"
  cmp <(losses int8-$ranks/metrics.jsonl) <(losses int8-zero-$ranks/metrics.jsonl) ||
    fail "int8 on $ranks expert-parallel ranks: ZeRO-1 changed the losses"
  cmp <(optimizer_state int8-$ranks/checkpoints/step-000020) <(optimizer_state int8-zero-$ranks/checkpoints/step-000020) ||
    fail "int8 on $ranks expert-parallel ranks: ZeRO-1's gathered optimizer state differs"
  cmp int8-$ranks/checkpoints/step-000020/model.safetensors int8-zero-$ranks/checkpoints/step-000020/model.safetensors ||
    fail "int8 on $ranks expert-parallel ranks: ZeRO-1's weights differ"
  [ "$(parameter_memory int8-zero.err)" = "$held" ] ||
    fail "int8 and ZeRO-1 on $ranks expert-parallel ranks: rank 0 should hold the weights and gradients of its own \
experts only: $(grep 'parameter memory' int8-zero.err)"
  [ "$(startup_peak int8-zero.err)" = "$ep_peak" ] ||
    fail "int8 and ZeRO-1 on $ranks expert-parallel ranks: $(grep 'start-up memory' int8-zero.err), expected $ep_peak bytes"
  [ "$(gradient_sync int8-zero.err int8)" = "$(gradient_sync int8.err int8)" ] ||
    fail "int8 and ZeRO-1 on $ranks expert-parallel ranks: $(grep 'gradient sync' int8-zero.err)"
  zero_reference=$zero_bytes
  [ $ranks = 4 ] && zero_reference=$groups_zero_bytes
  [ "$(state_bytes int8-zero.err)" = "$zero_reference" ] ||
    fail "int8 and ZeRO-1 on $ranks expert-parallel ranks: rank 0 keeps $(state_bytes int8-zero.err) bytes of optimizer \
state, fp32 ZeRO-1 on the same ranks $zero_reference"
  expect_copy_on_rank_0_alone int8-zero.err "int8 and ZeRO-1 on $ranks expert-parallel ranks" "$(echo $held | cut -d' ' -f2)"
done

# 10 steps on 2 ranks with expert parallelism, then 1 rank takes the checkpoint on to step 20, as
# the same two commands do on 1 rank alone (--steps 10 also shortens the first half's schedule).
dsk-train -q -c base.yaml --device cpu --run-dir halves --steps 10 >/dev/null
dsk-train -q -c base.yaml --device cpu --run-dir halves >/dev/null
mpi 2 dsk-train -q -c base.yaml --device cpu --run-dir switch --set dist.expert_parallel=2 --steps 10 \
  >/dev/null 2>switch.err || fail "first half: $(cat switch.err)"
dsk-train -q -c base.yaml --device cpu --run-dir switch >switch.yaml 2>switch.err ||
  fail "resumed on 1 rank: $(cat switch.err)"
[ "$(field step switch.yaml)" = 20 ] || fail "resumed run: $(cat switch.yaml)"
diff=$(max_relative_difference halves/metrics.jsonl switch/metrics.jsonl)
below "$diff" 1e-6 || fail "expert parallel on 2 ranks then 1 rank differ from 1 rank by $diff (relative)"
dsk-train -q -c base.yaml --device cpu --run-dir grow --steps 10 >/dev/null
mpi 2 dsk-train -c base.yaml --device cpu --run-dir grow --set dist.expert_parallel=2 >/dev/null 2>grow.err ||
  fail "resumed on 2 expert-parallel ranks: $(cat grow.err)"
grep -q "resuming from" grow.err || fail "2 expert-parallel ranks did not resume: $(cat grow.err)"
[ "$(startup_peak grow.err)" = "$ep_peak" ] || fail "resumed on 2 ranks: $(grep 'start-up memory' grow.err)"
diff=$(max_relative_difference halves/metrics.jsonl grow/metrics.jsonl)
below "$diff" 1e-6 || fail "1 rank then 2 expert-parallel ranks differ from 1 rank by $diff (relative)"
# A ZeRO-1 checkpoint (the optimizer state in the ranks' parts) resumed on 2 expert-parallel ranks.
mpi 2 dsk-train -q -c base.yaml --device cpu --run-dir grow-zero --set dist.zero=1 --steps 10 >/dev/null ||
  fail "ZeRO-1 first half"
mpi 2 dsk-train -q -c base.yaml --device cpu --run-dir grow-zero --set dist.expert_parallel=2 >/dev/null \
  2>grow-zero.err || fail "ZeRO-1 parts resumed on 2 expert-parallel ranks: $(cat grow-zero.err)"
diff=$(max_relative_difference halves/metrics.jsonl grow-zero/metrics.jsonl)
below "$diff" 1e-6 || fail "ZeRO-1 then 2 expert-parallel ranks differ from 1 rank by $diff (relative)"
# ZeRO-1 with expert parallelism stopped and resumed on the same 2 ranks.
for half in 1 2; do
  steps=()
  [ $half = 1 ] && steps=(--steps 10)
  mpi 2 dsk-train -q -c base.yaml --device cpu --run-dir zero-halves --set dist.expert_parallel=2 --set dist.zero=1 \
    "${steps[@]}" >/dev/null 2>zero-halves.err || fail "ZeRO-1 with expert parallelism, half $half: $(cat zero-halves.err)"
done
diff=$(max_relative_difference halves/metrics.jsonl zero-halves/metrics.jsonl)
below "$diff" 1e-6 || fail "ZeRO-1 with expert parallelism resumed differs from 1 rank by $diff (relative)"

# From an HF model (model.init_from, here the 1-rank run's final checkpoint): each rank reads its
# own experts' tensors only, and the run follows 1 rank's from the same model.
awk -v from="$PWD/one/checkpoints/step-000020" 'BEGIN { print "model:"; print "  init_from: " from }
  /^data:/ { keep = 1 } keep' base.yaml >init.yaml
dsk-train -c init.yaml --device cpu --run-dir init-one --steps 5 >/dev/null 2>init-one.err ||
  fail "1 rank from an HF model: $(cat init-one.err)"
mpi 2 dsk-train -c init.yaml --device cpu --run-dir init-ep --steps 5 --set dist.expert_parallel=2 >/dev/null \
  2>init-ep.err || fail "2 expert-parallel ranks from an HF model: $(cat init-ep.err)"
[ "$(startup_peak init-one.err)" = "$one_peak" ] || fail "1 rank from an HF model: $(grep 'start-up memory' init-one.err)"
[ "$(startup_peak init-ep.err)" = "$ep_peak" ] ||
  fail "2 expert-parallel ranks from an HF model: $(grep 'start-up memory' init-ep.err), expected $ep_peak bytes"
diff=$(max_relative_difference init-one/metrics.jsonl init-ep/metrics.jsonl)
below "$diff" 1e-6 || fail "2 expert-parallel ranks from an HF model differ from 1 rank by $diff (relative)"

# Usage errors: exit 2 and a message that says what is wrong.
expect_error 2 "must divide the number of ranks (1)" \
  dsk-train -q -c base.yaml --device cpu --run-dir bad --set dist.expert_parallel=2
code=0
mpi 2 dsk-train -q -c base.yaml --device cpu --run-dir bad --set dist.expert_parallel=3 >/dev/null 2>bad.err || code=$?
[ "$code" != 0 ] || fail "expert_parallel 3 on 2 ranks was accepted"
grep -q "must divide the number of ranks (2)" bad.err || fail "expert_parallel 3: $(cat bad.err)"
write_config dense.yaml llama
code=0
mpi 2 dsk-train -q -c dense.yaml --device cpu --run-dir bad --set dist.expert_parallel=2 >/dev/null 2>bad.err ||
  code=$?
[ "$code" != 0 ] || fail "expert parallelism of a dense model was accepted"
grep -q "no routed experts" bad.err || fail "dense model: $(cat bad.err)"
echo "PASS"
