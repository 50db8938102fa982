"""The vocabulary and file primitives every package uses."""
