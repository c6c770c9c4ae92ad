"""Infrastructure every layer uses: user errors, atomic files and directories, locks, the run
directory with its stage markers, and progress display. Imports nothing else of warnframe."""
