
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'diff-dd' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'diff-dd'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'diff-dd' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('--sector-size', '--sector-size', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--buffer-size', '--buffer-size', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'With three paths: the format of the diff to write [default: native]')
            [CompletionResult]::new('--compress', '--compress', [CompletionResultType]::ParameterName, 'With three paths: compress record data with zstd at LEVEL (1 to 19), or store it raw with ''none'' [default: 4]. Extents of zeros are stored without data either way')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'With three paths: replace an OUTFILE that is not a diff, write a diff onto a block device, or read an image from a device mounted read-write')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Save the sectors of INFILE that differ from REFFILE (or from the image a digest describes) into the diff OUTFILE')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Apply DIFFFILE (or a chain of diffs) to OUTFILE, which must hold the full image the first was made against; with --base FULL, write FULL with the diffs laid over it into OUTFILE in one pass')
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Merge a chain of diffs into one diff against the first one''s base')
            [CompletionResult]::new('digest', 'digest', [CompletionResultType]::ParameterValue, 'Write a digest of IMAGE (or of the image the diffs give laid over it): its size and the BLAKE3 of each block, to check a target against without the image')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check a diff or a chain, and a target before or after restoring onto it, by reading each twice')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'List what a diff holds, from its headers alone')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a completion script for SHELL to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'diff-dd;backup' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'The format of the diff to write [default: native]')
            [CompletionResult]::new('--compress', '--compress', [CompletionResultType]::ParameterName, 'Compress record data with zstd at LEVEL (1 to 19), or store it raw with ''none'' [default: 4]. Extents of zeros are stored without data either way')
            [CompletionResult]::new('--on', '--on', [CompletionResultType]::ParameterName, 'Continue a chain: diff INFILE against REFFILE with the records of PREV laid over it, so that the diff holds only what changed since PREV. Once per diff of the chain, in order, the first made against REFFILE; each is checked in full first')
            [CompletionResult]::new('--digest', '--digest', [CompletionResultType]::ParameterName, 'Diff INFILE against the image DIGEST describes (written by diff-dd digest; ''-'': standard input) instead of REFFILE, reading INFILE once: every block that differs is recorded whole')
            [CompletionResult]::new('--digest-out', '--digest-out', [CompletionResultType]::ParameterName, 'With --digest: write the digest of INFILE into NEXT in the same pass, with DIGEST''s block size (the DIGEST of the next backup); it appears only once complete, after OUTFILE')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('--sector-size', '--sector-size', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--buffer-size', '--buffer-size', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace an OUTFILE that is not a diff (or a NEXT that is not a digest), write a diff onto a block device, or read an image from a device mounted read-write')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'diff-dd;restore' {
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'Where each diff (a file, or ''-'' for standard input) is copied first, as an unnamed file no other process can open, so that what is written is what was checked; needs room for the diffs [default: $TMPDIR, else /tmp]')
            [CompletionResult]::new('--base', '--base', [CompletionResultType]::ParameterName, 'Restore in one pass: read the full image FULL (''-'': standard input, which must hold exactly the image) once, lay the diffs over it in order and write the result into OUTFILE, which may then be a new file (appears only once it holds the image, sparse where it is zeros), an existing file or block device of the image''s size, or ''-'' for standard output')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('--sector-size', '--sector-size', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--buffer-size', '--buffer-size', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'With --base: overwrite an existing regular file OUTFILE that does not hold the image already (one that does is left as it is), or read FULL from a device mounted read-write. A block device OUTFILE needs no --force')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'diff-dd;merge' {
            [CompletionResult]::new('--base', '--base', [CompletionResultType]::ParameterName, 'The full image the first diff was made against, read where the diffs alone do not give the base bytes of a merged record')
            [CompletionResult]::new('--compress', '--compress', [CompletionResultType]::ParameterName, 'Compress record data with zstd at LEVEL (1 to 19), or store it raw with ''none''; records of sectors over 4 MiB are stored raw or as zeros whatever LEVEL [default: 4]')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('--sector-size', '--sector-size', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--buffer-size', '--buffer-size', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace an existing OUTFILE that is not a diff of the same images as the merge (a rerun of the same merge replaces its own), or read FULL from a device mounted read-write')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'diff-dd;digest' {
            [CompletionResult]::new('--block-size', '--block-size', [CompletionResultType]::ParameterName, 'The size of the blocks hashed, a power of two from 4K to 4M [default: 16K]: smaller blocks make a larger digest that names differences more finely')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--buffer-size', '--buffer-size', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace an existing OUTFILE that is not a digest')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'diff-dd;verify' {
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'Where a diff read from standard input (''-'') is copied first, as an unnamed file, so that it is checked whole before use [default: $TMPDIR, else /tmp]')
            [CompletionResult]::new('--expect', '--expect', [CompletionResultType]::ParameterName, 'Fail (exit 4) unless TARGET is in this state')
            [CompletionResult]::new('--digest', '--digest', [CompletionResultType]::ParameterName, 'Check that TARGET (the one path) holds the image DIGEST describes, reading it once (''-'': DIGEST from standard input)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('--sector-size', '--sector-size', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--buffer-size', '--buffer-size', [CompletionResultType]::ParameterName, 'Read buffer size in bytes, a multiple of the sector size; it never changes the diff [default: 4M]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document with the states, hashes and counts')
            [CompletionResult]::new('--no-target', '--no-target', [CompletionResultType]::ParameterName, 'Every path is a diff: check the chain they form, with no TARGET')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'diff-dd;inspect' {
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'Where a diff read from standard input (''-'') is copied first, as an unnamed file, so that it is checked whole before use [default: $TMPDIR, else /tmp]')
            [CompletionResult]::new('--files', '--files', [CompletionResultType]::ParameterName, 'List the files, directories and metadata of the ext2/3/4 filesystem the diffs change, FULL being the full image the first diff was made against')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('--sector-size', '--sector-size', [CompletionResultType]::ParameterName, 'Granularity of comparison in bytes [default: 512]. A native diff records its own sector size, so restore, verify and inspect need this only for diffs of the original v1 format')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document instead of a table')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more: a summary when done (extents, changed bytes, share of the image, throughput), and in verify and inspect the hashes too')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'diff-dd;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'diff-dd;help' {
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Save the sectors of INFILE that differ from REFFILE (or from the image a digest describes) into the diff OUTFILE')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Apply DIFFFILE (or a chain of diffs) to OUTFILE, which must hold the full image the first was made against; with --base FULL, write FULL with the diffs laid over it into OUTFILE in one pass')
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Merge a chain of diffs into one diff against the first one''s base')
            [CompletionResult]::new('digest', 'digest', [CompletionResultType]::ParameterValue, 'Write a digest of IMAGE (or of the image the diffs give laid over it): its size and the BLAKE3 of each block, to check a target against without the image')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check a diff or a chain, and a target before or after restoring onto it, by reading each twice')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'List what a diff holds, from its headers alone')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a completion script for SHELL to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'diff-dd;help;backup' {
            break
        }
        'diff-dd;help;restore' {
            break
        }
        'diff-dd;help;merge' {
            break
        }
        'diff-dd;help;digest' {
            break
        }
        'diff-dd;help;verify' {
            break
        }
        'diff-dd;help;inspect' {
            break
        }
        'diff-dd;help;completions' {
            break
        }
        'diff-dd;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
