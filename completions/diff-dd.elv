
use builtin;
use str;

set edit:completion:arg-completer[diff-dd] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'diff-dd'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'diff-dd'= {
            cand -s 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand --sector-size 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand -b 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --buffer-size 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --format 'With three paths: the format of the diff to write [default: native]'
            cand --compress 'With three paths: compress record data with zstd at LEVEL (1 to 19), or store it raw with ''none'' [default: 4]. Extents of zeros are stored without data either way'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand --verbose 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand --force 'With three paths: replace an OUTFILE that is not a diff, write a diff onto a block device, or read an image from a device mounted read-write'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand backup 'Save the sectors of INFILE that differ from REFFILE (or from the image a digest describes) into the diff OUTFILE'
            cand restore 'Apply DIFFFILE (or a chain of diffs) to OUTFILE, which must hold the full image the first was made against; with --base FULL, write FULL with the diffs laid over it into OUTFILE in one pass'
            cand merge 'Merge a chain of diffs into one diff against the first one''s base'
            cand digest 'Write a digest of IMAGE (or of the image the diffs give laid over it): its size and the BLAKE3 of each block, to check a target against without the image'
            cand verify 'Check a diff or a chain, and a target before or after restoring onto it, by reading each twice'
            cand inspect 'List what a diff holds, from its headers alone'
            cand completions 'Print a completion script for SHELL to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'diff-dd;backup'= {
            cand --format 'The format of the diff to write [default: native]'
            cand --compress 'Compress record data with zstd at LEVEL (1 to 19), or store it raw with ''none'' [default: 4]. Extents of zeros are stored without data either way'
            cand --on 'Continue a chain: diff INFILE against REFFILE with the records of PREV laid over it, so that the diff holds only what changed since PREV. Once per diff of the chain, in order, the first made against REFFILE; each is checked in full first'
            cand --digest 'Diff INFILE against the image DIGEST describes (written by diff-dd digest; ''-'': standard input) instead of REFFILE, reading INFILE once: every block that differs is recorded whole'
            cand --digest-out 'With --digest: write the digest of INFILE into NEXT in the same pass, with DIGEST''s block size (the DIGEST of the next backup); it appears only once complete, after OUTFILE'
            cand -s 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand --sector-size 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand -b 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --buffer-size 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --force 'Replace an OUTFILE that is not a diff (or a NEXT that is not a digest), write a diff onto a block device, or read an image from a device mounted read-write'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand --verbose 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'diff-dd;restore'= {
            cand --spool 'Where each diff (a file, or ''-'' for standard input) is copied first, as an unnamed file no other process can open, so that what is written is what was checked; needs room for the diffs [default: $TMPDIR, else /tmp]'
            cand --base 'Restore in one pass: read the full image FULL (''-'': standard input, which must hold exactly the image) once, lay the diffs over it in order and write the result into OUTFILE, which may then be a new file (appears only once it holds the image, sparse where it is zeros), an existing file or block device of the image''s size, or ''-'' for standard output'
            cand -s 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand --sector-size 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand -b 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --buffer-size 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --force 'With --base: overwrite an existing regular file OUTFILE that does not hold the image already (one that does is left as it is), or read FULL from a device mounted read-write. A block device OUTFILE needs no --force'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand --verbose 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'diff-dd;merge'= {
            cand --base 'The full image the first diff was made against, read where the diffs alone do not give the base bytes of a merged record'
            cand --compress 'Compress record data with zstd at LEVEL (1 to 19), or store it raw with ''none''; records of sectors over 4 MiB are stored raw or as zeros whatever LEVEL [default: 4]'
            cand -s 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand --sector-size 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand -b 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --buffer-size 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --force 'Replace an existing OUTFILE that is not a diff of the same images as the merge (a rerun of the same merge replaces its own), or read FULL from a device mounted read-write'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand --verbose 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'diff-dd;digest'= {
            cand --block-size 'The size of the blocks hashed, a power of two from 4K to 4M [default: 16K]: smaller blocks make a larger digest that names differences more finely'
            cand -b 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --buffer-size 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --force 'Replace an existing OUTFILE that is not a digest'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand --verbose 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'diff-dd;verify'= {
            cand --spool 'Where a diff read from standard input (''-'') is copied first, as an unnamed file, so that it is checked whole before use [default: $TMPDIR, else /tmp]'
            cand --expect 'Fail (exit 4) unless TARGET is in this state'
            cand --digest 'Check that TARGET (the one path) holds the image DIGEST describes, reading it once (''-'': DIGEST from standard input)'
            cand -s 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand --sector-size 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand -b 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --buffer-size 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]'
            cand --json 'Print one JSON document with the states, hashes and counts'
            cand --no-target 'Every path is a diff: check the chain they form, with no TARGET'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand --verbose 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'diff-dd;inspect'= {
            cand --spool 'Where a diff read from standard input (''-'') is copied first, as an unnamed file, so that it is checked whole before use [default: $TMPDIR, else /tmp]'
            cand --files 'List the files, directories and metadata of the ext2/3/4 filesystem the diffs change, FULL being the full image the first diff was made against'
            cand -s 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand --sector-size 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format'
            cand --json 'Print one JSON document instead of a table'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand --verbose 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'diff-dd;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'diff-dd;help'= {
            cand backup 'Save the sectors of INFILE that differ from REFFILE (or from the image a digest describes) into the diff OUTFILE'
            cand restore 'Apply DIFFFILE (or a chain of diffs) to OUTFILE, which must hold the full image the first was made against; with --base FULL, write FULL with the diffs laid over it into OUTFILE in one pass'
            cand merge 'Merge a chain of diffs into one diff against the first one''s base'
            cand digest 'Write a digest of IMAGE (or of the image the diffs give laid over it): its size and the BLAKE3 of each block, to check a target against without the image'
            cand verify 'Check a diff or a chain, and a target before or after restoring onto it, by reading each twice'
            cand inspect 'List what a diff holds, from its headers alone'
            cand completions 'Print a completion script for SHELL to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'diff-dd;help;backup'= {
        }
        &'diff-dd;help;restore'= {
        }
        &'diff-dd;help;merge'= {
        }
        &'diff-dd;help;digest'= {
        }
        &'diff-dd;help;verify'= {
        }
        &'diff-dd;help;inspect'= {
        }
        &'diff-dd;help;completions'= {
        }
        &'diff-dd;help;help'= {
        }
    ]
    $completions[$command]
}
