"""Where pfdn's things are on disk: an experiment folder's layout (``experiment.py``), the shipped options, the
default weights and the released weights' digest (``locations.py``), and the built-in sample photos
(``samples.py``)."""
