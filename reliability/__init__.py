"""The reliability proofs: scripts that attack the running bot (a crash at any moment, ...)
and check afterwards that nothing was lost. The figures they print are published in
RELIABILITY.md, each with the command that reproduces it.
"""
