"""What a ``--force_yml`` value means, and what the keys BasicSR and this recipe read may hold.

A value is read as BasicSR's own ``--force_yml`` parser reads it (``basicsr.utils.options._postprocess_yml_value``:
``~``/``none`` -> None, ``true``/``false`` -> bools, digits -> numbers, ``[...]`` -> a list), widened to the numbers
it leaves as text (``-1``, ``1e-4``, ``5e3``: a user who types them means numbers, and BasicSR would fail on the
text later) and with lists read as literals instead of BasicSR's ``eval``. Then ``KEYS``, one table of the keys
the recipe and BasicSR read, says which values each takes (``num_gpu``: a whole number >= 0 or ``auto``): a value
outside it is one line naming the key, what it takes and what was given. A key the table does not know keeps the
type of the yml's own value (``typed_value``), as before.

The same table checks the yml's own values (``check_values``), so a mistake in the file and one on the command line
read alike.
"""
from __future__ import annotations

import ast
import fnmatch
from typing import Any, Callable, Iterable, Optional, Tuple

from basicsr.utils.options import _postprocess_yml_value

from ..archs.pfdn.rrrb import RRRB
from ..deploy.runtime.choose import BACKENDS, PRECISIONS
from ..errors import OptionsError
from ..models.qat_model import QAT_TARGETS
from ..models.train_step import AMP_DTYPES
from .preflight import SCHEDULERS

# ``datasets.train.prefetch_mode``: what BasicSR's train_pipeline takes besides none (its error message lists them;
# tests/test_options.py reads that message to hold this against it)
PREFETCH_MODES = ('cpu', 'cuda')


def basicsr_value(text: str) -> Any:
    """``text`` as BasicSR's ``--force_yml`` reads it, plus the numbers it leaves as text."""
    text = text.strip()
    if text.startswith('['):  # BasicSR eval()s a list; the same literals, without running anything
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise OptionsError(f"'{text}' is not a list (write it as [1, 2] or ['a', 'b'])", 'force_yml') from None
    if text == '':
        return text
    value = _postprocess_yml_value(text)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if number == number and abs(number) != float('inf'):  # not 'nan' / 'inf': those stay words
            return int(number) if _integral_text(value) else number
    return value


def _integral_text(text):
    try:
        int(text)
        return True
    except ValueError:
        return float(text) == int(float(text)) and 'e' in text.lower() and '.' not in text  # 5e3 -> 5000


# ------------------------------------------------------------------------------------------ value kinds
class Kind:
    """What a key takes: ``describe`` for the error line, ``accept(value)`` -> the value to use, or raises
    ValueError; ``words``: the words it takes, where it takes a choice of words (``one_of``)."""

    def __init__(self, describe: str, accept: Callable[[Any], Any], words: Tuple[Any, ...] = ()):
        self.describe, self.accept, self.words = describe, accept, words

    def __or__(self, other: 'Kind') -> 'Kind':
        def accept(value):
            try:
                return self.accept(value)
            except ValueError:
                return other.accept(value)
        return Kind(f'{self.describe} or {other.describe}', accept, self.words + other.words)


