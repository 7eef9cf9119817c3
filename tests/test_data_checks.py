"""Data input is checked, downloads fail fast and clearly, library chatter is quiet.

Everything here runs offline on any machine: URLs are served by a local http.server,
and "offline" is a closed local port (as a host, or as the proxy every request goes
through), so TFDS never reaches the real network even where it could.
"""

import functools
import hashlib
import http.server
import logging
import os
import socket
import sys
import threading
import time

import pytest

from bigmodels import data as data_lib
from bigmodels.data import downloads, text_checks, text_files, tfds_source
from bigmodels.data.text_files import TINY_SHAKESPEARE
from bigmodels.errors import BadInput
from helpers import experiment_config, tiny_lm_config

TEXT = "To be, or not to be, that is the question.\n" * 40
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def _lm_config(path, tmp_path, tokenizer="char", kind="text"):
    config = tiny_lm_config(str(path))
    config.data.update(tokenizer=tokenizer, kind=kind, tfds_dir=str(tmp_path / "tfds"))
    return config


def _closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- text is checked ------------------------------------------------------------------


def test_char_tokenizer_refuses_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "program.bin"
    path.write_bytes(TEXT.encode() + b"\x7fELF\x02\x01\xb0\x6a" + TEXT.encode())
    config = _lm_config(path, tmp_path)
    with pytest.raises(BadInput) as e:
        data_lib.build(config, str(tmp_path / "run"))
    assert str(e.value) == (f"data.path {path}: not UTF-8 text at byte {len(TEXT) + 6} "
                            "(data.tokenizer=char needs text; use data.tokenizer=byte for "
                            "arbitrary bytes)")
    assert not (tmp_path / "tfds").exists() and not (tmp_path / "run").exists()


def test_utf8_offsets_across_chunks_files_and_max_bytes(tmp_path):
    chunk = text_checks.CHUNK_BYTES
    split = tmp_path / "split.txt"        # "é" straddles two chunks, then a stray byte
    split.write_bytes(b"a" * (chunk - 1) + "é".encode() + b"\xff")
    assert text_checks.scan(str(split), sys.maxsize, utf8=True)[0] == chunk + 1
    cut = tmp_path / "cut.txt"            # ends inside a character: an error...
    cut.write_bytes("é".encode() * 10 + b"\xc3")
    assert text_checks.scan(str(cut), sys.maxsize, utf8=True)[0] == 20
    # ... unless max_bytes cuts the corpus inside one (it is cut there, too).
    text_checks.check_text([str(cut)], "char", max_bytes=5)
    good = tmp_path / "good.txt"
    good.write_text(TEXT)
    with pytest.raises(BadInput, match=f"data.path {cut}: not UTF-8 text at byte 20"):
        text_checks.check_text([str(good), str(cut)], "char")


def test_byte_tokenizer_warns_once_about_a_binary_corpus_and_trains_on(tmp_path, capsys):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(PNG_HEADER + TEXT.encode())
    config = _lm_config(tmp_path / "a.png", tmp_path, tokenizer="byte")
    data = data_lib.build(config, str(tmp_path / "run"))
    assert data.train_tokens + data.eval_tokens == len(PNG_HEADER) + len(TEXT)
    # text_classes reads one file per class: still one line for the whole corpus.
    config = _lm_config(f"{tmp_path / 'a.png'},{tmp_path / 'b.png'}", tmp_path, "byte",
                        "text_classes")
    data_lib.build(config, str(tmp_path / "run2"))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line]
    assert warnings == [f"warning: data.path {tmp_path / 'a.png'} looks binary, not text "
                        "(a NUL byte at byte 8); training on its bytes anyway "
                        "(data.tokenizer=byte)"] * 2


