"""The read -> run -> write pipeline images and films share (``deploy/media/pipeline.py``), with fake stages: order,
batching, bounded memory, stopping on an error in any stage, and an interrupt."""
import threading
import time

import pytest

from pfdn_arch.deploy.media.pipeline import Pipeline


def doubled(items):
    return [2 * i for i in items]


@pytest.mark.parametrize('workers', [1, 3])
def test_results_come_in_input_order_whatever_order_workers_finish_in(workers):
    def slow_evens(items):
        if items[0] % 2 == 0:
            time.sleep(0.01)
        return doubled(items)
    written = []
    Pipeline(slow_evens, workers=workers).run(range(40), lambda item, result: written.append((item, result)))
    assert written == [(i, 2 * i) for i in range(40)]


def test_consecutive_items_of_one_key_are_batched_up_to_the_batch_size():
    batches = []

    def work(items):
        batches.append(list(items))
        return doubled(items)
    keys = {0: 'a', 1: 'a', 2: 'a', 3: 'b', 4: None, 5: 'a', 6: 'a'}  # None: always alone
    Pipeline(work, batch=2, batch_key=keys.get).run(range(7), lambda item, result: None)
    assert batches == [[0, 1], [2], [3], [4], [5, 6]]


def test_without_waiting_a_batch_takes_only_what_is_already_read():
    batches, release = [], threading.Event()

    def frames():
        yield 0
        release.wait(5)  # the next frame is slow to decode: the first must not wait for it
        yield 1

    def work(items):
        batches.append(list(items))
        release.set()
        return doubled(items)
    Pipeline(work, batch=8, batch_key=lambda item: 0, wait_for_batch=False).run(frames(), lambda i, r: None)
    assert batches[0] == [0] and sum(batches, []) == [0, 1]


def test_memory_is_bounded_by_the_items_between_reading_and_writing():
    read, most = [], [0]
    written = []

    def items():
        for i in range(60):
            read.append(i)
            most[0] = max(most[0], len(read) - len(written))
            yield i

    def write(item, result):
        time.sleep(0.002)  # a slow writer: reading must wait for it
        written.append(item)
    pipeline = Pipeline(doubled, workers=2, batch=3, ahead=2, behind=1)
    pipeline.run(items(), write)
    assert written == list(range(60)) and most[0] <= 2 + 2 * 3 + 1 + 1


@pytest.mark.parametrize('stage', ['read', 'work', 'write'])
def test_an_error_in_any_stage_stops_every_stage_and_is_raised_once(stage):
    def items():
        for i in range(1000):
            if stage == 'read' and i == 5:
                raise ValueError('bad input 5')
            yield i

    def work(batch):
        if stage == 'work' and 5 in batch:
            raise ValueError('bad input 5')
        return doubled(batch)
    written = []

    def write(item, result):
        if stage == 'write' and item == 5:
            raise ValueError('bad input 5')
        written.append(item)
    before = threading.active_count()
    with pytest.raises(ValueError, match='bad input 5'):
        Pipeline(work, workers=2).run(items(), write)
    # in order, nothing from the failure on; what was done before it may or may not be written when a thread fails
    assert written == list(range(len(written))) and len(written) <= 5
    if stage == 'write':
        assert written == list(range(5))
    assert threading.active_count() == before  # no thread left behind


def test_an_interrupt_while_writing_stops_the_threads_and_is_raised():
    def write(item, result):
        if item == 3:
            raise KeyboardInterrupt
    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        Pipeline(doubled, workers=2).run(iter(range(10 ** 6)), write)
    assert threading.active_count() == before


def test_results_closed_early_stops_the_threads_without_an_error():
    pipeline = Pipeline(doubled, workers=2)
    results = pipeline.results(iter(range(10 ** 6)))
    assert [next(results) for _ in range(3)] == [(0, 0), (1, 2), (2, 4)]
    results.close()
    assert pipeline.stop.is_set()


def test_a_pipeline_runs_again_after_a_run_that_stopped_early():
    pipeline = Pipeline(doubled, workers=2, ahead=1, behind=1)
    results = pipeline.results(iter(range(10 ** 6)))
    next(results)
    results.close()  # items were read but never written: their slots are not given back
    written = []
    pipeline.run(range(20), lambda item, result: written.append(result))
    assert written == [2 * i for i in range(20)]


# --------------------------------------------------------------------- images: a batch that runs out of memory
class TightRunner:
    """A runner whose device holds at most ``most`` LR pixels a forward (a batch counts them all), as a GPU with
    little memory: beyond, the error torch's CUDA allocator raises. Nearest-neighbour x4, so tiles join exactly."""
    upscale, streams, name = 4, 1, 'tight'

    def __init__(self, most):
        import types
        self.most, self.device, self.calls = most, types.SimpleNamespace(type='cuda'), []

    def __call__(self, x):
        import numpy as np
        self.calls.append(tuple(x.shape))
        if x.shape[0] * x.shape[2] * x.shape[3] > self.most:
            raise RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)')
        return np.repeat(np.repeat(x, 4, axis=2), 4, axis=3)

    def __repr__(self):
        return 'tight (fp32, cuda)'


