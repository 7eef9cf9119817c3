"""Downloads that fail within seconds: a connection probe before any download, and
files fetched from a URL once into a cache.

Offline, requests (TFDS's downloader) retries a download 10 times with backoff for
about 3.5 minutes, and a host that drops packets hangs each try for minutes; a 3 s TCP
connect to the host (or its proxy) tells the same in seconds.
"""

import contextlib
import functools
import hashlib
import http.client
import os
import queue
import shutil
import socket
import threading
import time
import urllib.parse
import urllib.request

from bigmodels.errors import BadInput

PROBE_TIMEOUT_S = 3.0      # for the name lookup, then again for the connections
FETCH_TIMEOUT_S = 30.0     # per connect and per read, not for the whole file
MAX_PROBED_HOSTS = 4
_PROBE_GRACE_S = 0.5       # a connect that times out reports just after its timeout
_DEFAULT_PORTS = {"http": 80, "https": 443, "socks4": 1080, "socks4a": 1080,
                  "socks5": 1080, "socks5h": 1080}


def is_url(path: str) -> bool:
    return path.startswith(("https://", "http://"))


def _endpoint(url: str, all_proxy: bool = True) -> tuple[str, int]:
    """(host, port) a request for `url` connects to: its proxy's if one is set. With
    `all_proxy`, all_proxy / ALL_PROXY is the proxy of every scheme without its own, as
    in requests (TFDS's downloader); urllib ignores it."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or (proxies.get("all") if all_proxy else None)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy if "//" in proxy else "//" + proxy)
    return parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)


def _in_thread(results: queue.SimpleQueue, tag, fn) -> None:
    """Runs `fn` in a daemon thread that puts (tag, ok, value or exception) in
    `results`: a call that hangs is abandoned instead of hanging the run."""
    def run():
        try:
            results.put((tag, True, fn()))
        except Exception as e:            # reported by the caller
            results.put((tag, False, e))
    threading.Thread(target=run, daemon=True).start()


def _connect(family: int, address: tuple, timeout: float) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(address)


def _probe(host: str, port: int, timeout: float) -> str | None:
    """Why (host, port) cannot be connected to; None if it can. The name lookup gets
    `timeout` s (it has no timeout of its own, hence a thread), then every address it
    returns is tried at once for `timeout` s: one that hangs (IPv6 on a network that
    drops it silently) costs no time to the others, as it would one after the other
    (socket.create_connection)."""
    looked_up = queue.SimpleQueue()
    _in_thread(looked_up, None,
               lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    try:
        _, ok, addresses = looked_up.get(timeout=timeout)
    except queue.Empty:
        return f"cannot resolve {host} (no answer within {timeout:g} s)"
    if not ok or not addresses:
        return f"cannot resolve {host}"
    connected = queue.SimpleQueue()
    for i, (family, _, _, _, address) in enumerate(addresses):
        _in_thread(connected, i, functools.partial(_connect, family, address, timeout))
    deadline = time.monotonic() + timeout + _PROBE_GRACE_S
    errors = []
    for _ in addresses:
        try:
            _, ok, error = connected.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break                         # the others time out: errors below say so
        if ok:
            return None
        errors.append(error)
    # Every address failed: a refusal (or another definite error) says more than a
    # timeout of another address.
    error = next((e for e in errors if not isinstance(e, TimeoutError)), None)
    if error is None:
        return f"{host}:{port} did not answer within {timeout:g} s"
    return f"cannot connect to {host}:{port}: {getattr(error, 'strerror', None) or error}"


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_S, all_proxy: bool = True
                ) -> str | None:
    """Why `url`'s host (or its proxy) cannot be connected to; None if it can. Takes
    at most about 2 * `timeout` s (name lookup, then connections). `all_proxy`: see
    _endpoint."""
    return _probe(*_endpoint(url, all_proxy), timeout)


def all_unreachable(urls, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why none of the hosts of `urls` (the first MAX_PROBED_HOSTS, or their proxy)
    can be connected to; None as soon as one can. A dataset's checksums file lists the
    URLs of all its configs: one dead mirror must not refuse a download from the others.
    The hosts are probed at once, so this takes as long as one probe."""
    endpoints = list(dict.fromkeys(_endpoint(url) for url in urls))[:MAX_PROBED_HOSTS]
    results = queue.SimpleQueue()
    for i, (host, port) in enumerate(endpoints):
        _in_thread(results, i, functools.partial(_probe, host, port, timeout))
    reasons = [""] * len(endpoints)
    for _ in endpoints:
        i, ok, why = results.get()        # a probe ends within 2 * timeout + grace
        if ok and why is None:
            return None
        reasons[i] = why if ok else f"{type(why).__name__}: {why}"
    return "; ".join(reasons) or None


def cached_url(url: str, cache_dir: str, key: str = "data.path") -> str:
    """A local copy of `url`: downloaded once into `cache_dir` (to a temp file, then
    renamed, so an interrupted download never counts), later runs reuse it offline."""
    name = os.path.basename(urllib.parse.urlsplit(url).path) or "index"
    path = os.path.join(cache_dir, hashlib.sha256(url.encode()).hexdigest()[:16], name)
    if os.path.isfile(path):
        return path
    offline = f"offline, pass --config.{key}=<a local copy>"
    why = unreachable(url, all_proxy=False)      # urlopen below ignores all_proxy
    if why:
        raise BadInput(f"{key}={url}: cannot download it ({why}); {offline}")
    print(f"downloading {key}={url} to {path} (once)", flush=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response, \
                open(tmp, "wb") as f:
            shutil.copyfileobj(response, f, 1 << 20)
        os.replace(tmp, path)
    except (OSError, http.client.HTTPException) as e:
        raise BadInput(f"{key}={url}: cannot download it to {path} "
                       f"({type(e).__name__}: {e}); {offline}") from None
    finally:                     # also on Ctrl-C; after the rename there is no tmp
        with contextlib.suppress(OSError):
            os.remove(tmp)
    return path
