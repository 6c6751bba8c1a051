"""The on-disk contract between one session's processes, in the standard library only.

The hooks (on every tool call), the MCP server, the CLI and the idle waiter meet here: where
the state dir and each identity's files are (layout), the markers that say "new mail" and
wake an idle session (markers), the few store queries the hooks run (mailbox), and how a
sender's text is cleaned and shown (untrusted, headers). Nothing in this package imports
anything of ClaudeMatrix outside it, and importing it costs the hooks' hot path almost
nothing (`sys` and the built-in `posix` at most; the rest only where a function needs it).
"""
