"""Input batches built in a background thread and placed on devices ahead of use.

The thread takes batches from the data iterator in order, so the sequence of batches
is exactly the one without prefetching. A checkpoint must record the data position of
the last batch *used*, not the last one built: each batch travels with the iterator
state after it, and `position()` is the state after the batch last handed out.
"""

import json
import queue
import threading


class Position:
    """A frozen data position, saved by grain's checkpoint handler (`get_state`)."""

    def __init__(self, state: dict):
        self._text = json.dumps(state, indent=4)

    def get_state(self) -> bytes:
        return self._text.encode()


class Prefetcher:
    """next() -> the next batch as global device arrays; `size` batches are built ahead
    (0: built in the calling thread when asked for)."""

    _DONE = object()

    def __init__(self, iterator, place, size: int):
        self.iterator, self.place, self.size = iterator, place, size
        self._position = Position(iterator.get_state())
        self._queue = queue.Queue(maxsize=max(size, 1))
        self._stop = threading.Event()
        self._thread = None
        if size > 0:
            self._thread = threading.Thread(target=self._produce, daemon=True,
                                            name="bigmodels-prefetch")
            self._thread.start()

    def _build(self):
        local = next(self.iterator)
        return self.place(local), Position(self.iterator.get_state())

    def _produce(self):
        try:
            while not self._stop.is_set():
                item = self._build()
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:   # noqa: BLE001 - handed to the consumer, raised there
            self._queue.put((self._DONE, e))

    def __iter__(self):
        return self

    def __next__(self):
        if self._thread is None:
            batch, self._position = self._build()
            return batch
        batch, position = self._queue.get()
        if batch is self._DONE:
            raise position
        self._position = position
        return batch

    def position(self) -> Position:
        """The data position after the last batch handed out."""
        return self._position

    def close(self) -> None:
        self._stop.set()
        while self._thread is not None and self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)      # unblocks a put in flight
            except queue.Empty:
                pass
        self._thread = None
