"""Training loops and sources."""
