# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_diff_dd_global_optspecs
    string join \n s/sector-size= b/buffer-size= q/quiet v/verbose format= force compress= h/help V/version
end

function __fish_diff_dd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_diff_dd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_diff_dd_using_subcommand
    set -l cmd (__fish_diff_dd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c diff-dd -n "__fish_diff_dd_needs_command" -s s -l sector-size -d 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format' -r
complete -c diff-dd -n "__fish_diff_dd_needs_command" -s b -l buffer-size -d 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]' -r
complete -c diff-dd -n "__fish_diff_dd_needs_command" -l format -d 'With three paths: the format of the diff to write [default: native]' -r -f -a "native\t'diff-dd\'s own format (v3): headers, hashes of every record and of both images'
v1\t'The original diff-dd 1.0 format, byte for byte: offsets and sectors, no hashes'"
complete -c diff-dd -n "__fish_diff_dd_needs_command" -l compress -d 'With three paths: compress record data with zstd at LEVEL (1 to 19), or store it raw with \'none\' [default: 4]. Extents of zeros are stored without data either way' -r -f -a "none\t'store record data raw'
1\t'fastest'
2\t''
3\t''
4\t'the default'
5\t''
6\t''
7\t''
8\t''
9\t''
10\t''
11\t''
12\t''
13\t''
14\t''
15\t''
16\t''
17\t''
18\t''
19\t'smallest'"
complete -c diff-dd -n "__fish_diff_dd_needs_command" -s q -l quiet -d 'Print nothing but errors'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -s v -l verbose -d 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -l force -d 'With three paths: replace an OUTFILE that is not a diff, write a diff onto a block device, or read an image from a device mounted read-write'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -s V -l version -d 'Print version'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -a "backup" -d 'Save the sectors of INFILE that differ from REFFILE (or from the image a digest describes) into the diff OUTFILE'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -a "restore" -d 'Apply DIFFFILE (or a chain of diffs) to OUTFILE, which must hold the full image the first was made against; with --base FULL, write FULL with the diffs laid over it into OUTFILE in one pass'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -a "merge" -d 'Merge a chain of diffs into one diff against the first one\'s base'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -a "digest" -d 'Write a digest of IMAGE (or of the image the diffs give laid over it): its size and the BLAKE3 of each block, to check a target against without the image'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -a "verify" -d 'Check a diff or a chain, and a target before or after restoring onto it, by reading each twice'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -a "inspect" -d 'List what a diff holds, from its headers alone'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -a "completions" -d 'Print a completion script for SHELL to stdout'
complete -c diff-dd -n "__fish_diff_dd_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -l format -d 'The format of the diff to write [default: native]' -r -f -a "native\t'diff-dd\'s own format (v3): headers, hashes of every record and of both images'
v1\t'The original diff-dd 1.0 format, byte for byte: offsets and sectors, no hashes'"
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -l compress -d 'Compress record data with zstd at LEVEL (1 to 19), or store it raw with \'none\' [default: 4]. Extents of zeros are stored without data either way' -r -f -a "none\t'store record data raw'
1\t'fastest'
2\t''
3\t''
4\t'the default'
5\t''
6\t''
7\t''
8\t''
9\t''
10\t''
11\t''
12\t''
13\t''
14\t''
15\t''
16\t''
17\t''
18\t''
19\t'smallest'"
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -l on -d 'Continue a chain: diff INFILE against REFFILE with the records of PREV laid over it, so that the diff holds only what changed since PREV. Once per diff of the chain, in order, the first made against REFFILE; each is checked in full first' -r -F
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -l digest -d 'Diff INFILE against the image DIGEST describes (written by diff-dd digest; \'-\': standard input) instead of REFFILE, reading INFILE once: every block that differs is recorded whole' -r -F
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -l digest-out -d 'With --digest: write the digest of INFILE into NEXT in the same pass, with DIGEST\'s block size (the DIGEST of the next backup); it appears only once complete, after OUTFILE' -r -F
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -s s -l sector-size -d 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -s b -l buffer-size -d 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -l force -d 'Replace an OUTFILE that is not a diff (or a NEXT that is not a digest), write a diff onto a block device, or read an image from a device mounted read-write'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -s q -l quiet -d 'Print nothing but errors'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -s v -l verbose -d 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand backup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand restore" -l spool -d 'Where each diff (a file, or \'-\' for standard input) is copied first, as an unnamed file no other process can open, so that what is written is what was checked; needs room for the diffs [default: $TMPDIR, else /tmp]' -r -F
complete -c diff-dd -n "__fish_diff_dd_using_subcommand restore" -l base -d 'Restore in one pass: read the full image FULL (\'-\': standard input, which must hold exactly the image) once, lay the diffs over it in order and write the result into OUTFILE, which may then be a new file (appears only once it holds the image, sparse where it is zeros), an existing file or block device of the image\'s size, or \'-\' for standard output' -r -F
complete -c diff-dd -n "__fish_diff_dd_using_subcommand restore" -s s -l sector-size -d 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand restore" -s b -l buffer-size -d 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand restore" -l force -d 'With --base: overwrite an existing regular file OUTFILE that does not hold the image already (one that does is left as it is), or read FULL from a device mounted read-write. A block device OUTFILE needs no --force'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand restore" -s q -l quiet -d 'Print nothing but errors'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand restore" -s v -l verbose -d 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand restore" -s h -l help -d 'Print help'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand merge" -l base -d 'The full image the first diff was made against, read where the diffs alone do not give the base bytes of a merged record' -r -F
complete -c diff-dd -n "__fish_diff_dd_using_subcommand merge" -l compress -d 'Compress record data with zstd at LEVEL (1 to 19), or store it raw with \'none\'; records of sectors over 4 MiB are stored raw or as zeros whatever LEVEL [default: 4]' -r -f -a "none\t'store record data raw'
1\t'fastest'
2\t''
3\t''
4\t'the default'
5\t''
6\t''
7\t''
8\t''
9\t''
10\t''
11\t''
12\t''
13\t''
14\t''
15\t''
16\t''
17\t''
18\t''
19\t'smallest'"
complete -c diff-dd -n "__fish_diff_dd_using_subcommand merge" -s s -l sector-size -d 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand merge" -s b -l buffer-size -d 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand merge" -l force -d 'Replace an existing OUTFILE that is not a diff of the same images as the merge (a rerun of the same merge replaces its own), or read FULL from a device mounted read-write'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand merge" -s q -l quiet -d 'Print nothing but errors'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand merge" -s v -l verbose -d 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand merge" -s h -l help -d 'Print help'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand digest" -l block-size -d 'The size of the blocks hashed, a power of two from 4K to 4M [default: 16K]: smaller blocks make a larger digest that names differences more finely' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand digest" -s b -l buffer-size -d 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand digest" -l force -d 'Replace an existing OUTFILE that is not a digest'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand digest" -s q -l quiet -d 'Print nothing but errors'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand digest" -s v -l verbose -d 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand digest" -s h -l help -d 'Print help'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand verify" -l spool -d 'Where a diff read from standard input (\'-\') is copied first, as an unnamed file, so that it is checked whole before use [default: $TMPDIR, else /tmp]' -r -F
complete -c diff-dd -n "__fish_diff_dd_using_subcommand verify" -l expect -d 'Fail (exit 4) unless TARGET is in this state' -r -f -a "base\t'The image the diff was made against: ready for restore'
restored\t'The image the diff was made from: restored'"
complete -c diff-dd -n "__fish_diff_dd_using_subcommand verify" -l digest -d 'Check that TARGET (the one path) holds the image DIGEST describes, reading it once (\'-\': DIGEST from standard input)' -r -F
complete -c diff-dd -n "__fish_diff_dd_using_subcommand verify" -s s -l sector-size -d 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand verify" -s b -l buffer-size -d 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand verify" -l json -d 'Print one JSON document with the states, hashes and counts'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand verify" -l no-target -d 'Every path is a diff: check the chain they form, with no TARGET'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand verify" -s q -l quiet -d 'Print nothing but errors'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand verify" -s v -l verbose -d 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand inspect" -l spool -d 'Where a diff read from standard input (\'-\') is copied first, as an unnamed file, so that it is checked whole before use [default: $TMPDIR, else /tmp]' -r -F
complete -c diff-dd -n "__fish_diff_dd_using_subcommand inspect" -l files -d 'List the files, directories and metadata of the ext2/3/4 filesystem the diffs change, FULL being the full image the first diff was made against' -r -F
complete -c diff-dd -n "__fish_diff_dd_using_subcommand inspect" -s s -l sector-size -d 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format' -r
complete -c diff-dd -n "__fish_diff_dd_using_subcommand inspect" -l json -d 'Print one JSON document instead of a table'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand inspect" -s q -l quiet -d 'Print nothing but errors'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand inspect" -s v -l verbose -d 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand completions" -s h -l help -d 'Print help'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand help; and not __fish_seen_subcommand_from backup restore merge digest verify inspect completions help" -f -a "backup" -d 'Save the sectors of INFILE that differ from REFFILE (or from the image a digest describes) into the diff OUTFILE'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand help; and not __fish_seen_subcommand_from backup restore merge digest verify inspect completions help" -f -a "restore" -d 'Apply DIFFFILE (or a chain of diffs) to OUTFILE, which must hold the full image the first was made against; with --base FULL, write FULL with the diffs laid over it into OUTFILE in one pass'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand help; and not __fish_seen_subcommand_from backup restore merge digest verify inspect completions help" -f -a "merge" -d 'Merge a chain of diffs into one diff against the first one\'s base'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand help; and not __fish_seen_subcommand_from backup restore merge digest verify inspect completions help" -f -a "digest" -d 'Write a digest of IMAGE (or of the image the diffs give laid over it): its size and the BLAKE3 of each block, to check a target against without the image'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand help; and not __fish_seen_subcommand_from backup restore merge digest verify inspect completions help" -f -a "verify" -d 'Check a diff or a chain, and a target before or after restoring onto it, by reading each twice'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand help; and not __fish_seen_subcommand_from backup restore merge digest verify inspect completions help" -f -a "inspect" -d 'List what a diff holds, from its headers alone'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand help; and not __fish_seen_subcommand_from backup restore merge digest verify inspect completions help" -f -a "completions" -d 'Print a completion script for SHELL to stdout'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand help; and not __fish_seen_subcommand_from backup restore merge digest verify inspect completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c diff-dd -n "__fish_diff_dd_using_subcommand completions" -f -a "bash elvish fish powershell zsh"
