"""The torch-free runtime: verified bundles, backends, the engine and the streaming monitor."""

from bell_edge.runtime.engine import Engine
from bell_edge.runtime.monitor import StreamingMonitor

__all__ = ["Engine", "StreamingMonitor"]
