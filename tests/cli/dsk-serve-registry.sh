#!/usr/bin/env bash
# dsk-serve with models from the registry (s3rver on loopback): registry://tiny@prod with weights
# 1.0=90,1.1=10 splits 2,000 requests within 5 standard deviations of 10% (the version in the
# x-dsk-model-version header and system_fingerprint); a user sticks to one version; a weight change
# and a new version take effect through the periodic alias re-read, without a restart.
set -euo pipefail
source "$(dirname "$0")/lib/serve-fixture.sh"
source "${DSK_SOURCE_DIR:?}/tests/cli/lib/s3-server.sh"
start_s3_test
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; stop_s3_server; rm -rf "$work"' EXIT
export DSK_REGISTRY=s3://models/team DSK_CACHE_DIR=$work/cache
make_checkpoint
for version in 1.0 1.1 1.2; do dsk-upload -q "$CHECKPOINT" --name tiny --model-version "$version" >/dev/null; done
dsk-upload -q alias tiny prod 1.0=90,1.1=10 >/dev/null

cat >serve.yaml <<EOF2
models: [{name: tiny, source: "registry://tiny@prod"}]
registry: {refresh: 1s}
EOF2
start_server serve.log -c serve.yaml "${device_flags[@]}"

# requests N [USER]: the version of each answer, one per line.
requests() {
  python3 - "$BASE" "$1" "${2:-}" <<'PY'
import http.client, json, sys, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
count, user = int(sys.argv[2]), sys.argv[3]
connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
body = {"model": "tiny", "prompt": "In", "max_tokens": 1}
if user:
    body["user"] = user
for _ in range(count):
    connection.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 200, answer
    version = response.getheader("x-dsk-model-version")
    assert answer["system_fingerprint"] == "tiny@" + version and answer["model"] == "tiny", answer
    print(version)
PY
}

requests 2000 >versions.txt
minority=$(grep -cx 1.1 versions.txt || true)
majority=$(grep -cx 1.0 versions.txt || true)
[ $((minority + majority)) = 2000 ] || fail "versions other than 1.0 and 1.1: $(sort versions.txt | uniq -c)"
# 2,000 x 0.1 = 200, sd = sqrt(2000 x 0.1 x 0.9) = 13.4: 5 sd is 67.
[ "$minority" -ge 133 ] && [ "$minority" -le 267 ] || fail "1.1 served $minority of 2000, expected 200 +- 67"
grep -q '^dsk_serve_version_weight{model="tiny",version="1.1"} 10$' <(curl -s "$BASE/metrics") || fail "weights not in /metrics"
[ "$(requests 30 alice | sort -u | wc -l)" = 1 ] || fail "user alice was served by several versions"

# New weights, then a new version: both without a restart (refresh: 1s).
wait_for_versions() {  # wait_for_versions EXPECTED: until 20 requests in a row all get EXPECTED
  for _ in $(seq 100); do
    [ "$(requests 20 | sort -u)" = "$1" ] && return 0
    sleep 0.2
  done
  fail "the alias change to $1 did not take effect: $(requests 20 | sort | uniq -c)"
}
dsk-upload -q alias tiny prod 1.1=100 >/dev/null
wait_for_versions 1.1
dsk-upload -q alias tiny prod 1.2=100 >/dev/null
wait_for_versions 1.2
grep -q '^dsk_serve_version_weight{model="tiny",version="1.2"} 100$' <(curl -s "$BASE/metrics") || fail "1.2 not in /metrics"
grep -q 'version="1.0"' <(curl -s "$BASE/metrics" | grep '^dsk_serve_version_weight') && fail "1.0 is still routed to"
kill -0 "$SERVER_PID" || fail "dsk-serve restarted or died"
stop_server TERM
[ "$SERVER_STATUS" = 143 ] || fail "exit $SERVER_STATUS after SIGTERM"
echo "dsk-serve-registry: ok"
