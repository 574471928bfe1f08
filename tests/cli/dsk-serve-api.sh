#!/usr/bin/env bash
# dsk-serve over curl with the real engine (CPU): a greedy completion equals dsk-train sample's for the
# same checkpoint and prompt, streamed or not; chat through the checkpoint's chat template; OpenAI's
# errors with their statuses (400, 401, 404, 413); /metrics; SIGHUP reloads the config; SIGTERM lets a
# running stream finish and exits 143.
set -euo pipefail
source "$(dirname "$0")/lib/serve-fixture.sh"
start_serve_test
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

# Usage errors: exit 2 with one line naming the problem, before the port is taken.
expect_usage() {  # expect_usage MESSAGE ARGS...
  local message=$1 status=0
  shift
  dsk-serve "$@" 2>err.txt || status=$?
  [ "$status" = 2 ] && grep -q "^dsk-serve: error: .*$message" err.txt && ! grep -q listening err.txt ||
    fail "dsk-serve $*: exit $status: $(cat err.txt)"
}
expect_usage "no model to serve"
expect_usage "is not a directory" --model "$PWD/none"
expect_usage "has no tokenizer.json" --model "$PWD/run"
expect_usage "must be at most 65535" --model "$CHECKPOINT" --port 99999
printf 'models: [{name: a, source: %s, fallback: b, max_queue_wait: 1s}]\n' "$CHECKPOINT" >bad.yaml
expect_usage "not in models" -c bad.yaml

prompt="And God said"
expected=$(greedy "$CHECKPOINT" "$prompt" 24)

cp -r "$CHECKPOINT" chat-model
python3 - chat-model/tokenizer_config.json <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["chat_template"] = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
json.dump(config, open(sys.argv[1], "w"))
PY
printf '# keys\nsk-test-1\n\nsk-test-2\n' >keys.txt
cat >serve.yaml <<EOF2
models:
  - {name: tiny, source: $CHECKPOINT}
  - {name: chat, source: chat-model}
http:
  max_body: 64KiB
EOF2
start_server serve.log -c serve.yaml --api-key-file keys.txt "${device_flags[@]}"
auth=(-H 'Authorization: Bearer sk-test-2')

# Whole and streamed: the same text as dsk-train sample.
answer=$(post /v1/completions "{\"model\": \"tiny\", \"prompt\": \"$prompt\", \"max_tokens\": 24, \"temperature\": 0}" "${auth[@]}")
[ "$(tail -1 <<<"$answer")" = 200 ] || fail "completion: $answer"
text=$(head -n -1 <<<"$answer" | json 'd["choices"][0]["text"]')
[ "$text" = "$expected" ] || fail "completion text '$text' differs from dsk-train sample's '$expected'"
[ "$(head -n -1 <<<"$answer" | json 'd["usage"]["completion_tokens"]')" = 24 ] || fail "usage: $answer"
[ "$(head -n -1 <<<"$answer" | json 'd["system_fingerprint"]')" = tiny@local ] || fail "fingerprint: $answer"

curl -sN "${auth[@]}" -H 'Content-Type: application/json' "$BASE/v1/completions" \
  -d "{\"model\": \"tiny\", \"prompt\": \"$prompt\", \"max_tokens\": 24, \"temperature\": 0, \"stream\": true,
       \"stream_options\": {\"include_usage\": true}}" >stream.txt
[ "$(tail -2 stream.txt | head -1)" = "data: [DONE]" ] || fail "the stream does not end with [DONE]: $(tail -3 stream.txt)"
streamed=$(python3 - stream.txt <<'PY'
import json, sys
text, usage = "", None
for line in open(sys.argv[1]):
    if line.startswith("data: {"):
        chunk = json.loads(line[6:])
        for choice in chunk["choices"]:
            text += choice["text"]
        usage = chunk.get("usage") or usage
assert usage and usage["completion_tokens"] == 24, usage
sys.stdout.write(text)
PY
)
[ "$streamed" = "$expected" ] || fail "streamed text '$streamed' differs from '$expected'"

# Chat: the template's prompt, then the model's greedy continuation of it.
chat_prompt=$'user: Hi\nassistant:'
chat_expected=$(greedy chat-model "$chat_prompt" 8)
answer=$(post /v1/chat/completions '{"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0}' "${auth[@]}")
[ "$(tail -1 <<<"$answer")" = 200 ] || fail "chat: $answer"
[ "$(head -n -1 <<<"$answer" | json 'd["choices"][0]["message"]["content"]')" = "$chat_expected" ] || fail "chat text: $answer vs '$chat_expected'"

