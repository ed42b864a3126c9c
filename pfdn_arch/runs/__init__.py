"""One BasicSR run: its stock ``train_pipeline`` or ``test_pipeline`` with checked options (``pipeline.py``), and
what the run measured, read from the log BasicSR wrote (``results.py``). Needs basicsr."""
