"""sgpose: structure-guided multi-step refinement of 2D human pose (Tu, Wu, Wang 2026)."""

__version__ = "0.1.0"