def _pictures(tmp_path, sizes):
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    folder = tmp_path / 'in'
    folder.mkdir()
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(folder / f'{i}.png'), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return [(str(folder / f'{i}.png'), f'{i}.png') for i in range(len(sizes))]


def _upscaled_as_nearest(path, out):
    import cv2
    import numpy as np
    src, got = cv2.imread(path), cv2.imread(out)
    want = np.repeat(np.repeat(src, 4, axis=0), 4, axis=1)
    return got is not None and got.shape == want.shape and int(np.abs(got.astype(int) - want).max()) <= 1


def test_a_batch_out_of_memory_is_run_again_one_by_one(tmp_path):
    from pfdn_arch.deploy.media.images import upscale_files
    from pfdn_arch.deploy.runtime.upscaler import Upscaler
    inputs = _pictures(tmp_path, [(40, 40)] * 4)
    runner = TightRunner(most=40 * 40)
    run = upscale_files(inputs, str(tmp_path / 'out'), Upscaler(runner, batch=4))
    assert run.done == 4 and run.failed == []
    assert runner.calls[0][0] > 1 and all(shape[0] == 1 for shape in runner.calls[1:])  # the batch, then one by one
    assert all(_upscaled_as_nearest(p, str(tmp_path / 'out' / rel)) for p, rel in inputs)


def test_a_picture_out_of_memory_whole_is_run_in_smaller_tiles(tmp_path):
    from pfdn_arch.deploy.media.images import upscale_files
    from pfdn_arch.deploy.runtime.upscaler import Upscaler
    inputs = _pictures(tmp_path, [(100, 90)])
    runner = TightRunner(most=32 * 32)
    run = upscale_files(inputs, str(tmp_path / 'out'), Upscaler(runner))
    assert run.done == 1 and run.failed == []
    assert runner.calls[0] == (1, 3, 100, 90) and max(h * w for _, _, h, w in runner.calls[-4:]) <= 32 * 32
    assert _upscaled_as_nearest(*inputs[0][:1], str(tmp_path / 'out' / '0.png'))


def test_out_of_memory_in_the_smallest_tile_stops_the_run_once_naming_tile(tmp_path):
    from pfdn_arch.deploy.media.images import upscale_files
    from pfdn_arch.deploy.runtime.upscaler import Upscaler
    from pfdn_arch.errors import NotEnoughMemory
    inputs = _pictures(tmp_path, [(60, 60)] * 3)
    with pytest.raises(NotEnoughMemory) as err:
        upscale_files(inputs, str(tmp_path / 'out'), Upscaler(TightRunner(most=10 * 10), batch=3))
    assert '--tile' in err.value.reason and err.value.path == inputs[0][0]
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


def test_a_runtime_failure_other_than_memory_stops_the_run_in_one_line(tmp_path):
    from pfdn_arch.deploy.media.images import upscale_files
    from pfdn_arch.deploy.runtime.upscaler import Upscaler
    from pfdn_arch.errors import PFDNError

    class Broken(TightRunner):
        def __call__(self, x):
            raise RuntimeError('device lost\nand a long trace')
    with pytest.raises(PFDNError) as err:
        upscale_files(_pictures(tmp_path, [(40, 40)]), str(tmp_path / 'out'), Upscaler(Broken(most=0)))
    assert 'tight (fp32, cuda) failed (device lost)' in err.value.reason


def test_what_counts_as_running_out_of_memory():
    """The runtimes' ways of saying it; the network refusing an input (a ValueError) is not it."""
    from pfdn_arch.deploy.runtime.base import out_of_memory
    assert out_of_memory(RuntimeError('CUDA out of memory. Tried to allocate 20 MiB'))
    assert out_of_memory(MemoryError())
    assert not out_of_memory(ValueError('PFDN needs an LR input of at least 15x15 pixels'))
    assert not out_of_memory(RuntimeError('shape mismatch'))


JOIN_UNDER_A_SECOND_STOP = """import os, signal, sys, threading, time
from pfdn_arch.deploy.media import pipeline
signal.signal(signal.SIGINT, signal.default_int_handler)
ended = threading.Event()

def work():
    time.sleep(0.5)  # a forward still running when the run stops
    ended.set()
threading.Thread(target=work, daemon=True).start()
threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT)).start()  # a second Ctrl-C while it waits
t = time.time()
pipeline._join([ended])
print('waited', ended.is_set(), round(time.time() - t, 1))
"""


def test_a_stopped_run_waits_for_its_threads_through_a_second_ctrl_c():
    """A thread left running a forward when the interpreter ends kills the process; waiting for the pipeline's
    threads survives another Ctrl-C (and never trusts CPython's ``Thread.join``, which an interrupt corrupts)."""
    import subprocess
    import sys
    from conftest import ENV
    r = subprocess.run([sys.executable, '-c', JOIN_UNDER_A_SECOND_STOP], capture_output=True, text=True, env=ENV,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    said, ended, seconds = r.stdout.split()
    assert ended == 'True' and float(seconds) >= 0.4
