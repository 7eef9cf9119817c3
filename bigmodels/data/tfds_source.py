"""Opening a named TFDS dataset without TensorFlow: the builder in array_record,
prepared once under `data.tfds_dir` (downloaded on first use), and its splits as
random-access data sources. Every failure (unknown name, offline, a bad split or
feature key, a missing optional dependency) is one BadInput line; offline, it comes
within seconds and names the offline alternative the caller gives."""

import contextlib
import socket
from urllib.error import URLError

import tensorflow_datasets as tfds

from bigmodels.data import downloads
from bigmodels.data.local_builder import quiet_tfds
from bigmodels.data.text_files import default_data_dir
from bigmodels.errors import BadInput, first_line

DOWNLOAD_RETRIES = 2      # TFDS's own: 10, with backoff (3.5 minutes to give up offline)


def offline_hint(offline: str) -> str:
    """The end of a message that names `offline`, the alternative to a download."""
    return f"; offline, use {offline}" if offline else ""


def _bad(name: str, e: Exception, offline: str = "") -> BadInput:
    hint = offline_hint(offline) if is_network_error(e) else ""
    return BadInput(f"data.name={name!r}: {type(e).__name__}: {first_line(e)}{hint}")


def is_network_error(e: Exception) -> bool:
    """Whether `e` says the network (not the dataset) failed."""
    return (isinstance(e, (ConnectionError, TimeoutError, socket.gaierror, URLError))
            or type(e).__module__.split(".")[0] in ("requests", "urllib3")
            or type(e).__name__ == "DownloadError")


def _undownloaded_urls(builder, data_dir: str) -> list[str]:
    """The URLs of `builder`'s checksums file whose files are not downloaded yet (a
    builder without a checksums file: none known).

    Where TFDS's DownloadManager looks for them (_download_or_get_cache): in
    `<data_dir>/downloads/<dataset name>/`, then in `<data_dir>/downloads/` (the layout
    of older TFDS versions), each named by URL and checksum or, downloaded before the
    checksum was known, by URL alone; a file counts once its .INFO file is written."""
    try:
        from etils import epath
        from tensorflow_datasets.core.download import resource
        root = epath.Path(data_dir).expanduser() / "downloads"
        folders = (root / builder.name, root)

        def downloaded(url, checksum) -> bool:
            return any(resource.is_locally_cached(folder / resource.get_dl_fname(url, c))
                       for folder in folders for c in (checksum, None))

        infos = builder.url_infos or {}
        return [url for url, info in infos.items() if not downloaded(url, info.checksum)]
    except Exception:                     # private TFDS API: never fatal, just no probe
        return []


def _mocked(builder) -> bool:
    """Under tfds.testing.mock_data, which replaces download_and_prepare: no download."""
    prepare = getattr(type(builder), "download_and_prepare", None)
    return "tensorflow_datasets.testing" in getattr(prepare, "__module__", "")


def check_reachable(builder, name: str, data_dir: str, offline: str) -> None:
    """Refuses within seconds when no host the unprepared dataset still downloads
    from answers, instead of TFDS's minutes of retries and a traceback."""
    is_prepared = getattr(builder, "is_prepared", None)     # None: a test's stand-in
    if is_prepared is None or is_prepared() or _mocked(builder):
        return
    urls = _undownloaded_urls(builder, data_dir)
    why = downloads.all_unreachable(urls) if urls else None
    if why:
        raise BadInput(f"data.name={name!r}: cannot download it ({why})"
                       f"{offline_hint(offline)}")


@contextlib.contextmanager
def few_retries():
    """TFDS's downloader with DOWNLOAD_RETRIES instead of its 10 retries."""
    from tensorflow_datasets.core.download import downloader
    saved = getattr(downloader, "MAX_RETRIES", None)
    if saved is not None:
        downloader.MAX_RETRIES = DOWNLOAD_RETRIES
    try:
        yield
    finally:
        if saved is not None:
            downloader.MAX_RETRIES = saved


def reachable_builder(name: str, data_dir: str, offline: str):
    """The TFDS builder of `name`; refused within seconds if it needs a download from
    hosts that do not answer."""
    try:
        with quiet_tfds():
            builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    except Exception as e:
        raise _bad(name, e) from None
    check_reachable(builder, name, data_dir, offline)
    return builder


def prepared_builder(d, offline: str = ""):
    """The TFDS builder of `d.name`, prepared; `offline` is what to use instead."""
    builder = reachable_builder(d.name, d.tfds_dir or default_data_dir(), offline)
    try:
        with few_retries():
            builder.download_and_prepare()
    except Exception as e:
        raise _bad(d.name, e, offline) from None
    return builder


def split_sources(d, feature_keys=(), offline: str = ""):
    """(builder, train source, eval source) of `d.train_split` and `d.eval_split`,
    after checking that every one of `feature_keys` is a feature of the dataset."""
    builder = prepared_builder(d, offline)
    try:
        sources = builder.as_data_source(d.train_split), builder.as_data_source(d.eval_split)
        for key in feature_keys:
            builder.info.features[key]
    except Exception as e:
        raise _bad(d.name, e) from None
    return (builder,) + sources
