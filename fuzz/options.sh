#!/usr/bin/env bash
# Prints the libFuzzer flags of fuzz/options/TARGET.options (the [libfuzzer] section,
# OSS-Fuzz's format), one `-key=value` per line; nothing when the target has no file.
#   fuzz/options.sh TARGET
set -euo pipefail
f="$(dirname "$0")/options/$1.options"
[[ -f "$f" ]] || exit 0
awk '
    /^[[:space:]]*[#;]/ || /^[[:space:]]*$/ { next }
    /^\[/ { section = $0; next }
    section == "[libfuzzer]" {
        split($0, kv, "=")
        k = kv[1]; v = substr($0, index($0, "=") + 1)
        gsub(/[[:space:]]/, "", k); gsub(/^[[:space:]]+|[[:space:]]+$/, "", v)
        print "-" k "=" v
    }' "$f"
