"""CIFAR-10 small images classification dataset (Keras-compatible loader).

``load_data()`` returns exactly what ``tf_keras.datasets.cifar10.load_data()``
returns::

    (x_train, y_train), (x_test, y_test) = pyreg.datasets.cifar10.load_data()
    # x_train: uint8 (50000, 32, 32, 3)   y_train: uint8 (50000, 1), labels 0-9
    # x_test:  uint8 (10000, 32, 32, 3)   y_test:  uint8 (10000, 1)

(the arrays are C-contiguous copies; Keras returns transposed views with the
same values).

Where the data is looked for, in this order (the first hit is used):

1. ``path`` if given: the official archive ``cifar-10-python.tar.gz`` (any
   file name), an extracted ``cifar-10-batches-py`` folder, or a folder that
   holds one of those. A ``path`` that does not exist is an error (no fallback).
2. Keras's cache, ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``:
   ``cifar-10-batches-py.tar.gz`` (the name Keras downloads to),
   ``cifar-10-python.tar.gz`` (the official name), then the folders Keras
   extracts to (``cifar-10-batches-py/``, ``cifar-10-batches-py_extracted/
   cifar-10-batches-py/``).
3. pyreg's cache: ``cache_dir``, else env ``PYREG_DATA``, else
   ``~/.pyreg/datasets``: ``cifar-10-python.tar.gz``, then an extracted
   ``cifar-10-batches-py/`` folder.
4. If ``download=True``: download :data:`URL` into pyreg's cache (to a
   temporary file, renamed once complete and verified).

Every archive (found or downloaded) must have the SHA-256 :data:`SHA256`
before anything in it is read. Extracted folders are not hashed (as in
Keras). The batches are read straight from the ``.tar.gz`` (nothing is
extracted) or from the folder, and every pickle is read with a restricted
unpickler that can only rebuild NumPy arrays and plain Python data; any other
global (``os.system``, ``builtins.eval``, ...) raises
``pickle.UnpicklingError``.

What is read is validated: keys ``b'data'`` and ``b'labels'`` present, data a
uint8 array of shape (n, 3072), labels n integers in 0..9. Row counts are
checked for consistency (data rows == number of labels, n > 0), not pinned to
10000: the official archive is pinned by its SHA-256 anyway, and this lets
small archives in the real format (tests) load.

No network (or no copy of the data)? ``pyreg.datasets.synthetic.load_data()``
is an offline, CIFAR-shaped SYNTHETIC alternative (it is not CIFAR-10).
"""

import hashlib
import io
import os
import pickle
import sys
import tarfile
import tempfile
import time
import urllib.request
import zlib

import numpy as np

__all__ = [
    "load_data",
    "CLASS_NAMES",
    "URL",
    "SHA256",
    "ARCHIVE_NAME",
    "DataUnavailableError",
    "RestrictedUnpickler",
    "find_source",
    "keras_cache_dir",
    "pyreg_cache_dir",
    "sha256_file",
]

#: Where the official archive is downloaded from.
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: SHA-256 of the official archive (the same value Keras pins).
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
#: File name of the archive in pyreg's cache (the official name).
ARCHIVE_NAME = "cifar-10-python.tar.gz"
#: File name Keras gives the archive in its cache.
KERAS_ARCHIVE_NAME = "cifar-10-batches-py.tar.gz"
#: Top-level folder inside the archive (and name of the extracted folder).
FOLDER_NAME = "cifar-10-batches-py"

