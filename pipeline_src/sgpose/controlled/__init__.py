"""Controlled backbones."""
