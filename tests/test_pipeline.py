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
