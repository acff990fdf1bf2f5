# Section "gc" of scripts/bench.sh (issue 4): verify of every tag against
# hashing every blob with sha256sum, and gc --dry-run against the real
# docker-registry garbage-collect --dry-run, on a copy of the tree with one
# tag in ten deleted (so both have garbage to find). The copy is removed.

# measure_pair NAME_A CMD_A NAME_B CMD_B RUNS: like `measure`, but the two
# commands alternate, so that load from elsewhere on a shared machine falls
# on both alike.
measure_pair() {
  local a=() b=() i s e
  for ((i = 0; i < $5; i++)); do
    sync; s=$(now); eval "$2" >/dev/null; e=$(now); a+=("$(echo "$e - $s" | bc -l)")
    sync; s=$(now); eval "$4" >/dev/null; e=$(now); b+=("$(echo "$e - $s" | bc -l)")
  done
  T[$1]=$(printf '%s\n' "${a[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  T[$3]=$(printf '%s\n' "${b[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '  %-34s %8.3f s  (median of %d)\n' "$1" "${T[$1]}" "$5" >&2
  printf '  %-34s %8.3f s  (median of %d)\n' "$3" "${T[$3]}" "$5" >&2
}

section_gc() {
  echo "gc: verify and gc --dry-run on $TAGS tags" >&2
  "$REGKIT" -q verify "$TREE" >/dev/null || echo "  (verify found problems in $TREE)" >&2
  measure_pair "regkit verify" "$REGKIT -q verify $TREE" \
    "find | xargs -P2 sha256sum" "(cd $V2 && find blobs -name data | xargs -P2 sha256sum)" \
    "$(( RUNS * 2 + 1 ))"

  local copy=$WORK/gc-tree cfg=$WORK/gc-config.yml
  rm -rf "$copy"
  cp -a "$TREE" "$copy"
  "$REGKIT" ls "$copy" --json |
    python3 -c 'import json, sys; print("\n".join(e["name"] for e in json.load(sys.stdin)[::10]))' |
    xargs "$REGKIT" -q delete "$copy" --manifest
  printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\nhttp: {addr: 127.0.0.1:0}\n' \
    "$copy" > "$cfg"
  measure "regkit gc --dry-run" "$RUNS" ":" "$REGKIT -q gc $copy --dry-run"
  measure "docker-registry garbage-collect --dry-run" 3 ":" \
    "docker-registry garbage-collect --dry-run $cfg"
  local ours theirs
  ours=$("$REGKIT" gc "$copy" --dry-run --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["freed_blobs"])')
  theirs=$(docker-registry garbage-collect --dry-run "$cfg" 2>/dev/null |
    sed -n 's/^[0-9]* blobs marked, \([0-9]*\) blobs and .*/\1/p')
  echo "  blobs eligible for deletion: regkit $ours, docker-registry $theirs" >&2
  peak "regkit verify" ":" "$REGKIT -q verify $TREE"
  peak "regkit gc --dry-run" ":" "$REGKIT -q gc $copy --dry-run"
  rm -rf "$copy" "$cfg"

  local r
  r=$(ratio "${T[regkit verify]}" "${T[find | xargs -P2 sha256sum]}")
  row "verify (all tags) vs find \| xargs -P2 sha256sum" "${r}x" "<= 1.2x" "$(verdict "$r" '<=' 1.2)"
  r=$(ratio "${T[docker-registry garbage-collect --dry-run]}" "${T[regkit gc --dry-run]}")
  row "gc --dry-run vs docker-registry garbage-collect --dry-run" "${r}x faster" ">= 5x" "$(verdict "$r" '>=' 5)"
  row "gc --dry-run: blobs eligible (regkit, docker-registry)" "$ours, $theirs" "equal" \
    "$([ "$ours" = "$theirs" ] && echo met || echo MISSED)"
  local mb=$(( ${MEM[regkit verify]} > ${MEM[regkit gc --dry-run]} ? ${MEM[regkit verify]} : ${MEM[regkit gc --dry-run]} ))
  row "peak memory (verify, gc)" "$((mb / 1024)) MB" "< 200 MB" "$(verdict "$mb" '<' 204800)"
}
