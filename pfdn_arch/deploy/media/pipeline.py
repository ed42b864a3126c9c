"""The read -> run -> write pipeline that images and films both go through: one thread reads (decodes) ahead,
``workers`` threads run the network on batches, and the calling thread takes the results in input order and
writes them.

The pipeline owns what its stages share: a bound on the items between reading and writing (memory stays a few
images or frames), stopping (an error or an interrupt anywhere stops every stage; no thread waits forever on a
full queue), the first error (raised in the calling thread once every thread has stopped), and the order of
results (handed back in the order they were read, whatever order the workers finish in). The stages are plain
callables, so the pipeline is tested with fake ones (tests/test_pipeline.py).
"""
import contextlib
import queue
import threading
import time
from typing import Any, Callable, Generator, Hashable, Iterable, Iterator, List, Optional, Tuple

from ... import stopping

_END = object()  # the reader's last item: no more input


class Pipeline:
    """Run ``work`` over the items of a reader on threads, and write its results in order on the calling thread.

    Args:
        work (callable): [items] -> [results], one result per item, on a worker thread.
        workers (int): threads running ``work`` (the runtime's streams: images it runs at once).
        batch (int): the most items one ``work`` call gets.
        batch_key (callable): item -> a key; consecutive items of the same key (not None) share a batch.
        wait_for_batch (bool): a worker waits for the next item while its batch has room (images: same-size ones
            are batched); False takes only what has already been read (films: no frame is held back).
        ahead (int): items read ahead of the workers.
        behind (int): results waiting to be written.
    """

    def __init__(self, work: Callable[[list], list], workers: int = 1, batch: int = 1,
                 batch_key: Optional[Callable[[Any], Optional[Hashable]]] = None, wait_for_batch: bool = True,
                 ahead: int = 4, behind: int = 4):
        self.work, self.workers, self.batch = work, max(1, workers), max(1, batch)
        self.batch_key, self.wait_for_batch = batch_key or (lambda item: None), wait_for_batch
        self.ahead = ahead
        # every item between being read and written: what is read ahead, the workers' batches, what waits to be
        # written; bounds memory (``results`` counts them afresh for each run)
        self.in_flight = ahead + self.workers * self.batch + behind
        self.stop = threading.Event()
        self.errors: List[BaseException] = []

    def results(self, items: Iterable) -> Generator[Tuple[Any, Any], None, None]:
        """(item, result) in input order, as the workers make them: ``items`` (an iterable) is read on the reader
        thread (decoding happens there). The first error of any stage is raised here once every thread has stopped;
        closing the generator (``contextlib.closing``) stops them."""
        self.stop.clear()
        self.errors.clear()
        self.slots = threading.Semaphore(self.in_flight)
        to_run: queue.Queue = queue.Queue(self.ahead)
        results: dict = {}
        ready = threading.Condition()
        jobs = [(self._read, (items, to_run))] + [(self._run_work, (to_run, results, ready))] * self.workers
        ended = [threading.Event() for _ in jobs]  # each thread's own word that it is over (``_join``)
        threads = [threading.Thread(target=_until_ended, args=(job, args, done), daemon=True)
                   for (job, args), done in zip(jobs, ended)]
        workers = threads[1:]
        try:  # the threads start inside: a stop that lands as they start still stops and joins them (a thread left
            # running a forward when the interpreter ends takes the process down: docs/troubleshooting.md)
            for thread in threads:
                thread.start()
            index = 0
            while True:
                with ready:  # results are added under this lock: once no worker is alive, none will come
                    while index not in results and not self.stop.is_set() and any(t.is_alive() for t in workers):
                        stopping.check()  # a Ctrl-C whose first raise was lost still stops the run
                        ready.wait(0.2)
                    found = results.pop(index, None)
                if found is None:
                    break  # every item is through, or the run stopped (its error is raised below)
                yield found
                self.slots.release()  # the caller is done with it
                index += 1
        except GeneratorExit:  # the caller stopped early (its own error, or enough): nothing more to raise
            return
        except BaseException as err:  # KeyboardInterrupt included: every thread stops, then it is raised
            self._fail(err)
        finally:
            self.stop.set()
            _join([done for thread, done in zip(threads, ended) if thread.ident is not None])  # the started ones
        if self.errors:
            raise self.errors[0]

    def run(self, items: Iterable, write: Callable[[Any, Any], None]) -> None:
        """``write(item, result)`` on this thread for every item, in input order (``results``)."""
        with contextlib.closing(self.results(items)) as done:
            for item, result in done:
                write(item, result)

    def put(self, q: queue.Queue, item: Any) -> bool:
        """``q.put(item)`` that gives up once the run stopped, so that no thread waits forever on a full queue.
        Whether it was put."""
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                pass
        return False

    def _fail(self, err):
        self.errors.append(err)
        self.stop.set()

    def _read(self, items, to_run):
        """Read the items and hand them on in batches: consecutive items of one key, up to ``batch`` (waiting for
        the next item only where ``wait_for_batch``)."""
        pending, key = [], None
        try:
            for index, item in enumerate(_acquiring(items, self.slots, self.stop)):
                k = self.batch_key(item)
                if pending and (k is None or k != key or len(pending) >= self.batch):
                    if not self.put(to_run, pending):
                        return
                    pending = []
                pending.append((index, item))
                key = k
                if not self.wait_for_batch or k is None or len(pending) >= self.batch:
                    if not self.put(to_run, pending):
                        return
                    pending = []
            if pending:
                self.put(to_run, pending)
        except BaseException as err:
            self._fail(err)
        finally:
            self.put(to_run, _END)

    def _take(self, to_run, wait=True):
        """The next batch read, or _END (also once the run stopped); None when ``wait`` is False and none is
        there."""
        while not self.stop.is_set():
            try:
                batch = to_run.get(timeout=0.2) if wait else to_run.get_nowait()
            except queue.Empty:
                if not wait:
                    return None
                continue
            if batch is _END:
                to_run.put(_END)  # for the other workers
            return batch
        return _END

    def _run_work(self, to_run, results, ready):
        held = None  # a batch taken that could not join the last one
        try:
            while not self.stop.is_set():
                batch = held if held is not None else self._take(to_run)
                held = None
                if batch is _END:
                    break
                key = self.batch_key(batch[0][1])
                while not self.wait_for_batch and key is not None and len(batch) < self.batch:
                    more = self._take(to_run, wait=False)  # what is already read joins; nothing is waited for
                    if more is None or more is _END:
                        break
                    if self.batch_key(more[0][1]) != key or len(batch) + len(more) > self.batch:
                        held = more
                        break
                    batch = batch + more
                outputs = self.work([item for _, item in batch])
                with ready:
                    for (index, item), output in zip(batch, outputs):
                        results[index] = (item, output)
                    ready.notify_all()
        except BaseException as err:
            self._fail(err)
        finally:
            with ready:
                ready.notify_all()


