// dsk-tokenize: text or JSONL in, token shards out (lib/tokenize does the work).
//   dsk-tokenize -t tokenizer.json -o shards/ corpus.jsonl.zst     tokenize; a "shards" record on stdout
//   dsk-tokenize stats shards/                                     a "shard_stats" record on stdout
//   dsk-tokenize decode shards/                                    the documents' text on stdout
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <thread>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/record.hpp"
#include "core/signals.hpp"
#include "core/units.hpp"
#include "io/token_shard.hpp"
#include "tokenize/decode.hpp"
#include "tokenize/pipeline.hpp"
#include "tokenize/shard_stats.hpp"
#include "tokenizer/tokenizer_cache.hpp"

using namespace dsk;
using namespace dsk::tokenize;

namespace {

Schema make_schema() {
  Schema schema;
  schema.path_list("input.paths", {}, "input files (text, JSONL, optionally .zst); none or - reads stdin");
  schema.choice("input.format", "auto", {"auto", "text", "jsonl"}, "auto: JSONL for *.jsonl / *.ndjson, else text");
  schema.choice("input.documents", "file", {"file", "paragraph"}, "text input: a document per file or per blank-line block");
  schema.string("input.jsonl_field", "text", "JSONL: the top-level field holding the document's text");
  schema.choice("input.on_error", "fail", {"skip", "replace", "fail"},
                "a bad JSONL line or invalid UTF-8: skip the document, replace bad bytes by U+FFFD, or fail");
  schema.path("tokenizer.path", std::nullopt, "tokenizer.json (tokenizer_config.json beside it is read too)");
  schema.choice("tokenizer.bos", "auto", {"auto", "always", "never"}, "BOS before each document; auto: as the tokenizer config says");
  schema.path("output.dir", std::nullopt, "the shard directory to create");
  schema.string("output.shard_tokens", "100M", "tokens per shard at most (K/M/G = 2^10/2^20/2^30)");
  schema.boolean("output.force", false, "replace an existing output directory");
  KeySpec& val_fraction = schema.number("split.val_fraction", 0.0, "share of documents sent to validation");
  val_fraction.minimum = 0;
  val_fraction.maximum = 1;
  schema.integer("split.seed", 0, "seed of the document-number hash that picks validation documents").minimum = 0;
  schema.integer("threads", 0, "worker threads (parse, check and encode the input); 0: one per CPU").minimum = 0;
  return schema;
}

struct TokenizeFlags {
  std::vector<std::string> inputs;
  std::string output, tokenizer, format, documents, jsonl_field, on_error, shard_size, bos, val_fraction, seed, threads;
  bool force = false;
};

void add_tokenize_flags(CLI::App& app, TokenizeFlags& flags, cli::KeyedFlags& keyed) {
  keyed.add("-o,--output", "DIR", flags.output, "output.dir", "Shard directory to create (output.dir)");
  keyed.add("-t,--tokenizer", "FILE", flags.tokenizer, "tokenizer.path", "tokenizer.json (tokenizer.path)");
  keyed.add("--format", "FORMAT", flags.format, "input.format", "auto, text or jsonl (input.format)")
      ->check(CLI::IsMember({"auto", "text", "jsonl"}));
  keyed.add("--documents", "UNIT", flags.documents, "input.documents",
               "Text input: a document per file, or per blank-line-separated paragraph (input.documents)")
      ->check(CLI::IsMember({"file", "paragraph"}));
  keyed.add("--jsonl-field", "NAME", flags.jsonl_field, "input.jsonl_field", "JSONL field with the text (input.jsonl_field)");
  keyed.add("--on-error", "POLICY", flags.on_error, "input.on_error",
               "Bad JSONL line or invalid UTF-8: skip, replace (U+FFFD) or fail (input.on_error)")
      ->check(CLI::IsMember({"skip", "replace", "fail"}));
  keyed.add("--shard-size", "TOKENS", flags.shard_size, "output.shard_tokens",
               "Tokens per shard at most, e.g. 100M (output.shard_tokens)");
  keyed.add("--val-fraction", "F", flags.val_fraction, "split.val_fraction",
               "Share of documents for validation, 0..1 (split.val_fraction)");
  keyed.add("--seed", "N", flags.seed, "split.seed", "Seed of the train/validation split (split.seed)");
  keyed.add("--bos", "MODE", flags.bos, "tokenizer.bos", "BOS before each document: auto, always, never (tokenizer.bos)")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  keyed.add("-j,--threads", "N", flags.threads, "threads", "Worker threads that parse, check and encode, 0 = one per CPU (threads)");
  app.add_flag("-f,--force", flags.force, "Replace the output directory if it exists (output.force)");
  app.add_option("inputs", flags.inputs, "Input files; none or - reads stdin (input.paths)")->type_name("FILE");
}

int run_tokenize(const Config& config) {
  if (!config.has("tokenizer.path")) throw UsageError("no tokenizer: give -t/--tokenizer (or tokenizer.path)");
  if (!config.has("output.dir")) throw UsageError("no output directory: give -o/--output (or output.dir)");
  const std::string shard_size = config.get_string("output.shard_tokens");
  TokenizeOptions options;
  options.inputs = config.get_strings("input.paths");
  options.reader.format = parse_input_format(config.get_string("input.format"));
  options.reader.documents = parse_text_documents(config.get_string("input.documents"));
  options.reader.jsonl_field = config.get_string("input.jsonl_field");
  options.reader.on_error = parse_error_policy(config.get_string("input.on_error"));
  options.output = config.get_string("output.dir");
  options.force = config.get_bool("output.force");
  try {
    options.shard_tokens = parse_size(shard_size, "output.shard_tokens");
  } catch (const UsageError& e) {
    throw UsageError(str(config.where("output.shard_tokens"), ": ", e.what()));
  }
  options.val_fraction = config.get_double("split.val_fraction");
  options.seed = static_cast<uint64_t>(config.get_int("split.seed"));
  options.bos = parse_bos_mode(config.get_string("tokenizer.bos"));
  options.threads = static_cast<int>(config.get_int("threads"));
  if (options.threads == 0) options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.tokenizer_path = config.get_string("tokenizer.path");

  install_stop_signal_handlers();
  auto tokenizer = tokenizer::Tokenizer::load(options.tokenizer_path, tokenizer::tokenizer_cache_dir());
  TokenizeResult result = tokenize_to_shards(options, tokenizer);
  const io::ShardIndex& index = result.index;
  const InputErrorCounts& errors = result.errors;
  log_info("wrote ", count_of(index.documents(), "document"), ", ", count_of(index.tokens(), "token"), " in ",
           count_of(index.train.shards.size() + index.val.shards.size(), "shard"), " to ", options.output.string());
  if (errors.skipped + errors.replaced > 0)
    log_warn(errors.invalid_utf8, " with invalid UTF-8, ", errors.bad_records, " bad records: ", errors.skipped,
             " skipped, ", errors.replaced, " replaced");
  Record record("shards");
  record.set("path", options.output.string())
      .set("tokenizer", options.tokenizer_path)
      .set("documents", index.documents())
      .set("tokens", index.tokens())
      .set("train_documents", index.train.documents)
      .set("train_tokens", index.train.tokens)
      .set("val_documents", index.val.documents)
      .set("val_tokens", index.val.tokens)
      .set("text_bytes", index.text_bytes())
      .set("vocab_size", index.vocab_size)
      .set("dtype", io::dtype_name(index.token_bytes))
      .set("bos", result.add_bos)
      .set("shards", static_cast<uint64_t>(index.train.shards.size() + index.val.shards.size()))
      .set("invalid_utf8", errors.invalid_utf8)
      .set("bad_records", errors.bad_records)
      .set("skipped", errors.skipped)
      .set("replaced", errors.replaced)
      .set("empty", errors.empty);
  record.print();
  return 0;
}

int run_stats(const std::string& argument) {
  const std::string directory = resolve_artifact_path(argument, {"shards"});
  ShardStats stats = compute_shard_stats(directory);
  log_info(directory, ": ", count_of(stats.all.documents, "document"), ", ", count_of(stats.all.tokens, "token"), ", ",
           stats.all.distinct_tokens, " distinct; unigram entropy ", stats.all.entropy_bits, " bits/token");
  Record record("shard_stats");
  record.set("path", directory)
      .set("documents", stats.all.documents)
      .set("tokens", stats.all.tokens)
      .set("text_bytes", stats.all.text_bytes)
      .set("bytes_per_token", stats.all.bytes_per_token())
      .set("distinct_tokens", stats.all.distinct_tokens)
      .set("entropy_bits", stats.all.entropy_bits)
      .set("entropy_nats", stats.all.entropy_nats())
      .set("train_documents", stats.train.documents)
      .set("train_tokens", stats.train.tokens)
      .set("train_entropy_nats", stats.train.entropy_nats())
      .set("val_documents", stats.val.documents)
      .set("val_tokens", stats.val.tokens)
      .set("val_entropy_nats", stats.val.entropy_nats())
      .set("vocab_size", stats.index.vocab_size)
      .set("dtype", io::dtype_name(stats.index.token_bytes));
  record.print();
  return 0;
}

int run_decode(const std::string& argument, const std::string& split, const std::string& tokenizer_override, bool jsonl) {
  const std::string directory = resolve_artifact_path(argument, {"shards"});
  const io::ShardIndex index = io::load_shard_index(directory);
  std::string tokenizer_path = tokenizer_override;
  if (tokenizer_path.empty()) {
    const std::optional<std::filesystem::path> found = io::find_index_tokenizer(index, directory);
    if (!found)
      throw DataError(str(directory, "/", io::kShardIndexName, ": its tokenizer '", index.tokenizer,
                          "' is not there (looked relative to the shard directory and to the working directory): "
                          "give -t/--tokenizer"));
    tokenizer_path = found->string();
  }
  auto tokenizer = tokenizer::Tokenizer::load(tokenizer_path, tokenizer::tokenizer_cache_dir());
  if (tokenizer.vocab_size() != index.vocab_size)
    throw UsageError(str(tokenizer_path, ": vocabulary of ", tokenizer.vocab_size(), " tokens, but the shards were made with ",
                         index.vocab_size, " (-t names the right tokenizer)"));
  uint64_t documents = decode_documents(directory, parse_split_selection(split), tokenizer, [&](const std::string& text) {
    std::string out = jsonl ? nlohmann::json{{"text", text}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"
                            : text;
    if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) throw ResourceError("cannot write to stdout");
  });
  std::fflush(stdout);
  log_info("decoded ", count_of(documents, "document"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tokenize text or JSONL into token shards for dsk-train", "dsk-tokenize"};
  cli::CommonOptions common;
  cli::add_common_flags(app, common);
  cli::add_config_flags(app, common);
  TokenizeFlags flags;
  cli::KeyedFlags keyed(app);
  add_tokenize_flags(app, flags, keyed);

  // -v and -q work after a subcommand too ("dsk-tokenize stats -q shards/").
  auto add_log_flags = [&](CLI::App* subcommand) {
    subcommand->add_flag("-v,--verbose", common.verbose, "More detail on stderr (debug messages)");
    subcommand->add_flag("-q,--quiet", common.quiet, "Only errors on stderr");
  };
  CLI::App* stats = app.add_subcommand("stats", "Print statistics of a shard directory: tokens, bytes/token, unigram entropy");
  std::string stats_directory;
  add_log_flags(stats);
  stats->add_option("directory", stats_directory, "Shard directory, or - for a shards record on stdin")->required()->type_name("DIR");

  CLI::App* decode = app.add_subcommand("decode", "Print the documents of a shard directory as text");
  std::string decode_directory, decode_split = "all", decode_tokenizer;
  bool decode_jsonl = false;
  add_log_flags(decode);
  decode->add_option("directory", decode_directory, "Shard directory, or - for a shards record on stdin")->required()->type_name("DIR");
  decode->add_option("--split", decode_split, "train, val or all (train then val)")
      ->type_name("SPLIT")
      ->check(CLI::IsMember({"train", "val", "all"}));
  decode->add_option("-t,--tokenizer", decode_tokenizer, "tokenizer.json (default: the one in index.yaml)")->type_name("FILE");
  decode->add_flag("--jsonl", decode_jsonl, "One JSON object {\"text\": ...} per document instead of the raw text");

  cli::set_examples(app, {
      "dsk-tokenize -t tokenizer.json -o shards/ --val-fraction 0.01 corpus.jsonl.zst",
      "zcat books/*.gz | dsk-tokenize -t tokenizer.json -o shards/ --documents paragraph -",
      "dsk-tokenize -c tokenize.yaml --set split.seed=7 --print-config",
      "dsk-tokenize stats shards/",
      "dsk-tokenize -t tokenizer.json -o shards/ corpus.txt | dsk-tokenize stats -",
      "dsk-tokenize decode --split val --jsonl shards/ | head",
  });

  return cli::run(app, argc, argv, common, [&] {
    if (stats->parsed()) return run_stats(stats_directory);
    if (decode->parsed()) return run_decode(decode_directory, decode_split, decode_tokenizer, decode_jsonl);
    cli::CommonOptions effective = common;
    effective.flag_overrides = keyed.overrides();
    if (!flags.inputs.empty())
      effective.flag_overrides.push_back(cli::flag_list_override("FILE arguments", "input.paths", flags.inputs));
    if (flags.force) effective.flag_overrides.push_back(cli::flag_override("--force", "output.force", "true"));
    static const Schema schema = make_schema();
    auto config = cli::load_config(schema, effective);
    if (!config) return 0;
    return run_tokenize(*config);
  });
}
