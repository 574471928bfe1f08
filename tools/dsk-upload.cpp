// dsk-upload: the model registry on S3-compatible storage from the command line (lib/registry
// does the work):
//   dsk-upload DIR|- --name NAME --version V     publish a version; an "upload" record on stdout
//   dsk-upload list [NAME]                       model names, or NAME's versions (tab-separated)
//   dsk-upload show NAME@REF                     a version's manifest.yaml on stdout
//   dsk-upload get NAME@REF -o DIR               download a version, verified; a record on stdout
//   dsk-upload fetch URL                         registry://name@ref or s3://... into the cache
//   dsk-upload alias NAME ALIAS 1.0=90,1.1=10    point an alias at weighted versions
//   dsk-upload prune NAME --keep N --older-than D
//   dsk-upload lifecycle show | set --abort-incomplete-days N [--expire-days N]
// The shared flags (--to, --part-size, -j, ...) are config keys too: -c FILE, --set key=value and
// --print-config as in every dsk tool, a flag winning over both.
// REF is a version or an alias, as in registry://name@ref. --version takes the model version
// here; a bare --version (no value) prints the tool's version as in every dsk tool.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <random>

#include "core/cli.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/progress.hpp"
#include "core/record.hpp"
#include "core/sha256.hpp"
#include "core/units.hpp"
#include "registry/alias_store.hpp"
#include "registry/fetch_cache.hpp"
#include "registry/lifecycle.hpp"
#include "registry/prune.hpp"
#include "registry/version_store.hpp"

using namespace dsk;
using namespace dsk::registry;

namespace {

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::optional<std::string>(value) : std::nullopt;
}

// The settings a script would rather keep in a file (-c). Each shared flag stands for one key
// and wins over the file and --set; a key left unset falls back to the environment as the flag
// does (DSK_REGISTRY, AWS_ENDPOINT_URL, AWS_REGION, AWS_PROFILE).
Schema make_schema() {
  Schema schema;
  schema.string("registry.root", std::nullopt, "registry root s3://bucket[/prefix]; unset: DSK_REGISTRY");
  schema.string("s3.endpoint_url", std::nullopt, "S3 endpoint URL; unset: AWS_ENDPOINT_URL, else AWS");
  schema.string("s3.region", std::nullopt, "S3 region; unset: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1");
  schema.string("s3.profile", std::nullopt, "profile of the shared credentials file; unset: AWS_PROFILE, else default");
  schema.integer("s3.retries", 4, "retries of a request after a 5xx, a failed connection or a time-out").minimum = 0;
  schema.string("transfer.part_size", "8MiB", "multipart part and download range size (S3 wants >= 5MiB)");
  schema.integer("transfer.concurrency", 4, "parts or ranges in flight at once").minimum = 1;
  schema.path("transfer.state_dir", std::nullopt, "state of interrupted multipart uploads; unset: $XDG_STATE_HOME/dsk/uploads");
  return schema;
}

struct Shared {  // what every subcommand takes, from the effective config
  std::string root, state_dir;
  long long part_size = 0;
  int concurrency = 0, retries = 0;
  ConnectionFlags connection;
};

struct SharedFlags {  // the shared flags as given; each stands for one config key
  std::string root, part_size, concurrency, retries, state_dir, endpoint_url, region, profile;
};

// Applied after -c and --set, so a flag wins over both.
void add_shared_options(SharedFlags& flags, cli::KeyedFlags& keyed) {
  keyed.add("--to,--registry", "URL", flags.root, "registry.root",
               "Registry root s3://bucket[/prefix] (registry.root; DSK_REGISTRY)");
  keyed.add("--part-size", "SIZE", flags.part_size, "transfer.part_size",
               "Multipart part and download range size (transfer.part_size; default 8MiB; S3 wants >= 5MiB)")
      ->check([](const std::string& text) {  // a bad size is named by its flag, not by the key it sets
        try {
          parse_size(text, "--part-size");
          return std::string();
        } catch (const UsageError& e) {  // CLI11 puts "--part-size: " in front again
          std::string message = e.what();
          return message.substr(message.find(": ") + 2);
        }
      });
  keyed.add("-j,--concurrency", "N", flags.concurrency, "transfer.concurrency",
               "Parts or ranges in flight at once (transfer.concurrency; default 4)");
  keyed.add("--retries", "N", flags.retries, "s3.retries",
               "Retries of a request after a 5xx, a failed connection or a time-out (s3.retries; default 4)");
  keyed.add("--state-dir", "DIR", flags.state_dir, "transfer.state_dir",
               "Where interrupted multipart uploads keep their state (transfer.state_dir; default $XDG_STATE_HOME/dsk/uploads)");
  keyed.add("--endpoint-url", "URL", flags.endpoint_url, "s3.endpoint_url",
               "S3 endpoint, e.g. http://127.0.0.1:4568 (s3.endpoint_url; AWS_ENDPOINT_URL)");
  keyed.add("--region", "REGION", flags.region, "s3.region", "S3 region (s3.region; AWS_REGION; default us-east-1)");
  keyed.add("--profile", "PROFILE", flags.profile, "s3.profile",
               "Profile of the shared credentials file (s3.profile; AWS_PROFILE)");
}

