#!/usr/bin/env bash
# How long a developer waits after a one-line change in a web handler: edits
# src/web/handlers/studies.rs (line 58, an equivalent expression), builds the debug binary
# (incremental, as `cargo build` does by default), reverts, builds again; twice. Prints seconds.
#   tools/rebuild_time.sh [CHECKOUT]     (default: this checkout; it must be clean there)
set -euo pipefail
dir="${1:-$(dirname "$0")/..}"
cd "$dir"
f=src/web/handlers/studies.rs
grep -q '"1".into()' <(sed -n 58p "$f") || { echo "line 58 of $f is not the expected one" >&2; exit 1; }
cargo build -q
for _ in 1 2; do
  sed -i '58s/"1".into()/String::from("1")/' "$f"
  s=$(date +%s.%N); cargo build -q; e=$(date +%s.%N); echo "edit   $(echo "$e - $s" | bc) s"
  git checkout -q -- "$f"
  s=$(date +%s.%N); cargo build -q; e=$(date +%s.%N); echo "revert $(echo "$e - $s" | bc) s"
done
