"""Kills and Ctrl-C at any instant: atomic writes leave the old file or the new one, interrupted work continues
on a rerun, a stopped schedule stops its stage, and Ctrl-C at random instants stops every long command."""
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import cli, ENV, infer, one_error, snapshot, start_cli, TINY_NET, train_yml, wait_for
from pfdn_arch import PFDN
from pfdn_arch.data import preparation as prep
from pfdn_arch.layout.samples import sample_image


def test_temporary_file_cleanup_touches_only_its_own_files(tiny, tmp_path, capsys):
    src, out, d = tmp_path / 'in', tmp_path / 'out', tmp_path / 'd'
    for folder in (src, out, d):
        folder.mkdir()
    cv2.imwrite(str(src / 'a.png'), sample_image('chelsea.png')[:40, :50])
    (out / '.a.png.notes.tmp').write_text('the user\'s notes')
    (d / '.x.pth.v1.tmp').write_text('a user\'s file')
    (out / '.a.png.pfdn-999999999.tmp').write_text('ours, from a killed run')  # no such process
    assert infer(['-i', src, '-o', out], capsys, tiny)[0] == 0
    train = tmp_path / 'train.pth'
    torch.save({'params': PFDN(**{k: v for k, v in TINY_NET.items() if k != 'type'}).state_dict()}, train)
    assert cli(['reparam', '--in', train, '--out', d / 'x.pth'], capsys)[0] == 0
    assert (out / '.a.png.notes.tmp').read_text() == 'the user\'s notes'
    assert (d / '.x.pth.v1.tmp').read_text() == 'a user\'s file'
    assert not (out / '.a.png.pfdn-999999999.tmp').exists()


def test_a_disk_that_fills_up_mid_run_stops_with_one_line_and_keeps_what_was_written(tiny, tmp_path, capsys,
                                                                                     monkeypatch):
    import errno

    import pfdn_arch.files.images as images
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    for name in ('a.png', 'b.png', 'c.png'):
        cv2.imwrite(str(src / name), sample_image('chelsea.png')[:30, :40])
    real, calls = images.write_bytes, []

    def fills_up(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real(path, data)
    monkeypatch.setattr(images, 'write_bytes', fills_up)
    code, _, err = infer(['-i', src, '-o', out], capsys, tiny)
    one_error(code, err, 'b.png', 'disk is full')
    assert sorted(os.listdir(out)) == ['.a.png.pfdn-made.json', 'a.png']  # the result and what made it


KILL_SCRIPT = '''
import sys, torch
from pfdn_arch.files.atomic import save_torch
big = {'big': torch.full((48, 1 << 20), 2.0)}  # 192 MB: a save long enough to be killed in the middle
print('start', flush=True)
save_torch(big, sys.argv[1])
'''


@pytest.mark.slow
def test_a_kill_at_any_instant_of_a_save_leaves_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / 'net_g_latest.pth'
    torch.save({'big': torch.ones(4)}, target)
    old = target.read_bytes()
    script = tmp_path / 'save.py'
    script.write_text(KILL_SCRIPT)
    killed_mid_write = 0
    for delay in (0.02, 0.1, 0.25, None):
        proc = subprocess.Popen([sys.executable, str(script), str(target)], env=ENV, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == 'start\n'
        if delay is None:
            assert proc.wait(300) == 0
        else:
            time.sleep(delay)
            writing = any(p.endswith('.tmp') for p in os.listdir(tmp_path))
            proc.kill()
            proc.wait()
        data = target.read_bytes()
        if data == old:
            killed_mid_write += writing
            continue
        # otherwise the new file, complete
        assert torch.equal(torch.load(target, weights_only=True)['big'], torch.full((48, 1 << 20), 2.0))
        old = data
    assert killed_mid_write >= 1, 'no kill landed inside a write'
    assert torch.load(target, weights_only=True)['big'].shape == (48, 1 << 20)
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')], 'the completed save removed leftovers'


def test_a_folder_is_listed_once_for_leftovers_and_those_of_dead_writers_go(tmp_path, monkeypatch):
    """Writing n files into a folder lists it once, not n times (10,000 results would read 10^8 names); a leftover
    temporary file of a dead process goes when its file is written, a live writer's and other names' stay."""
    from pfdn_arch.files import atomic

    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f'.a.png.pfdn-{dead}.tmp').write_bytes(b'torn')
    (tmp_path / f'.b.png.pfdn-{dead}.tmp').write_bytes(b'torn')
    (tmp_path / f'.a.png.pfdn-{os.getppid()}.tmp').write_bytes(b'being written')
    (tmp_path / 'mine.tmp').write_bytes(b'not ours')
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(atomic.os, 'listdir', lambda folder='.': listed.append(folder) or real_listdir(folder))
    for i in range(50):
        atomic.write_bytes(str(tmp_path / f'{i}.png'), b'x')
    atomic.write_bytes(str(tmp_path / 'a.png'), b'new')
    assert len(listed) == 1
    monkeypatch.setattr(atomic.os, 'listdir', real_listdir)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith('.tmp')) == [
        f'.a.png.pfdn-{os.getppid()}.tmp', f'.b.png.pfdn-{dead}.tmp', 'mine.tmp']
    monkeypatch.setattr(atomic.os, 'listdir', lambda folder='.': listed.append(folder) or real_listdir(folder))
    atomic.write_bytes(str(tmp_path / 'b.png'), b'new')
    assert len(listed) == 1
    assert not (tmp_path / f'.b.png.pfdn-{dead}.tmp').exists()
    assert (tmp_path / 'a.png').read_bytes() == b'new'


