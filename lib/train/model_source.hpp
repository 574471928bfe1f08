// The model a training run starts from, by the config's model section (exactly one of):
//   model.config_json: PATH     an HF config.json; weights initialized at random with `seed`
//   model.config: {...}         the same fields inline in the YAML
//   model.init_from: DIR        an HF checkpoint directory (its config.json and weights), or a
//                               registry://name@version-or-alias or s3:// URL (lib/registry
//                               fetches it into its cache; DSK_REGISTRY and the AWS_* variables)
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "core/config.hpp"
#include "model/model.hpp"

namespace dsk::train {

// ops: the backend the model lives on (tensor/device.hpp); options: how it holds its weights
// (expert parallelism: only this rank's experts, read or initialized alone).
model::Model model_from_config(const Config& config, uint64_t seed, std::shared_ptr<tensor::Ops> ops,
                               model::ModelOptions options = {});

// A checkpoint directory as it is, or a registry://name@ref or s3:// URL fetched (verified) into
// lib/registry's cache: the local directory either way.
std::filesystem::path local_checkpoint(const std::string& source);

// YAML (inline config.json fields) as JSON: integers, numbers, booleans and null by their YAML
// spelling, everything else a string; maps and sequences recursively. A key that is not a plain
// name is a UsageError naming source and line.
nlohmann::json yaml_to_json(const YAML::Node& node, const std::string& source);

}  // namespace dsk::train
