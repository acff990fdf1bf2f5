#!/bin/sh
# Baseline: the classic "list every image in a registry storage folder" loop
# from the articles release engineers copy today.  Kept as it is, flaws
# included: a repository or tag literally named `current` is listed wrong
# (`tools/current` gives a bogus `tools`, tag `current` shows up twice).
# Usage: ls.sh ROOT     (ROOT holds docker/registry/v2)
ROOT=${1:?usage: ls.sh ROOT}
find "$ROOT/docker" -type d -name current \
  | sed -e 's|.*/repositories/||' -e 's|/_manifests/tags/|:|' -e 's|/current$||' \
  | sort
