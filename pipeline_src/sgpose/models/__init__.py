"""Backbones (SimpleBaseline) and the structure-guided UNet refiner."""
