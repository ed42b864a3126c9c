"""A pytest plugin for spandrel's own suite (``-p detect_plugin``): every dummy model an architecture's ``test_load``
builds is shown to PFDN's detection, which must reject it. ``spandrel_patch.py check`` runs all of spandrel's
``test_load`` tests with it.

Only detection is this check's business (each architecture's loading is its own tests'), so ``assert_loads_correctly``
is replaced by: build each dummy on the ``meta`` device (shapes and keys, no memory, no arithmetic; a few
constructors compute on real numbers and are built on the CPU instead) and ask PFDN whether it is one of its own.
Run as spandrel runs them, the same tests had taken 7.5 CPU minutes and 4 GB on two cores when stopped."""
from typing import Any, Callable, List

import pytest
import torch

_seen: List[str] = []


def pytest_configure(config: pytest.Config) -> None:
    import tests.util as util  # spandrel's helpers; the test modules import assert_loads_correctly after this
    from spandrel.architectures.PFDN import PFDNArch

    pfdn = PFDNArch()

    def assert_loads_correctly(arch: Any, *models: Callable[[], Any], **kwargs: Any) -> None:
        for model_fn in models:
            try:
                with torch.device('meta'):
                    model = model_fn()
            except Exception:  # a constructor that computes on real numbers
                model = model_fn()
            state_dict = model.state_dict()
            assert not pfdn.detect(state_dict), f'PFDN claims a {type(model).__name__} dummy ({arch.id})'
            _seen.append(arch.id)

    util.assert_loads_correctly = assert_loads_correctly


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f'PFDN claimed none of {len(_seen)} dummies of {len(set(_seen))} architectures')
