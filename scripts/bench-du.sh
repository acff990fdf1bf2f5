# Section "du" of scripts/bench.sh (issue 17): regkit du of every tag (the
# catalog walk, every blob sized once, both gc plans, the tables) against
# `du -sb` of blobs/, which lists and sizes the same blobs; the two alternate
# on the same tree (measure_pair, from bench-gc.sh). Then du's peak memory,
# with the JSON and the HTML page written too, and a check that both count
# the same bytes.
section_du() {
  echo "du: regkit du vs du -sb blobs/ on $TAGS tags" >&2
  local page=$WORK/du.html
  measure_pair "regkit du" "$REGKIT du $TREE" \
    "du -sb blobs/" "du -sb $V2/blobs" "$(( RUNS * 2 + 1 ))"
  measure "regkit du --json --html" "$RUNS" "rm -f $page" "$REGKIT du $TREE --json --html $page"
  peak "regkit du" ":" "$REGKIT du $TREE"
  peak "regkit du --json --html" "rm -f $page" "$REGKIT du $TREE --json --html $page"
  local ours files
  ours=$("$REGKIT" du "$TREE" --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["tree"]["bytes"])')
  files=$(find "$V2/blobs" -name data -printf '%s\n' | awk '{s += $1} END {print s}')
  echo "  blob bytes: regkit du $ours, the data files $files; html page $(du -h "$page" | cut -f1)" >&2
  rm -f "$page"

  local r mb
  r=$(ratio "${T[regkit du]}" "${T[du -sb blobs/]}")
  row "du (all tags) vs du -sb blobs/" "${r}x" "<= 1.2x" "$(verdict "$r" '<=' 1.2)"
  row "du: blob bytes (regkit du, data files)" "$ours, $files" "equal" \
    "$([ "$ours" = "$files" ] && echo met || echo MISSED)"
  mb=$(( ${MEM[regkit du]} > ${MEM[regkit du --json --html]} ? ${MEM[regkit du]} : ${MEM[regkit du --json --html]} ))
  row "peak memory (du, du --json --html)" "$((mb / 1024)) MB" "< 200 MB" "$(verdict "$mb" '<' 204800)"
}
