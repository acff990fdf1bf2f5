#!/bin/bash
# Baseline: the articles' convert_images loop, the reverse of extract.sh.
# For each <repo>:<tag> folder under DIR holding a manifest.json: sha256sum
# every file, mkdir -p + hard-link it to blobs/sha256/<xx>/<hex>/data, write
# a _layers link for every blob, and a revision link plus the tag's
# current/index links for manifest.json (printf 'sha256:%s', no newline).
# One process per step and per file.  Flaws kept on purpose: child manifests
# (<hex>.manifest.json) are treated as layers (a _layers link, no revision
# link), so the registry cannot serve an index's children by digest.
# Only fix: falls back to cp when ROOT is on another filesystem than DIR.
# Usage: convert_images.sh DIR ROOT
DIR=${1:?usage: convert_images.sh DIR ROOT}
ROOT=${2:?usage: convert_images.sh DIR ROOT}
DIR=${DIR%/}
V2="$ROOT/docker/registry/v2"
mkdir -p "$V2/blobs/sha256" "$V2/repositories"
find "$DIR" -name manifest.json | sort | while read -r manifest; do
  image=$(dirname "$manifest")
  name=${image#"$DIR"/}
  repo=$(echo "$name" | cut -d: -f1)
  tag=$(echo "$name" | cut -d: -f2-)
  R="$V2/repositories/$repo"
  for file in "$image"/*; do
    base=$(basename "$file")
    [ "$base" = version ] && continue
    hex=$(sha256sum "$file" | cut -d' ' -f1)
    prefix=$(echo "$hex" | cut -c1-2)
    mkdir -p "$V2/blobs/sha256/$prefix/$hex"
    if [ ! -f "$V2/blobs/sha256/$prefix/$hex/data" ]; then
      ln "$file" "$V2/blobs/sha256/$prefix/$hex/data" 2>/dev/null \
        || cp "$file" "$V2/blobs/sha256/$prefix/$hex/data"
    fi
    if [ "$base" = manifest.json ]; then
      mkdir -p "$R/_manifests/revisions/sha256/$hex"
      printf 'sha256:%s' "$hex" > "$R/_manifests/revisions/sha256/$hex/link"
      mkdir -p "$R/_manifests/tags/$tag/index/sha256/$hex"
      printf 'sha256:%s' "$hex" > "$R/_manifests/tags/$tag/index/sha256/$hex/link"
      mkdir -p "$R/_manifests/tags/$tag/current"
      printf 'sha256:%s' "$hex" > "$R/_manifests/tags/$tag/current/link"
    else
      mkdir -p "$R/_layers/sha256/$hex"
      printf 'sha256:%s' "$hex" > "$R/_layers/sha256/$hex/link"
    fi
  done
done
