"""The Matrix side: the only package that talks to matrix-nio."""

from claudematrix.matrix.client import MatrixClient, SessionCredentials
from claudematrix.matrix.content import build_content, message_from_event

__all__ = ["MatrixClient", "SessionCredentials", "build_content", "message_from_event"]