TRAIN_BATCHES = tuple("data_batch_%d" % i for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCH_NAMES = TRAIN_BATCHES + (TEST_BATCH,)

#: Label index -> class name.
CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_ROW_BYTES = 3 * 32 * 32
_OFFLINE_HINT = (
    "Offline alternative: pyreg.datasets.synthetic.load_data() returns a "
    "CIFAR-shaped SYNTHETIC data set (not CIFAR-10) with the same format."
)


class DataUnavailableError(FileNotFoundError):
    """CIFAR-10 was not found locally and could not (or may not) be downloaded."""


# --------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------


def _numpy_reconstruct():
    try:  # NumPy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _latin1_encode(text, encoding):
    # Python 3 writes bytes in protocol <= 2 pickles as
    # _codecs.encode(str, 'latin1'); allow exactly that and nothing else.
    if not isinstance(text, str) or str(encoding).lower().replace("-", "") not in (
        "latin1",
        "iso88591",
    ):
        raise pickle.UnpicklingError(
            "refused _codecs.encode(%r, %r): only str -> latin1 bytes is allowed"
            % (type(text).__name__, encoding)
        )
    return text.encode("latin1")


def _allowed_globals():
    rec = _numpy_reconstruct()
    return {
        # What the official CIFAR-10 pickles (Python 2 cPickle + NumPy) use.
        ("numpy.core.multiarray", "_reconstruct"): rec,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # The same objects under NumPy 2's module name (pickles written by
        # Python 3 + NumPy 2), and bytes written by Python 3 at protocol <= 2.
        ("numpy._core.multiarray", "_reconstruct"): rec,
        ("_codecs", "encode"): _latin1_encode,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can only build NumPy arrays and plain Python data.

    ``find_class`` resolves only the few globals a CIFAR-10 batch needs
    (NumPy's array reconstruction, ``numpy.ndarray``, ``numpy.dtype``);
    anything else raises ``pickle.UnpicklingError`` naming the global. The
    module named in the pickle is never imported.
    """

    def find_class(self, module, name):
        obj = _allowed_globals().get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(
                "refused to load global '%s.%s': a CIFAR-10 batch may only "
                "contain NumPy arrays and plain data (allowed: %s)"
                % (module, name, ", ".join(sorted("%s.%s" % k for k in _allowed_globals())))
            )
        return obj

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id %r" % (pid,))


def _unpickle(raw, where):
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError("%s: %s" % (where, e)) from None
    except Exception as e:
        raise ValueError(
            "%s: not a valid CIFAR-10 batch pickle (%s: %s)" % (where, type(e).__name__, e)
        ) from e


def _get(d, key):
    if key in d:
        return d[key]
    skey = key.decode("ascii")
    if skey in d:
        return d[skey]
    return None


def _parse_batch(raw, where):
    """Unpickle and validate one batch; return (data (n, 3072) uint8, labels (n,) uint8)."""
    d = _unpickle(raw, where)
    if not isinstance(d, dict):
        raise ValueError(
            "%s: expected a pickled dict with keys b'data' and b'labels', got %s"
            % (where, type(d).__name__)
        )
    data = _get(d, b"data")
    labels = _get(d, b"labels")
    missing = [k for k, v in ((b"data", data), (b"labels", labels)) if v is None]
    if missing:
        raise ValueError(
            "%s: missing key(s) %s; keys present: %s"
            % (where, ", ".join(map(repr, missing)), sorted(map(repr, d.keys())))
        )
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _ROW_BYTES or data.shape[0] == 0:
        desc = (
            "%s %s %s" % (type(data).__name__, getattr(data, "dtype", ""), getattr(data, "shape", ""))
        )
        raise ValueError(
            "%s: b'data' must be a uint8 array of shape (n, 3072) with n > 0, got %s"
            % (where, desc.strip())
        )
    if isinstance(labels, np.ndarray):
        lab = labels
    elif isinstance(labels, (list, tuple)) and all(
        type(v) is int or isinstance(v, np.integer) for v in labels
    ):
        lab = np.array(labels, dtype=np.int64) if labels else np.zeros(0, np.int64)
    else:
        raise ValueError("%s: b'labels' must be a list of ints, got %s" % (where, type(labels).__name__))
    if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(
            "%s: b'labels' must be 1-D integers, got dtype %s shape %s" % (where, lab.dtype, lab.shape)
        )
    if lab.shape[0] != data.shape[0]:
        raise ValueError(
            "%s: %d labels for %d data rows (they must match)" % (where, lab.shape[0], data.shape[0])
        )
    if lab.min() < 0 or lab.max() > 9:
        raise ValueError(
            "%s: labels must be in 0..9, found range %d..%d" % (where, lab.min(), lab.max())
        )
    return data, lab.astype(np.uint8)


# --------------------------------------------------------------------------
# Sources: archive / folder
# --------------------------------------------------------------------------


def sha256_file(path, chunk_size=1 << 20):
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk_size)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _check_sha256(path, expected):
    got = sha256_file(path)
    if got != expected:
        raise ValueError(
            "SHA-256 mismatch for %s: got %s, expected %s. The file is corrupt, "
            "incomplete or not the official CIFAR-10 python archive (%s); delete it "
            "and provide a good copy." % (path, got, expected, URL)
        )


def _read_archive(archive, expected_sha256):
    _check_sha256(archive, expected_sha256)
    batches = {}
    try:
        with tarfile.open(archive, "r:gz") as tf:
            for member in tf:
                name = member.name
                while name.startswith("./"):
                    name = name[2:]
                parts = name.split("/")
                if len(parts) != 2 or parts[0] != FOLDER_NAME or parts[1] not in BATCH_NAMES:
                    continue
                where = "%s:%s" % (archive, member.name)
                if not member.isfile():
                    raise ValueError("%s: expected a regular file" % where)
                if parts[1] in batches:
                    raise ValueError("%s: duplicate member" % where)
                f = tf.extractfile(member)
                batches[parts[1]] = _parse_batch(f.read(), where)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError("%s: cannot read the tar.gz archive (%s)" % (archive, e)) from e
    missing = [n for n in BATCH_NAMES if n not in batches]
    if missing:
        raise FileNotFoundError(
            "%s: archive lacks %s (expected %s/data_batch_1..5 and %s/test_batch)"
            % (archive, ", ".join("%s/%s" % (FOLDER_NAME, n) for n in missing), FOLDER_NAME, FOLDER_NAME)
        )
    return batches


def _read_folder(folder):
    batches = {}
    for n in BATCH_NAMES:
        p = os.path.join(folder, n)
        if not os.path.isfile(p):
            raise FileNotFoundError(
                "%s: missing batch file %s (an extracted %s folder must hold "
                "data_batch_1..5 and test_batch)" % (folder, p, FOLDER_NAME)
            )
        with open(p, "rb") as f:
            batches[n] = _parse_batch(f.read(), p)
    return batches


def _looks_like_folder(d):
    return os.path.isdir(d) and any(os.path.exists(os.path.join(d, n)) for n in BATCH_NAMES)


def _resolve_user_path(path):
    """Return ('archive'|'folder', path) for a user-given path, or raise."""
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.isfile(path):
        return "archive", path
    if not os.path.isdir(path):
        raise FileNotFoundError(
            "path=%r does not exist (expected the CIFAR-10 archive %s or an "
            "extracted %s folder)" % (path, ARCHIVE_NAME, FOLDER_NAME)
        )
    if _looks_like_folder(path):
        return "folder", path
    sub = os.path.join(path, FOLDER_NAME)
    if _looks_like_folder(sub):
        return "folder", sub
    for n in (ARCHIVE_NAME, KERAS_ARCHIVE_NAME):
        if os.path.isfile(os.path.join(path, n)):
            return "archive", os.path.join(path, n)
    raise FileNotFoundError(
        "path=%r is a folder but holds neither the CIFAR-10 batches "
        "(data_batch_1..5, test_batch), a %s/ subfolder, nor %s / %s"
        % (path, FOLDER_NAME, ARCHIVE_NAME, KERAS_ARCHIVE_NAME)
    )


def keras_cache_dir():
    """Keras's dataset cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(base, "datasets")


def pyreg_cache_dir(cache_dir=None):
    """pyreg's dataset cache: ``cache_dir``, else ``$PYREG_DATA``, else ``~/.pyreg/datasets``."""
    if cache_dir is not None:
        return os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))
    env = os.environ.get("PYREG_DATA")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    return os.path.join(os.path.expanduser("~"), ".pyreg", "datasets")


def _cache_candidates(cache_dir):
    k = keras_cache_dir()
    p = pyreg_cache_dir(cache_dir)
    return [
        ("archive", os.path.join(k, KERAS_ARCHIVE_NAME)),
        ("archive", os.path.join(k, ARCHIVE_NAME)),
        ("folder", os.path.join(k, FOLDER_NAME)),
        ("folder", os.path.join(k, FOLDER_NAME + "_extracted", FOLDER_NAME)),
        ("archive", os.path.join(p, ARCHIVE_NAME)),
        ("folder", os.path.join(p, FOLDER_NAME)),
    ]


# --------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------


class _Progress:
    def __init__(self, label, total, stream):
        self.label, self.total, self.stream = label, total, stream
        self.t0 = self.last = time.monotonic()
        self.done = 0

    def update(self, n, final=False):
        self.done += n
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        mb = self.done / 1e6
        rate = mb / max(now - self.t0, 1e-9)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            msg = "\r%s [%-30s] %5.1f%% %.1f/%.1f MB %.1f MB/s" % (
                self.label, bar, 100 * frac, mb, self.total / 1e6, rate)
        else:
            msg = "\r%s %.1f MB %.1f MB/s" % (self.label, mb, rate)
        self.stream.write(msg)
        if final:
            self.stream.write("\n")
        self.stream.flush()


def _download(url, dest, expected_sha256, verbose, timeout):
    """Download url to dest via a temporary file; verify SHA-256, then rename."""
    d = os.path.dirname(dest)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", suffix=".part", dir=d)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length") if resp.headers is not None else None
            try:
                total = int(total) if total else None
            except ValueError:
                total = None
            bar = _Progress("Downloading %s" % os.path.basename(dest), total, sys.stderr) if verbose else None
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                h.update(chunk)
                if bar:
                    bar.update(len(chunk))
            if bar:
                bar.update(0, final=True)
        got = h.hexdigest()
        if got != expected_sha256:
            raise ValueError(
                "SHA-256 mismatch for the download of %s: got %s, expected %s; "
                "the file was not kept. %s" % (url, got, expected_sha256, _OFFLINE_HINT)
            )
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return dest


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _assemble(batches):
    def stack(names):
        n = sum(batches[k][0].shape[0] for k in names)
        x = np.empty((n, 32, 32, 3), dtype=np.uint8)
        y = np.empty((n, 1), dtype=np.uint8)
        i = 0
        for k in names:
            data, lab = batches[k]
            m = data.shape[0]
            x[i:i + m] = data.reshape(m, 3, 32, 32).transpose(0, 2, 3, 1)
            y[i:i + m, 0] = lab
            i += m
        return x, y

    return stack(TRAIN_BATCHES), stack((TEST_BATCH,))


