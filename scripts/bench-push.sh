# Section "push" of scripts/bench.sh (issue 5): `regkit push` of a subset of
# the tree into a freshly started registry, against the seeds' path
# (`regkit extract`, then `skopeo sync --src dir --dest docker` per
# namespace) and against one `skopeo copy --all` per image (from the same
# extracted folders), then a rerun of `regkit push` with nothing new.
#
# The subset: the first PUSH_PROJECTS namespaces (proj000, proj001, ...;
# default 5, which is 500 tags of the 5000-tag tree): the skopeo paths take
# about 0.2 s per image, so all 5000 tags would take half an hour per
# baseline. Every method pushes into its own freshly started, empty
# registry (Debian's docker-registry on tmpfs, plain http on 127.0.0.1).
PUSH_PROJECTS=${PUSH_PROJECTS:-5}

push_registry_stop() {
  if [ -n "${PUSH_PID:-}" ]; then
    kill "$PUSH_PID" 2>/dev/null || true
    wait "$PUSH_PID" 2>/dev/null || true
    PUSH_PID=
  fi
}

# A new registry process on an empty storage folder; sets PUSH_HOST.
push_registry_fresh() {
  push_registry_stop
  local dst=$WORK/push-dst port i
  rm -rf "$dst" && mkdir -p "$dst"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\nhttp: {addr: 127.0.0.1:%s}\n' \
    "$dst" "$port" > "$WORK/push-registry.yml"
  docker-registry serve "$WORK/push-registry.yml" > "$WORK/push-registry.log" 2>&1 &
  PUSH_PID=$!
  export PUSH_HOST=127.0.0.1:$port
  for ((i = 0; i < 200; i++)); do
    curl -fs -o /dev/null "http://$PUSH_HOST/v2/" && return 0
    sleep 0.05
  done
  echo "bench push: the registry did not start" >&2
  cat "$WORK/push-registry.log" >&2
  return 1
}

# How many repositories and tags the registry serves (a sanity check that
# every method pushed the same images).
push_served() {
  python3 - "$PUSH_HOST" <<'EOF'
import json, sys, urllib.request
host = sys.argv[1]
repos = json.load(urllib.request.urlopen(f"http://{host}/v2/_catalog?n=1000"))["repositories"]
tags = sum(len(json.load(urllib.request.urlopen(f"http://{host}/v2/{r}/tags/list"))["tags"] or []) for r in repos)
print(f"{len(repos)} repositories, {tags} tags")
EOF
}

push_skopeo_sync() {
  local ns
  "$REGKIT" -q extract "$TREE" "$PUSH_OUT" --list "$PUSH_LIST"
  for ns in "${PUSH_NS[@]}"; do
    skopeo --insecure-policy sync --all --src dir --dest docker --dest-tls-verify=false \
      "$PUSH_OUT/$ns" "$PUSH_HOST/$ns" >/dev/null 2>>"$WORK/push-skopeo.log"
  done
}

push_skopeo_copy() {
  local d name
  "$REGKIT" -q extract "$TREE" "$PUSH_OUT" --list "$PUSH_LIST"
  for d in "$PUSH_OUT"/*/*; do
    name=${d#"$PUSH_OUT"/}
    skopeo --insecure-policy copy --all -q --dest-tls-verify=false "dir:$d" "docker://$PUSH_HOST/$name" \
      2>>"$WORK/push-skopeo.log"
  done
}

section_push() {
  local p s n
  PUSH_LIST=$WORK/push.list
  PUSH_OUT=$WORK/push-out # not $OUT: other sections may run at the same time
  PUSH_NS=()
  : > "$PUSH_LIST"
  for ((p = 0; p < PUSH_PROJECTS; p++)); do
    PUSH_NS+=("$(printf 'proj%03d' "$p")")
    for s in 0 1 2 3 4 5 6 7 8 9; do
      printf 'proj%03d/svc%d\n' "$p" "$s" >> "$PUSH_LIST"
    done
  done
  n=$("$REGKIT" push "$TREE" 127.0.0.1:1 --list "$PUSH_LIST" --dry-run | tail -n 1 | awk '{print $3}')
  echo "push: $n tags of $TAGS ($PUSH_PROJECTS namespaces) into a fresh docker-registry each time" >&2
  trap push_registry_stop EXIT

  # \$PUSH_HOST: expanded when the command runs, after its registry started.
  local cmd="$REGKIT -q push $TREE \$PUSH_HOST --tls-verify=false --list $PUSH_LIST"
  measure "regkit push" "$RUNS" "push_registry_fresh" "$cmd"
  echo "  served after regkit push: $(push_served)" >&2
  measure "regkit push, nothing new" "$RUNS" ":" "$cmd"
  peak "regkit push" "push_registry_fresh" "$cmd"
  measure "extract + skopeo sync per ns" 1 "push_registry_fresh; rm -rf $PUSH_OUT" "push_skopeo_sync"
  echo "  served after skopeo sync: $(push_served)" >&2
  measure "extract + skopeo copy per image" 1 "push_registry_fresh; rm -rf $PUSH_OUT" "push_skopeo_copy"
  echo "  served after skopeo copy: $(push_served)" >&2
  push_registry_stop
  trap - EXIT
  rm -rf "$PUSH_OUT" "$WORK/push-dst"

  local r
  r=$(ratio "${T[extract + skopeo sync per ns]}" "${T[regkit push]}")
  row "push ($n tags) vs extract + skopeo sync per namespace" "${r}x faster" ">= 3x" "$(verdict "$r" '>=' 3)"
  r=$(ratio "${T[extract + skopeo copy per image]}" "${T[regkit push]}")
  row "push ($n tags) vs extract + skopeo copy per image" "${r}x faster" "" ""
  r=$(ratio "${T[regkit push, nothing new]}" "${T[regkit push]}")
  row "push rerun with nothing new, share of the first run" "$(echo "scale=1; $r * 100 / 1" | bc -l)%" "< 10%" "$(verdict "$r" '<' 0.10)"
  row "peak memory (push)" "$((${MEM[regkit push]} / 1024)) MB" "" ""
}
