"""Compatibility re-export for the official-parity check (../shared/reference/official_parity/parity.py
imports `decode` and `flip_back` from here). The package itself imports `sgpose.data.targets` (the
encoder) and `sgpose.data.decoding` (the decoders); nothing else belongs in this module."""

from sgpose.data.decoding import decode, flip_back

__all__ = ["decode", "flip_back"]
