#!/usr/bin/env bash
# How long a developer waits after a one-line change in a web handler: edits
# src/web/handlers/studies.rs (the first `"1".into()`, into an equivalent expression), builds the debug binary
# (incremental, as `cargo build` does by default), reverts, builds again; twice. Prints seconds.
#   tools/rebuild_time.sh [CHECKOUT]     (default: this checkout; it must be clean there)
set -euo pipefail
dir="${1:-$(dirname "$0")/..}"
cd "$dir"
f=src/web/handlers/studies.rs
line=$(grep -n '"1".into()' "$f" | head -1 | cut -d: -f1)
[ -n "$line" ] || { echo "$f has no \"1\".into() to edit" >&2; exit 1; }
cargo build -q
for _ in 1 2; do
  sed -i "${line}s/\"1\".into()/String::from(\"1\")/" "$f"
  s=$(date +%s.%N); cargo build -q; e=$(date +%s.%N); echo "edit   $(echo "$e - $s" | bc) s"
  git checkout -q -- "$f"
  s=$(date +%s.%N); cargo build -q; e=$(date +%s.%N); echo "revert $(echo "$e - $s" | bc) s"
done
