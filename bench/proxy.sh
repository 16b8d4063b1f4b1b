#!/usr/bin/env bash
# bench/proxy.sh — requests/s, p50 and p99 of the test app reached directly,
# via nginx, via Caddy and via orca-sync's proxy, all on loopback with wrk,
# alternating runs. Needs Docker, Go and apt-get (installs nginx, caddy, wrk).
#
#   bench/proxy.sh                 # 3 rounds of wrk -t1 -c64 -d6s on GET /
#   ROUNDS=5 DURATION=10s CONNS=128 bench/proxy.sh
#   SHAPES=all bench/proxy.sh      # the four shapes of issue 22, one table each:
#                                  # 64 and 512 connections on GET / (7 bytes),
#                                  # 64 connections on 1 KB and on 100 KB bodies
#   SHAPES="512:/ 64:/bytes/4096" bench/proxy.sh   # CONNS:PATH pairs of your own
#   ORCA_SYNC_BIN=/tmp/variant bench/proxy.sh   # a prebuilt orca-sync instead
#
# Equivalent settings everywhere: keep-alive to the upstream (up to 512 idle
# connections, as orca-sync keeps), X-Forwarded-For
# set, no access log. Not part of `go test ./...`.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
HOST=bench.test
cd "$(dirname "$0")/.."
ROOT=$(pwd)

need=()
for b in nginx caddy wrk; do command -v "$b" >/dev/null || need+=("$b"); done
if ((${#need[@]})); then
	echo "installing ${need[*]} (apt-get)" >&2
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian packages start system services; this benchmark runs its own.
systemctl stop nginx caddy >/dev/null 2>&1 || true

WORK=$(mktemp -d /tmp/orca-bench-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	docker ps -aq --filter label=orca.project=bench | xargs -r docker rm -f >/dev/null 2>&1 || true
	docker network rm orca-bench >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "building orca-sync and the test app image" >&2
if [ -n "${ORCA_SYNC_BIN:-}" ]; then # compare a variant build
	cp "$ORCA_SYNC_BIN" "$WORK/orca-sync"
else
	go build -o "$WORK/orca-sync" ./cmd/orca-sync
fi
mkdir -p "$WORK/img"
(cd e2e && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/img/app" ./testapp)
printf 'FROM scratch\nCOPY app /app\nENV VERSION=bench\nEXPOSE 8080\nENTRYPOINT ["/app"]\n' >"$WORK/img/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t orca-bench/app:v1 "$WORK/img" >/dev/null

# The infra repository: one service routed by orca-sync's proxy.
mkdir -p "$WORK/infra/services/bench"
cat >"$WORK/infra/cluster.toml" <<TOML
[acme]
tls = "off"
TOML
cat >"$WORK/infra/services/bench/service.toml" <<TOML
[[service]]
name = "app"
image = "orca-bench/app:v1"
pull_policy = "never"
port = 8080
domain = "$HOST"
TOML
git -C "$WORK/infra" init -q -b main
git -C "$WORK/infra" add -A
git -C "$WORK/infra" -c user.name=bench -c user.email=bench@localhost commit -qm bench

ORCA_PORT=$(freeport)
"$WORK/orca-sync" serve --repo "$WORK/infra" --data-dir "$WORK/data" --listen "127.0.0.1:$(freeport)" \
	--http-addr "127.0.0.1:$ORCA_PORT" --node bench >"$WORK/orca.log" 2>&1 &
PIDS+=($!)
ORCA_PID=$!
for _ in $(seq 1 1200); do # up to 2 min: a busy Docker Engine is slow to start the app
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "http://127.0.0.1:$ORCA_PORT/")" = 200 ] && break
	sleep 0.1
done
CID=$(docker ps -q --filter label=orca.project=bench | head -1)
APP=$(docker inspect -f '{{(index .NetworkSettings.Networks "orca-bench").IPAddress}}' "$CID"):8080
curl -sf "http://$APP/" >/dev/null || { echo "app not reachable at $APP" >&2; cat "$WORK/orca.log" >&2; exit 1; }

NGINX_PORT=$(freeport)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
daemon off;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx;
	proxy_temp_path $WORK/nginx;
	upstream app { server $APP; keepalive 512; }
	server {
		listen 127.0.0.1:$NGINX_PORT;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto \$scheme;
		}
	}
}
CONF
nginx -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
NGINX_PID=$!

CADDY_PORT=$(freeport)
cat >"$WORK/Caddyfile" <<CONF
{
	admin off
	auto_https off
}
http://:$CADDY_PORT {
	bind 127.0.0.1
	reverse_proxy $APP {
		transport http {
			keepalive 90s
			keepalive_idle_conns_per_host 512
		}
	}
}
CONF
XDG_DATA_HOME=$WORK/caddy XDG_CONFIG_HOME=$WORK/caddy caddy run --adapter caddyfile --config "$WORK/Caddyfile" >"$WORK/caddy.log" 2>&1 &
PIDS+=($!)
CADDY_PID=$!
for port in $NGINX_PORT $CADDY_PORT; do
	for _ in $(seq 1 100); do
		curl -s -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$port/" && break
		sleep 0.1
	done
done

for f in "$WORK"/caddy.log "$WORK"/nginx/error.log; do [ -s "$f" ] && { echo "--- $f" >&2; tail -5 "$f" >&2; }; done
declare -A URL=([direct]="http://$APP" [nginx]="http://127.0.0.1:$NGINX_PORT"
	[caddy]="http://127.0.0.1:$CADDY_PORT" [orca-sync]="http://127.0.0.1:$ORCA_PORT")
ORDER=(direct nginx caddy orca-sync)
SHAPES=${SHAPES:-$CONNS:/}
[ "$SHAPES" = all ] && SHAPES="64:/ 512:/ 64:/bytes/1024 64:/bytes/102400"

# The processes whose CPU time a run of each proxy costs (the machine may be
# shared, so req/s moves with the load; CPU per request much less).
declare -A PROCS=([direct]="" [nginx]="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"
	[caddy]="$CADDY_PID" [orca-sync]="$ORCA_PID")
TICK=$(getconf CLK_TCK)
cputicks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }

