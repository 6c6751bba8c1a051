"""ClaudeMatrix: Claude Code sessions and people messaging each other over Matrix."""

__version__ = "0.1.0"
__all__ = ["__version__"]
