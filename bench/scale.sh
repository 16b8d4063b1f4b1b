#!/usr/bin/env bash
# bench/scale.sh — what 1,000 running services cost orca-sync: deploys
# SCALE_PROJECTS × SCALE_SERVICES tiny FROM scratch containers (busybox
# httpd, 8 MiB limit) with `orca-sync serve` from a git smart-HTTP remote,
# then prints the no-change sync time and its Docker calls, the first sync
# after a restart of serve, the idle RSS of serve (anonymous and
# file-backed) and the status and drift API answer times; tears everything
# down at the end. Needs Docker and Go. Not part of `go test ./...` (it is
# BenchmarkScale in e2e/bench_scale_test.go, run only with -bench).
#
#   bench/scale.sh                                     # 20 × 50 = 1,000 services
#   SCALE_PROJECTS=5 SCALE_SERVICES=50 bench/scale.sh  # 250
#   SCALE_SYNCS=20 bench/scale.sh                      # medians of 20 syncs and API calls
#   SCALE_PROFILE_DIR=/tmp/prof bench/scale.sh         # + in-process CPU profiles
#
# Docker's default address pools give about 31 bridge networks; each project
# takes one.
set -euo pipefail
cd "$(dirname "$0")/.."

export SCALE_PROJECTS=${SCALE_PROJECTS:-20} SCALE_SERVICES=${SCALE_SERVICES:-50} SCALE_SYNCS=${SCALE_SYNCS:-10}
PREFIX_FILE=$(mktemp /tmp/orca-scale-prefix-XXXXXX)
export SCALE_PREFIX_FILE=$PREFIX_FILE
OUT=$(mktemp /tmp/orca-scale-out-XXXXXX)

# sweep removes what the benchmark left should it have died before its own
# teardown: containers of its projects and their networks.
sweep() {
	local p
	p=$(cat "$PREFIX_FILE" 2>/dev/null || true)
	if [ -n "$p" ]; then
		docker ps -a --filter label=orca.managed=true --format '{{.ID}} {{.Label "orca.project"}}' |
			awk -v p="$p" 'index($2, p) == 1 { print $1 }' | xargs -r -n 50 -P 4 docker rm -f >/dev/null 2>&1 || true
		docker network ls --format '{{.Name}}' | awk -v p="orca-$p" 'index($1, p) == 1' |
			xargs -r docker network rm >/dev/null 2>&1 || true
	fi
	rm -f "$PREFIX_FILE"
}
trap sweep EXIT

echo "load before: $(uptime)"
echo "size: $SCALE_PROJECTS projects × $SCALE_SERVICES services; memory: $(free -m | awk '/^Mem:/ { print $7 " MiB available of " $2 }')"
set +e
go test ./e2e/ -run XXX -bench '^BenchmarkScale$' -benchtime 1x -timeout 90m -v 2>&1 | tee "$OUT" | grep --line-buffered -E '^(scale:|---|FAIL|ok|panic)|bench_scale_test' 
rc=${PIPESTATUS[0]}
set -e
echo "load after: $(uptime)"
echo
echo "| figure | value |"
echo "|---|---|"
sed -n 's/^scale: //p' "$OUT" | grep '^|' || true
grep '^scale: in-process' "$OUT" | sed 's/^scale: //' || true
if [ "$rc" != 0 ]; then
	echo "benchmark failed (exit $rc); full output in $OUT" >&2
	exit "$rc"
fi
rm -f "$OUT"
