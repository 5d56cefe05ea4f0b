#!/usr/bin/env bash
# Object-store throughput (issue 25), one run, one server, one file: objstore's
# Put and Get of a 1 GiB artifact (sha256 checked both ways) beside `cp` on the
# same disk (page cache, and with the copy synced to disk), the server alone
# (one SDK PutObject / GetObject, nothing verified), and the AWS CLI's
# `aws s3 cp` (Debian's awscli, installed here) at every concurrency tried,
# its best and its default (10 requests) printed as anchors.
#
#   bash bench/s3_throughput.sh          # MDLM_BENCH_MB=1024 MDLM_BENCH_ROUNDS=2
#   MDLM_BENCH_SMOKE=1 bash bench/s3_throughput.sh   # 16 MiB, one round (CI)
#
# Starts its own Versity gateway (scripts/s3-server.sh) in a temporary state
# directory on loopback and removes it at the end. Prints one line per timing
# ("time <what> <seconds> <MB/s>") and then the ratios to `cp`.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOEXPERIMENT=simd
mb=${MDLM_BENCH_MB:-1024}
rounds=${MDLM_BENCH_ROUNDS:-2}
concurrency=${MDLM_BENCH_AWS_CONCURRENCY:-"1 2 4 10"}
if [ -n "${MDLM_BENCH_SMOKE:-}" ]; then # what CI runs: it must work, not measure
  mb=16 rounds=1 concurrency="2 10"
fi
export DEBIAN_FRONTEND=noninteractive
command -v aws >/dev/null || { apt-get update -qq && apt-get install -y -qq awscli >/dev/null; }

work=$(mktemp -d /tmp/mdlm-s3bench.XXXXXX)
export MDLM_S3_STATE=$work/server
cleanup() { bash scripts/s3-server.sh stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
eval "$(bash scripts/s3-server.sh start)"
export AWS_ACCESS_KEY_ID=$MDLM_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$MDLM_TEST_S3_SECRET_KEY
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN

src=$work/data.bin
head -c $((mb << 20)) /dev/urandom >"$src"
echo "file: $mb MiB; load: $(cut -d' ' -f1-3 /proc/loadavg)"

# timed WHAT CMD...: runs CMD, prints "time WHAT seconds MB/s".
timed() {
  local what=$1
  shift
  local t0 t1
  sync # earlier writes' dirty pages must not throttle this one
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  awk -v w="$what" -v a="$t0" -v b="$t1" -v mb="$mb" 'BEGIN { d = b - a; printf "time %-34s %8.3f s %7.0f MB/s\n", w, d, mb / d }'
}

# awscfg N: an AWS CLI config file with N concurrent requests, 64 MiB parts
# (objstore's part size; the CLI's default is 8 MiB).
awscfg() {
  local f=$work/aws-$1-$2.cfg
  printf '[default]\ns3 =\n  max_concurrent_requests = %s\n  multipart_chunksize = %s\n  multipart_threshold = 64MB\n' "$1" "$2" >"$f"
  echo "$f"
}

s3url=s3://$MDLM_TEST_S3_BUCKET/bench
for r in $(seq 1 "$rounds"); do
  echo "round $r (load $(cut -d' ' -f1-3 /proc/loadavg))"
  timed "cp" cp "$src" "$work/copy.bin"
  rm -f "$work/copy.bin"
  timed "cp + sync" sh -c "cp '$src' '$work/copy.bin' && sync '$work/copy.bin'"
  rm -f "$work/copy.bin"
  for c in $concurrency; do
    for chunk in 8MB 64MB; do
      cfg=$(awscfg "$c" "$chunk")
      timed "aws s3 cp up c$c/$chunk" env AWS_CONFIG_FILE="$cfg" aws s3 cp --only-show-errors --endpoint-url "$MDLM_TEST_S3_ENDPOINT" "$src" "$s3url/aws.bin"
      timed "aws s3 cp down c$c/$chunk" env AWS_CONFIG_FILE="$cfg" aws s3 cp --only-show-errors --endpoint-url "$MDLM_TEST_S3_ENDPOINT" "$s3url/aws.bin" "$work/aws-back.bin"
      cmp -s "$src" "$work/aws-back.bin" || { echo "aws s3 cp: the copy back differs" >&2; exit 1; }
      rm -f "$work/aws-back.bin"
      aws s3 rm --only-show-errors --endpoint-url "$MDLM_TEST_S3_ENDPOINT" "$s3url/aws.bin"
    done
  done
  # objstore: TestThroughput's own lines (cp, server alone, Put, Get).
  MDLM_TEST_S3_BENCH_MB=$mb go test -count=1 -run '^TestThroughput$' -v ./objstore/ 2>&1 |
    awk '/s +[0-9]+ MB\/s/ { sub(/^ *[a-z_]+\.go:[0-9]+: */, ""); n = split($0, f, " "); w = ""; for (i = 1; i <= n - 3; i++) w = w (i > 1 ? " " : "") f[i]; printf "time %-34s %8.3f s %7.0f MB/s\n", w, f[n-2] + 0, f[n-1] }'
done | tee "$work/times.txt"

# Ratios: each side's best round against cp's best (and against cp + sync).
awk '
  $1 == "time" { w = ""; for (i = 2; i <= NF - 4; i++) w = w (i > 2 ? " " : "") $i; s = $(NF-3) + 0
                 if (!(w in best) || s < best[w]) best[w] = s }
  END {
    cp = best["cp"]; cps = best["cp + sync"]
    for (w in best) if (w ~ /^aws s3 cp up/ && (!("up" in aws) || best[w] < aws["up"])) { aws["up"] = best[w]; awsw["up"] = w }
    for (w in best) if (w ~ /^aws s3 cp down/ && (!("down" in aws) || best[w] < aws["down"])) { aws["down"] = best[w]; awsw["down"] = w }
    put = best["objstore Put (sha256 checked)"]; get = best["objstore Get (sha256 verified)"]
    printf "ratio put/cp %.1f  put/(cp+sync) %.2f  put/best-aws %.2f (%s)  put/aws-default %.2f\n", put / cp, put / cps, put / aws["up"], awsw["up"], put / best["aws s3 cp up c10/8MB"]
    printf "ratio get/cp %.1f  get/(cp+sync) %.2f  get/best-aws %.2f (%s)  get/aws-default %.2f\n", get / cp, get / cps, get / aws["down"], awsw["down"], get / best["aws s3 cp down c10/8MB"]
  }' "$work/times.txt"
