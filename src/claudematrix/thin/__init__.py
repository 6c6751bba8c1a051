"""The standard-library front ends of the daemon: the link to it and each session's MCP shim.

Nothing here imports a third-party library or the rest of claudematrix beyond
`claudematrix.local`: a shim runs once per Claude Code session and must stay small.
"""
