#!/usr/bin/env bash
# make build: put built files into dist/ (or another directory) by writing each
# to a temporary file beside its destination and renaming it over. A rename
# replaces the directory entry, not the file: a binary that is running (the
# echo-backend or tollgate of a `make run` demo) keeps its old file, so the
# build never fails with "Text file busy", and nothing ever reads a half-copied
# file. Prints each installed file with its size.
# usage: scripts/install-built.sh DEST_DIR FILE...
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DEST_DIR FILE..." >&2; exit 2; }
dest=$1; shift
mkdir -p "$dest"
for src in "$@"; do
  target="$dest/$(basename "$src")"
  tmp=$(mktemp "$target.XXXXXX.tmp")
  cp "$src" "$tmp" && chmod --reference="$src" "$tmp" && mv -f "$tmp" "$target" || { rm -f "$tmp"; exit 1; }
  echo "    $target ($(stat -c %s "$target") bytes)"
done
