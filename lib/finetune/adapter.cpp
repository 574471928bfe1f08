#include "finetune/adapter.hpp"

#include "core/error.hpp"

namespace dsk::finetune {

using tensor::DType;

AdapterParameters::AdapterParameters(tensor::Ops& ops, size_t count, const std::string& name)
    : ops_(ops), count_(count), arena_(ops, name) {
  auto carve = [&](tensor::Arena& arena) {
    master_ = arena.take(DType::f32, int64_t(count));
    grads_ = arena.take(DType::f32, int64_t(count));
    working_ = ops.activation_dtype() == DType::f32 ? master_ : arena.take(ops.activation_dtype(), int64_t(count));
  };
  carve(arena_);
  arena_.commit();
  carve(arena_);
  ops.zero(master_);
  zero_grad();
}

std::vector<float> AdapterParameters::copy() const {
  std::vector<float> out(count_);
  ops_.copy_to_host(out.data(), master_);
  return out;
}

void AdapterParameters::set(std::span<const float> values) {
  if (values.size() != count_) throw InternalError(str("adapter: ", values.size(), " values given for ", count_));
  ops_.copy_from_host(master_, values.data());
  if (working_.data != master_.data) ops_.cast(working_, master_);
}

std::vector<float> AdapterParameters::copy_gradients() const {
  std::vector<float> out(count_);
  ops_.copy_to_host(out.data(), grads_);
  return out;
}

void AdapterParameters::zero_grad() { ops_.zero(grads_); }

bool plan_rows(tensor::Ops& ops, std::unique_ptr<tensor::Arena>& arena, int& planned_rows, int rows,
               const std::string& name, const std::function<void(tensor::Arena&)>& carve) {
  if (arena && planned_rows >= rows) return false;
  arena.reset();  // the old plan's memory goes back before the new one is taken
  auto fresh = std::make_unique<tensor::Arena>(ops, str(name, " for ", rows, " rows"));
  carve(*fresh);
  fresh->commit();
  carve(*fresh);
  arena = std::move(fresh);
  planned_rows = rows;
  return true;
}

}  // namespace dsk::finetune
