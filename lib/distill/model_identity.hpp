// What a teacher cache records of the models and data it was made from, so that a student run
// can refuse a cache made by another teacher or another tokenizer: SHA-256 digests of files.
#pragma once

#include <filesystem>
#include <string>

namespace dsk::distill {

// The digest of a checkpoint directory's config.json and weights (model.safetensors, or the
// index and every *.safetensors file), as the sha256 of "name sha256\n" lines in name order.
// DataError when the directory has no config.json or no weights.
std::string checkpoint_sha256(const std::filesystem::path& checkpoint);

// The sha256 of a tokenizer.json, or "none" when the path is empty or names no file.
std::string tokenizer_sha256(const std::filesystem::path& tokenizer_json);

}  // namespace dsk::distill
