#!/bin/bash
# Baseline: the articles' "extract every image to a skopeo dir: folder" loop.
# For each repo:tag that ls.sh finds: mkdir OUT/<repo>:<tag>, hard-link the
# manifest blob as manifest.json, grep every 64-hex string out of it and
# hard-link each blob that exists as <hex>, write the `version` file.
# One process per step and per file, as the articles do: this is the slow
# baseline.  Flaws kept on purpose: manifest lists / indexes get no child
# manifests (<hex>.manifest.json) and none of the children's blobs; any
# 64-hex string that happens to be a blob is linked; ls.sh's `current` bugs.
# Only fix: falls back to cp when OUT is on another filesystem than ROOT.
# Usage: extract.sh ROOT OUT
ROOT=${1:?usage: extract.sh ROOT OUT}
OUT=${2:?usage: extract.sh ROOT OUT}
BLOBS="$ROOT/docker/registry/v2/blobs/sha256"
REPOS="$ROOT/docker/registry/v2/repositories"
mkdir -p "$OUT"
"$(dirname "$0")/ls.sh" "$ROOT" | while read -r image; do
  repo=$(echo "$image" | cut -d: -f1)
  tag=$(echo "$image" | cut -d: -f2-)
  mkdir -p "$OUT/$image"
  link="$REPOS/$repo/_manifests/tags/$tag/current/link"
  if [ ! -f "$link" ]; then
    echo "extract: no $link" >&2
    continue
  fi
  digest=$(cat "$link")
  hex=$(echo "$digest" | cut -d: -f2)
  prefix=$(echo "$hex" | cut -c1-2)
  ln "$BLOBS/$prefix/$hex/data" "$OUT/$image/manifest.json" 2>/dev/null \
    || cp "$BLOBS/$prefix/$hex/data" "$OUT/$image/manifest.json"
  for blob in $(grep -Eo '[a-f0-9]{64}' "$OUT/$image/manifest.json" | sort -u); do
    p=$(echo "$blob" | cut -c1-2)
    if [ -f "$BLOBS/$p/$blob/data" ]; then
      ln "$BLOBS/$p/$blob/data" "$OUT/$image/$blob" 2>/dev/null \
        || cp "$BLOBS/$p/$blob/data" "$OUT/$image/$blob"
    fi
  done
  echo "Directory Transport Version: 1.1" > "$OUT/$image/version"
done
