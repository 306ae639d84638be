#!/bin/sh
# Writes src/dossier/third_party.tsv: every Rust crate compiled into the evidentia binary (normal
# dependencies for the host platform, as cargo tree reports them) with its version and licence,
# then the components that are not crates (the workspace's own crates are not third party). The dossier's report prints it; a test checks it
# equals what `cargo tree` says now, so run this after changing a dependency:
#   sh tools/third_party.sh
set -e
cd "$(dirname "$0")/.."
out=src/dossier/third_party.tsv
{
  printf 'component\tversion\tlicence\tkind\n'
  cargo tree -p evidentia -e normal --prefix none -f '{p}	{l}' --offline \
    | sed 's/ (\*)//; s/ (proc-macro)//' \
    | grep -v '^evidentia v' | grep -v '^evidentia-[a-z]* v' \
    | sed -E 's/^([^ ]+) v([^ 	]+)[^	]*	(.*)$/\1	\2	\3	Rust crate/' \
    | LC_ALL=C sort -u
  printf 'SQLite (bundled by libsqlite3-sys)\t%s\tPublic domain\tC library\n' "$(grep -o 'SQLITE_VERSION  *"[0-9.]*"' "$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src -path '*libsqlite3-sys-0.40*/sqlite3/sqlite3.h' | head -1)" | grep -o '[0-9.]*' | head -1)"
  printf 'libpq (bundled by pq-src)\t%s\tPostgreSQL\tC library\n' "$(cargo tree -p pq-src --offline --prefix none --depth 0 2>/dev/null | sed -n 's/^pq-src v[^+]*+libpq-\([0-9.]*\).*/\1/p' | head -1)"
  printf 'OpenSSL (bundled by openssl-src)\t%s\tApache-2.0\tC library\n' "$(cargo tree -p openssl-src --offline --prefix none --depth 0 2>/dev/null | sed -n 's/^openssl-src v[^+]*+\([0-9.]*\).*/\1/p' | head -1)"
  printf 'ONNX Runtime (loaded at run time, not distributed)\t1.31 or later\tMIT\tC++ library\n'
  printf 'htmx\t2.0.11\t0BSD\tJavaScript (static/vendor)\n'
  printf 'OpenSeadragon\t6.1.1\tBSD-3-Clause\tJavaScript (static/vendor)\n'
  printf 'DejaVu Sans fonts\t2.37\tBitstream Vera / Arev\tFont (static/fonts)\n'
} > "$out"
echo "wrote $out: $(($(wc -l < "$out") - 1)) components"