# run NAME CONNS PATH: one wrk run; prints "rps p50_ms p99_ms cpu_us_per_request"
# (the last 0 for direct: the app's own cost is not counted).
run() {
	local c0 c1
	c0=$(cputicks ${PROCS[$1]})
	wrk -t"$THREADS" -c"$2" -d"$DURATION" --latency -H "Host: $HOST" "${URL[$1]}$3" >"$WORK/wrk.out"
	c1=$(cputicks ${PROCS[$1]})
	awk -v ticks=$((c1 - c0)) -v tick="$TICK" '
		function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
		/^Requests\/sec/ { rps=$2 } / requests in / { n=$1 }
		$1=="50%" { p50=ms($2) } $1=="99%" { p99=ms($2) }
		/Non-2xx|Socket errors/ { print "wrk: " $0 > "/dev/stderr" }
		END { printf "%s %.3f %.3f %.1f\n", rps, p50, p99, (n ? ticks*1e6/tick/n : 0) }' "$WORK/wrk.out"
}

# shape CONNS PATH: warm-up, ROUNDS alternating rounds, then the table.
shape() {
	local conns=$1 path=$2 name r line
	declare -A RESULTS=()
	for name in "${ORDER[@]}"; do
		curl -sf -o /dev/null -H "Host: $HOST" "${URL[$name]}$path" || { echo "$name does not answer at ${URL[$name]}$path" >&2; exit 1; }
		run "$name" "$conns" "$path" >/dev/null # warm-up
	done
	for r in $(seq 1 "$ROUNDS"); do
		for name in "${ORDER[@]}"; do
			line=$(run "$name" "$conns" "$path")
			RESULTS[$name]+="$line;"
			echo "c$conns $path round $r $name: $line" >&2
		done
	done
	# median of field f over the rounds of a name
	median() { echo "${RESULTS[$1]}" | tr ';' '\n' | awk -v f="$2" 'NF{print $f}' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
	printf '\nGET %s, %s connections (median of %d rounds, wrk -t%s -c%s -d%s; load %s)\n' "$path" "$conns" "$ROUNDS" "$THREADS" "$conns" "$DURATION" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '%-10s %12s %10s %10s %14s\n' target "req/s" "p50 ms" "p99 ms" "CPU µs/req"
	for name in "${ORDER[@]}"; do
		printf '%-10s %12.0f %10.3f %10.3f %14.1f\n' "$name" "$(median "$name" 1)" "$(median "$name" 2)" "$(median "$name" 3)" "$(median "$name" 4)"
	done
	paste -d' ' <(echo "${RESULTS[orca-sync]}" | tr ';' '\n') <(echo "${RESULTS[nginx]}" | tr ';' '\n') |
		awk 'NF { r = r sprintf(" %.2fx", $1/$5) } END { print "orca-sync/nginx req/s per round:" r }'
	local o c n op np ou nu
	o=$(median orca-sync 1) c=$(median caddy 1) n=$(median nginx 1) op=$(median orca-sync 3) np=$(median nginx 3)
	ou=$(median orca-sync 4) nu=$(median nginx 4)
	awk -v o="$o" -v c="$c" -v n="$n" -v op="$op" -v np="$np" -v ou="$ou" -v nu="$nu" 'BEGIN {
		printf "orca-sync/nginx req/s: %.2fx   orca-sync/caddy req/s: %.2fx\n", o/n, o/c
		printf "p99 orca-sync %.3f ms vs nginx %.3f ms (%s)\n", op, np, (op <= np ? "no worse" : "worse")
		printf "CPU per request orca-sync/nginx: %.2fx\n", ou/nu
	}'
}

for s in $SHAPES; do
	shape "${s%%:*}" "${s#*:}"
done
