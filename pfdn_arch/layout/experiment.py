"""One experiment folder, ``experiments/<name>/``: the layout BasicSR writes and what this package adds to it, in
one place. BasicSR's part: ``models/net_g_<iter>.pth`` and ``net_g_latest.pth`` (``{'params'[, 'params_ema']}``),
``training_states/<iter>.state``, the logs and the copied yml. Ours: ``models/net_g_deploy_<iter>.pth`` (the
deployed form in the released layout, beside every save) and ``validation.json`` (every validation PFDNModel ran,
also in a test run's ``results/<name>/``: ``add_validation``)."""
import json
import os
import re
from typing import Any, List, Optional, Tuple, Union

from ..errors import CheckpointError
from ..files.atomic import read_json
from ..files.checkpoints import load_checkpoint, read_training_state, set_aside

_STATE_NAME = re.compile(r'(\d+)\.state')


class Experiment:
    """``experiments/<name>/`` under ``root`` (or the folder itself, ``Experiment.at(folder)``)."""

    def __init__(self, name: str, root: str = '.'):
        self.name = name
        self.folder = os.path.join(root, 'experiments', name)

    @classmethod
    def at(cls, folder: str) -> 'Experiment':
        exp = cls.__new__(cls)
        exp.name, exp.folder = os.path.basename(os.path.normpath(folder)), folder
        return exp

    @property
    def models(self) -> str:
        return os.path.join(self.folder, 'models')

    @property
    def training_states(self) -> str:
        return os.path.join(self.folder, 'training_states')

    @property
    def visualization(self) -> str:
        return os.path.join(self.folder, 'visualization')

    @property
    def history_file(self) -> str:
        return os.path.join(self.folder, HISTORY)

    def network(self, label: Union[int, str] = 'latest', deployed: bool = False) -> str:
        return os.path.join(self.models, f"net_g_{'deploy_' if deployed else ''}{label}.pth")

    def state(self, iteration: int) -> str:
        return os.path.join(self.training_states, f'{iteration}.state')

    def saved_iters(self) -> List[int]:
        """The iterations of the saved training states, newest first."""
        names = os.listdir(self.training_states) if os.path.isdir(self.training_states) else []
        return sorted((int(m[1]) for m in map(_STATE_NAME.fullmatch, names) if m), reverse=True)

    def progress(self) -> int:
        """The last saved iteration, 0 when none."""
        return next(iter(self.saved_iters()), 0)

    def history(self) -> List[dict]:
        """[{'iter', 'dataset', 'psnr', ...}] of every validation recorded, in order."""
        return read_history(self.history_file)

    def finished(self) -> bool:
        """Whether the run ended: its final network loads. A damaged one is set aside, so the run is resumed."""
        path = self.network('latest')
        if not os.path.isfile(path):
            return False
        try:
            load_checkpoint(path)
            return True
        except CheckpointError as err:
            set_aside(path, err.reason)
            return False

    def newest_resumable_state(self, device: Any = 'cpu') -> Tuple[Optional[str], Optional[dict]]:
        """(path, state) of the newest training state whose state and network checkpoint both load; newer damaged
        ones (a full disk, a copy cut short, ...) are set aside with a line each. (None, None) when there is none."""
        for it in self.saved_iters():
            state_path, net_path = self.state(it), self.network(it)
            try:
                state = read_training_state(state_path, device)
            except CheckpointError as err:
                set_aside(state_path, err.reason)
                continue
            try:
                load_checkpoint(net_path)
            except CheckpointError as err:
                if os.path.exists(net_path):
                    set_aside(net_path, err.reason)
                set_aside(state_path, f'its network checkpoint net_g_{it}.pth does not load')
                continue
            return state_path, state
        return None, None


HISTORY = 'validation.json'


def add_validation(folder: str, iteration: Optional[int], dataset: str, metrics: dict) -> str:
    """Record one validation in ``folder``'s ``validation.json`` (an experiment's or a test run's results folder):
    ``iteration`` (None in a test run), the dataset and its metrics; an entry of the same iteration and dataset is
    replaced (a resumed run validates again what a stopped one had). Written whole, atomically. Returns its path."""
    from ..files.atomic import write_text

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, HISTORY)
    entry = dict({'iter': iteration, 'dataset': dataset}, **{k: float(v) for k, v in metrics.items()})
    history = [e for e in read_history(path) if (e.get('iter'), e.get('dataset')) != (iteration, dataset)]
    history.append(entry)
    history.sort(key=lambda e: (e.get('iter') or 0, str(e.get('dataset'))))
    write_text(path, json.dumps(history, indent=1))
    return path


def read_history(path: str) -> List[dict]:
    """The entries of a ``validation.json``, [] when there is none or it is not one this package wrote (the next
    validation writes it anew)."""
    history = read_json(path)
    return [e for e in history if isinstance(e, dict)] if isinstance(history, list) else []
