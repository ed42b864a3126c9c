"""The README is a front page that works: its quick-start blocks run, line by line, in an empty folder as a new user
pastes them, with ../shared standing in for the downloads (the released weights, Set5, one's own photos); its test
command shows why anything was skipped; it stays short, and every page it links to exists."""
import os
import re
import shutil
import subprocess
import sys

import cv2
import pytest
import torch

from conftest import ROOT, SET5_HR, TRAIN_HR, WEIGHTS, need_shared, short_film
from pfdn_arch.layout.samples import sample_image

README = os.path.join(ROOT, 'README.md')
BLOCK = re.compile(r'<!-- quick-start: (\w+) -->\n```sh\n(.*?)```', re.S)


def quick_start():
    with open(README, encoding='utf-8') as f:
        return dict(BLOCK.findall(f.read()))


def stand_ins(line, folder):
    """A README line with the downloads replaced by ../shared's copies and the user's own files by made ones: the
    command itself as written."""
    line = re.sub(r'curl -L -o (\S+) https://\S+team08_PFDN\.pth', lambda m: f'cp {need_shared(WEIGHTS)} {m[1]}',
                  line)
    line = line.replace("pip install -q -e '.[video]' && ", '')  # installed here already (the test extra)
    line = line.replace('path/to/Set5/HR', need_shared(SET5_HR))
    line = line.replace('path/to/my_hr_photos/', str(folder / 'my_hr_photos'))
    return line


def users_files(folder):
    """What a user brings: a photo, a folder of photos, a short film, a folder of 20 HR photos (JPEGs)."""
    cv2.imwrite(str(folder / 'my_photo.jpg'), cv2.resize(sample_image('coffee.png'), (120, 80)))
    (folder / 'my_photos').mkdir()
    for name in ('chelsea.png', 'astronaut.png'):
        cv2.imwrite(str(folder / 'my_photos' / name), cv2.resize(sample_image(name), (64, 48)))
    short_film(folder / 'my_clip.mp4')
    (folder / 'my_hr_photos').mkdir()
    for name in sorted(os.listdir(need_shared(TRAIN_HR)))[:20]:
        shutil.copy(os.path.join(TRAIN_HR, name), folder / 'my_hr_photos')


def run_block(name, folder):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    env.pop('PYTHONPATH', None)  # the installed package, as the user has it
    for line in quick_start()[name].strip().splitlines():
        command = stand_ins(line, folder)
        r = subprocess.run(['bash', '-c', command], cwd=folder, capture_output=True, text=True, env=env,
                           timeout=900)
        assert r.returncode == 0, (line, r.stderr[-2000:])
        assert 'error:' not in r.stderr and 'Traceback' not in r.stderr, (line, r.stderr[-2000:])
        yield line, r


@pytest.fixture
def folder(tmp_path):
    users_files(tmp_path)
    return tmp_path


def test_the_readme_is_a_front_page_and_its_links_hold():
    with open(README, encoding='utf-8') as f:
        text = f.read()
    assert len(text.encode()) <= 15 * 1024
    lines = text.splitlines()
    assert lines[4].startswith('python3 -m venv .venv') and lines[5].startswith('python3 -m venv .venv')  # first
    assert '-m pytest' in lines[5] and '-rs' in lines[5]  # skips say why
    with open(os.path.join(ROOT, '.ci', 'run')) as f:
        assert "grep -m1 -- '-m pytest' README.md" in f.read()  # CI runs exactly that line
    assert set(quick_start()) == {'upscale', 'test', 'train'}
    for link in re.findall(r'\]\(((?:docs|datasets)/[^)#]+)\)', text):
        assert os.path.isfile(os.path.join(ROOT, link)), link
    for page in os.listdir(os.path.join(ROOT, 'docs')):
        if page.endswith('.md'):
            with open(os.path.join(ROOT, 'docs', page), encoding='utf-8') as f:
                body = f.read()
            for link in re.findall(r'\]\(([^)#:]+\.md)\)', body):
                assert os.path.isfile(os.path.join(ROOT, 'docs', link)), (page, link)


def test_the_upscale_block_runs_as_pasted(folder):
    said = {line: r.stderr for line, r in run_block('upscale', folder)}
    assert os.path.getsize(folder / 'weights' / 'team08_PFDN.pth') == 1114079
    assert cv2.imread(str(folder / 'my_photo_x4.png')).shape == (320, 480, 3)
    assert sorted(p for p in os.listdir(folder / 'upscaled') if p[0] != '.') == ['astronaut.png', 'chelsea.png']
    assert (folder / 'my_clip_x4.mp4').stat().st_size > 0
    first = next(err for line, err in said.items() if 'my_photo.jpg' in line)
    assert 'weights: weights/team08_PFDN.pth (the released PFDN x4 weights)' in first  # says what it runs


@pytest.mark.slow
def test_the_test_block_scores_the_released_weights_on_set5(folder):
    outputs = [r for _, r in run_block('test', folder)]
    table = (folder / 'results' / 'PFDN_x4_released' / 'results.md').read_text()
    assert re.search(r'\| Set5 \| 32\.04\d\d \| 0\.893\d \|', table), table
    assert 'the released PFDN x4 weights' in outputs[-1].stderr
    assert 'Urban100) is left out' in outputs[-1].stderr  # and says how to add it


@pytest.mark.slow
def test_the_train_block_trains_on_ones_own_photos_and_upscales_with_the_result(folder):
    """The quick start's upscale, then the own-photos block exactly as written (20 JPEGs, Set5 prepared): its
    model beats bicubic on Set5, and its last line writes that model's picture over the released weights' one."""
    list(run_block('upscale', folder))
    released = (folder / 'my_photo_x4.png').read_bytes()
    said = {line: r for line, r in run_block('train', folder)}
    training = next(r for line, r in said.items() if 'schedule' in line)
    scores = re.search(r'\| bicubic \| (\d+\.\d\d) \| 0\.\d{4} \|\n\| PFDN \(cpu_PFDN_x4_s3_finetune_lr240\) \| '
                       r'(\d+\.\d\d) \| 0\.\d{4} \|', training.stdout)
    assert scores and float(scores[2]) > float(scores[1]), training.stdout[-1500:]
    assert 'Set5' in training.stdout and (folder / 'experiments' / 'cpu_schedule_report' / 'psnr.png').is_file()
    assert re.search(r'iter \d+/800: \d+\.\d\d it/s, stage ETA \d+m\d\ds, schedule ETA', training.stdout)
    assert (folder / 'datasets' / 'own_photos' / 'own_HR.lmdb').is_dir()
    assert torch.load(folder / 'my_pfdn.pth', weights_only=True).keys() == torch.load(WEIGHTS, weights_only=True).keys()
    last = said[quick_start()['train'].strip().splitlines()[-1]]
    assert 'weights: my_pfdn.pth (not the released file)' in last.stderr and 'made again' in last.stderr
    assert '1 upscaled' in last.stdout
    mine = (folder / 'my_photo_x4.png').read_bytes()
    assert mine != released and cv2.imread(str(folder / 'my_photo_x4.png')).shape == (320, 480, 3)
