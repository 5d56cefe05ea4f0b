#!/usr/bin/env bash
# A real S3-compatible server for the object-store tests (issue 25): Versity's
# S3 gateway with its POSIX backend in a temporary directory, on loopback, with
# throwaway test credentials. Not an in-process fake.
#
#   eval "$(scripts/s3-server.sh start)"   # prints the MDLM_TEST_S3_* and AWS_* exports
#   scripts/s3-server.sh stop
#
# The gateway is built once from the Go module proxy into $MDLM_S3_BIN
# (default ~/.cache/mdlm/s3-server/bin). State (pid, data) lives in
# $MDLM_S3_STATE (default /tmp/mdlm-s3-server).
set -euo pipefail
version=${VERSITYGW_VERSION:-v1.8.0}
bin_dir=${MDLM_S3_BIN:-$HOME/.cache/mdlm/s3-server/bin}
state=${MDLM_S3_STATE:-/tmp/mdlm-s3-server}
access=mdlmtestaccess
secret=mdlmtestsecretkey0123456789
bucket=mdlm-test

build() {
  if [ ! -x "$bin_dir/versitygw" ]; then
    mkdir -p "$bin_dir"
    GOBIN="$bin_dir" go install "github.com/versity/versitygw/cmd/versitygw@$version" >&2
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

start() {
  build
  stop >/dev/null 2>&1 || true
  mkdir -p "$state/data/$bucket"
  local port
  port=$(free_port)
  ROOT_ACCESS_KEY_ID=$access ROOT_SECRET_ACCESS_KEY=$secret \
    setsid "$bin_dir/versitygw" --port "127.0.0.1:$port" posix "$state/data" \
    >"$state/server.log" 2>&1 </dev/null &
  echo $! >"$state/pid"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      cat <<ENV
export MDLM_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export MDLM_TEST_S3_BUCKET=$bucket
export MDLM_TEST_S3_ACCESS_KEY=$access
export MDLM_TEST_S3_SECRET_KEY=$secret
export MDLM_TEST_S3_DATA=$state/data
ENV
      return 0
    fi
    sleep 0.1
  done
  echo "s3-server.sh: versitygw did not listen on 127.0.0.1:$port; see $state/server.log" >&2
  return 1
}

stop() {
  if [ -f "$state/pid" ]; then
    kill "$(cat "$state/pid")" 2>/dev/null || true
    rm -f "$state/pid"
  fi
  rm -rf "$state/data"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
