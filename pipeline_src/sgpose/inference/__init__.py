"""Inference over splits."""