def test_a_save_that_dies_half_way_changes_nothing(tmp_path, monkeypatch):
    from conftest import tiny_model, uint8_batch
    model = tiny_model(tmp_path / 'exp')
    model.feed_data(uint8_batch(0))
    model.optimize_parameters(1)
    model.save(0, 2)
    models, states = model.opt['path']['models'], model.opt['path']['training_states']
    before = {**snapshot(models), **snapshot(states)}

    def dies_half_way(obj, f, *args, **kwargs):
        with open(f, 'wb') as out:
            out.write(b'PK\x03\x04 half a zip')
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(torch, 'save', dies_half_way)
    model.optimize_parameters(2)
    for iteration in (2, -1):  # overwriting the same names, and the final 'latest' save
        with pytest.raises(OSError, match='No space left'):
            model.save(0, iteration)
    assert {**snapshot(models), **snapshot(states)} == before  # byte-identical, no temporary files left


def interrupt_after(monkeypatch, module, name, calls):
    """Make ``module.name`` raise KeyboardInterrupt (Ctrl-C) on its call number ``calls + 1``."""
    real, count = getattr(module, name), [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize('step', ['lr', 'subimages', 'benchmark'])
def test_interrupted_preparation_continues_where_it_stopped(data, tmp_path, monkeypatch, capsys, step):
    args = {'lr': ['prepare', 'lr', '--hr', data['hr'], '--out', tmp_path / 'out'],
            'subimages': ['prepare', 'subimages', '--in', data['hr'], '--out', tmp_path / 'out', '--crop', 160,
                          '--step', 120],
            'benchmark': ['prepare', 'benchmark', '--hr', data['hr'], '--name', 'B', '--root', tmp_path / 'out']}[step]
    clean = tmp_path / 'clean'
    with monkeypatch.context() as m:
        m.chdir(tmp_path)
        assert cli([a if a != tmp_path / 'out' else clean for a in args], capsys)[0] == 0
    with monkeypatch.context() as m:
        interrupt_after(m, prep, 'write_image', 2)
        code, _, err = cli(args, capsys)
    assert code == 130 and err[-1] == 'interrupted; rerun the same command to continue where it stopped'
    out = tmp_path / 'out'
    first = {str(f.relative_to(out)): f.stat().st_mtime_ns for f in out.rglob('*.png')}
    assert len(first) == 2
    torn = sorted(out.rglob('*.png'))[0]
    torn.write_bytes(torn.read_bytes()[:200])  # as an older version killed mid-write left it
    assert cli(args, capsys)[0] == 0
    done = {str(f.relative_to(out)): f.read_bytes() for f in out.rglob('*.png')}
    assert done == {str(f.relative_to(clean)): f.read_bytes() for f in clean.rglob('*.png')}  # complete, as a clean run
    kept = [p for p in first if p != str(torn.relative_to(out))]
    assert all((out / p).stat().st_mtime_ns == first[p] for p in kept)  # kept, not redone
    assert not list(out.rglob('*.tmp'))


def test_interrupted_paired_lmdbs_continue_with_the_one_that_is_missing(data, tmp_path, monkeypatch, capsys):
    from pfdn_arch.data import lmdb_store
    monkeypatch.setattr(lmdb_store, 'COMMIT_BYTES', 1)
    gt, lq = tmp_path / 'g.lmdb', tmp_path / 'q.lmdb'
    args = ['prepare', 'lmdb', '--gt', data['hr'], '--lq', data['lr'], '--gt-lmdb', gt, '--lq-lmdb', lq]
    with monkeypatch.context() as m:
        interrupt_after(m, prep, '_read', 4)  # 3 GT images, then the LQ LMDB is interrupted after one
        assert cli(args, capsys)[0] == 130
    assert gt.is_dir() and not lq.is_dir() and (tmp_path / 'q.lmdb.partial').is_dir()
    kept = snapshot(gt)
    code, out, _ = cli(args, capsys)
    assert code == 0 and '3 pairs' in out and snapshot(gt) == kept  # the GT LMDB was kept as it was
    assert prep.read_lmdb_keys(str(lq)) == ['astronaut', 'chelsea', 'coffee']


def test_df2k_preparation_interrupted_anywhere_finishes_on_rerun(data, tmp_path, monkeypatch, capsys):
    args = ['prepare', 'df2k', '--hr', data['hr'], '--root', tmp_path / 'DF2K', '--workers', '1']
    for fn, calls in (('write_image', 1), ('_read', 5)):  # in the LR step, then in the LMDB step
        with monkeypatch.context() as m:
            interrupt_after(m, prep, fn, calls)
            assert cli(args, capsys)[0] == 130
    assert cli(args, capsys)[0] == 0
    assert prep.read_lmdb_keys(str(tmp_path / 'DF2K' / 'DF2K_HR.lmdb')) == ['astronaut', 'chelsea', 'coffee']


def test_infer_rerun_after_an_interruption_continues_and_keeps_no_torn_image(data, tmp_path, monkeypatch, capsys):
    import pfdn_arch.deploy.media.images as folder
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    for name in ('a.png', 'b.png', 'c.png'):
        cv2.imwrite(str(src / name), sample_image('chelsea.png')[:40, :50])
    args = ['infer', '-i', src, '-o', out, '--weights', data['tiny'], '--backend', 'torch']
    with monkeypatch.context() as m:
        interrupt_after(m, folder, 'write_picture', 1)
        code, _, err = cli(args, capsys)
    assert code == 130 and err[-1] == ('interrupted; rerun the same command to continue: finished images and '
                                      'video segments are kept')
    assert sorted(os.listdir(out)) == ['.a.png.pfdn-made.json', 'a.png']  # the result and what made it
    first = (out / 'a.png').read_bytes()
    code, stdout, _ = cli(args, capsys)
    assert code == 0 and '2 upscaled' in stdout and '1 kept' in stdout and (out / 'a.png').read_bytes() == first
    (out / 'b.png').write_bytes((out / 'b.png').read_bytes()[:300])  # torn (as by an older version), or not ours
    torn = (out / 'b.png').read_bytes()
    code, _, err = cli(args, capsys)
    assert code == 1 and err[-1] == (f'error: {out / "b.png"}: exists and is not a result this command made of this '
                                     'input; it was left as it is; pass --force to replace it, or choose another '
                                     'output')
    assert (out / 'b.png').read_bytes() == torn
    assert cli(args + ['--force'], capsys)[0] == 0 and cv2.imread(str(out / 'b.png')).shape == (160, 200, 3)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:
        return f.read().split(') ')[1][0] != 'Z'


def stage_pids(marker):
    pids = []
    for pid in os.listdir('/proc'):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                if marker.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


@pytest.mark.slow
def test_stopping_schedule_stops_its_running_stage(data, tmp_path):
    """SIGTERM (cleanly, with the continue hint) and SIGKILL (the stage dies with its schedule), both at once."""
    runs = {}
    for how in ('SIGTERM', 'SIGKILL'):
        folder = tmp_path / how
        yml = train_yml(data, folder, f'long_{how}', total=100000)
        (folder / 'schedule.yml').write_text(yaml.safe_dump({'stages': [str(yml)]}))
        runs[how] = (yml, folder, subprocess.Popen(
            [sys.executable, '-m', 'pfdn_arch.cli', 'schedule', '--schedule', str(folder / 'schedule.yml')], cwd=folder,
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
    try:
        for how, (yml, folder, proc) in runs.items():
            states = folder / 'experiments' / f'long_{how}' / 'training_states'
            wait_for(lambda: states.is_dir() and any(states.iterdir()))
            stage = next(p for p in stage_pids(str(yml)) if p != proc.pid)
            proc.send_signal(getattr(signal, how))
            out, err = proc.communicate(timeout=120)
            deadline = time.time() + 60
            while time.time() < deadline and alive(stage):
                time.sleep(0.2)
            assert not alive(stage), f'{how}: the stage kept training with no schedule waiting for it'
            if how == 'SIGTERM':
                assert proc.returncode == 130
                assert err.strip().splitlines()[-1] == ('interrupted; rerun the same command to continue: finished '
                                                        'stages are skipped, the stopped one resumes from its last '
                                                        'saved training state (or starts again if none was saved)')
    finally:
        for _, _, proc in runs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the test's process groups
            except ProcessLookupError:
                pass


def test_a_swallowed_interrupt_is_raised_again_at_the_next_step(photos):
    """Python drops an exception raised while it runs a finalizer; a stop asked then must still stop the run at the
    next step: the flag the signal handler leaves is checked by every long loop."""
    from pfdn_arch import stopping
    from pfdn_arch.data.preparation import make_lr
    stopping.reset()
    try:
        stopping.request()  # the handler ran; its KeyboardInterrupt was lost
        with pytest.raises(KeyboardInterrupt):
            stopping.check()
        with pytest.raises(KeyboardInterrupt):  # a loop's next step
            make_lr(str(photos['hr']), str(photos['root'] / 'lr_stopped'), 4)
    finally:
        stopping.reset()
    stopping.check()  # nothing pending: nothing raised


SIGINT_IN_AN_IMPORT = """import os, signal, time
os.kill(os.getpid(), signal.SIGINT)
deadline = time.time() + 0.3
while time.time() < deadline:  # the handler runs here, within the import
    pass
ended = time.time()
"""
# the commands' signal handling, then an import that signals its own process; what stopped, and when
IMPORT_UNDER_THE_HANDLER = """import sys, time
from pfdn_arch import stopping
from pfdn_arch.errors import require
sys.path.insert(0, sys.argv[1])
stopping.handle_signals()
try:  # the stop may land anywhere once the import is over, so the whole of it is inside
    require('interrupted_import', 'the test')
    waited = time.time()
    while time.time() < waited + 5:
        time.sleep(0.01)
    print('not stopped')
except KeyboardInterrupt:
    module = sys.modules.get('interrupted_import')
    print('stopped inside the import' if module is None else f'stopped {time.time() - module.ended:.3f} s after it')
"""


def test_a_stop_that_lands_in_an_import_waits_for_the_import_to_end(tmp_path):
    """A KeyboardInterrupt raised while a C++ extension is imported can kill the process (onnx's, imported by
    torch.onnx.export, died of SIGSEGV or abort when Ctrl-C landed there): an optional package's import
    (``errors.require``) finishes, then the run stops at once (in a process of its own: the signal goes to the whole
    process)."""
    (tmp_path / 'interrupted_import.py').write_text(SIGINT_IN_AN_IMPORT)
    r = subprocess.run([sys.executable, '-c', IMPORT_UNDER_THE_HANDLER, str(tmp_path)], capture_output=True, text=True,
                       env=ENV, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    said = r.stdout.strip()
    assert said.startswith('stopped ') and said.endswith(' s after it'), said
    assert float(said.split()[1]) < 1  # delivered right after the import


def _interrupted_work(command, data, tmp_path):
    """(arguments, progress, finished, children) of one long command: progress counts what the work has written so
    far; children lists the processes of its own that are still running (a schedule's stage)."""
    def count(folder, suffix=''):
        return lambda: len([n for n in os.listdir(folder) if n.endswith(suffix)]) if folder.is_dir() else 0
    if command in ('train', 'schedule'):
        # schedule: one stage; the signal goes to the schedule alone, which must stop its stage itself
        yml = train_yml(data, tmp_path, 'stopped', total=100 if command == 'train' else 160)
        exp = tmp_path / 'experiments' / 'stopped'
        if command == 'train':
            args = ['train', '-opt', yml, '--auto_resume']
        else:
            (tmp_path / 'schedule.yml').write_text(yaml.safe_dump({'stages': [str(yml)]}))
            args = ['schedule', '--schedule', tmp_path / 'schedule.yml']
        children = lambda: [p for p in stage_pids(str(yml)) if alive(p)] if command == 'schedule' else []  # noqa
        return args, count(exp / 'training_states'), lambda: (exp / 'models' / 'net_g_latest.pth').is_file(), children
    if command == 'film':
        from test_video import photo_clip
        clip, out = tmp_path / 'long.mkv', tmp_path / 'up.mkv'
        photo_clip(clip, frames=96, w=128, h=96)  # eight segments of 0.5 s
        args = ['infer', '-i', clip, '-o', out, '--weights', data['tiny'], '--backend', 'torch', '--codec', 'ffv1',
                '--segment', '0.5']
        return args, count(tmp_path / '.up.mkv.pfdn-parts'), out.is_file, list
    out = tmp_path / 'out'
    if command == 'export':  # each format written and checked in turn
        return (['export', '--weights', data['tiny'], '--out', out, '--formats', 'pth', 'safetensors', 'onnx',
                 '--opset', '17'], count(out), lambda: count(out, '.onnx')() == 1 and count(out, '.safetensors')() == 1, list)
    src = tmp_path / 'many'
    src.mkdir()
    image = cv2.imread(str(next(iter(sorted(data['hr'].iterdir())))))
    for i in range(120):  # long enough on a quiet machine for a signal to land in the middle
        cv2.imwrite(str(src / f'{i:03d}.png'), np.roll(image[:192, :256], i, 1))
    if command == 'infer':
        args = ['infer', '-i', src, '-o', out, '--weights', data['tiny'], '--backend', 'torch']
    else:
        args = ['prepare', 'lr', '--hr', src, '--out', out, '--scale', '4']
    return args, count(out), lambda: count(out, '.png')() == 120, list


@pytest.mark.slow
@pytest.mark.parametrize('command', ['train', 'schedule', 'infer', 'film', 'prepare', 'export'])
def test_ctrl_c_at_random_instants_stops_every_time_within_seconds_and_the_run_continues(data, tmp_path, command):
    """SIGINT to the command's process alone (no child gets it), at a random instant once its work is under way, three
    times in a row: each time it ends within a few seconds with its one line, and a last run finishes the work."""
    import random
    rng = random.Random(f'{command}-7')
    args, progress, finished, children = _interrupted_work(command, data, tmp_path)
    stopped = 0
    for attempt in range(3):
        before = progress()
        proc = start_cli(*args, cwd=tmp_path, output=True)
        try:  # this run's own work under way (a signal during the interpreter's start-up is Python's to report)
            wait_for(lambda: progress() > before or proc.poll() is not None)
            if proc.poll() is not None:
                break  # the work is done: nothing left to stop
            time.sleep(rng.uniform(0, 0.5))
            sent = time.time()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
            took = time.time() - sent
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode == 0:
            break  # it finished just before the signal
        assert proc.returncode == 130 and err.strip().splitlines()[-1].startswith('interrupted; '), (attempt, err)
        assert took < 10, (attempt, took)
        wait_for(lambda: not children(), timeout=30)  # nothing of it keeps running
        stopped += 1
    assert stopped >= 1  # at least one run was really interrupted
    if not finished():  # (an export that completed refuses to run again over its own files)
        proc = start_cli(*args, cwd=tmp_path, output=True)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    assert finished()


EXEC_UNDER_THE_HANDLER = """import sys, time
from pfdn_arch import stopping
stopping.handle_signals()

def command():  # as dataclasses and namedtuple do, inside imports: module code run by exec() of a string
    exec("import os, signal, time\\nos.kill(os.getpid(), signal.SIGINT)\\nt = time.time()\\n"
         "while time.time() < t + 0.3:\\n    pass\\n", {'__name__': 'made'})
    time.sleep(5)
    return 0

try:
    code = command()
except KeyboardInterrupt:
    print('stopped after the exec')
    code = 130
stopping.ignore_signals()
sys.exit(code)
"""


def test_a_stop_that_lands_in_an_exec_of_module_code_leaves_the_exit_status_to_the_command(tmp_path):
    """CPython ends a process run with ``-m`` (as the schedule runs its stages) by SIGINT at its exit where a
    KeyboardInterrupt escaped an ``exec`` of a string, even one the program caught: the stop waits for that code to
    end, so the command's own status (130) is the process's."""
    (tmp_path / 'exec_stop.py').write_text(EXEC_UNDER_THE_HANDLER)
    r = subprocess.run([sys.executable, '-m', 'exec_stop'], cwd=tmp_path, capture_output=True, text=True, env=ENV,
                       timeout=60)
    assert r.stdout.strip() == 'stopped after the exec' and r.returncode == 130, (r.returncode, r.stderr[-2000:])


def _handles_sigterm(pid):
    """Whether process ``pid`` catches SIGTERM (its status's SigCgt mask): the commands' handler is in place (Python
    alone leaves SIGTERM to the system)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            caught = next(int(line.split()[1], 16) for line in f if line.startswith('SigCgt:'))
    except (OSError, StopIteration):
        return False
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.slow
def test_ctrl_c_in_a_commands_first_second_is_one_line_never_a_traceback_or_a_hang(tiny, tmp_path):
    """``basicsr infer`` as the console script starts, Ctrl-C at a random instant of its first second once the
    commands' handler is there (from the package's first import, while the interpreter starts): every time one line
    and status 130 (or the work done, 0), never a traceback, never a process that does not end. Without CI in the
    environment, where OpenVINO's telemetry thread once made the exit wait forever."""
    import random
    rng = random.Random('start-up')
    src = tmp_path / 'in'
    src.mkdir()
    image = sample_image('chelsea.png')
    for i in range(6):
        cv2.imwrite(str(src / f'{i}.png'), np.roll(image[:96, :128], i, 1))
    script = os.path.join(os.path.dirname(sys.executable), 'basicsr')
    env = {k: v for k, v in ENV.items() if k != 'CI'}
    outcomes = []
    for attempt in range(30):
        proc = subprocess.Popen([script, 'infer', '-i', str(src), '-o', str(tmp_path / f'out{attempt}'), '--weights',
                                 str(tiny)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            wait_for(lambda: _handles_sigterm(proc.pid) or proc.poll() is not None, timeout=60)
            time.sleep(rng.uniform(0, 1))
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert 'Traceback' not in err and proc.returncode in (0, 130), (attempt, proc.returncode, err[-2000:])
        if proc.returncode == 130:
            assert err.strip().splitlines()[-1].startswith('interrupted'), (attempt, err[-500:])
        outcomes.append(proc.returncode)
    assert outcomes.count(130) >= 10, outcomes  # the instants fell in the start, not after the work


@pytest.mark.parametrize('stop_at,says', [
    (1, 'interrupted; nothing was saved yet (no training state in experiments/run/training_states): run the same '
        'command to start again'),
    (3, 'interrupted; rerun it with --auto_resume to continue from the training state saved at iter 2 '
        '(experiments/run/training_states/2.state)')])
def test_ctrl_c_offers_auto_resume_only_where_a_training_state_was_saved(data, tmp_path, capsys, monkeypatch,
                                                                       stop_at, says):
    from pfdn_arch.models.pfdn_model import PFDNModel
    yml = train_yml(data, tmp_path, total=100, save_every=2)
    monkeypatch.chdir(tmp_path)
    interrupt_after(monkeypatch, PFDNModel, 'optimize_parameters', stop_at)
    code, _, err = cli(['train', '-opt', yml], capsys)
    assert code == 130 and err[-1] == says, err[-3:]
