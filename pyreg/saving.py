"""Saving and loading models and weights, without pickle and without running
any code from the file.

File format (version 1)
-----------------------
A NumPy ``.npz`` archive: an uncompressed zip of ``.npy`` members, read back
with ``np.load(allow_pickle=False)`` so that no object array (hence no pickle)
can ever be loaded. The file name is kept exactly as given (no ``.npz`` is
appended). Members:

``__pyreg__``
    uint8 array holding UTF-8 JSON::

        {"format": "pyreg", "version": 1,
         "kind": "model" | "weights",          # save / save_weights
         "pyreg_version": "0.1.0",
         "model_config": {...},                # Sequential.get_config()
         "weights": [{"name": "dense/kernel", "shape": [10, 5],
                      "dtype": "float32"}, ...],   # get_weights order
         "compile": null | {                   # kind "model" only
             "optimizer": {"class_name": "Adam", "config": {...}},
             "loss": {"name": "categorical_crossentropy", "from_logits": false},
             "metrics": ["accuracy"]},
         "optimizer_state": null | {           # kind "model" only
             "iterations": 3,
             "slot_names": ["m", "v"],
             "slots": [2, 2, null, ...]}}      # slot arrays stored per weight

``weight_000``, ``weight_001``, ...
    little-endian float32 arrays, one per weight, in ``get_weights`` order.

``slot_000_0``, ``slot_000_1``, ...
    the optimizer's slot arrays of weight i (``slot_{i:03d}_{j}``, j indexing
    ``slot_names``), float32, shaped as the weight; only for the weights the
    optimizer has state for (``slots[i]`` is their count, or null).

Writing is atomic: the archive goes to a temporary file in the destination's
directory, is flushed and fsync'ed, and only then renamed over the
destination (``os.replace``; a symbolic link is followed and its target
replaced); on any error the temporary file is removed and an existing file is
left untouched. ``overwrite=False`` refuses an existing file with
``FileExistsError`` (the final step is then an atomic no-clobber link).

Reading validates everything (zip structure, every member, JSON, format
version, dtypes, counts and shapes against the model) before the model is
touched: a truncated, corrupted or mismatched file raises ``ValueError``
naming the file and the problem (``OSError`` for I/O errors such as a missing
file), and the model is left exactly as it was.
"""
import errno
import json
import math
import os
import stat
import tempfile
import zipfile

import numpy as np

FORMAT_NAME = "pyreg"
FORMAT_VERSION = 1
_META = "__pyreg__"
_MAX_META_BYTES = 64 << 20
_NPY_HEADER_SLACK = 1 << 16  # an .npy header is at most a few KB


def _weight_member(i):
    return f"weight_{i:03d}"


def _slot_member(i, j):
    return f"slot_{i:03d}_{j}"


def _fspath(path):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"expected a file path (str or os.PathLike), got {type(path).__name__}") from None


# ----------------------------------------------------------------- writing
def _umask():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _atomic_write(path, arrays, overwrite):
    """Writes the npz archive `arrays` (name -> ndarray) to `path` atomically."""
    path = _fspath(path)
    if os.path.islink(path):  # replace the file the link points to, not the link
        path = os.path.realpath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "cannot save to a directory", path)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "file exists and overwrite=False", path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path)[:100] + ".", suffix=".tmp", dir=directory)
    try:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            mode = 0o666 & ~_umask()
        try:
            os.fchmod(fd, mode)
        except (OSError, AttributeError):
            pass
        with os.fdopen(fd, "wb") as f:
            fd = None
            np.savez(f, allow_pickle=False, **arrays)  # a file object: no ".npz" is appended
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:  # atomic no-clobber rename
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(errno.EEXIST, "file exists and overwrite=False", path) from None
            except OSError:  # hard links unsupported here: check, then rename
                if os.path.lexists(path):
                    raise FileExistsError(errno.EEXIST, "file exists and overwrite=False", path) from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
        tmp = None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    try:  # make the rename itself durable (best effort)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _loss_spec(loss):
    name = getattr(type(loss), "default_name", None) or getattr(loss, "name", None)
    return {"name": name, "from_logits": bool(getattr(loss, "from_logits", False))}


