# Sourced by scripts/anchors.sh and scripts/ratios.sh, in the repository's root, with
# `dir` (the folder of limits.c and ring.c) set and OUT_DIR as the first argument (may be
# empty). Sets `out` (OUT_DIR, made if needed, or a temp dir removed on exit), builds the
# C floors `$out/limits` and `$out/ring` and the crate's release binary, and sets `bin`.
if [ -n "${1:-}" ]; then
  out=$1; mkdir -p "$out"
else
  out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
fi
for f in limits.c ring.c; do
  [ -f "$dir/$f" ] || { echo "$(basename "$0"): no $dir/$f" >&2; exit 2; }
done
gcc -O2 -o "$out/limits" "$dir/limits.c"
gcc -O2 -o "$out/ring" "$dir/ring.c"
cargo build --release --quiet
bin=target/release/ipc-audit
