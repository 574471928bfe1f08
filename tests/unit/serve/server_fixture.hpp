// A dsk-serve API server on a loopback port over ScriptedEngine models, for the HTTP tests.
#pragma once

#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "scripted_engine.hpp"
#include "serve/http_server.hpp"
#include "serve/served_model.hpp"

namespace dsk::serve::testing {

// A model directory holding only the tiny GPT-2 tokenizer (267 tokens, eos <|endoftext|>) and
// this tokenizer_config.json.
inline std::filesystem::path model_dir_with(const std::string& name, const std::string& tokenizer_config) {
  auto path = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(path);
  std::filesystem::copy_file(DSK_SOURCE_DIR "/tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json", path / "tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(path / "tokenizer_config.json") << tokenizer_config;
  return path;
}

inline std::filesystem::path tiny_model_dir() {
  static std::filesystem::path dir =
      model_dir_with("dsk-serve-test", R"({"eos_token": "<|endoftext|>", "add_bos_token": false})");
  return dir;
}

// The same with a chat template.
inline std::filesystem::path tiny_chat_model_dir() {
  static std::filesystem::path dir = model_dir_with("dsk-serve-chat-test", R"({"eos_token": "<|endoftext|>", "add_bos_token": false,
      "chat_template": "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"})");
  return dir;
}

// A TCP connection to the fixture's port, for what no HTTP client would send.
inline int connect_loopback(int port) {
  int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(sock);
    return -1;
  }
  return sock;
}

// A served version whose engine is a ScriptedEngine (returned through `engine`).
inline std::shared_ptr<ServedModel> scripted_model(const std::string& name, const std::string& version, Script script,
                                                   ScriptedEngine** engine = nullptr,
                                                   const std::filesystem::path& directory = tiny_model_dir()) {
  EngineFactory factory = [&](const std::filesystem::path&, const EngineOptions&) {
    auto made = std::make_unique<ScriptedEngine>(script);
    if (engine) *engine = made.get();
    return made;
  };
  return load_served_model(name, version, directory, factory, EngineOptions{});
}

struct ServerFixture {
  explicit ServerFixture(ApiKeys keys = {}, HttpOptions options = {}) : router(metrics) {
    options.port = 0;
    options.threads = 300;
    server = std::make_unique<ApiServer>(router, metrics, std::move(keys), options);
    port = server->bind();
    thread = std::thread([this] { server->serve(); });
  }
  ~ServerFixture() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(30));
    c.set_tcp_nodelay(true);  // else Nagle + delayed ACK add 40 ms a request
    return c;
  }

  Metrics metrics;
  Router router;
  std::unique_ptr<ApiServer> server;
  int port = 0;
  std::thread thread;
};

}  // namespace dsk::serve::testing
