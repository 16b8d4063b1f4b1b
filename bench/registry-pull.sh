#!/usr/bin/env bash
# bench/registry-pull.sh — what a pull with credentials costs against a real
# registry on loopback: Debian's docker-registry with htpasswd basic auth, as
# the e2e registry tests run it, and `docker login` credentials in a private
# DOCKER_CONFIG (the engine gets them in X-Registry-Auth, as orca-sync sends
# them). Measures, ROUNDS times each:
#   cold     — the image is not on the host: manifest, auth and the layer
#   latest   — the tag is on the host and did not move: what a sync with
#              pull_policy = "always" costs per image (no layer downloaded)
# The image is the e2e test app's size (SIZE_MB of random data FROM scratch,
# unique per run so a cold pull really downloads it). Needs Docker and
# apt-get (installs docker-registry and apache2-utils). Not part of go test.
#
#   bench/registry-pull.sh            # 5 rounds, 8 MiB
#   ROUNDS=10 SIZE_MB=50 bench/registry-pull.sh
set -euo pipefail

ROUNDS=${ROUNDS:-5}
SIZE_MB=${SIZE_MB:-8}
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
if ((${#need[@]})); then
	echo "installing ${need[*]} (apt-get)" >&2
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
ref=$host/bench/app:latest
pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
reg_pid=
cleanup() {
	[ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null
	docker rmi "$ref" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

htpasswd -Bbc "$work/htpasswd" bench "$pass" 2>/dev/null
cat >"$work/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/data}}
http: {addr: $host, secret: bench}
auth: {htpasswd: {realm: bench, path: $work/htpasswd}}
YML
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://$host/v2/" && break; sleep 0.1; done

export DOCKER_CONFIG=$work/docker
echo "$pass" | docker login "$host" -u bench --password-stdin >/dev/null 2>&1
mkdir "$work/ctx"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$work/ctx/blob"
printf 'FROM scratch\nCOPY blob /blob\n' >"$work/ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$ref" "$work/ctx" >/dev/null 2>&1
docker push -q "$ref" >/dev/null

ms() { date +%s%N; }
cold=() latest=()
for _ in $(seq "$ROUNDS"); do
	docker rmi "$ref" >/dev/null
	t0=$(ms); docker pull -q "$ref" >/dev/null; t1=$(ms)
	cold+=($(((t1 - t0) / 1000000)))
	t0=$(ms); docker pull -q "$ref" >/dev/null; t1=$(ms)
	latest+=($(((t1 - t0) / 1000000)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "pull with auth of a ${SIZE_MB} MiB image from $host, $ROUNDS rounds (ms):"
echo "  cold (not on the host):  ${cold[*]}  median $(median "${cold[@]}")"
echo "  latest, digest unmoved:  ${latest[*]}  median $(median "${latest[@]}")"
