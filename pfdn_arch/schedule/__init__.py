"""The recipe's stages in order: the chain of stage ymls and its smoke profile (``stages.py``), and the runner that
starts each stage as a ``basicsr train`` of its own and reads its outcome from its exit status and log
(``runner.py``)."""
