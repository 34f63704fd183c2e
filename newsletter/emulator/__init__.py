"""A local HTTP server that speaks the providers' APIs, for tests, demos and benchmarks."""

from newsletter.emulator.server import DEFAULT_TOKEN, Emulator, run
from newsletter.emulator.state import Faults, Store

__all__ = ["DEFAULT_TOKEN", "Emulator", "Faults", "Store", "run"]
