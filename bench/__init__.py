"""ClaudeMatrix's benchmark suite: `python -m bench [--quick]` (see bench/run.py)."""
