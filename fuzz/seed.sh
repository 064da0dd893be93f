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

# ext4_reader: small real filesystems (ext2 with indirect blocks, ext4 with extents, 1 KiB
# blocks, a directory, a symlink), made with mkfs -d from a tree built here.
corpus="$fuzz_dir/corpus/ext4_reader"
mkdir -p "$corpus"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/dir/sub"
echo hello >"$tree/a"
seq 1 3000 >"$tree/dir/numbers"
echo deep >"$tree/dir/sub/deep"
ln -s a "$tree/link"
PATH=$PATH:/sbin:/usr/sbin
mkfs.ext2 -q -F -b 1024 -N 32 -d "$tree" "$corpus/seed-ext2.img" 128K >/dev/null
mkfs.ext4 -q -F -b 1024 -N 32 -O ^has_journal -d "$tree" "$corpus/seed-ext4.img" 192K >/dev/null
mkfs.ext4 -q -F -b 1024 -N 32 -O ^has_journal,64bit,meta_bg,^resize_inode -d "$tree" "$corpus/seed-ext4-64bit.img" 192K >/dev/null
echo "ext4_reader: $(ls "$corpus" | wc -l) files in $corpus"