def test_a_byte_corpus_is_sniffed_only_at_its_start(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(text_checks, "SNIFF_BYTES", 1000)
    head, tail = tmp_path / "head.txt", tmp_path / "tail.bin"
    head.write_text("a" * 600)
    tail.write_bytes(b"b" * 500 + b"\0\xff")    # a NUL after 1000 bytes of the corpus
    for per_file in (False, True):
        text_checks.check_text([str(head), str(tail)], "byte", per_file=per_file)
    assert capsys.readouterr().err == ""
    with pytest.raises(BadInput, match="not UTF-8 text at byte 501"):   # char: all of it
        text_checks.check_text([str(head), str(tail)], "char")


@pytest.mark.parametrize("kind", ["text", "text_classes"])
def test_a_resumed_run_does_not_check_its_text_again(kind, tmp_path, monkeypatch):
    paths = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for path in paths:
        path.write_text(TEXT)
    config = _lm_config(",".join(map(str, paths)) if kind == "text_classes" else paths[0],
                        tmp_path, kind=kind)
    run = tmp_path / "run"
    run.mkdir()
    data_lib.build(config, str(run)).save(str(run))      # the run's first start
    checked = []
    monkeypatch.setattr(text_checks, "check_text", lambda *args, **kwargs: checked.append(1))
    data_lib.build(config, str(run))                     # resumed: prepared, tokenizer.json
    assert checked == []
    data_lib.build(config, str(tmp_path / "new_run"))    # a new run checks its text
    assert checked == [1]


# --- data.path may be a URL, downloaded once --------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """(directory, base URL) of a local HTTP server."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_is_downloaded_once_then_used_offline(served, tmp_path, capsys):
    root, base = served
    (root / "input.txt").write_text(TEXT)
    url, data_dir = f"{base}/input.txt", str(tmp_path / "tfds")
    splits = text_files.load_splits(url, 0.1, data_dir=data_dir, tokenizer="char")
    assert (splits["train"] + splits["validation"]).decode() == TEXT
    (cached,) = text_files.resolve_paths(url, data_dir)
    assert cached.startswith(os.path.join(data_dir, "urls")) and open(cached).read() == TEXT
    assert os.listdir(os.path.dirname(cached)) == ["input.txt"]     # no temp file left
    assert f"downloading data.path={url} to {cached} (once)" in capsys.readouterr().out
    (root / "input.txt").unlink()                           # the server has it no more
    again = text_files.load_splits(url, 0.1, data_dir=data_dir, tokenizer="char")
    assert again == splits and "downloading" not in capsys.readouterr().out
    with pytest.raises(BadInput, match=f"data.path={base}/gone.txt: cannot download it .*"
                                       "404.*--config.data.path=<a local copy>"):
        text_files.resolve_paths(f"{base}/gone.txt", data_dir)


def test_an_interrupted_download_leaves_no_temp_file(served, tmp_path, monkeypatch):
    root, base = served
    (root / "input.txt").write_text(TEXT)

    def interrupted(source, target, length):
        target.write(source.read(10))
        raise KeyboardInterrupt
    monkeypatch.setattr(downloads.shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        downloads.cached_url(f"{base}/input.txt", str(tmp_path / "urls"))
    (folder,) = (tmp_path / "urls").iterdir()
    assert list(folder.iterdir()) == []


def test_unreachable_url_fails_in_seconds_with_one_line(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/input.txt"
    start = time.monotonic()
    with pytest.raises(BadInput) as e:
        data_lib.build(_lm_config(url, tmp_path), str(tmp_path / "run"))
    assert time.monotonic() - start < 5
    assert str(e.value).startswith(f"data.path={url}: cannot download it (cannot connect")
    assert str(e.value).endswith("; offline, pass --config.data.path=<a local copy>")
    assert "\n" not in str(e.value) and not (tmp_path / "tfds").exists()
    assert downloads.unreachable("http://bigmodels.invalid/x").startswith(
        "cannot resolve bigmodels.invalid")


def test_char_experiments_download_tiny_shakespeare_but_tiny_runs_stay_offline():
    for name in ("shakespeare_char", "lstm_lm"):
        assert experiment_config(name, "").data.path == TINY_SHAKESPEARE
        assert not experiment_config(name, "tiny").data.path.startswith("http")


# --- TFDS downloads fail fast ------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Every HTTP(S) request goes through a proxy that refuses connections."""
    proxy = f"http://127.0.0.1:{_closed_port()}"
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, proxy)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_tfds_translation_offline_fails_in_seconds_naming_mock_data(tmp_path, no_network):
    config = experiment_config("t5_translate", "")
    config.data.tfds_dir = str(tmp_path / "tfds")
    start = time.monotonic()
    with pytest.raises(BadInput) as e:
        data_lib.build(config, str(tmp_path / "run"))
    assert time.monotonic() - start < 10
    message = str(e.value)
    assert message.startswith("data.name='ted_hrlr_translate/pt_to_en': cannot download it")
    assert message.endswith("offline, use --config.data.mock_examples=64 (TFDS mock "
                            "examples, nothing downloaded)")
    assert "\n" not in message and not (tmp_path / "run").exists()


def test_tfds_images_offline_names_the_offline_kinds(tmp_path, no_network):
    config = experiment_config("digits_cnn", "mnist")
    config.data.tfds_dir = str(tmp_path / "tfds")
    with pytest.raises(BadInput, match=r"data.name='mnist': cannot download it .*"
                                       r"offline, use .*data.kind=image_folder"):
        data_lib.build(config, str(tmp_path / "run"))


def test_a_download_that_fails_after_the_probe_is_one_line_in_seconds(
        tmp_path, monkeypatch):
    import numpy as np
    import tensorflow_datasets as tfds
    url = f"http://127.0.0.1:{_closed_port()}/data.txt"    # no checksums: not probed

    with tfds.core.registered.skip_registration():
        class Unreachable(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                return tfds.core.DatasetInfo(
                    builder=self, features=tfds.features.FeaturesDict({"x": np.int64}))

            def _split_generators(self, dl_manager):
                dl_manager.download(url)
                return {}

            def _generate_examples(self):
                yield from ()

    builder = Unreachable(data_dir=str(tmp_path / "tfds"))
    monkeypatch.setattr(tfds_source.tfds, "builder", lambda *args, **kwargs: builder)
    config = experiment_config("digits_cnn", "mnist")
    start = time.monotonic()
    with pytest.raises(BadInput, match=r"^data.name='mnist': ConnectionError: .* offline, "
                                       r"use the scikit-learn digits"):
        data_lib.build(config, str(tmp_path / "run"))
    assert time.monotonic() - start < 10          # TFDS alone: 10 retries, 3.5 minutes


class _StandIn:
    """A builder whose checksums file lists two files of one host."""
    name = "stand_in"
    URLS = ("https://data.example/a.zip", "https://data.example/b.zip")

    def __init__(self, prepared: bool):
        from tensorflow_datasets.core.download import checksums
        self.prepared = prepared
        self.url_infos = {url: checksums.UrlInfo(size=1, checksum=hashlib.sha256(
            url.encode()).hexdigest(), filename=None) for url in self.URLS}

    def is_prepared(self):
        return self.prepared


@pytest.mark.parametrize("state", ["prepared", "not downloaded", "downloaded",
                                   "downloaded by an older TFDS"])
def test_only_a_dataset_still_to_download_is_probed(state, tmp_path, monkeypatch):
    from tensorflow_datasets.core.download import resource
    builder, probed = _StandIn(prepared=state == "prepared"), []
    folder = {"downloaded": tmp_path / "downloads" / "stand_in",   # TFDS 4.9.x
              "downloaded by an older TFDS": tmp_path / "downloads"}.get(state)
    for url, info in builder.url_infos.items():
        if folder:
            path = folder / resource.get_dl_fname(url, info.checksum)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            resource.get_info_path(path).write_text("{}")   # TFDS: a file without is not

    def probe(host, port, timeout):
        probed.append((host, port))
        return f"{host}:{port} did not answer within {timeout:g} s"

    monkeypatch.setattr(downloads, "_probe", probe)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    if state == "not downloaded":
        with pytest.raises(BadInput, match=r"^data.name='mnist': cannot download it "
                                           r"\(data.example:443 did not answer"):
            tfds_source.check_reachable(builder, "mnist", str(tmp_path), "digits")
        assert probed == [("data.example", 443)]            # one probe per host
    else:
        tfds_source.check_reachable(builder, "mnist", str(tmp_path), "digits")
        assert probed == []


@pytest.fixture
def direct(monkeypatch):
    """No proxy: every probe connects to the URL's own host."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)


def test_a_dataset_is_refused_only_when_every_host_is_down(served, direct):
    _, base = served
    port = _closed_port()
    dead = [f"http://127.0.0.1:{port}/x", f"http://localhost:{_closed_port()}/y"]
    assert downloads.all_unreachable([dead[0], f"{base}/z", dead[1]]) is None
    why = downloads.all_unreachable(dead)
    assert why.startswith(f"cannot connect to 127.0.0.1:{port}: ")
    assert "; cannot connect to localhost:" in why


def test_the_probe_tries_every_address_at_once(monkeypatch, direct):
    """A host listed with IPv6 first, on a network that drops IPv6: reached over IPv4."""
    addresses = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::1", 80, 0, 0)),
                 (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 80))]
    monkeypatch.setattr(downloads.socket, "getaddrinfo", lambda *args, **kwargs: addresses)

    def connect(family, address, timeout):
        if family == socket.AF_INET6:
            time.sleep(timeout)
            raise TimeoutError
    monkeypatch.setattr(downloads, "_connect", connect)
    start = time.monotonic()
    assert downloads.unreachable("http://dual.example/x", timeout=1.0) is None
    assert time.monotonic() - start < 0.9


def test_a_name_lookup_that_hangs_is_a_name_lookup_failure(monkeypatch, direct):
    monkeypatch.setattr(downloads.socket, "getaddrinfo",
                        lambda *args, **kwargs: time.sleep(2.0))
    start = time.monotonic()
    assert downloads.unreachable("http://slow.example/x", timeout=0.2) == \
        "cannot resolve slow.example (no answer within 0.2 s)"
    assert time.monotonic() - start < 1.0


def test_the_probe_goes_through_all_proxy_like_requests(monkeypatch, direct):
    port = _closed_port()
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{port}")
    assert downloads.unreachable("https://data.example/x").startswith(
        f"cannot connect to 127.0.0.1:{port}")


# --- quiet output ----------------------------------------------------------------------


def test_a_local_dataset_says_one_line_when_prepared_and_nothing_later(
        tmp_path, capsys, caplog):
    path = tmp_path / "play.txt"
    path.write_text(TEXT)
    data_dir = str(tmp_path / "tfds")
    with caplog.at_level(logging.INFO):
        text_files.load_splits(str(path), 0.1, data_dir=data_dir, tokenizer="char")
        first = capsys.readouterr()
        text_files.load_splits(str(path), 0.1, data_dir=data_dir, tokenizer="char")
        second = capsys.readouterr()
    (line,) = first.out.splitlines()
    assert line.startswith(f"preparing data.path={path} as a TFDS dataset in {data_dir}")
    assert line.endswith("(once)") and not first.err
    assert second.out == second.err == ""
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