JOIN_S = 60  # the most a stopped run waits for its threads (each ends after the batch or image it is on)


def _until_ended(job: Callable, args: tuple, ended: threading.Event) -> None:
    try:
        job(*args)
    finally:
        ended.set()


def _join(ended: List[threading.Event]) -> None:
    """Wait for the threads to end (each sets its ``ended``; up to ``JOIN_S``), also where another Ctrl-C lands
    meanwhile. A thread still in a forward or a decoder when the interpreter ends takes the whole process down
    (CPython ends such daemon threads by unwinding through C++ that must not be unwound: "terminate called without
    an active exception"), and ``Thread.join`` cannot be trusted here: interrupted, CPython 3.11's marks a thread
    that is still running as stopped. The stop stays pending, and the error that stopped the run is raised after."""
    deadline = time.monotonic() + JOIN_S
    for done in ended:
        while not done.is_set() and time.monotonic() < deadline:
            try:
                done.wait(timeout=max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt:
                stopping.request()


def _acquiring(items, slots, stop):
    """``items`` one at a time, each after a slot is free (before it is read: reading is what takes memory)."""
    iterator = iter(items)
    while True:
        while not slots.acquire(timeout=0.2):
            if stop.is_set():
                return
        if stop.is_set():
            return
        try:
            item = next(iterator)
        except StopIteration:
            return
        yield item
