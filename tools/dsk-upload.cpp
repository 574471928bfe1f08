// dsk-upload: publish a checkpoint directory as an immutable version of the model registry on
// S3-compatible storage, fetch a version back (verified), and point aliases at versions with
// traffic weights. The work is lib/registry; this file is the command line.
#include <CLI/CLI.hpp>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/record.hpp"
#include "core/units.hpp"
#include "registry/alias_store.hpp"
#include "registry/version_store.hpp"

namespace {

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::optional<std::string>(value) : std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Publish, fetch and alias model versions on S3-compatible storage", "dsk-upload"};
  dsk::cli::CommonOptions common;
  dsk::cli::add_common_flags(app, common);

  std::string directory, name, version, root, get_into, alias, weights, part_size = "8MiB";
  int concurrency = 4;
  bool force = false;
  dsk::registry::ConnectionFlags flags;
  app.add_option("directory", directory, "checkpoint directory to publish");
  app.add_option("--name", name, "model name")->required();
  app.add_option("--model-version", version, "version to publish or fetch (--version is the tool's own)");
  app.add_option("--to", root, "registry root s3://bucket[/prefix]")->required()
      ->envname("DSK_REGISTRY");
  app.add_option("--get", get_into, "download --version into this directory, verified");
  app.add_option("--alias", alias, "set this alias (with --weights)");
  app.add_option("--weights", weights, "versions and weights: 1.0=90,1.1=10 (or just 1.0)");
  app.add_flag("--force", force, "replace an existing version");
  app.add_option("--part-size", part_size, "multipart part size (>= 5MiB for S3)");
  app.add_option("--concurrency", concurrency, "parts uploaded in parallel");
  app.add_option("--endpoint-url", flags.endpoint_url, "S3 endpoint, e.g. http://127.0.0.1:4568");
  app.add_option("--region", flags.region, "S3 region (default us-east-1)");
  app.add_option("--profile", flags.profile, "profile of ~/.aws/credentials");
  dsk::cli::set_examples(app, {
      "dsk-upload ./ckpt --name deepseek-vision --model-version 1.0 --to s3://models",
      "dsk-upload --name deepseek-vision --model-version 1.0 --to s3://models --get ./restored",
      "dsk-upload --name deepseek-vision --to s3://models --alias prod --weights 1.0=90,1.1=10"});

  return dsk::cli::run(app, argc, argv, common, [&] {
    using namespace dsk::registry;
    Connection connection = resolve_connection(flags, environment);
    if (!alias.empty()) {
      if (weights.empty()) throw dsk::UsageError("--alias needs --weights (e.g. 1.0=90,1.1=10)");
      S3Client client(connection);
      set_alias(client, root, name, alias, parse_weight_spec(weights));
      dsk::Record("alias").set("name", name).set("alias", alias).set("weights", weights).print();
      return 0;
    }
    if (version.empty()) throw dsk::UsageError("--model-version is required to publish or --get");
    if (!get_into.empty()) {
      Manifest manifest = fetch_version(connection, root, name, version, get_into);
      dsk::Record("download").set("name", name).set("version", version)
          .set("path", get_into).set("files", static_cast<int64_t>(manifest.files.size())).print();
      return 0;
    }
    if (directory.empty()) throw dsk::UsageError("give the checkpoint directory to publish");
    MultipartOptions options{static_cast<long long>(dsk::parse_size(part_size, "--part-size")),
                             concurrency};
    Published published = publish_version(connection, root, name, version, directory, force, options);
    dsk::Record("upload").set("name", name).set("version", version)
        .set("url", published.manifest_url).set("manifest_sha256", published.manifest_sha256)
        .print();
    return 0;
  });
}
