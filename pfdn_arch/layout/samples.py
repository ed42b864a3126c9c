"""Built-in sample photos (they ship with scikit-image) for smoke runs and tests on a fresh machine."""
import os
from typing import List, Sequence

import cv2
import numpy as np

from ..files.images import write_image

# Colour photos stored inside scikit-image's package (no download). retina is the largest (1411 x 1411).
SAMPLE_FILES = ('astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'ihc.png', 'hubble_deep_field.jpg',
                'motorcycle_left.png', 'retina.jpg')


def sample_image(name: str) -> np.ndarray:
    """One built-in sample photo as a BGR uint8 array."""
    from skimage import data, io

    img = io.imread(os.path.join(data.data_dir, name))
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2BGR)


def write_samples(folder: str, names: Sequence[str] = SAMPLE_FILES) -> List[str]:
    """Write the sample photos as PNGs into ``folder`` (existing files are kept). Returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name in names:
        path = os.path.join(folder, os.path.splitext(name)[0] + '.png')
        if not os.path.exists(path):
            write_image(path, sample_image(name))
        paths.append(path)
    return paths