# Errors.
expect_error() {  # expect_error STATUS TYPE ANSWER
  [ "$(tail -1 <<<"$3")" = "$1" ] || fail "expected $1, got: $3"
  [ "$(head -n -1 <<<"$3" | json 'd["error"]["type"]')" = "$2" ] || fail "expected error type $2: $3"
}
expect_error 401 invalid_request_error "$(post /v1/completions '{"model": "tiny", "prompt": "x"}')"
expect_error 401 invalid_request_error "$(post /v1/completions '{"model": "tiny", "prompt": "x"}' -H 'Authorization: Bearer sk-wrong')"
expect_error 400 invalid_request_error "$(post /v1/completions '{"model": "tiny", "prompt": ' "${auth[@]}")"
expect_error 400 invalid_request_error "$(post /v1/completions '{"model": "tiny", "prompt": "x", "temperature": 9}' "${auth[@]}")"
expect_error 400 invalid_request_error "$(post /v1/completions '{"model": "tiny", "prompt": "x", "max_tokens": 100000}' "${auth[@]}")"
expect_error 404 invalid_request_error "$(post /v1/completions '{"model": "nope", "prompt": "x"}' "${auth[@]}")"
expect_error 400 invalid_request_error "$(post /v1/chat/completions '{"model": "tiny", "messages": [{"role": "user", "content": "x"}]}' "${auth[@]}")"
head -c 100000 /dev/zero | tr '\0' ' ' >big.json
answer=$(curl -s -w '\n%{http_code}' "${auth[@]}" -H 'Content-Type: application/json' --data-binary @big.json "$BASE/v1/completions")
expect_error 413 invalid_request_error "$answer"
grep -q 'sk-test' serve.log && fail "an API key reached the log"

# /v1/models and /metrics (open without a key, as /health and /ready are).
models=$(curl -s "${auth[@]}" "$BASE/v1/models")
[ "$(json '[m["id"] for m in d["data"]]' <<<"$models")" = "['chat', 'tiny']" ] || fail "models: $models"
metrics=$(curl -s "$BASE/metrics")
for line in 'dsk_serve_requests_total{endpoint="completions",model="tiny",status="200"} 2' \
            'dsk_serve_requests_total{endpoint="completions",model="nope",status="404"} 1' \
            'dsk_serve_generation_tokens_total{model="tiny",version="local"} 48' \
            'dsk_serve_queue_depth{model="tiny",version="local"} 0'; do
  grep -qF "$line" <<<"$metrics" || fail "/metrics lacks: $line"
done
grep -q '^dsk_serve_kv_blocks_total{model="tiny",version="local"} [1-9]' <<<"$metrics" || fail "no KV blocks in /metrics"

# SIGHUP: the config again; a model taken out is no longer served, the other one still is; the
# key file is read again.
printf 'models:\n  - {name: tiny, source: %s}\n' "$PWD/$CHECKPOINT" >serve.yaml
printf 'sk-test-3\n' >keys.txt
kill -HUP "$SERVER_PID"
auth=(-H 'Authorization: Bearer sk-test-3')
for _ in $(seq 100); do
  [ "$(curl -s "${auth[@]}" "$BASE/v1/models" | json '[m["id"] for m in d["data"]]' 2>/dev/null)" = "['tiny']" ] && break
  sleep 0.1
done
[ "$(curl -s "${auth[@]}" "$BASE/v1/models" | json '[m["id"] for m in d["data"]]')" = "['tiny']" ] || fail "SIGHUP did not reload"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sk-test-2' "$BASE/v1/models")" = 401 ] ||
  fail "a key removed from the key file still works after SIGHUP"

# SIGTERM during a stream: the stream finishes (its [DONE] arrives), then exit 143.
curl -sN "${auth[@]}" -H 'Content-Type: application/json' "$BASE/v1/completions" \
  -d '{"model": "tiny", "prompt": "x", "max_tokens": 100, "stream": true}' >draining.txt &
curl_pid=$!
for _ in $(seq 100); do grep -q '^data: {' draining.txt 2>/dev/null && break; sleep 0.05; done
stop_server TERM
wait "$curl_pid"
[ "$SERVER_STATUS" = 143 ] || fail "SIGTERM: exit $SERVER_STATUS, expected 143"
grep -q '^data: \[DONE\]' draining.txt || fail "the running stream was cut: $(tail -2 draining.txt)"
grep -q 'error' draining.txt && fail "the running stream ended in an error: $(grep error draining.txt)"
echo "dsk-serve-api: ok"
