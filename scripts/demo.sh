#!/usr/bin/env bash
# Sets up and runs regkit's main jobs on the bundled example tree
# (tests/fixtures/sample, written by the real registry), then proves the
# results with the real tools: skopeo reads the extracted dir: folders, and
# the real registry serves the selected tree.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cargo build --release --quiet
regkit=target/release/regkit
root=tests/fixtures/sample
out=$(mktemp -d /tmp/regkit-demo.XXXXXX)
trap 'kill "${reg:-}" 2>/dev/null || true; rm -rf "$out"' EXIT

echo "== regkit ls $root"
$regkit ls "$root"

echo; echo "== regkit extract $root $out/dir   (every tag, by hardlinks)"
$regkit extract "$root" "$out/dir"
echo "skopeo copy --all of the multi-arch image from dir:"
skopeo --insecure-policy copy -q --all "dir:$out/dir/multi/docker-list:1" "dir:$out/copy"
echo "  digest $(sha256sum < "$out/copy/manifest.json" | cut -c1-64) (source: $($regkit ls "$root" --json | python3 -c 'import json,sys; print([e["digest"] for e in json.load(sys.stdin) if e["name"]=="multi/docker-list:1"][0])'))"

echo; echo "== regkit select $root $out/release multi/docker-list:1 team/app:v1"
$regkit select "$root" "$out/release" multi/docker-list:1 team/app:v1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' "$out/release" "$port" > "$out/config.yml"
docker-registry serve "$out/config.yml" >/dev/null 2>&1 & reg=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
echo "the real registry on the selected tree serves: $(curl -s "http://127.0.0.1:$port/v2/_catalog")"
skopeo --insecure-policy copy -q --all --src-tls-verify=false "docker://127.0.0.1:$port/multi/docker-list:1" "dir:$out/pulled"
echo "skopeo copy --all docker://127.0.0.1:$port/multi/docker-list:1: ok"

echo; echo "== regkit pack, unpack into an empty site, verify"
$regkit pack "$root" "$out/release.tar.gz" multi/docker-list:1 team/app:v1 team/app:v2
$regkit unpack "$out/release.tar.gz" "$out/site"
$regkit verify "$out/site"

echo; echo "== regkit serve $out/release.tar.gz   (the bundle as a read-only registry, nothing unpacked)"
sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$regkit -q serve "$out/release.tar.gz" --addr "127.0.0.1:$sport" & srv=$!
trap 'kill "${reg:-}" "${srv:-}" 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$sport/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
skopeo --insecure-policy copy -q --all --src-tls-verify=false "docker://127.0.0.1:$sport/team/app:v2" "dir:$out/served"
echo "skopeo copy --all docker://127.0.0.1:$sport/team/app:v2: digest $(sha256sum < "$out/served/manifest.json" | cut -c1-64)"

echo; echo "== regkit du $root --top 3"
$regkit du "$root" --top 3
