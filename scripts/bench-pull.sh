# Section "pull" of scripts/bench.sh (issue 14): `regkit pull` of PULL_PROJECTS
# namespaces of the tree (default 5: proj000..proj004, 500 tags) from a local
# docker-registry serving the generated tree, into an empty ROOT, against the
# seeds' way of filling a tree (one `skopeo copy --all` per image into a
# freshly started local registry, whose storage is the tree) and against
# `skopeo sync --all --src docker --dest dir` (one per repository), then a
# rerun of `regkit pull` with nothing new. Every method reads from the same
# upstream registry (Debian's docker-registry on tmpfs, plain http on
# 127.0.0.1).
PULL_PROJECTS=${PULL_PROJECTS:-5}

pull_upstream_stop() {
  if [ -n "${PULL_UP_PID:-}" ]; then
    kill "$PULL_UP_PID" 2>/dev/null || true
    wait "$PULL_UP_PID" 2>/dev/null || true
    PULL_UP_PID=
  fi
}

# The upstream: a registry serving the generated tree; sets PULL_UP.
pull_upstream_start() {
  local port i
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\nhttp: {addr: 127.0.0.1:%s}\n' \
    "$TREE" "$port" > "$WORK/pull-upstream.yml"
  docker-registry serve "$WORK/pull-upstream.yml" > "$WORK/pull-upstream.log" 2>&1 &
  PULL_UP_PID=$!
  PULL_UP=127.0.0.1:$port
  for ((i = 0; i < 200; i++)); do
    curl -fs -o /dev/null "http://$PULL_UP/v2/" && return 0
    sleep 0.05
  done
  echo "bench pull: the upstream registry did not start" >&2
  cat "$WORK/pull-upstream.log" >&2
  return 1
}

pull_skopeo_copy() {
  local ref
  while read -r ref; do
    skopeo --insecure-policy copy --all -q --src-tls-verify=false --dest-tls-verify=false \
      "docker://$PULL_UP/$ref" "docker://$PUSH_HOST/$ref" 2>>"$WORK/pull-skopeo.log"
  done < "$PULL_TAGS"
}

pull_skopeo_sync() {
  local repo
  mkdir -p "$PULL_DIR"
  while read -r repo; do
    skopeo --insecure-policy sync --all --scoped --src docker --dest dir --src-tls-verify=false \
      "$PULL_UP/$repo" "$PULL_DIR" >/dev/null 2>>"$WORK/pull-skopeo.log"
  done < "$PULL_REPOS"
}

# Tags in a tree (a sanity check that every method got the same images).
pull_tags_in() {
  find "$1/docker/registry/v2/repositories" -path '*/_manifests/tags/*/current/link' | wc -l
}

section_pull() {
  local p s n
  PULL_REPOS=$WORK/pull-repos.list
  PULL_TAGS=$WORK/pull-tags.list
  PULL_ROOT=$WORK/pull-root
  PULL_DIR=$WORK/pull-dir
  : > "$PULL_REPOS"
  for ((p = 0; p < PULL_PROJECTS; p++)); do
    for s in 0 1 2 3 4 5 6 7 8 9; do
      printf 'proj%03d/svc%d\n' "$p" "$s" >> "$PULL_REPOS"
    done
  done
  "$REGKIT" ls "$TREE" --json | python3 -c '
import json, sys
repos = set(open(sys.argv[1]).read().split())
for i in json.load(sys.stdin):
    if i["repository"] in repos:
        print(i["name"])' "$PULL_REPOS" > "$PULL_TAGS"
  n=$(wc -l < "$PULL_TAGS")
  echo "pull: $n tags of $TAGS ($PULL_PROJECTS namespaces) from a docker-registry serving the tree" >&2
  trap 'pull_upstream_stop; push_registry_stop' EXIT
  pull_upstream_start

  local cmd="$REGKIT -q pull $PULL_ROOT --from http://$PULL_UP --list $PULL_REPOS"
  measure "regkit pull" "$RUNS" "rm -rf $PULL_ROOT" "$cmd"
  echo "  tags after regkit pull: $(pull_tags_in "$PULL_ROOT")" >&2
  measure "regkit pull, nothing new" "$RUNS" ":" "$cmd"
  peak "regkit pull" "rm -rf $PULL_ROOT" "$cmd"
  measure "skopeo copy per image" 1 "push_registry_fresh" "pull_skopeo_copy"
  echo "  tags after skopeo copy: $(pull_tags_in "$WORK/push-dst")" >&2
  measure "skopeo sync --dest dir" 1 "rm -rf $PULL_DIR" "pull_skopeo_sync"
  echo "  images after skopeo sync: $(find "$PULL_DIR" -name manifest.json | wc -l)" >&2
  push_registry_stop
  pull_upstream_stop
  trap - EXIT
  rm -rf "$PULL_ROOT" "$PULL_DIR" "$WORK/push-dst"

  local r
  r=$(ratio "${T[skopeo copy per image]}" "${T[regkit pull]}")
  row "pull ($n tags) vs one skopeo copy --all per image into a registry" "${r}x faster" ">= 3x" "$(verdict "$r" '>=' 3)"
  r=$(ratio "${T[skopeo sync --dest dir]}" "${T[regkit pull]}")
  row "pull ($n tags) vs skopeo sync --src docker --dest dir" "${r}x faster" ">= 3x" "$(verdict "$r" '>=' 3)"
  r=$(ratio "${T[regkit pull, nothing new]}" "${T[regkit pull]}")
  row "pull rerun with nothing new, share of the first run" "$(echo "scale=1; $r * 100 / 1" | bc -l)%" "<= 5%" "$(verdict "$r" '<=' 0.05)"
  row "peak memory (pull)" "$((${MEM[regkit pull]} / 1024)) MB" "" ""
}