std::string optional_string(const Config& config, const std::string& key) {
  return config.has(key) ? config.get_string(key) : std::string();
}

Shared shared_from_config(const Config& config) {
  Shared shared;
  shared.root = optional_string(config, "registry.root");
  if (shared.root.empty()) shared.root = environment("DSK_REGISTRY").value_or("");
  shared.connection.endpoint_url = optional_string(config, "s3.endpoint_url");
  shared.connection.region = optional_string(config, "s3.region");
  shared.connection.profile = optional_string(config, "s3.profile");
  shared.retries = static_cast<int>(config.get_int("s3.retries"));
  shared.concurrency = static_cast<int>(config.get_int("transfer.concurrency"));
  shared.state_dir = optional_string(config, "transfer.state_dir");
  try {
    shared.part_size = static_cast<long long>(parse_size(config.get_string("transfer.part_size"), "transfer.part_size"));
  } catch (const UsageError& e) {
    throw UsageError(str(config.where("transfer.part_size"), ": ", e.what()));
  }
  return shared;
}

std::string require_root(const Shared& shared) {
  if (shared.root.empty())
    throw UsageError("no registry root: give --to s3://bucket[/prefix], set registry.root or DSK_REGISTRY");
  parse_s3_url(shared.root);
  return shared.root;
}

Connection connect(const Shared& shared) {
  Connection connection = resolve_connection(shared.connection, environment);
  connection.attempts = shared.retries + 1;
  return connection;
}

// "name@ref" -> {name, ref}; ref required unless optional_ref.
std::pair<std::string, std::string> split_ref(const std::string& text, bool optional_ref) {
  auto at = text.find('@');
  std::string name = text.substr(0, at), ref = at == std::string::npos ? "" : text.substr(at + 1);
  if (name.empty() || (!optional_ref && ref.empty()) || (at != std::string::npos && ref.empty()))
    throw UsageError(str("'", text, "': expected NAME@VERSION or NAME@ALIAS"));
  return {name, ref};
}

// What get and fetch print: the local copy as the kind of artifact it was published as.
void print_local_record(const Manifest& manifest, const std::string& path, const std::string& url,
                        const std::string& manifest_sha256) {
  std::string kind = "checkpoint";
  for (const auto& [key, value] : manifest.record)
    if (key == "kind") kind = value;
  Record record(kind);
  record.set("path", path).set("name", manifest.name).set("version", manifest.version)
      .set("url", url).set("manifest_sha256", manifest_sha256);
  if (!manifest.model_type.empty()) record.set("model_type", manifest.model_type);
  if (!manifest.base_model.empty()) record.set("base_model", manifest.base_model);
  if (manifest.parameters > 0) record.set("parameters", static_cast<int64_t>(manifest.parameters));
  for (const auto& [key, value] : manifest.record)
    if (key == "step") record.set(key, value);
  record.print();
}