def _normalize_sha(sha256):
    s = SHA256 if sha256 is None else sha256
    s = str(s).strip().lower()
    if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
        raise ValueError("sha256 must be 64 hex digits, got %r" % (sha256,))
    return s


def find_source(path=None, cache_dir=None):
    """Return ``(kind, path)`` of the data ``load_data`` would read (without
    reading it), ``kind`` being ``'archive'`` or ``'folder'``; ``None`` if
    nothing is found (and a download would be needed)."""
    if path is not None:
        return _resolve_user_path(path)
    for kind, p in _cache_candidates(cache_dir):
        if (kind == "archive" and os.path.isfile(p)) or (kind == "folder" and _looks_like_folder(p)):
            return kind, p
    return None


def load_data(path=None, cache_dir=None, download=True, verbose=1, *, url=None, sha256=None,
              timeout=60):
    """Load CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``.

    Same result as ``tf_keras.datasets.cifar10.load_data()``: uint8 images
    ``(50000, 32, 32, 3)`` / ``(10000, 32, 32, 3)`` (channels last) and uint8
    labels ``(50000, 1)`` / ``(10000, 1)`` in 0..9 (see :data:`CLASS_NAMES`).

    Args:
      path: the CIFAR-10 python archive (``cifar-10-python.tar.gz``, any
        name), an extracted ``cifar-10-batches-py`` folder, or a folder
        containing either. If given, nothing else is tried.
      cache_dir: pyreg's cache folder (default ``$PYREG_DATA`` or
        ``~/.pyreg/datasets``); the download goes there.
      download: download the archive if it is not found locally.
      verbose: show a download progress bar on stderr if true.
      url: download URL (default :data:`URL`); ``file://`` URLs work.
      sha256: expected SHA-256 of the archive (default :data:`SHA256`).
      timeout: network timeout in seconds for the download.

    Raises:
      DataUnavailableError (a FileNotFoundError): nothing found, and the
        download is disabled or failed; the message lists where it looked.
      FileNotFoundError: ``path`` does not exist, or a batch file is missing.
      ValueError: SHA-256 mismatch, or a batch has the wrong content.
      pickle.UnpicklingError: a batch pickle refers to a forbidden global.
    """
    expected = _normalize_sha(sha256)
    if path is not None:
        src = _resolve_user_path(path)
    else:
        src = find_source(None, cache_dir)
        if src is None:
            looked = [p for _, p in _cache_candidates(cache_dir)]
            dest = os.path.join(pyreg_cache_dir(cache_dir), ARCHIVE_NAME)
            src_url = URL if url is None else url
            how = (
                "To provide the data: pass path=... (the archive %s, SHA-256 %s, or an "
                "extracted %s folder), or put the archive in ~/.keras/datasets/ (as "
                "%s or %s) or at %s. It is downloadable from %s."
                % (ARCHIVE_NAME, expected, FOLDER_NAME, KERAS_ARCHIVE_NAME, ARCHIVE_NAME,
                   dest, URL)
            )
            where = "CIFAR-10 not found. Looked in:\n  " + "\n  ".join(looked)
            if not download:
                raise DataUnavailableError(
                    "%s\nDownload disabled (download=False). %s\n%s" % (where, how, _OFFLINE_HINT)
                )
            try:
                _download(src_url, dest, expected, verbose, timeout)
            except ValueError:
                raise
            except Exception as e:
                raise DataUnavailableError(
                    "%s\nDownload of %s to %s failed (%s: %s). %s\n%s"
                    % (where, src_url, dest, type(e).__name__, e, how, _OFFLINE_HINT)
                ) from e
            src = ("archive", dest)
    kind, p = src
    batches = _read_archive(p, expected) if kind == "archive" else _read_folder(p)
    return _assemble(batches)
