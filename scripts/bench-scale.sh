# Section "scale" of scripts/bench.sh (issue 16): time and peak memory of
# every command that walks the whole tree, at 5,000 and at 50,000 tags, and
# how the cost per tag grows between them. The two trees are
# $WORK/tree-5000 and $WORK/tree-50000 (written once by
# `scripts/fixture.py generate bench`, then reused; --tags does not change
# them). Outputs go to $WORK (the same filesystem) and are removed after
# each run. docker-registry garbage-collect --dry-run walks the 50,000-tag
# tree too, as the memory and speed gc is held to.

# scale_run NAME TAGS RUNS PREP CMD: runs PREP (untimed) then CMD under
# /usr/bin/time, RUNS times; keeps the median time in T[NAME@TAGS] and the
# largest peak resident memory in MEM[NAME@TAGS].
scale_run() {
  local name=$1 tags=$2 runs=$3 prep=$4 cmd=$5 times=() mem=0 i m s e
  for ((i = 0; i < runs; i++)); do
    eval "$prep"
    sync
    s=$(now)
    /usr/bin/time -o "$WORK/scale-time.txt" -f '%M' bash -c "$cmd" >/dev/null 2>&1 ||
      echo "  ($name at $tags tags failed: $cmd)" >&2
    e=$(now)
    times+=("$(echo "$e - $s" | bc -l)")
    m=$(tail -n 1 "$WORK/scale-time.txt")
    (( m > mem )) && mem=$m
  done
  T[$name@$tags]=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  MEM[$name@$tags]=$mem
  printf '  %-34s %6s tags %8.3f s %8d KB peak RSS (median of %d)\n' \
    "$name" "$tags" "${T[$name@$tags]}" "$mem" "$runs" >&2
}

section_scale() {
  local sizes=(5000 50000) n tree out=$WORK/scale-out cfg=$WORK/scale-config.yml runs
  for n in "${sizes[@]}"; do
    tree=$WORK/tree-$n
    [ -d "$tree" ] || python3 scripts/fixture.py generate bench --tags "$n" "$tree" >&2
  done
  echo "scale: every whole-tree command at ${sizes[*]} tags" >&2
  for n in "${sizes[@]}"; do
    tree=$WORK/tree-$n
    # The small tree is fast enough to take a median; the big one runs once.
    runs=$(( n < 50000 ? 3 : 1 ))
    scale_run "ls" "$n" "$runs" ":" "$REGKIT ls $tree"
    scale_run "verify --fast" "$n" "$runs" ":" "$REGKIT -q verify --fast $tree"
    scale_run "verify" "$n" 1 ":" "$REGKIT -q verify $tree"
    scale_run "gc --dry-run" "$n" "$runs" ":" "$REGKIT -q gc $tree --dry-run"
    scale_run "extract" "$n" "$runs" "rm -rf $out" "$REGKIT -q extract $tree $out"
    scale_run "select" "$n" "$runs" "rm -rf $out" "$REGKIT -q select $tree $out"
    scale_run "pack --compress none" "$n" "$runs" "rm -rf $out.tar $out.tar.json" \
      "$REGKIT -q pack --compress none $tree $out.tar"
    rm -rf "$out" "$out.tar" "$out.tar.json"
  done
  printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\nhttp: {addr: 127.0.0.1:0}\n' \
    "$WORK/tree-50000" > "$cfg"
  scale_run "docker-registry garbage-collect --dry-run" 50000 1 ":" \
    "docker-registry garbage-collect --dry-run $cfg"
  rm -f "$cfg" "$WORK/scale-time.txt"

  local c r mb
  for c in "ls" "verify --fast" "verify" "gc --dry-run" "extract" "select" "pack --compress none"; do
    mb=$(( ${MEM[$c@50000]} / 1024 ))
    row "$c at 50,000 tags: time, peak memory (5,000 tags: $(printf %.2f "${T[$c@5000]}") s, $(( ${MEM[$c@5000]} / 1024 )) MB)" \
      "$(printf %.2f "${T[$c@50000]}") s, $mb MB" "<= 100 MB" "$(verdict "$mb" '<=' 100)"
  done
  for c in "ls" "verify --fast" "gc --dry-run"; do
    # Cost per tag at 50,000 over cost per tag at 5,000.
    r=$(echo "scale=2; (${T[$c@50000]} * 5000) / (${T[$c@5000]} * 50000)" | bc -l)
    row "$c: time per tag at 50,000 over at 5,000" "${r}x" "<= 1.3x" "$(verdict "$r" '<=' 1.3)"
  done
  local d="docker-registry garbage-collect --dry-run@50000"
  r=$(ratio "${T[$d]}" "${T[gc --dry-run@50000]}")
  row "gc --dry-run vs docker-registry garbage-collect --dry-run (50,000 tags; $(printf %.1f "${T[$d]}") s)" \
    "${r}x faster" ">= 5x" "$(verdict "$r" '>=' 5)"
  row "gc --dry-run peak memory vs docker-registry's (50,000 tags)" \
    "$(( ${MEM[gc --dry-run@50000]} / 1024 )) MB, $(( ${MEM[$d]} / 1024 )) MB" "<=" \
    "$(verdict "${MEM[gc --dry-run@50000]}" '<=' "${MEM[$d]}")"
}
