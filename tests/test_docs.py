"""Every command the pages show works as written. Each ``sh`` block of README.md and docs/*.md runs, line by line,
in a fresh folder as a reader pastes it (the downloads and the reader's own files stood in for by ../shared's and
made ones), unless the comment before it says why it cannot run here: it needs a GPU, the network or an app not
installable here. README's quick-start blocks run in tests/test_front_page.py. Every ``basicsr``/``pfdn`` command
the pages name, in a block (``text`` blocks hold the synopses, with ``[optional]`` parts and ``a|b`` choices) or in
the text, parses with the program's own command line: its sub-command, flags and choices exist."""
import contextlib
import io
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys

import cv2
import pytest

from conftest import ROOT, SET5_HR, SHARED, WEIGHTS, need_shared, short_film
from pfdn_arch.cli.main import build_parser
from pfdn_arch.layout.samples import sample_image

PAGES = ['README.md'] + sorted(os.path.join('docs', p) for p in os.listdir(os.path.join(ROOT, 'docs'))
                               if p.endswith('.md'))
BLOCK = re.compile(r'(?:<!-- ([^>]*) -->\n)?```(sh|text)\n(.*?)```', re.S)
NOT_RUN = re.compile(r'not run: .*\b(GPU|network|app)\b')  # the reasons a block may not run here
URBAN100_HR = os.path.join(SHARED, 'data', 'benchmark', 'Urban100', 'HR')


def blocks():
    """[(page, marker or '', kind, text)] of every sh and text block of the pages."""
    found = []
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding='utf-8') as f:
            found += [(page, marker or '', kind, text) for marker, kind, text in BLOCK.findall(f.read())]
    return found


def runnable():
    return [(page, text) for page, marker, kind, text in blocks() if kind == 'sh' and not marker]


def test_every_block_runs_here_or_says_why_not():
    for page, marker, kind, text in blocks():
        if kind == 'sh' and marker:
            assert marker.startswith('quick-start: ') and page == 'README.md' or NOT_RUN.match(marker), (page, text)
    assert len(runnable()) >= 4  # what the next test runs


# ---------------------------------------------------------------- running the blocks
def readers_files(folder):
    """What a reader has beside the pages' commands: photos, a folder, a film, the benchmark sets' HR images."""
    photo = cv2.resize(sample_image('coffee.png'), (120, 80))
    for name in ('photo.jpg', 'phone.jpg'):
        cv2.imwrite(str(folder / name), photo)
    (folder / 'photos').mkdir()
    for name in ('chelsea.png', 'astronaut.png'):
        cv2.imwrite(str(folder / 'photos' / name), cv2.resize(sample_image(name), (64, 48)))
    short_film(folder / 'clip.mp4', frames=4)
    data = folder / 'data'
    shutil.copytree(need_shared(SET5_HR), data / 'Set5' / 'HR')
    (data / 'Urban100' / 'HR').mkdir(parents=True)
    for name in sorted(os.listdir(need_shared(URBAN100_HR)))[:3]:  # three of its 100: the command, not the set
        shutil.copy(os.path.join(URBAN100_HR, name), data / 'Urban100' / 'HR')
    (folder / 'my_photos').mkdir()  # photos to train on
    for name in ('coffee.png', 'chelsea.png', 'astronaut.png', 'rocket.jpg'):
        cv2.imwrite(str(folder / 'my_photos' / name), sample_image(name))
    (folder / 'ComfyUI' / 'custom_nodes').mkdir(parents=True)  # the reader's ComfyUI
    (folder / 'weights').mkdir()
    shutil.copy(need_shared(WEIGHTS), folder / 'weights' / 'team08_PFDN.pth')
    shutil.copy(need_shared(WEIGHTS), folder / 'my_pfdn.pth')  # a model the reader trained


def stand_in(line, folder):
    """The line with the download replaced by ../shared's copy and the reader's data paths by the made ones."""
    line = re.sub(r'curl -L -o (\S+) https://\S+team08_PFDN\.pth', lambda m: f'cp {need_shared(WEIGHTS)} {m[1]}',
                  line)
    return line.replace('/data/', f'{folder}/data/').replace("pip install -q -e '.[video]' && ", '')


