"""Scoring and pictures: the benchmark protocol (``protocol.py``: BasicSR's bicubic LR, Y-channel PSNR/SSIM) and
the report's figures (``report.py``: crops, comparison strips, the PSNR plot). Needs basicsr's metrics."""