def _whole(least=None, most=None):
    def accept(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
                or float(value) != int(value):
            raise ValueError
        value = int(value)
        if (least is not None and value < least) or (most is not None and value > most):
            raise ValueError
        return value
    span = (f' >= {least}' if most is None else f' in {least}..{most}') if least is not None else ''
    return Kind(f'a whole number{span}', accept)


def _number(low=None, high=None, low_open=False, high_open=False):
    def accept(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError
        if low is not None and (value <= low if low_open else value < low):
            raise ValueError
        if high is not None and (value >= high if high_open else value > high):
            raise ValueError
        return value
    if low is not None and high is not None:
        span = f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        span = f" {'>' if low_open else '>='} {low}"
    else:
        span = ''
    return Kind(f'a number{span}', accept)


def one_of(words: Iterable[str]) -> Kind:
    """A choice of ``words``: always the values the code that reads the key defines (its own constant, imported
    here), never a copy of them."""
    words = tuple(words)

    def accept(value):
        if not isinstance(value, str) or value not in words:
            raise ValueError
        return value
    return Kind(' or '.join(words), accept, words)


def _bool_accept(value):
    if not isinstance(value, bool):
        raise ValueError
    return value


def _text_accept(value):
    if not isinstance(value, str) or not value:
        raise ValueError
    return value


def _none_accept(value):
    if value is not None:
        raise ValueError
    return value


def _folder_name_accept(value):
    """A run's ``name``: one folder under experiments/ or results/, never a path (BasicSR joins it to them)."""
    if not isinstance(value, str) or value.strip() in ('', '.', '..') or any(c in value for c in '/\\\0'):
        raise ValueError
    return value


def _section_accept(value):
    if not isinstance(value, dict):
        raise ValueError
    return value


def _list_of(item):
    def accept(value):
        if not isinstance(value, (list, tuple)):
            raise ValueError
        return [item.accept(v) for v in value]
    return Kind(f'a list of {item.describe}s, e.g. [1, 2]', accept)


BOOL = Kind('true or false', _bool_accept)
TEXT = Kind('a name or path', _text_accept)
FOLDER_NAME = Kind('a single folder name (no /, \\ or ..)', _folder_name_accept)
NONE = Kind('~ (none)', _none_accept)
SECTION = Kind('a section of keys', _section_accept)

# The keys BasicSR's pipelines and this recipe read, and what each takes. Patterns match the key path written as
# in --force_yml (``datasets:*:gt_size``); the first matching pattern applies. A choice of words is read from the
# code that uses the key (tests/test_options.py holds each against its user).
KEYS = (
    ('name', FOLDER_NAME),
    ('model_type', TEXT),
    ('scale', _whole(1, 8)),
    ('num_gpu', _whole(0) | one_of(['auto'])),
    ('manual_seed', _whole(0) | NONE),
    ('val', SECTION | NONE),
    ('path:pretrain_network_*', TEXT | NONE),
    ('path:resume_state', TEXT | NONE),
    ('path:strict_load_*', BOOL),
    ('path:param_key_*', TEXT | NONE),
    ('datasets:*:type', TEXT),
    ('datasets:*:dataroot_*', TEXT),
    ('datasets:*:gt_size', _whole(1)),
    ('datasets:*:batch_size_per_gpu', _whole(1)),
    ('datasets:*:num_worker_per_gpu', _whole(0)),
    ('datasets:*:dataset_enlarge_ratio', _whole(1)),
    ('datasets:*:use_hflip', BOOL),
    ('datasets:*:use_rot', BOOL),
    ('datasets:*:use_shuffle', BOOL),
    ('datasets:*:pin_memory', BOOL),
    ('datasets:*:persistent_workers', BOOL),
    ('datasets:*:uint8_batches', BOOL),
    ('datasets:*:prefetch_mode', NONE | one_of(PREFETCH_MODES)),
    ('network_*:type', TEXT),
    ('network_*:upscale', _whole(1, 8)),
    ('network_*:deploy', BOOL),
    ('network_*:rrrb_mode', one_of(RRRB.MODES)),
    ('train:total_iter', _whole(1)),
    ('train:warmup_iter', _whole(-1)),
    ('train:ema_decay', _number(0, 1, high_open=True)),
    ('train:amp', one_of(AMP_DTYPES) | NONE),
    ('train:channels_last', BOOL),
    ('train:compile', BOOL | SECTION),
    ('train:grad_clip_norm', _number(0, low_open=True) | NONE),
    ('train:qat:target', one_of(QAT_TARGETS)),
    ('train:optim_*:type', TEXT),
    ('train:optim_*:lr', _number(0, low_open=True)),
    ('train:optim_*:weight_decay', _number(0)),
    ('train:optim_*:betas', _list_of(_number(0, 1, high_open=True))),
    ('train:scheduler:type', one_of(SCHEDULERS)),
    ('train:scheduler:milestones', _list_of(_whole(0))),
    ('train:scheduler:periods', _list_of(_whole(1))),
    ('train:scheduler:restarts', _list_of(_whole(0))),
    ('train:scheduler:restart_weights', _list_of(_number(0))),
    ('train:scheduler:gamma', _number(0, low_open=True)),
    ('train:scheduler:eta_min', _number(0)),
    ('train:*_opt:type', TEXT),
    ('train:*_opt:loss_weight', _number(0)),
    ('val:val_freq', _whole(1)),
    ('val:save_img', BOOL),
    ('val:save_comparison', BOOL),
    ('val:pbar', BOOL),
    ('val:backend', one_of(BACKENDS)),
    ('val:dtype', one_of(PRECISIONS)),
    ('val:suffix', TEXT | NONE),
    ('logger:print_freq', _whole(1)),
    ('logger:save_checkpoint_freq', _whole(1)),
    ('logger:use_tb_logger', BOOL),
    ('dist_params:port', _whole(1, 65535)),
)


def kind_of(keys: str) -> Optional[Kind]:
    """The Kind the table gives the key path ``keys`` ('a:b:c'), or None."""
    for pattern, kind in KEYS:
        if pattern.count(':') == keys.count(':') and fnmatch.fnmatchcase(keys, pattern):
            return kind
    return None


def _accepted(kind, value, reason, where):
    """``value`` as ``kind`` takes it (a whole number given as 5e3 becomes 5000), else one OptionsError."""
    try:
        return kind.accept(value)
    except ValueError:
        raise OptionsError(reason, where) from None


def check_values(opt: dict, path: str) -> None:
    """Every value of the options that the table knows, checked (the yml's own and the overridden alike)."""
    def walk(node, prefix):
        for key, value in node.items():
            keys = f'{prefix}:{key}' if prefix else str(key)
            kind = kind_of(keys)
            if kind is not None:
                _accepted(kind, value, f"{keys.replace(':', '.')} takes {kind.describe}, got {value!r}", path)
            if isinstance(value, dict):
                walk(value, keys)
    walk(opt, '')


def typed_value(text: str, current: Any, entry: str = 'force_yml') -> Any:
    """The value of an override of a key the table does not know, of the type the yml's own value has: a number
    stays a number (a fraction where the yml has 0 is a fraction), a bool a bool, a string a string (``~`` clears
    it), a list a list; a key the yml leaves empty takes the value as BasicSR reads it."""
    value = basicsr_value(text)
    kind = type(current).__name__

    def fail(what):
        raise OptionsError(f'{entry}: {what} (the yml has {current!r})', 'force_yml')

    if current is None:
        return value
    if isinstance(current, dict):
        if value is None:
            return None  # a section BasicSR reads as optional
        fail('that is a section; set the keys inside it')
    if isinstance(current, bool):
        if not isinstance(value, bool):
            fail('needs true or false')
        return value
    if isinstance(current, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f'needs a number ({kind})')
        if isinstance(current, int):  # ymls write 0 for a float too (ema_decay: 0): a fraction widens it
            return int(value) if float(value) == int(value) else float(value)
        return float(value)
    if isinstance(current, list):
        if value is None:
            return None
        if not isinstance(value, list):
            fail('needs a list, e.g. [1, 2]')
        return value
    return None if value is None else text.strip()  # a string: the text as typed


def override_value(keys: str, text: str, current: Any, entry: str) -> Any:
    """The value ``--force_yml keys=text`` sets: by the table where it knows the key, else by the yml's type."""
    kind = kind_of(keys)
    if kind is None:
        return typed_value(text, current, entry)
    reason = f"{entry}: {keys.replace(':', '.')} takes {kind.describe}"
    value = basicsr_value(text)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:  # a name or path that happens to be digits stays the text as typed
            return kind.accept(text.strip())
        except ValueError:
            pass
    return _accepted(kind, value, reason, 'force_yml')
