# Section "serve" of scripts/bench.sh (issue 15): wrk against `regkit serve`
# and `docker-registry serve` on the same tree, 16 connections: manifest GETs
# by tag (round robin over every tag) and GETs of one 1 MB blob; regkit from
# the tree and from an uncompressed bundle of it; and regkit's peak memory.
#
# The tree is a hardlinked copy of the bench tree with one image added by
# `regkit import` (bench/big:1, a 1 MiB layer of random bytes), since the
# generated blobs are small. Neither server logs requests (regkit -q;
# docker-registry's access log disabled), both are plain http on 127.0.0.1.
SERVE_SECONDS=${SERVE_SECONDS:-10}

serve_stop() {
  if [ -n "${SERVE_PID:-}" ]; then
    kill "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
    SERVE_PID=
  fi
}

serve_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

serve_wait() {
  local i
  for ((i = 0; i < 600; i++)); do
    curl -fs -o /dev/null "http://$1/v2/" && return 0
    sleep 0.05
  done
  echo "bench serve: nothing answers on $1" >&2
  return 1
}

# serve_wrk NAME HOST LUA: requests per second and MB/s of a wrk run.
serve_wrk() {
  local out rps mbs non2xx
  out=$(wrk -t2 -c16 -d"${SERVE_SECONDS}s" -s "$3" "http://$2" 2>&1)
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  if [ -n "$non2xx" ]; then
    echo "bench serve: $1: $non2xx answers were not 2xx" >&2
    echo "$out" >&2
    return 1
  fi
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  mbs=$(echo "$out" | awk '/^Transfer\/sec:/ {
      v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v);
      if (u == "GB") v *= 1024; else if (u == "KB") v /= 1024; else if (u == "B") v /= 1048576;
      print v }')
  T["$1 rps"]=$rps
  T["$1 MB/s"]=$mbs
  printf '  %-40s %10.0f req/s %9.1f MB/s\n' "$1" "$rps" "$mbs" >&2
}

section_serve() {
  echo "serve: wrk, 16 connections, ${SERVE_SECONDS}s a run, on $TAGS tags" >&2
  command -v wrk >/dev/null || { echo "bench serve: wrk is missing (scripts/install-deps.sh)" >&2; return 1; }
  local tree=$WORK/serve-tree bundle=$WORK/serve.tar img=$WORK/serve-big port cfg=$WORK/serve-registry.yml
  rm -rf "$tree" "$img" "$bundle" "$bundle.json"
  cp -al "$TREE" "$tree"
  python3 - "$img" <<'EOF'
import hashlib, json, os, sys
d = sys.argv[1]
os.makedirs(d)
layer = os.urandom(1 << 20)
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": []}}).encode()
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(os.path.join(d, h), "wb").write(b)
    return "sha256:" + h
manifest = json.dumps({"schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": put(config)},
    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": put(layer)}]}).encode()
open(os.path.join(d, "manifest.json"), "wb").write(manifest)
open(os.path.join(d, "version"), "w").write("Directory Transport Version: 1.1\n")
EOF
  "$REGKIT" -q import "$img" "$tree" --repo bench/big:1 >/dev/null
  "$REGKIT" -q pack "$tree" "$bundle" --compress none >/dev/null
  local layer
  layer=$("$REGKIT" inspect "$tree" bench/big:1 --raw | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')

  # wrk scripts: every tag in turn, and the big blob.
  "$REGKIT" ls "$tree" --json | python3 -c '
import json, sys
paths = ["/v2/%s/manifests/%s" % tuple(e["name"].rsplit(":", 1)) for e in json.load(sys.stdin)]
print("paths = {" + ",".join(json.dumps(p) for p in paths) + "}")
print("""i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], {["Accept"] = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"})
end""")' > "$WORK/serve-manifests.lua"
  printf 'request = function() return wrk.format("GET", "/v2/bench/big/blobs/%s") end\n' "$layer" > "$WORK/serve-blob.lua"

  local name root
  for name in tree bundle; do
    root=$tree; [ "$name" = bundle ] && root=$bundle
    port=$(serve_port)
    "$REGKIT" -q serve "$root" --addr "127.0.0.1:$port" >/dev/null 2>"$WORK/serve-$name.log" &
    SERVE_PID=$!
    serve_wait "127.0.0.1:$port"
    serve_wrk "regkit ($name) manifests" "127.0.0.1:$port" "$WORK/serve-manifests.lua"
    serve_wrk "regkit ($name) 1 MB blobs" "127.0.0.1:$port" "$WORK/serve-blob.lua"
    MEM["serve $name"]=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVE_PID/status")
    printf '  %-40s %10d KB peak RSS\n' "regkit serve ($name)" "${MEM["serve $name"]}" >&2
    serve_stop
  done

  port=$(serve_port)
  printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage:\n  filesystem: {rootdirectory: %s}\n  maintenance: {uploadpurging: {enabled: false}, readonly: {enabled: true}}\nhttp: {addr: 127.0.0.1:%s}\n' \
    "$tree" "$port" > "$cfg"
  docker-registry serve "$cfg" >"$WORK/serve-registry.log" 2>&1 &
  SERVE_PID=$!
  serve_wait "127.0.0.1:$port"
  serve_wrk "docker-registry manifests" "127.0.0.1:$port" "$WORK/serve-manifests.lua"
  serve_wrk "docker-registry 1 MB blobs" "127.0.0.1:$port" "$WORK/serve-blob.lua"
  serve_stop

  local m b
  for name in tree bundle; do
    m=$(ratio "${T["regkit ($name) manifests rps"]}" "${T["docker-registry manifests rps"]}")
    b=$(ratio "${T["regkit ($name) 1 MB blobs rps"]}" "${T["docker-registry 1 MB blobs rps"]}")
    row "serve ($name): manifest GETs by tag, $(printf '%.0f' "${T["regkit ($name) manifests rps"]}") vs docker-registry's $(printf '%.0f' "${T["docker-registry manifests rps"]}") req/s" \
      "${m}×" "≥ 2×" "$(verdict "$m" '>=' 2)"
    row "serve ($name): 1 MB blob GETs, $(printf '%.0f' "${T["regkit ($name) 1 MB blobs MB/s"]}") vs $(printf '%.0f' "${T["docker-registry 1 MB blobs MB/s"]}") MB/s" \
      "${b}×" "≥ 1×" "$(verdict "$b" '>=' 1)"
  done
  row "serve peak memory (tree, bundle)" "$(( MEM["serve tree"] / 1024 )), $(( MEM["serve bundle"] / 1024 )) MB" "≤ 50 MB" \
    "$(verdict "$(( MEM["serve tree"] > MEM["serve bundle"] ? MEM["serve tree"] : MEM["serve bundle"] ))" '<=' 51200)"
  rm -rf "$tree" "$img" "$bundle" "$bundle.json"
}
