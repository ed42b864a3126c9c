"""Data tools: built-in sample images and dataset preparation (LR, sub-images, LMDB, benchmark layout)."""
