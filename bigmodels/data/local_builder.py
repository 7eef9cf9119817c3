"""The base of our TFDS builders of local data (text files, images, scikit-learn arrays,
synthesised speech).

TFDS announces every preparation as `Downloading and preparing dataset Unknown size`
and warns `Using custom data configuration` on every run; for local data both mislead
(nothing is downloaded, the configuration is ours by design). A `LocalBuilder` prints
one line of its own instead, only when it prepares the dataset (the first time).
"""

import contextlib
import logging

import tensorflow_datasets as tfds

# TFDS warnings that are expected, not news: ours are custom configurations, and a
# dataset not yet prepared has no dataset_info.json.
EXPECTED = ("Using custom data configuration", "Variant folder")


class _DropExpected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(EXPECTED)


@contextlib.contextmanager
def quiet_tfds():
    """TFDS's EXPECTED warnings dropped (they go through absl to the "absl" logger)."""
    absl_logger, quiet = logging.getLogger("absl"), _DropExpected()
    absl_logger.addFilter(quiet)
    try:
        yield
    finally:
        absl_logger.removeFilter(quiet)


class LocalBuilder(tfds.core.GeneratorBasedBuilder):
    """`source` (e.g. "data.path=corpus.txt") names what the dataset is made from."""

    def __init__(self, *, source: str, **kwargs):
        self._source = source
        with quiet_tfds():
            super().__init__(**kwargs)

    def _log_download_bytes(self) -> None:      # TFDS calls it just before preparing
        print(f"preparing {self._source} as a TFDS dataset in {self.data_dir} (once)",
              flush=True)

    def _log_download_done(self) -> None:
        pass