int run_publish(const Shared& shared, const std::string& directory_argument, const std::string& name,
                const std::string& version, bool force) {
  if (directory_argument.empty())
    throw UsageError("give the directory to publish (or - for a record on stdin), or a subcommand");
  if (name.empty()) throw UsageError("--name is required to publish");
  if (version.empty()) throw UsageError("--version is required to publish (e.g. --version 1.0)");
  std::string root = require_root(shared);
  Record input("none");
  std::string directory = resolve_artifact_path(directory_argument, {"checkpoint", "adapter"}, &input);
  PublishOptions options;
  options.force = force;
  options.multipart.part_size = shared.part_size;
  options.multipart.concurrency = shared.concurrency;
  options.multipart.state_dir = shared.state_dir.empty() ? default_upload_state_dir() : std::filesystem::path(shared.state_dir);
  if (directory_argument == "-") {
    options.record.emplace_back("kind", input.kind());
    for (const auto& field : input.fields()) options.record.push_back(field);
  }
  Progress progress(str("upload ", name, "@", version), 0);
  options.multipart.progress = &progress;
  Published published = publish_version(connect(shared), root, name, version, directory, options);
  progress.finish();
  Record("upload").set("name", name).set("version", version).set("url", published.manifest_url)
      .set("ref", str("registry://", name, "@", version))
      .set("manifest_sha256", published.manifest_sha256)
      .set("bytes", static_cast<int64_t>(published.bytes)).print();
  return 0;
}

int run_list(const Shared& shared, const std::string& name) {
  std::string root = require_root(shared);
  S3Client client(connect(shared));
  if (name.empty()) {
    for (const auto& each : list_names(client, root)) std::printf("%s\n", each.c_str());
    return 0;
  }
  // version <TAB> created <TAB> aliases pointing at it (comma-separated, "-" when none)
  AliasTable aliases = read_aliases(client, root, name);
  for (const auto& summary : list_versions(client, root, name)) {
    std::string pointing;
    for (const auto& [alias, versions] : aliases)
      for (const auto& weighted : versions)
        if (weighted.version == summary.version)
          pointing += (pointing.empty() ? "" : ",") + alias + "=" + std::to_string(weighted.weight);
    std::printf("%s\t%s\t%s\n", summary.version.c_str(), summary.created.c_str(),
                pointing.empty() ? "-" : pointing.c_str());
  }
  return 0;
}

int run_show(const Shared& shared, const std::string& reference) {
  std::string root = require_root(shared);
  auto [name, ref] = split_ref(reference, false);
  S3Client client(connect(shared));
  std::string version = resolve_version(client, root, name, ref, 0.0);
  auto text = read_manifest_text(client, root, name, version);
  if (!text) throw UsageError(str(name, " has no version ", version));
  parse_manifest(*text, str(name, "/", version, "/manifest.yaml"));  // a corrupt one is an error
  std::fwrite(text->data(), 1, text->size(), stdout);
  return 0;
}

FetchOptions fetch_options(const Shared& shared, Progress* progress) {
  return {shared.part_size, shared.concurrency, progress};
}

int run_get(const Shared& shared, const std::string& reference, const std::string& output) {
  std::string root = require_root(shared);
  auto [name, ref] = split_ref(reference, false);
  Connection connection = connect(shared);
  S3Client client(connection);
  std::mt19937 random(std::random_device{}());
  std::string version = resolve_version(client, root, name, ref,
                                        std::uniform_real_distribution<double>(0, 1)(random));
  auto text = read_manifest_text(client, root, name, version);
  if (!text) throw UsageError(str(name, " has no version ", version));
  Progress progress(str("get ", name, "@", version), 0);
  Manifest manifest = fetch_manifest_files(connection, root, name, version, *text, output,
                                           fetch_options(shared, &progress));
  progress.finish();
  ObjectAddress object = registry_object(root, name, version + "/manifest.yaml");
  print_local_record(manifest, output, str("s3://", object.bucket, "/", object.key), sha256_hex(*text));
  return 0;
}

int run_fetch(const Shared& shared, const std::string& url, const std::string& cache_dir) {
  OpenOptions options;
  options.registry_root = shared.root;
  options.cache_dir = cache_dir;
  Progress progress(str("fetch ", url), 0);
  options.fetch = fetch_options(shared, &progress);
  OpenedModel opened = open_model(connect(shared), url, options);
  if (!opened.cached) progress.finish();
  Manifest manifest = parse_manifest(read_file(opened.directory / "manifest.yaml"), opened.manifest_url);
  print_local_record(manifest, opened.directory.string(), opened.manifest_url, opened.manifest_sha256);
  return 0;
}

int run_alias(const Shared& shared, const std::string& name, const std::string& alias,
              const std::string& weights) {
  std::string root = require_root(shared);
  S3Client client(connect(shared));
  set_alias(client, root, name, alias, parse_weight_spec(weights));
  Record("alias").set("name", name).set("alias", alias).set("weights", weights).print();
  return 0;
}

