"""Workers: a message in a Matrix room starts a Claude Code run, and its output streams back.

spec.py (what a worker was started with), claude_run.py (one `claude -p` run), report.py
(what it says in a room) and host.py (a worker at work, inside the daemon).
"""
