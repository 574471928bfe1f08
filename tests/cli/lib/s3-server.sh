# Shared by tests/cli/dsk-upload-*.sh: start s3rver (npm, pinned in scripts/deps/npm-registry.txt)
# on a free loopback port with bucket "models", and stop it on exit. Sets S3_URL and the AWS_*
# variables for its fixed credentials S3RVER / S3RVER. Node needs OpenSSL's legacy provider for
# s3rver's ListObjectsV2 continuation tokens.
s3rver_js="${DSK_SOURCE_DIR:?}/.deps/npm/node_modules/s3rver/bin/s3rver.js"
if [ ! -f "$s3rver_js" ]; then
  echo "s3rver is not installed: run scripts/install-deps" >&2
  exit 77
fi

start_s3_server() {  # start_s3_server DATA_DIR
  local data_dir=$1
  mkdir -p "$data_dir"
  # 10000-19999: below the kernel's ephemeral ports (outgoing connections of tests running beside
  # this one) and the Slurm test's ports (20000 and up).
  S3_PORT=${S3_PORT:-$(( 10000 + RANDOM % 10000 ))}
  node --openssl-legacy-provider "$s3rver_js" -d "$data_dir" -a 127.0.0.1 -p "$S3_PORT" -s \
    --configure-bucket models >"$data_dir.log" 2>&1 &
  S3_PID=$!
  S3_URL="http://127.0.0.1:$S3_PORT"
  for _ in $(seq 100); do
    curl -s -o /dev/null "$S3_URL/models" && return 0
    sleep 0.1
  done
  echo "s3rver did not start on $S3_URL" >&2
  return 1
}

# The start of every upload test: a fresh work directory as the current one (removed on exit,
# after the server is stopped) with the upload state under it, and s3rver serving from it.
# Sets work, S3_URL and AWS_ENDPOINT_URL.
start_s3_test() {
  work=$(mktemp -d)
  trap 'stop_s3_server; rm -rf "$work"' EXIT
  cd "$work"
  export XDG_STATE_HOME=$work/state
  start_s3_server "$work/data"
  export AWS_ENDPOINT_URL=$S3_URL
}

# Parts the upload state files list as sent (a state file is rewritten after each part).
sent_parts() { cat "$XDG_STATE_HOME"/dsk/uploads/*.yaml 2>/dev/null | grep -cE '^  [0-9]+: ' || true; }

wait_for_sent_parts() {  # wait_for_sent_parts N: until N parts are sent, else fail after ~30 s
  for _ in $(seq 3000); do
    [ "$(sent_parts)" -ge "$1" ] && return 0
    sleep 0.01
  done
  echo "FAIL: the upload never reached $1 parts" >&2
  return 1
}

stop_s3_server() {
  [ -n "${S3_PID:-}" ] && kill "$S3_PID" 2>/dev/null && wait "$S3_PID" 2>/dev/null || true
  S3_PID=
}

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent
