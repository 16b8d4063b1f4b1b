#!/usr/bin/env bash
# bench/coldstart.sh — how long `orca-sync serve` takes from its start to the
# proxy answering, and how big the binary is.
#
# The infra repository is examples/infra grown to SERVICES services (default
# 100): the example's cluster.toml (TLS off, so no certificate is involved),
# PROJECTS projects (default 4: Docker's default address pools give about 31
# bridge networks, shared with whatever else runs on the engine) of routed
# services, each on its own domain, all running the e2e test app in a FROM
# scratch image built here. It prints, for ROUNDS rounds each:
#   create   serve started on an empty engine: every container is created
#   restart  serve stopped (SIGTERM) and started again, its containers running
# the time to the first proxied 200 (for s000's domain) and to a 200 from
# every domain, then the binary's size with and without the release flags.
#
#   bench/coldstart.sh
#   ROUNDS=5 SERVICES=40 PROJECTS=2 bench/coldstart.sh
#   ORCA_SYNC_BIN=/tmp/variant bench/coldstart.sh   # a prebuilt orca-sync
#   KEEP_LOG=/tmp/serve.log bench/coldstart.sh       # keep serve's log
#
# Needs Docker, Go, git and curl. Not part of `go test ./...`.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SERVICES=${SERVICES:-100}
PROJECTS=${PROJECTS:-4}
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TAG=cs$$ # prefix of the projects, so parallel runs and other tests never meet
IMAGE=orca-coldstart/app:v1

WORK=$(mktemp -d /tmp/orca-coldstart-XXXXXX)
SERVE_PID=
projects=()
for p in $(seq 1 "$PROJECTS"); do projects+=("$(printf '%sp%02d' "$TAG" "$p")"); done
remove_containers() {
	for p in "${projects[@]}"; do
		docker ps -aq --filter "label=orca.project=$p" | xargs -r docker rm -f >/dev/null 2>&1 || true
	done
}
cleanup() {
	[ -n "${KEEP_LOG:-}" ] && cp "$WORK/orca.log" "$KEEP_LOG" 2>/dev/null
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
	remove_containers
	for p in "${projects[@]}"; do docker network rm "orca-$p" >/dev/null 2>&1 || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b-a }'; }

echo "building orca-sync (plain and release flags) and the test app image" >&2
go build -o "$WORK/orca-sync.plain" ./cmd/orca-sync
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$WORK/orca-sync.release" ./cmd/orca-sync
BIN=${ORCA_SYNC_BIN:-$WORK/orca-sync.release}
mkdir -p "$WORK/img"
(cd e2e && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/img/app" ./testapp)
printf 'FROM scratch\nCOPY app /app\nENV VERSION=coldstart\nEXPOSE 8080\nENTRYPOINT ["/app"]\n' >"$WORK/img/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$WORK/img" >/dev/null

# The infra repository: examples/infra's cluster.toml (TLS off), then
# SERVICES services spread over the projects, s000 to s<N-1>.
INFRA=$WORK/infra
mkdir -p "$INFRA"
sed 's/^tls = .*/tls = "off"/' examples/infra/cluster.toml >"$INFRA/cluster.toml"
domains=()
for i in $(seq 0 $((SERVICES - 1))); do
	p=${projects[$((i % PROJECTS))]}
	name=$(printf 's%03d' "$i")
	domains+=("$name.coldstart.test")
	mkdir -p "$INFRA/services/$p"
	cat >>"$INFRA/services/$p/service.toml" <<TOML
[[service]]
name = "$name"
image = "$IMAGE"
pull_policy = "never"
port = 8080
domain = "$name.coldstart.test"
health = "/healthz"

TOML
done
git -C "$INFRA" init -q -b main
git -C "$INFRA" add -A
git -C "$INFRA" -c user.name=bench -c user.email=bench@localhost commit -qm coldstart

PROXY_PORT=$(freeport)
API_PORT=$(freeport)
DATA=$WORK/data
start_serve() {
	"$BIN" serve --repo "$INFRA" --data-dir "$DATA" --listen "127.0.0.1:$API_PORT" \
		--http-addr "127.0.0.1:$PROXY_PORT" --node coldstart >>"$WORK/orca.log" 2>&1 &
	SERVE_PID=$!
}
stop_serve() {
	kill -TERM "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null || true
	SERVE_PID=
}
# ok200 URL...: the URLs the proxy answers 200 for, in one curl process
# (connections reused), each host's name sent as its Host header.
ok200() {
	local args=() u
	for u in "$@"; do args+=(-o /dev/null "$u"); done
	curl -s -m 5 --connect-to "::127.0.0.1:$PROXY_PORT" -w '%{http_code} %{url_effective}\n' "${args[@]}" 2>/dev/null |
		awk '$1 == 200 { print $2 }' || true
}
url() { echo "http://$1/"; }
# wait_200 DOMAIN...: poll until the proxy has answered 200 for every DOMAIN
# (at most 10 min).
wait_200() {
	local deadline=$(($(date +%s) + 600)) left=() d
	for d in "$@"; do left+=("$(url "$d")"); done
	while ((${#left[@]})); do
		if [ "$(date +%s)" -gt "$deadline" ]; then
			echo "no 200 for ${left[0]} after 10 min; serve's log:" >&2
			tail -20 "$WORK/orca.log" >&2
			exit 1
		fi
		local ok
		ok=$(ok200 "${left[@]}")
		local next=()
		for d in "${left[@]}"; do grep -qxF "$d" <<<"$ok" || next+=("$d"); done
		left=("${next[@]+"${next[@]}"}")
		((${#left[@]})) && sleep 0.02
	done
	return 0
}
declare -A RESULTS
# measure CASE ROUND: start serve; record the seconds to the first 200 and to
# a 200 from every domain.
measure() {
	local t0 first all
	t0=$(now)
	start_serve
	wait_200 "${domains[0]}"
	first=$(since "$t0")
	wait_200 "${domains[@]}"
	all=$(since "$t0")
	echo "round $2 $1: first 200 after ${first}s, every domain after ${all}s" >&2
	RESULTS[$1]+="$first $all;"
}

for r in $(seq 1 "$ROUNDS"); do
	remove_containers
	rm -rf "$DATA"
	measure create "$r"
	stop_serve
	measure restart "$r"
	stop_serve
done

median() { echo "${RESULTS[$1]}" | tr ';' '\n' | awk -v f="$2" 'NF{print $f}' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
printf '\n%-8s %18s %18s   (%d services in %d projects, median of %d rounds)\n' case "first 200 (s)" "all 200 (s)" "$SERVICES" "$PROJECTS" "$ROUNDS"
for c in create restart; do
	printf '%-8s %18s %18s\n' "$c" "$(median "$c" 1)" "$(median "$c" 2)"
done

size() { stat -c %s "$1" | awk '{ printf "%.1f MiB (%d bytes)", $1/1048576, $1 }'; }
printf '\nbinary size\n'
printf '  go build                                                %s\n' "$(size "$WORK/orca-sync.plain")"
printf '  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w"       %s\n' "$(size "$WORK/orca-sync.release")"
