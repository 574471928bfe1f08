#!/usr/bin/env bash
# dsk-serve with the official OpenAI Node SDK (npm openai, pinned in scripts/deps/npm-serve.txt) as
# the client, unchanged but for baseURL and apiKey: completions and chat, whole and streamed, with
# the same greedy text as dsk-train sample; models.list; the SDK's typed errors for 400, 401 and 404.
set -euo pipefail
source "$(dirname "$0")/lib/serve-fixture.sh"
sdk="${DSK_NPM_DIR:-${DSK_SOURCE_DIR:?}/.deps/npm}/node_modules/openai"
if [ ! -f "$sdk/package.json" ]; then
  echo "the openai npm package is not installed: run scripts/install-deps" >&2
  exit 77
fi
start_serve_test
python3 - "$CHECKPOINT/tokenizer_config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["chat_template"] = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
json.dump(config, open(sys.argv[1], "w"))
PY

prompt="In the beginning"
expected=$(greedy "$CHECKPOINT" "$prompt" 20)
chat_prompt=$'system: Be brief.\nuser: Who made the earth?\nassistant:'
chat_expected=$(greedy "$CHECKPOINT" "$chat_prompt" 12)
export PROMPT=$prompt EXPECTED=$expected CHAT_EXPECTED=$chat_expected SDK=$sdk

export DSK_SERVE_API_KEY=sk-sdk-test
start_server serve.log --model "tiny=$CHECKPOINT" "${device_flags[@]}"
export BASE

node - <<'JS'
const OpenAI = require(process.env.SDK);
const assert = require("assert");
const client = new OpenAI({ baseURL: process.env.BASE + "/v1", apiKey: "sk-sdk-test", maxRetries: 0 });
const { PROMPT, EXPECTED, CHAT_EXPECTED } = process.env;
const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "Who made the earth?" }];

async function expectError(promise, type, status) {
  try {
    await promise;
  } catch (error) {
    assert(error instanceof type, `expected ${type.name}, got ${error.constructor.name}: ${error.message}`);
    assert.strictEqual(error.status, status);
    assert(error.error && typeof error.error.message === "string", "OpenAI's error body");
    return;
  }
  assert.fail(`expected ${type.name}`);
}

(async () => {
  const completion = await client.completions.create({ model: "tiny", prompt: PROMPT, max_tokens: 20, temperature: 0 });
  assert.strictEqual(completion.choices[0].text, EXPECTED);
  assert.strictEqual(completion.usage.completion_tokens, 20);
  assert.strictEqual(completion.object, "text_completion");

  let streamed = "", usage = null;
  const stream = await client.completions.create({
    model: "tiny", prompt: PROMPT, max_tokens: 20, temperature: 0, stream: true, stream_options: { include_usage: true } });
  for await (const chunk of stream) {
    for (const choice of chunk.choices) streamed += choice.text;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.strictEqual(streamed, EXPECTED);
  assert.strictEqual(usage.completion_tokens, 20);

  const chat = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 12, temperature: 0 });
  assert.strictEqual(chat.choices[0].message.role, "assistant");
  assert.strictEqual(chat.choices[0].message.content, CHAT_EXPECTED);
  assert.strictEqual(chat.system_fingerprint, "tiny@local");

  let chatStreamed = "";
  const chatStream = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 12, temperature: 0, stream: true });
  for await (const chunk of chatStream) chatStreamed += chunk.choices[0]?.delta?.content ?? "";
  assert.strictEqual(chatStreamed, CHAT_EXPECTED);

  // n and stop, as the SDK sends them.
  const several = await client.completions.create({ model: "tiny", prompt: PROMPT, max_tokens: 20, temperature: 0, n: 2, stop: [EXPECTED.slice(3, 6)] });
  assert.strictEqual(several.choices.length, 2);
  for (const choice of several.choices) {
    assert.strictEqual(choice.text, EXPECTED.slice(0, EXPECTED.indexOf(EXPECTED.slice(3, 6))));
    assert.strictEqual(choice.finish_reason, "stop");
  }

  const models = await client.models.list();
  assert.deepStrictEqual(models.data.map((m) => m.id), ["tiny"]);

  await expectError(client.completions.create({ model: "tiny", prompt: "x", temperature: 5 }), OpenAI.BadRequestError, 400);
  await expectError(client.completions.create({ model: "missing", prompt: "x" }), OpenAI.NotFoundError, 404);
  const stranger = new OpenAI({ baseURL: process.env.BASE + "/v1", apiKey: "sk-wrong", maxRetries: 0 });
  await expectError(stranger.completions.create({ model: "tiny", prompt: "x" }), OpenAI.AuthenticationError, 401);
  console.log("sdk: ok");
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
JS
stop_server TERM
[ "$SERVER_STATUS" = 143 ] || fail "exit $SERVER_STATUS after SIGTERM"
echo "dsk-serve-openai-sdk: ok"