@pytest.mark.slow
@pytest.mark.parametrize('page,text', runnable(), ids=[f'{p}:{i}' for i, (p, _) in enumerate(runnable())])
def test_the_block_runs_as_written(page, text, tmp_path):
    readers_files(tmp_path)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    env.pop('PYTHONPATH', None)  # the installed package, as the reader has it
    for line in text.strip().splitlines():
        if line.startswith('#'):
            continue
        r = subprocess.run(['bash', '-c', stand_in(line, tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                           env=env, timeout=600)
        assert r.returncode == 0 and 'Traceback' not in r.stderr, (page, line, r.stderr[-2000:])


# ---------------------------------------------------------------- every command named parses
def commands():
    """Every ``basicsr``/``pfdn`` command line the pages name: [(page, command)]."""
    found = []
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding='utf-8') as f:
            body = f.read()
        texts = [text for _, _, text in BLOCK.findall(body)] + re.findall(r'`([^`\n]+)`', body)
        for text in texts:
            for line in text.splitlines():
                line = line.split('  #')[0]
                for part in re.split(r'&&|\$\(|\)"', line):
                    m = re.search(r'(?:^|\s)(?:basicsr|pfdn|-m basicsr\.(?:train|test)|-m pfdn_arch\.cli)(?=\s|$)(.*)',
                                  part)
                    if m and not part.strip().startswith(('pip ', 'python3 -m venv')):
                        command = m.group(0).strip()
                        if '-m basicsr.' in command:  # python -m basicsr.train: basicsr train's flags
                            command = 'basicsr ' + command.split('-m basicsr.')[1]
                        found.append((page, command.replace('-m pfdn_arch.cli', 'basicsr').strip()))
    return sorted(set(found))


def forms(command):
    """The argument lists a synopsis stands for: without and with its ``[optional]`` parts, each ``a|b`` choice
    taken, placeholders given a value."""
    if command.split()[1:2] == ['<command>']:
        return []  # ``basicsr <command> -h``: any command
    command = re.sub(r'<[^>]*>', 'x', command)  # <new folder>, <Set5 HR>: a value
    words = shlex.split(command.replace('[', ' [ ').replace(']', ' ] '))[1:]
    if not words:
        return []
    plain, full, depth = [], [], 0
    for word in words:
        if word in '[]':
            depth += 1 if word == '[' else -1
            continue
        (full if depth else plain).append(word)
        if not depth:
            full.append(word)
    out = []
    for args in (plain, full):
        choices = [word.split('|') if '|' in word and not word.startswith('-') else [word] for word in args]
        for chosen in itertools.product(*choices):
            # ``...`` after a flag is its value; elsewhere it stands for more of the same
            args = [PLACEHOLDERS.get(w, w) if w != '...' else 'x' for i, w in enumerate(chosen)
                    if w != '...' or (i and chosen[i - 1].startswith('-'))]
            out.append([a for a in args if a])
    return out


PLACEHOLDERS = {'N': '2', 'k=v': 'num_gpu=0', 'LR_FOLDER': 'lr'}


def lenient(parser):
    """The program's own parser with nothing required: a mention that leaves out a required argument
    (``basicsr prepare df2k --format png``, a command named in a sentence) is a fragment, not a mistake; a flag, a
    sub-command or a choice the program does not have stays one."""
    for action in parser._actions:
        action.required = False
        for sub in getattr(action, 'choices', None) or {}:
            if isinstance(action.choices, dict):
                lenient(action.choices[sub])
    return parser


PARSER = lenient(build_parser())


def parses(args):
    """Whether the program takes ``args`` (a flag named last without its value, as a sentence names it, given one)."""
    if args and args[-1].startswith('--') and not _parses(args):
        return _parses(args + ['x'])
    return _parses(args)


def _parses(args):
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            PARSER.parse_args(args)
    except SystemExit as end:
        return end.code == 0
    return True


def test_every_command_the_pages_name_parses(capsys):
    named = commands()
    assert len(named) >= 40 and any(c.startswith('basicsr schedule --profile cpu') for _, c in named)
    failed = [(page, command, args) for page, command in named for args in forms(command) if not parses(args)]
    capsys.readouterr()
    assert not failed, '\n'.join(map(str, failed))
    # and the check has teeth: a flag no command has fails it
    assert not parses(['export', '--out', 'x', '--no-such-flag']) and not parses(['schedule', '--profile', 'gpu'])
    assert not parses(['infer', '--ncnn']) and parses(['prepare', 'df2k', '--format', 'png'])
