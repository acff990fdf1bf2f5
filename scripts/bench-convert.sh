# Section "convert" of scripts/bench.sh (issue: conversions): import of every
# extracted image against the seeds' convert_images loop, and export of 1000
# images to one OCI layout against one `skopeo copy` per image from dir:.
section_convert() {
  local ext=$WORK/convert-ext list=$WORK/convert-1000.list n
  echo "convert: import of $TAGS extracted images, export of 1000 to OCI" >&2
  rm -rf "$ext"
  "$REGKIT" -q extract "$TREE" "$ext"   # the input, untimed
  measure "regkit import" "$RUNS" "rm -rf $OUT" "$REGKIT -q import $ext $OUT"
  # What was timed is right: exactly the tree select writes.
  rm -rf "$WORK/convert-sel"
  "$REGKIT" -q select "$TREE" "$WORK/convert-sel"
  python3 scripts/fixture.py compare "$WORK/convert-sel" "$OUT" >&2
  peak "regkit import" "rm -rf $OUT" "$REGKIT -q import $ext $OUT"
  measure "seed convert_images loop" 1 "rm -rf $OUT" "bash scripts/baseline/convert_images.sh $ext $OUT"

  "$REGKIT" ls "$TREE" | awk 'NR > 1 && NR <= 1001 {print $1}' > "$list"
  n=$(wc -l < "$list")
  measure "regkit export oci ($n)" "$RUNS" "rm -rf $OUT" "$REGKIT -q export $TREE $OUT --format oci --ref-name name --list $list"
  # skopeo's oci: destination takes OCI manifests only, so it converts the
  # Docker ones (as --oci-media-types does): time that too.
  measure "regkit export oci --oci-media-types" "$RUNS" "rm -rf $OUT" "$REGKIT -q export $TREE $OUT --format oci --ref-name name --oci-media-types --list $list"
  measure "skopeo copy per image ($n)" 1 "rm -rf $OUT" \
    "while read -r img; do skopeo --insecure-policy copy -q --all dir:$ext/\$img oci:$OUT:\$img; done < $list"
  rm -rf "$OUT" "$ext" "$WORK/convert-sel"

  local r
  r=$(ratio "${T[seed convert_images loop]}" "${T[regkit import]}")
  row "import ($TAGS extracted images) vs seed convert_images loop" "${r}x faster" ">= 50x" "$(verdict "$r" '>=' 50)"
  r=$(ratio "${T[skopeo copy per image ($n)]}" "${T[regkit export oci ($n)]}")
  row "export of $n images to OCI vs skopeo copy per image" "${r}x faster" ">= 10x" "$(verdict "$r" '>=' 10)"
  r=$(ratio "${T[skopeo copy per image ($n)]}" "${T[regkit export oci --oci-media-types]}")
  row "same, with --oci-media-types (as skopeo converts)" "${r}x faster" ">= 10x" "$(verdict "$r" '>=' 10)"
  row "peak memory (import)" "$((MEM[regkit import] / 1024)) MB" "< 200 MB" "$(verdict "${MEM[regkit import]}" '<' 204800)"
}
