"""Data: COCO-format reading, crop geometry, heatmap targets and decoding."""
