#!/bin/bash -eu
# Builds every cargo-fuzz target with the sanitizer and flags the builder sets, and ships
# each with its seed corpus, dictionary and libFuzzer options ($OUT/<target>.dict and
# $OUT/<target>.options are picked up by name).
cd "$SRC/ipc-audit/fuzz"
cargo fuzz build -O
for t in $(cargo fuzz list); do
    cp "target/x86_64-unknown-linux-gnu/release/$t" "$OUT/"
    if compgen -G "corpus/$t/*" > /dev/null; then
        zip -q -j "$OUT/${t}_seed_corpus.zip" corpus/"$t"/*
    fi
    cp "dict/$t.dict" "$OUT/$t.dict"
    if [[ -f "options/$t.options" ]]; then
        cp "options/$t.options" "$OUT/$t.options"
    fi
done
