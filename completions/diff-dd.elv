
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
            cand -s 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore needs this only for diffs of the original v1 format'
            cand --sector-size 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore needs this only for diffs of the original v1 format'
            cand -b 'Read buffer size in bytes; a multiple of the sector size'
            cand --buffer-size 'Read buffer size in bytes; a multiple of the sector size'
            cand --format 'With three paths: the format of the diff to write [default: native]'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print a summary when done: extents, changed bytes, share of the image, throughput'
            cand --verbose 'Print a summary when done: extents, changed bytes, share of the image, throughput'
            cand --force 'With three paths: replace an OUTFILE that is not a diff, write a diff onto a block device, or read an image from a device mounted read-write'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand backup 'Save the sectors of INFILE that differ from REFFILE into the diff OUTFILE'
            cand restore 'Apply DIFFFILE to OUTFILE, which must hold the full image the diff was made against'
            cand verify 'Check a diff, and a target before or after restoring onto it, by reading each twice'
            cand inspect 'List what a diff holds, from its headers alone'
            cand completions 'Print a completion script for SHELL to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'diff-dd;backup'= {
            cand -s 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore needs this only for diffs of the original v1 format'
            cand --sector-size 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore needs this only for diffs of the original v1 format'
            cand -b 'Read buffer size in bytes; a multiple of the sector size'
            cand --buffer-size 'Read buffer size in bytes; a multiple of the sector size'
            cand --format 'The format of the diff to write [default: native]'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print a summary when done: extents, changed bytes, share of the image, throughput'
            cand --verbose 'Print a summary when done: extents, changed bytes, share of the image, throughput'
            cand --force 'Replace an OUTFILE that is not a diff, write a diff onto a block device, or read an image from a device mounted read-write'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'diff-dd;restore'= {
            cand -s 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore needs this only for diffs of the original v1 format'
            cand --sector-size 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore needs this only for diffs of the original v1 format'
            cand -b 'Read buffer size in bytes; a multiple of the sector size'
            cand --buffer-size 'Read buffer size in bytes; a multiple of the sector size'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print a summary when done: extents, changed bytes, share of the image, throughput'
            cand --verbose 'Print a summary when done: extents, changed bytes, share of the image, throughput'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'diff-dd;verify'= {
            cand -s 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore needs this only for diffs of the original v1 format'
            cand --sector-size 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore needs this only for diffs of the original v1 format'
            cand -b 'Read buffer size in bytes; a multiple of the sector size'
            cand --buffer-size 'Read buffer size in bytes; a multiple of the sector size'
            cand --expect 'Fail (exit 4) unless TARGET is in this state'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Print a summary when done: extents, changed bytes, share of the image, throughput'
            cand --verbose 'Print a summary when done: extents, changed bytes, share of the image, throughput'
            cand --json 'Print one JSON document with the states, hashes and counts'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'diff-dd;inspect'= {
            cand -s 'Sector size of a v1 diff, which does not record it [default: 512]'
            cand --sector-size 'Sector size of a v1 diff, which does not record it [default: 512]'
            cand --json 'Print one JSON document instead of a table'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'diff-dd;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'diff-dd;help'= {
            cand backup 'Save the sectors of INFILE that differ from REFFILE into the diff OUTFILE'
            cand restore 'Apply DIFFFILE to OUTFILE, which must hold the full image the diff was made against'
            cand verify 'Check a diff, and a target before or after restoring onto it, by reading each twice'
            cand inspect 'List what a diff holds, from its headers alone'
            cand completions 'Print a completion script for SHELL to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'diff-dd;help;backup'= {
        }
        &'diff-dd;help;restore'= {
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
