"""File handling: atomic writes, image files as they are read and written, weights and training-state files read
safely, and where the commands' defaults live. Needs torch, numpy, OpenCV and Pillow; never basicsr."""
