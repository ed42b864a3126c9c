"""The queues between the threads of the read -> run -> write pipelines (images in ``folder.py``, films in
``video.py``): a put that gives up once the run stopped, so no thread waits forever on a full queue."""
import queue


def put_unless_stopped(q, item, stop):
    """``q.put(item)`` that gives up once ``stop`` (a threading.Event) is set, so that no thread of a pipeline waits
    forever on a full queue after the run stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return
        except queue.Full:
            pass
