"""Training data: the dataset that keeps a GPU fed (``paired_crop_dataset``) and the LMDBs it reads (``lmdb_store``),
dataset preparation (``preparation``: LR, sub-images, LMDBs, DF2K, benchmark layout) and the built-in sample photos
(``samples``). Needs basicsr."""
