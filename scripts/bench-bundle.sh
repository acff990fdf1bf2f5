# Section "bundle" of scripts/bench.sh (issue: bundles): pack and unpack of
# every tag against GNU tar, pigz and select + tar.
section_bundle() {
  echo "bundle: pack and unpack of all $TAGS tags" >&2
  local sel=$WORK/selected b=$WORK/bundle
  rm -rf "$sel"; "$REGKIT" -q select "$TREE" "$sel"
  measure "regkit pack (none)" "$RUNS" "rm -f $b.tar $b.tar.json" "$REGKIT -q pack $TREE $b.tar"
  measure "regkit select" "$RUNS" "rm -rf $OUT" "$REGKIT -q select $TREE $OUT"
  measure "regkit select + tar -cf" "$RUNS" "rm -rf $OUT $b.ref.tar" "$REGKIT -q select $TREE $OUT && tar -cf $b.ref.tar -C $OUT docker"
  measure "tar -cf (selected tree)" "$RUNS" "rm -f $b.ref.tar" "tar -cf $b.ref.tar -C $sel docker"
  measure "regkit pack (gzip)" "$RUNS" "rm -f $b.tar.gz $b.tar.gz.json" "$REGKIT -q pack $TREE $b.tar.gz"
  measure "tar -c | pigz" "$RUNS" "rm -f $b.ref.tgz" "tar -c -C $sel docker | pigz > $b.ref.tgz"
  measure "tar -czf" 3 "rm -f $b.ref.tgz" "tar -czf $b.ref.tgz -C $sel docker"
  measure "regkit unpack --no-verify" "$RUNS" "rm -rf $OUT" "$REGKIT -q unpack --no-verify $b.tar $OUT"
  measure "regkit unpack (verify)" "$RUNS" "rm -rf $OUT" "$REGKIT -q unpack $b.tar $OUT"
  measure "tar -xf" "$RUNS" "rm -rf $OUT; mkdir -p $OUT" "tar -xf $b.tar -C $OUT"
  echo "  bundle: $(du -h "$b.tar" | cut -f1) plain, $(du -h "$b.tar.gz" | cut -f1) gzip" >&2
  rm -rf "$OUT" "$sel" "$b".*

  local r
  r=$(ratio "${T[regkit pack (none)]}" "${T[regkit select]}")
  row "pack (none) vs select alone" "${r}x select" "< 1x (faster)" "$(verdict "$r" '<' 1)"
  r=$(ratio "${T[regkit select + tar -cf]}" "${T[regkit pack (none)]}")
  row "pack (none) vs select + tar -cf" "${r}x faster" "> 1x" "$(verdict "$r" '>' 1)"
  r=$(ratio "${T[regkit pack (none)]}" "${T[tar -cf (selected tree)]}")
  row "pack (none) vs tar -cf of a selected tree" "${r}x tar" "<= 1.2x" "$(verdict "$r" '<=' 1.2)"
  r=$(ratio "${T[regkit pack (gzip)]}" "${T[tar -c | pigz]}")
  row "pack (gzip) vs tar -c \\| pigz" "${r}x pigz" "<= 1.2x" "$(verdict "$r" '<=' 1.2)"
  r=$(ratio "${T[tar -czf]}" "${T[regkit pack (gzip)]}")
  row "pack (gzip) vs tar -czf" "${r}x faster" ">= 1.8x" "$(verdict "$r" '>=' 1.8)"
  r=$(ratio "${T[regkit unpack --no-verify]}" "${T[tar -xf]}")
  row "unpack (no verify) vs tar -xf" "${r}x tar" "<= 1.5x" "$(verdict "$r" '<=' 1.5)"
  r=$(ratio "${T[regkit unpack (verify)]}" "${T[tar -xf]}")
  row "unpack (verify) vs tar -xf" "${r}x tar" "(no target)" "-"
}