def _optimizer_spec(opt):
    from . import optimizers
    spec = optimizers.serialize(opt)
    spec = {"class_name": spec["class_name"], "config": dict(spec["config"])}
    if getattr(opt, "proximal_l1", False):  # not part of get_config
        spec["config"]["proximal_l1"] = True
    return spec


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot serialize {type(o).__name__} {o!r} to JSON")


def _collect(model, kind, include_optimizer):
    model._require_built("save" if kind == "model" else "save_weights")
    ws = model._weights_list()
    arrays = {}
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kind": kind,
        "pyreg_version": _pyreg_version(),
        "model_config": model.get_config(),
        "weights": [],
        "compile": None,
        "optimizer_state": None,
    }
    for i, w in enumerate(ws):
        arrays[_weight_member(i)] = np.ascontiguousarray(w.value, dtype="<f4").copy()
        meta["weights"].append({"name": w.name, "shape": [int(s) for s in w.shape], "dtype": "float32"})
    opt = getattr(model, "optimizer", None)
    if kind == "model" and include_optimizer and getattr(model, "compiled", False) and opt is not None:
        meta["compile"] = {
            "optimizer": _optimizer_spec(opt),
            "loss": _loss_spec(model.loss),
            "metrics": list(model.metrics_names[1:]),
        }
        states = opt.get_slot_state([w.value for w in ws])
        slot_names = [str(s) for s in getattr(opt, "_slot_names", ())]
        counts = []
        for i, (w, st) in enumerate(zip(ws, states)):
            if st is None:
                counts.append(None)
                continue
            st = list(st)
            for j, a in enumerate(st):
                a = np.asarray(a)
                if a.shape != tuple(w.shape):
                    raise ValueError(f"save: optimizer slot {j} of weight {w.name} has shape {a.shape}, "
                                     f"expected {tuple(w.shape)}")
                arrays[_slot_member(i, j)] = np.ascontiguousarray(a, dtype="<f4").copy()
            counts.append(len(st))
        meta["optimizer_state"] = {"iterations": int(opt.iterations), "slot_names": slot_names, "slots": counts}
    text = json.dumps(meta, default=_json_default, allow_nan=True)
    arrays[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return arrays


def _pyreg_version():
    try:
        from . import __version__
        return __version__
    except ImportError:
        return None


def save_weights(model, path, overwrite=True):
    """Writes the model's weights (and its config, for reference) to `path`,
    atomically. overwrite=False and an existing file: FileExistsError."""
    _atomic_write(path, _collect(model, "weights", False), overwrite)


def save_model(model, path, overwrite=True, include_optimizer=True):
    """Writes architecture, weights, compile settings and optimizer state
    (slots and iterations) to `path`, atomically, so that load_model resumes
    training exactly. include_optimizer=False: architecture and weights only
    (the loaded model is then not compiled)."""
    _atomic_write(path, _collect(model, "model", include_optimizer), overwrite)


# ----------------------------------------------------------------- reading
class _Invalid(Exception):
    """A problem with the file's contents (turned into ValueError with the path)."""


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_meta(meta):
    if not isinstance(meta, dict):
        raise _Invalid("the __pyreg__ header is not a JSON object")
    if meta.get("format") != FORMAT_NAME:
        raise _Invalid(f"not a pyreg file (format {meta.get('format')!r}, expected {FORMAT_NAME!r})")
    version = meta.get("version")
    if version != FORMAT_VERSION:
        raise _Invalid(f"unsupported format version {version!r} (this pyreg reads version {FORMAT_VERSION})")
    if meta.get("kind") not in ("model", "weights"):
        raise _Invalid(f"unknown kind {meta.get('kind')!r} (expected 'model' or 'weights')")
    weights = meta.get("weights")
    if not isinstance(weights, list):
        raise _Invalid("the header has no list of weights")
    for i, w in enumerate(weights):
        if not isinstance(w, dict) or not isinstance(w.get("shape"), list) or \
                not all(_is_int(s) and s >= 0 for s in w["shape"]):
            raise _Invalid(f"weight {i}: invalid entry {w!r} in the header")
        if w.get("dtype", "float32") != "float32":
            raise _Invalid(f"weight {i}: dtype {w.get('dtype')!r}, expected 'float32'")
    cfg = meta.get("model_config")
    if cfg is not None and not (isinstance(cfg, dict) and isinstance(cfg.get("layers"), list)):
        raise _Invalid("invalid model_config in the header")
    comp = meta.get("compile")
    if comp is not None:
        if not isinstance(comp, dict) or not isinstance(comp.get("optimizer"), dict) or \
                not isinstance(comp.get("loss"), dict) or not isinstance(comp.get("metrics", []), list):
            raise _Invalid("invalid compile settings in the header")
    st = meta.get("optimizer_state")
    if st is not None:
        if not isinstance(st, dict) or not _is_int(st.get("iterations")) or st["iterations"] < 0 or \
                not isinstance(st.get("slot_names"), list) or not isinstance(st.get("slots"), list):
            raise _Invalid("invalid optimizer_state in the header")
        if len(st["slots"]) != len(weights):
            raise _Invalid(f"optimizer_state lists {len(st['slots'])} weights, the file has {len(weights)}")
        for c in st["slots"]:
            if c is not None and not (_is_int(c) and c == len(st["slot_names"])):
                raise _Invalid(f"optimizer_state: invalid slot count {c!r} (expected {len(st['slot_names'])} "
                               "or null)")
    return meta


def _read_member(npz, name, shape):
    """The member `name` as a float32 array of `shape`, checked before and after reading."""
    try:
        info = npz.zip.getinfo(name + ".npy")
    except KeyError:
        raise _Invalid(f"member {name!r} is missing (truncated or incomplete file?)") from None
    nbytes = 4 * math.prod(shape)
    if info.file_size > nbytes + _NPY_HEADER_SLACK or info.file_size < nbytes:
        raise _Invalid(f"member {name!r} holds {info.file_size} bytes, expected a float32 array of shape "
                       f"{tuple(shape)} ({nbytes} bytes of data)")
    try:
        a = npz[name]
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickle" in str(e).lower():
            raise _Invalid(f"member {name!r} is an object array, which would need pickle; refused") from None
        raise _Invalid(f"member {name!r} is unreadable: {e}") from e
    if not isinstance(a, np.ndarray):
        raise _Invalid(f"member {name!r} is not an array")
    if a.dtype.kind != "f" or a.dtype.itemsize != 4:
        raise _Invalid(f"member {name!r} has dtype {a.dtype}, expected float32")
    if a.shape != tuple(shape):
        raise _Invalid(f"member {name!r} has shape {a.shape}, expected {tuple(shape)}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _read_file(path):
    """(meta, weights, slot states) from the file, everything validated and in
    memory. Raises OSError for I/O errors, ValueError for anything else."""
    path = _fspath(path)
    with open(path, "rb") as f:  # FileNotFoundError, PermissionError, IsADirectoryError: OSError
        try:
            head = f.read(4)
            f.seek(0)
            if head != b"PK\x03\x04":
                if not head:
                    raise _Invalid("not a pyreg file (empty file; expected an .npz archive)")
                if b"PK\x03\x04".startswith(head):
                    raise _Invalid(f"corrupted or truncated archive ({len(head)} bytes)")
                what = "a single .npy array" if head == b"\x93NUM" else "not a zip archive"
                raise _Invalid(f"not a pyreg file ({what}; expected an .npz archive)")
            try:
                npz = np.load(f, allow_pickle=False)
            except Exception as e:  # BadZipFile, EOFError, ...
                raise _Invalid(f"corrupted or truncated archive: {e}") from e
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise _Invalid("not an .npz archive")
            with npz:
                try:
                    info = npz.zip.getinfo(_META + ".npy")
                except KeyError:
                    raise _Invalid("the __pyreg__ header is missing (not written by pyreg?)") from None
                if info.file_size > _MAX_META_BYTES:
                    raise _Invalid(f"the __pyreg__ header is too large ({info.file_size} bytes)")
                try:
                    raw = npz[_META]
                except ValueError as e:
                    raise _Invalid(f"the __pyreg__ header is unreadable: {e}") from e
                if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 1:
                    raise _Invalid("the __pyreg__ header is not a 1-D uint8 array")
                try:
                    meta = json.loads(raw.tobytes().decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError) as e:
                    raise _Invalid(f"the __pyreg__ header is not valid UTF-8 JSON: {e}") from e
                meta = _check_meta(meta)
                shapes = [tuple(w["shape"]) for w in meta["weights"]]
                weights = [_read_member(npz, _weight_member(i), s) for i, s in enumerate(shapes)]
                states = None
                st = meta.get("optimizer_state")
                if st is not None:
                    states = []
                    for i, (s, c) in enumerate(zip(shapes, st["slots"])):
                        states.append(None if c is None else [_read_member(npz, _slot_member(i, j), s)
                                                              for j in range(c)])
        except _Invalid as e:
            raise ValueError(f"{path}: {e}") from None
        except MemoryError:
            raise
        except OSError as e:
            if e.errno in (errno.EIO, errno.ENXIO, errno.ENODEV):
                raise
            raise ValueError(f"{path}: corrupted or truncated file: {e}") from e
        except Exception as e:  # zipfile / zlib / npy parsing errors on a damaged file
            raise ValueError(f"{path}: corrupted or truncated file: {type(e).__name__}: {e}") from e
    return meta, weights, states


def _check_against_model(path, model, meta, weights, what):
    ws = model._weights_list()
    if len(weights) != len(ws):
        raise ValueError(f"{path}: {what}: the file holds {len(weights)} weights, but model {model.name!r} has "
                         f"{len(ws)}")
    for i, (w, a) in enumerate(zip(ws, weights)):
        if tuple(a.shape) != tuple(w.shape):
            saved = meta["weights"][i].get("name", f"#{i}")
            raise ValueError(f"{path}: {what}: weight {i} ({saved}) has shape {tuple(a.shape)} in the file, but "
                             f"model {model.name!r} expects {tuple(w.shape)} for {w.name}")


def load_weights(model, path):
    """Reads weights written by save_weights or save_model into `model` (by
    order, as Keras's HDF5 format). Validates the whole file and every shape
    before writing anything: on any error the model is unchanged."""
    path = _fspath(path)
    meta, weights, _ = _read_file(path)
    model._require_built("load_weights")
    _check_against_model(path, model, meta, weights, "load_weights")
    model.set_weights(weights)


def load_model(path, compile=True):
    """A model written by save_model: rebuilt from its config, weights set,
    compiled with its saved settings (if `compile` and the file has them) and
    the optimizer's slots and iterations restored, so that training resumes
    exactly where it stopped."""
    from . import losses, models, optimizers
    path = _fspath(path)
    meta, weights, states = _read_file(path)
    if meta["kind"] != "model" or meta.get("model_config") is None:
        raise ValueError(f"{path}: the file holds only weights (written by save_weights); build the model and call "
                         "model.load_weights instead")
    try:
        model = models.Sequential.from_config(meta["model_config"])
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ValueError(f"{path}: invalid model config: {type(e).__name__}: {e}") from e
    try:
        model.build()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: cannot build the saved model: {e}") from e
    _check_against_model(path, model, meta, weights, "load_model")
    model.set_weights(weights)
    comp = meta.get("compile")
    if compile and comp is not None:
        try:
            opt = optimizers.deserialize(comp["optimizer"])
            loss = losses.get(comp["loss"]["name"])
            if comp["loss"].get("from_logits") and type(loss) is not losses.MeanSquaredError:
                loss = type(loss)(from_logits=True)
            model.compile(optimizer=opt, loss=loss, metrics=list(comp.get("metrics") or []))
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise ValueError(f"{path}: invalid compile settings: {type(e).__name__}: {e}") from e
        st = meta.get("optimizer_state")
        if st is not None:
            names = [str(s) for s in getattr(opt, "_slot_names", ())]
            if st["slot_names"] != names:
                raise ValueError(f"{path}: the saved optimizer state has slots {st['slot_names']}, but "
                                 f"{type(opt).__name__} uses {names}")
            opt.set_slot_state([w.value for w in model._weights_list()], states, st["iterations"])
    return model
