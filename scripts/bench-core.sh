# Section "core" of scripts/bench.sh (issue: core): extract and select of
# every tag against the seed loop, a bare replay floor, and cp -al.
section_core() {
  echo "core: extract and select of all $TAGS tags" >&2
  local files
  files=$(find "$V2/blobs" -name data | wc -l)
  echo "  tree: $TAGS tags, $files blobs, $(du -sh "$TREE" | cut -f1)" >&2
  measure "regkit extract" "$RUNS" "rm -rf $OUT" "$REGKIT -q extract $TREE $OUT"
  "$REGKIT" -q extract "$TREE" "$OUT.plan" --dry-run --json > "$WORK/extract-plan.json"
  local floor=() i
  for ((i = 0; i < RUNS; i++)); do
    rm -rf "$OUT"; sync
    floor+=("$("$REPLAY" "$WORK/extract-plan.json" "$V2" "$OUT")")
  done
  T[floor]=$(printf '%s\n' "${floor[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '  %-34s %8.3f s  (median of %d)\n' "floor: replay of mkdir/link calls" "${T[floor]}" "$RUNS" >&2
  measure "seed extract loop" 1 "rm -rf $OUT" "bash scripts/baseline/extract.sh $TREE $OUT"
  measure "regkit select" "$RUNS" "rm -rf $OUT" "$REGKIT -q select $TREE $OUT"
  measure "cp -al" "$RUNS" "rm -rf $OUT" "cp -al $TREE $OUT"
  peak "regkit extract" "rm -rf $OUT" "$REGKIT -q extract $TREE $OUT"
  peak "regkit select" "rm -rf $OUT" "$REGKIT -q select $TREE $OUT"
  rm -rf "$OUT"

  local r
  r=$(ratio "${T[seed extract loop]}" "${T[regkit extract]}")
  row "extract vs seed find/ln loop" "${r}x faster" ">= 80x" "$(verdict "$r" '>=' 80)"
  r=$(ratio "${T[regkit extract]}" "${T[floor]}")
  row "extract vs replay floor" "${r}x the floor" "<= 1.5x" "$(verdict "$r" '<=' 1.5)"
  r=$(ratio "${T[regkit select]}" "${T[cp -al]}")
  row "select vs cp -al" "${r}x cp -al" "<= 1.5x" "$(verdict "$r" '<=' 1.5)"
  local mb=$(( ${MEM[regkit extract]} > ${MEM[regkit select]} ? ${MEM[regkit extract]} : ${MEM[regkit select]} ))
  row "peak memory (extract, select)" "$((mb / 1024)) MB" "< 200 MB" "$(verdict "$mb" '<' 204800)"
}

