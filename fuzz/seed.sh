#!/bin/sh
# Seeds the corpus of every fuzz target with the diffs of the repository's test vectors:
# tests/vectors/native/*.diff (v3, also records over blocks) and tests/vectors/legacy/*.diff
# (v1, v2); and digest_reader's with tests/vectors/native/*.digest. The corpus
# directories are git-ignored; libFuzzer adds what it finds to them.
set -eu
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
vectors="$fuzz_dir/../tests/vectors"
for target in diff_reader inspect; do
    corpus="$fuzz_dir/corpus/$target"
    mkdir -p "$corpus"
    for diff in "$vectors"/native/*.diff "$vectors"/legacy/*.diff; do
        cp "$diff" "$corpus/seed-$(basename "$(dirname "$diff")")-$(basename "$diff")"
    done
    echo "$target: $(ls "$corpus" | wc -l) files in $corpus"
done
corpus="$fuzz_dir/corpus/digest_reader"
mkdir -p "$corpus"
for digest in "$vectors"/native/*.digest; do
    cp "$digest" "$corpus/seed-$(basename "$digest")"
done
echo "digest_reader: $(ls "$corpus" | wc -l) files in $corpus"