int run_prune(const Shared& shared, const std::string& name, size_t keep,
              const std::string& older_than, bool dry_run) {
  std::string root = require_root(shared);
  PrunePolicy policy{keep, std::chrono::seconds(static_cast<long long>(
                               parse_duration(older_than, "--older-than")))};
  S3Client client(connect(shared));
  std::vector<std::string> deleted = prune_versions(client, root, name, policy, dry_run);
  std::string list;
  for (const auto& version : deleted) list += (list.empty() ? "" : ",") + version;
  Record("prune").set("name", name).set("deleted", list)
      .set("count", static_cast<int64_t>(deleted.size())).set("dry_run", dry_run).print();
  return 0;
}

int run_lifecycle(const Shared& shared, bool set, int abort_days, int expire_days) {
  std::string root = require_root(shared);
  ObjectAddress base = parse_s3_url(root);
  S3Client client(connect(shared));
  if (set) {
    if (abort_days <= 0 && expire_days <= 0)
      throw UsageError("lifecycle set: give --abort-incomplete-days N and/or --expire-days N");
    std::string prefix = base.key.empty() || base.key.ends_with('/') ? base.key : base.key + "/";
    LifecycleRule rule{"dsk-registry" + (prefix.empty() ? "" : "-" + prefix.substr(0, prefix.size() - 1)),
                       prefix, true, expire_days, abort_days};
    set_lifecycle(client, base.bucket, {rule});
  }
  std::vector<LifecycleRule> rules = get_lifecycle(client, base.bucket);
  std::printf("rules:%s\n", rules.empty() ? " []" : "");
  for (const auto& rule : rules)
    std::printf("  - {id: \"%s\", prefix: \"%s\", enabled: %s, expire_days: %d, abort_incomplete_days: %d}\n",
                rule.id.c_str(), rule.prefix.c_str(), rule.enabled ? "true" : "false",
                rule.expire_days, rule.abort_incomplete_days);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Publish, list, fetch, alias and prune model versions on S3-compatible storage",
               "dsk-upload"};
  cli::CommonOptions common;
  cli::add_common_flags(app, common);
  cli::add_config_flags(app, common);
  app.set_version_flag("");  // --version names the model version here (a bare one: see below)
  SharedFlags shared_flags;
  cli::KeyedFlags keyed(app);
  add_shared_options(shared_flags, keyed);

  std::string directory, name, version;
  bool force = false;
  app.add_option("directory", directory, "Checkpoint or adapter directory to publish, or - for a record on stdin")
      ->type_name("DIR");
  app.add_option("--name", name, "Model name to publish under");
  CLI::Option* version_option =
      app.add_option("--version,--model-version", version,
                     "Version to publish; a bare --version prints dsk's version")
          ->expected(0, 1)->type_name("V");
  app.add_flag("-f,--force", force, "Replace an existing version (versions are immutable otherwise)");

  auto subcommand = [&](const char* command, const char* help) {
    CLI::App* sub = app.add_subcommand(command, help);
    sub->fallthrough();  // the shared options may follow the subcommand too
    return sub;
  };
  std::string list_name;
  CLI::App* list = subcommand("list", "List model names, or NAME's versions: version, created, aliases (tab-separated)");
  list->add_option("name", list_name, "Model name")->type_name("NAME");

  std::string show_ref;
  CLI::App* show = subcommand("show", "Print a version's manifest.yaml");
  show->add_option("ref", show_ref, "NAME@VERSION or NAME@ALIAS")->required()->type_name("NAME@REF");

  std::string get_ref, get_output;
  CLI::App* get = subcommand("get", "Download a version into a directory, every file verified");
  get->add_option("ref", get_ref, "NAME@VERSION or NAME@ALIAS (an alias picks by its weights)")
      ->required()->type_name("NAME@REF");
  get->add_option("-o,--output", get_output, "Directory to download into")->required()->type_name("DIR");

  std::string fetch_url, cache_dir;
  CLI::App* fetch = subcommand("fetch", "Download registry://NAME@REF or s3://.../NAME/VERSION into the local cache");
  fetch->add_option("url", fetch_url, "registry://NAME[@REF] or s3://bucket/prefix/NAME/VERSION")
      ->required()->type_name("URL");
  fetch->add_option("--cache-dir", cache_dir, "Cache directory (DSK_CACHE_DIR; default ~/.cache/dsk/registry)")
      ->type_name("DIR");

  std::string alias_name, alias_alias, alias_weights;
  CLI::App* alias = subcommand("alias", "Point an alias at versions with traffic weights");
  alias->add_option("name", alias_name, "Model name")->required()->type_name("NAME");
  alias->add_option("alias", alias_alias, "Alias: prod, canary, ...")->required()->type_name("ALIAS");
  alias->add_option("weights", alias_weights, "1.0 (all traffic) or 1.0=90,1.1=10")->required()->type_name("WEIGHTS");

  std::string prune_name, older_than = "0";
  size_t keep = 0;
  bool dry_run = false;
  CLI::App* prune = subcommand("prune", "Delete old versions no alias points to");
  prune->add_option("name", prune_name, "Model name")->required()->type_name("NAME");
  prune->add_option("--keep", keep, "Always keep the N newest versions")
      ->required()->type_name("N")->check(cli::numeric<size_t>());
  prune->add_option("--older-than", older_than, "Delete only versions older than this: 30d, 12h, 90m (default 0)")
      ->type_name("AGE");
  prune->add_flag("-n,--dry-run", dry_run, "Print what would be deleted, delete nothing");

  int abort_days = 0, expire_days = 0;
  CLI::App* lifecycle = subcommand("lifecycle", "Show or set the bucket's lifecycle rule for the registry prefix");
  lifecycle->require_subcommand(1);
  CLI::App* lifecycle_show = lifecycle->add_subcommand("show", "Print the bucket's lifecycle rules");
  lifecycle_show->fallthrough();
  CLI::App* lifecycle_set = lifecycle->add_subcommand("set", "Replace the bucket's lifecycle rules by one for the registry prefix");
  lifecycle_set->fallthrough();
  lifecycle_set->add_option("--abort-incomplete-days", abort_days, "Abort multipart uploads left incomplete this many days")
      ->type_name("N")->check(cli::numeric<int>(0));
  lifecycle_set->add_option("--expire-days", expire_days, "Delete every object under the prefix after N days (ignores aliases!)")
      ->type_name("N")->check(cli::numeric<int>(0));

  cli::set_examples(app, {
      "dsk-upload ./ckpt --name deepseek-vision --version 1.0 --to s3://models",
      "dsk-train -c train.yaml | dsk-upload - --name tiny --version 0.3 --to s3://models/team",
      "dsk-upload list deepseek-vision --to s3://models",
      "dsk-upload show deepseek-vision@prod --to s3://models",
      "dsk-upload get deepseek-vision@1.0 -o ./restored --to s3://models",
      "dsk-upload alias deepseek-vision prod 1.0=90,1.1=10 --to s3://models",
      "dsk-upload prune deepseek-vision --keep 3 --older-than 30d --dry-run --to s3://models",
      "DSK_REGISTRY=s3://models dsk-upload fetch registry://deepseek-vision@prod",
      "dsk-upload -c registry.yaml --set transfer.concurrency=8 --print-config",
  });

  return cli::run(app, argc, argv, common, [&] {
    if (version_option->count() > 0 && version.empty()) {
      if (!directory.empty() || !app.get_subcommands().empty())
        throw UsageError("--version needs the model version, e.g. --version 1.0");
      std::printf("%s\n", cli::version_string().c_str());
      return 0;
    }
    if (common.config_path == "-" && directory == "-" && app.get_subcommands().empty())
      throw UsageError("-c - and a record on stdin (-) cannot both read stdin: give the config as a file");
    cli::CommonOptions effective = common;
    effective.flag_overrides = keyed.overrides();
    static const Schema schema = make_schema();
    auto config = cli::load_config(schema, effective);
    if (!config) return 0;
    const Shared shared = shared_from_config(*config);
    if (list->parsed()) return run_list(shared, list_name);
    if (show->parsed()) return run_show(shared, show_ref);
    if (get->parsed()) return run_get(shared, get_ref, get_output);
    if (fetch->parsed()) return run_fetch(shared, fetch_url, cache_dir);
    if (alias->parsed()) return run_alias(shared, alias_name, alias_alias, alias_weights);
    if (prune->parsed()) return run_prune(shared, prune_name, keep, older_than, dry_run);
    if (lifecycle->parsed()) return run_lifecycle(shared, lifecycle_set->parsed(), abort_days, expire_days);
    return run_publish(shared, directory, name, version, force);
  });
}
