// dsk-serve: an OpenAI-compatible inference server. Parses flags and the config, then runs
// lib/serve: the engines (Engine::create), the router and the HTTP server. Signals are taken by
// this thread with sigwait (blocked everywhere else): SIGHUP reloads the config, SIGTERM and
// SIGINT drain (no new requests, running ones finish within drain_grace) and exit 143 / 130.
#include <pthread.h>

#include <csignal>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/units.hpp"
#include "registry/fetch_cache.hpp"
#include "serve/engine.hpp"
#include "serve/http_server.hpp"
#include "serve/model_set.hpp"
#include "serve/serve_config.hpp"

namespace {

using namespace dsk;
using namespace dsk::serve;

struct ServeFlags {
  std::vector<std::string> models;
  std::string host, port, api_key_file, device, max_batch, max_queue, drain_grace;
};

// The flags that stand for config keys, applied after -c and --set.
void add_flag_overrides(const ServeFlags& flags, cli::CommonOptions& common) {
  if (!flags.models.empty())
    common.flag_overrides.push_back({"--model", "models", models_yaml_from_flags(flags.models), "--model"});
  auto add = [&](const std::string& value, const char* flag, const char* key) {
    if (!value.empty()) common.flag_overrides.push_back(cli::flag_override(flag, key, value));
  };
  add(flags.host, "--host", "host");
  add(flags.port, "--port", "port");
  add(flags.api_key_file, "--api-key-file", "api_key_file");
  add(flags.device, "--device", "engine.device");
  add(flags.max_batch, "--max-batch", "engine.max_batch");
  add(flags.max_queue, "--max-queue", "engine.max_queue");
  add(flags.drain_grace, "--drain-grace", "drain_grace");
}

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::optional<std::string>(value) : std::nullopt;
}

ServeSettings settings_from(const Config& config) {
  ServeSettings settings = serve_settings(config);
  if (settings.models.empty())
    throw UsageError("no model to serve: give --model DIR|registry://NAME@ALIAS, or a models list in -c FILE");
  // A mistyped directory is said before the port is taken, not after.
  for (const ModelSpec& spec : settings.models)
    if (!registry::is_model_url(spec.source) && !std::filesystem::exists(std::filesystem::path(spec.source) / "tokenizer.json"))
      throw UsageError(str("model '", spec.name, "': ", spec.source,
                           std::filesystem::is_directory(spec.source) ? " has no tokenizer.json" : " is not a directory"));
  return settings;
}

// SIGTERM / SIGINT: readiness off and new requests refused, every engine drained at once (each
// waits for its running requests up to the grace, then cancels), streams written out.
void drain(ApiServer& server, Router& router, std::chrono::milliseconds grace) {
  server.start_draining();
  std::vector<std::thread> drains;
  for (const auto& model : router.all_versions())
    drains.emplace_back([model, grace] { model->engine->drain(grace); });
  for (auto& thread : drains) thread.join();
  // The last events are in the connections' queues: give them a moment to reach the clients.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto busy = [&] {
    for (const auto& model : router.all_versions())
      if (model->in_flight > 0) return true;
    return false;
  };
  while (busy() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

// SIGHUP: the config again (models, weights, keys); what fails to load is logged and the
// server keeps serving what it served.
void reload(const cli::CommonOptions& common, ModelSet& models, ApiServer& server) {
  try {
    std::optional<Config> config = cli::load_config(serve_schema(), common);
    ServeSettings settings = settings_from(*config);
    server.set_keys(ApiKeys::load(settings.api_key_file, environment("DSK_SERVE_API_KEY")));
    models.set_engine_options(settings.engine);
    models.apply(settings.models);
    log_info("SIGHUP: config reloaded");
  } catch (const std::exception& error) {
    log_warn("SIGHUP: the config was not reloaded (still serving the previous one): ", error.what());
  }
}

int run_server(const cli::CommonOptions& common, sigset_t signals) {
  std::optional<Config> config = cli::load_config(serve_schema(), common);
  if (!config) return 0;
  ServeSettings settings = settings_from(*config);
  ApiKeys keys = ApiKeys::load(settings.api_key_file, environment("DSK_SERVE_API_KEY"));

  Metrics metrics;
  Router router(metrics);
  ApiServer server(router, metrics, keys, settings.http);
  int port = server.bind();
  // Always printed (also with -q): scripts that ask for port 0 read the address from here.
  std::fprintf(stderr, "dsk-serve: listening on http://%s:%d\n", settings.http.host.c_str(), port);
  std::fflush(stderr);
  if (keys.enabled()) log_info(count_of(keys.size(), "API key"), " configured");
  std::thread http([&] { server.serve(); });
  auto stop_http = [&] {
    server.stop();
    http.join();
  };

  ModelSet models(router, Engine::create, settings.engine, settings.registry);
  try {
    models.apply(settings.models);
  } catch (...) {
    stop_http();
    throw;
  }
  bool uses_registry = false;
  for (const ModelSpec& spec : settings.models) uses_registry |= registry::is_model_url(spec.source);
  if (uses_registry) models.start_refreshing();
  log_info("ready");

  for (;;) {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    if (signal_number == SIGHUP) {
      reload(common, models, server);
      continue;
    }
    log_info(signal_number == SIGINT ? "SIGINT" : "SIGTERM", ": draining (grace ", settings.drain_grace.count() / 1000.0, " s)");
    drain(server, router, settings.drain_grace);
    stop_http();
    return static_cast<int>(signal_number == SIGINT ? ExitCode::interrupted : ExitCode::terminated);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread starts, so that every thread inherits the mask and only sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not a death

  CLI::App app{"Serve models over OpenAI's HTTP API (completions, chat, streaming) with A/B routing and fallback",
               "dsk-serve"};
  cli::CommonOptions common;
  cli::add_common_flags(app, common);
  cli::add_config_flags(app, common);
  ServeFlags flags;
  app.add_option("-m,--model", flags.models, "A model to serve: [NAME=]DIR or [NAME=]registry://NAME@ALIAS (repeatable)")
      ->type_name("SOURCE");
  app.add_option("--host", flags.host, "Address to listen on (default 127.0.0.1)")->type_name("ADDR");
  app.add_option("-p,--port", flags.port, "TCP port, 0 for any free one (default 8080)")->type_name("PORT");
  app.add_option("--api-key-file", flags.api_key_file, "File of API keys, one per line (also DSK_SERVE_API_KEY)")->type_name("FILE");
  app.add_option("--device", flags.device, "auto, cpu or cuda (default auto)")->type_name("DEVICE");
  app.add_option("--max-batch", flags.max_batch, "Sequences in a running batch at most (default 64)")->type_name("N");
  app.add_option("--max-queue", flags.max_queue, "Waiting requests per model before 503 (default 1024)")->type_name("N");
  app.add_option("--drain-grace", flags.drain_grace, "On SIGTERM, time for running requests to finish (default 30s)")
      ->type_name("DURATION");
  cli::set_examples(app, {
      "dsk-serve --model runs/tiny/checkpoints/step-000500 --port 8000",
      "dsk-serve -c configs/serve.example.yaml",
      "dsk-serve --model tiny=registry://tiny@prod --api-key-file keys.txt --port 0",
      "dsk-serve -c serve.yaml --set engine.max_batch=128 --print-config",
  });
  return cli::run(app, argc, argv, common, [&] {
    add_flag_overrides(flags, common);
    return run_server(common, signals);
  });
}
