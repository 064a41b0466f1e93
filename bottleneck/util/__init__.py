"""Plumbing every other folder uses: errors and checks, signals, the command line, config
files, the workdir's files and locks, the machine (`env`, `hugepages`), library compatibility.
Imports nothing else of the library."""
