"""pyreg.saving: round trips, exact resumption of training, atomic writes,
damaged or mismatched files (clear errors, model untouched), no pickle, and
ModelCheckpoint during fit. No TensorFlow needed."""
import json
import os
import zipfile

import numpy as np
import pytest

import pyreg
from pyreg import callbacks, layers, models, optimizers, regularizers, saving


# --------------------------------------------------------------- helpers
def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3), dtype=np.float32)
    y = pyreg.utils.to_categorical(rng.integers(0, 5, n), 5)
    return x, y


def _model(optimizer="adam", seed=0, reg=None, compile=True, input_shape=(8, 8, 3)):
    pyreg.utils.set_random_seed(seed)
    kw = {} if input_shape is None else {"input_shape": input_shape}
    m = models.Sequential([
        layers.Conv2D(4, 3, activation="relu", kernel_regularizer=reg, **kw),
        layers.Flatten(),
        layers.Dense(16, activation="tanh", kernel_regularizer=reg, bias_regularizer=reg),
        layers.Dense(5, activation="softmax"),
    ])
    if compile:
        m.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return m


def _weights_equal(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y)
                                    for x, y in zip(a, b))


def _members(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _write_npz(path, members):
    with open(path, "wb") as f:
        np.savez(f, **members)


def _meta_array(meta):
    return np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)


@pytest.fixture
def trained():
    m = _model()
    x, y = _data()
    m.train_on_batch(x, y)
    return m, x, y


# ------------------------------------------------------------ round trips
@pytest.mark.parametrize("name", ["weights", "weights.npz", "w.h5", "w.pyreg"])
def test_save_load_weights_round_trip_keeps_the_name(tmp_path, trained, name):
    m, x, _ = trained
    path = tmp_path / name
    m.save_weights(str(path))
    assert os.listdir(tmp_path) == [name]  # exactly that name: no ".npz" appended, no temp file left
    other = _model(seed=1)
    assert not _weights_equal(other.get_weights(), m.get_weights())
    other.load_weights(path)  # os.PathLike works too
    assert _weights_equal(other.get_weights(), m.get_weights())
    np.testing.assert_array_equal(other.predict(x, verbose=0), m.predict(x, verbose=0))


def test_file_is_a_plain_npz_with_json_header(tmp_path, trained):
    m, _, _ = trained
    path = tmp_path / "model"
    m.save(path)
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
    assert "__pyreg__.npy" in names and "weight_000.npy" in names
    z = _members(path)  # loads with allow_pickle=False
    meta = json.loads(z["__pyreg__"].tobytes().decode("utf-8"))
    assert meta["format"] == "pyreg" and meta["version"] == saving.FORMAT_VERSION and meta["kind"] == "model"
    assert meta["model_config"] == json.loads(json.dumps(m.get_config()))
    assert [tuple(w["shape"]) for w in meta["weights"]] == [w.shape for w in m.get_weights()]
    assert meta["compile"]["loss"] == {"name": "categorical_crossentropy", "from_logits": False}
    assert meta["compile"]["metrics"] == ["accuracy"]
    assert meta["compile"]["optimizer"] == json.loads(json.dumps(optimizers.serialize(m.optimizer)))
    assert meta["optimizer_state"]["iterations"] == 1
    for i, w in enumerate(m.get_weights()):
        assert z[f"weight_{i:03d}"].dtype == np.float32
        np.testing.assert_array_equal(z[f"weight_{i:03d}"], w)
        assert z[f"slot_{i:03d}_0"].shape == w.shape


def test_save_model_round_trip(tmp_path, trained):
    m, x, y = trained
    path = tmp_path / "model.pyreg"
    m.save(str(path))
    m2 = models.load_model(str(path))
    assert m2.get_config() == m.get_config()
    assert _weights_equal(m2.get_weights(), m.get_weights())
    np.testing.assert_array_equal(m2.predict(x, verbose=0), m.predict(x, verbose=0))
    assert m2.compiled and m2.metrics_names == m.metrics_names
    assert type(m2.optimizer) is type(m.optimizer)
    assert m2.optimizer.get_config() == m.optimizer.get_config()
    assert m2.optimizer.iterations == m.optimizer.iterations
    assert m2.evaluate(x, y, verbose=0) == m.evaluate(x, y, verbose=0)


def test_load_model_without_compile_and_without_optimizer(tmp_path, trained):
    m, x, _ = trained
    m.save(tmp_path / "a")
    m2 = models.load_model(tmp_path / "a", compile=False)
    assert not m2.compiled
    np.testing.assert_array_equal(m2.predict(x, verbose=0), m.predict(x, verbose=0))
    m.save(tmp_path / "b", include_optimizer=False)
    m3 = models.load_model(tmp_path / "b")
    assert not m3.compiled
    assert _weights_equal(m3.get_weights(), m.get_weights())


def test_model_built_from_data_and_uncompiled_round_trip(tmp_path):
    m = _model(input_shape=None, compile=False)
    x, _ = _data(4)
    p = m.predict(x, verbose=0)  # builds from the data
    m.save(tmp_path / "m")
    m2 = models.load_model(tmp_path / "m")
    np.testing.assert_array_equal(m2.predict(x, verbose=0), p)


def test_loss_from_logits_and_sparse_round_trip(tmp_path):
    pyreg.utils.set_random_seed(3)
    m = models.Sequential([layers.Dense(4, input_shape=(6,))])
    m.compile(optimizers.SGD(0.1), pyreg.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.save(tmp_path / "m")
    m2 = models.load_model(tmp_path / "m")
    assert type(m2.loss) is pyreg.losses.SparseCategoricalCrossentropy and m2.loss.from_logits
    assert m2.metrics_names == ["loss"]


def test_load_weights_accepts_a_full_model_file(tmp_path, trained):
    m, _, _ = trained
    m.save(tmp_path / "full")
    other = _model(seed=5)
    other.load_weights(tmp_path / "full")
    assert _weights_equal(other.get_weights(), m.get_weights())


def test_load_model_refuses_a_weights_only_file(tmp_path, trained):
    m, _, _ = trained
    m.save_weights(tmp_path / "w")
    with pytest.raises(ValueError, match=r"only weights.*load_weights"):
        models.load_model(tmp_path / "w")


# ------------------------------------------------------ exact resumption
RESUME_CASES = {
    "adam": lambda: optimizers.Adam(1e-2),
    "adam_amsgrad_decay": lambda: optimizers.Adam(3e-3, beta_1=0.8, beta_2=0.95, epsilon=1e-5, amsgrad=True,
                                                  decay=1e-2),
    "adam_proximal_l1": lambda: optimizers.Adam(1e-2, proximal_l1=True),
    "sgd": lambda: optimizers.SGD(0.05),
    "sgd_nesterov_decay": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True, decay=1e-2),
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_training_resumes_exactly(tmp_path, case):
    x, y = _data(32)
    m = _model(RESUME_CASES[case](), reg=regularizers.l1_l2(1e-3, 1e-3))
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]
    for k in range(3):
        m.train_on_batch(*batches[k % 4])
    path = tmp_path / "ckpt"
    m.save(path)
    m2 = models.load_model(path)
    assert m2.optimizer.iterations == m.optimizer.iterations == 3
    for k in range(3, 5):
        a = m.train_on_batch(*batches[k % 4])
        b = m2.train_on_batch(*batches[k % 4])
        assert a == b
    assert _weights_equal(m.get_weights(), m2.get_weights())
    assert m2.optimizer.iterations == 5


def test_fit_resumes_exactly(tmp_path):
    x, y = _data(40)
    m = _model(optimizers.Adam(1e-2, decay=1e-3))
    m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 5 steps
    m.save(tmp_path / "ckpt")
    m2 = models.load_model(tmp_path / "ckpt")
    h1 = m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h2 = m2.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert h1.history["loss"] == h2.history["loss"]
    assert _weights_equal(m.get_weights(), m2.get_weights())


# ---------------------------------------------------------- atomic writes
def _snapshot(path):
    with open(path, "rb") as f:
        return f.read()


def test_overwrite_false(tmp_path, trained):
    m, _, _ = trained
    path = tmp_path / "w"
    m.save_weights(path, overwrite=False)  # does not exist yet: written
    before = _snapshot(path)
    m.train_on_batch(*_data(8))
    with pytest.raises(FileExistsError):
        m.save_weights(path, overwrite=False)
    with pytest.raises(FileExistsError):
        m.save(path, overwrite=False)
    assert _snapshot(path) == before
    assert os.listdir(tmp_path) == ["w"]
    m.save_weights(path)  # overwrite=True (default) replaces it
    assert _snapshot(path) != before


def test_failure_in_replace_leaves_old_file_and_no_temp(tmp_path, trained, monkeypatch):
    m, _, _ = trained
    path = tmp_path / "model"
    m.save(path)
    before = _snapshot(path)
    m.train_on_batch(*_data(8))

    def boom(*a, **k):
        raise OSError("simulated failure in os.replace")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        m.save(path)
    with pytest.raises(OSError, match="simulated"):
        m.save_weights(path)
    assert _snapshot(path) == before
    assert os.listdir(tmp_path) == ["model"]


@pytest.mark.parametrize("exc", [OSError("disk full (simulated)"), KeyboardInterrupt()])
def test_failure_mid_write_leaves_old_file_and_no_temp(tmp_path, trained, monkeypatch, exc):
    m, _, _ = trained
    path = tmp_path / "model"
    m.save(path)
    before = _snapshot(path)
    m.train_on_batch(*_data(8))
    real_savez = np.savez

    def partial_savez(f, **arrays):
        real_savez(f, **arrays)
        f.seek(0)
        f.truncate(100)  # half-written archive, then the failure
        raise exc

    monkeypatch.setattr(np, "savez", partial_savez)
    with pytest.raises(type(exc)):
        m.save(path)
    monkeypatch.undo()
    assert _snapshot(path) == before
    assert os.listdir(tmp_path) == ["model"]
    m_old = models.load_model(path)  # the old file still loads
    assert m_old.optimizer.iterations == 1


def test_failure_in_fsync_leaves_no_temp(tmp_path, trained, monkeypatch):
    m, _, _ = trained

    def boom(fd):
        raise OSError("simulated fsync failure")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="simulated"):
        m.save(tmp_path / "new")
    assert os.listdir(tmp_path) == []


def test_save_to_a_directory_or_missing_directory(tmp_path, trained):
    m, _, _ = trained
    with pytest.raises(IsADirectoryError):
        m.save(tmp_path)
    with pytest.raises(FileNotFoundError):
        m.save(tmp_path / "no" / "such" / "dir" / "m")
    assert os.listdir(tmp_path) == []


def test_save_through_a_symlink_replaces_its_target(tmp_path, trained):
    m, _, _ = trained
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model"
    m.save(target)
    link = tmp_path / "link"
    link.symlink_to(target)
    m.train_on_batch(*_data(8))
    m.save(link)
    assert link.is_symlink() and os.listdir(tmp_path / "real") == ["model"]
    assert _weights_equal(models.load_model(target).get_weights(), m.get_weights())


def test_saved_file_permissions_follow_umask(tmp_path, trained):
    m, _, _ = trained
    old = os.umask(0o022)
    try:
        m.save(tmp_path / "m")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "m").st_mode & 0o777) == 0o644


def test_load_missing_file_is_an_oserror(tmp_path, trained):
    m, _, _ = trained
    with pytest.raises(FileNotFoundError):
        m.load_weights(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "nope")


# -------------------------------------------------- damaged / wrong files
@pytest.fixture
def saved(tmp_path, trained):
    """(model, path of its saved file, snapshot of its weights)."""
    m, _, _ = trained
    path = tmp_path / "model.pyreg"
    m.save(path)
    m.train_on_batch(*_data(8))  # so that the file and the model differ
    return m, path, m.get_weights()


def _assert_refused(m, path, match, before):
    opt_iters = m.optimizer.iterations
    with pytest.raises(ValueError, match=match) as e:
        m.load_weights(path)
    assert str(path) in str(e.value)  # names the file
    assert _weights_equal(m.get_weights(), before)  # model unchanged
    assert m.optimizer.iterations == opt_iters
    with pytest.raises(ValueError, match=match):
        models.load_model(path)


@pytest.mark.parametrize("keep", [0, 1, 3, 10, 100, 1000, 0.5, 0.9, -1, -22])
def test_truncated_file(saved, keep):
    m, path, before = saved
    data = _snapshot(path)
    n = int(len(data) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(data) + keep)
    with open(path, "wb") as f:
        f.write(data[:n])
    _assert_refused(m, path, r"not a pyreg file|corrupted|truncated|missing|empty", before)


@pytest.mark.parametrize("where", [0.3, 0.5, 0.7, 0.95])
def test_corrupted_bytes_in_the_data(tmp_path, where):
    # weights dominate the file: a flip lands in array data, caught by the zip CRC
    pyreg.utils.set_random_seed(0)
    m = models.Sequential([layers.Dense(200, input_shape=(300,)), layers.Dense(3)])
    m.compile("sgd", "mse")
    path = tmp_path / "big"
    m.save(path)
    m.set_weights([w + 1 for w in m.get_weights()])
    before = m.get_weights()
    data = bytearray(_snapshot(path))
    data[int(len(data) * where)] ^= 0x55
    with open(path, "wb") as f:
        f.write(bytes(data))
    _assert_refused(m, path, r"corrupted|CRC", before)


def test_garbage_and_foreign_files(saved):
    m, path, before = saved
    for content, match in [(b"", "empty"), (b"hello world" * 100, "not a zip"),
                           (b"PK\x03\x04" + bytes(range(256)) * 4, "corrupted|truncated")]:
        with open(path, "wb") as f:
            f.write(content)
        _assert_refused(m, path, match, before)
    np.save(open(path, "wb"), np.zeros(3, np.float32))  # a single .npy
    _assert_refused(m, path, "npy", before)
    _write_npz(path, {"a": np.zeros(3)})  # an npz not written by pyreg
    _assert_refused(m, path, "header is missing", before)


def _rewrite(path, edit):
    members = _members(path)
    meta = json.loads(members["__pyreg__"].tobytes().decode("utf-8"))
    edit(members, meta)
    members["__pyreg__"] = _meta_array(meta) if not isinstance(meta, bytes) else np.frombuffer(meta, np.uint8)
    _write_npz(path, members)


def test_bad_json_header(saved):
    m, path, before = saved
    members = _members(path)
    members["__pyreg__"] = np.frombuffer(b'{"format": "pyreg", "version": 1, ', np.uint8)
    _write_npz(path, members)
    _assert_refused(m, path, "JSON", before)
    members["__pyreg__"] = np.frombuffer(b"\xff\xfe\x00", np.uint8)
    _write_npz(path, members)
    _assert_refused(m, path, "UTF-8", before)
    members["__pyreg__"] = np.array([1.0, 2.0])
    _write_npz(path, members)
    _assert_refused(m, path, "uint8", before)
    members["__pyreg__"] = _meta_array([1, 2, 3])
    _write_npz(path, members)
    _assert_refused(m, path, "JSON object", before)


@pytest.mark.parametrize("edit, match", [
    (lambda z, meta: meta.update(version=2), r"unsupported format version 2 \(this pyreg reads version 1\)"),
    (lambda z, meta: meta.update(version="1"), "unsupported format version"),
    (lambda z, meta: meta.update(format="keras"), "not a pyreg file"),
    (lambda z, meta: meta.update(kind="other"), "unknown kind"),
    (lambda z, meta: meta.update(weights=None), "no list of weights"),
    (lambda z, meta: meta["weights"][0].update(shape=[-1]), "invalid entry"),
    (lambda z, meta: meta["weights"][0].update(dtype="float64"), "expected 'float32'"),
    (lambda z, meta: z.pop("weight_002"), r"'weight_002' is missing"),
    (lambda z, meta: z.update(weight_001=z["weight_001"].astype(np.float64)), "weight_001"),
    (lambda z, meta: z.update(weight_001=z["weight_001"].astype(np.float16)), "weight_001"),
    (lambda z, meta: z.update(weight_001=z["weight_001"].astype(np.int32)), "weight_001.*int32"),
    (lambda z, meta: z.update(weight_000=z["weight_000"].reshape(-1)), r"weight_000.*shape"),
    (lambda z, meta: (meta["weights"].pop(), meta["optimizer_state"]["slots"].pop()),
     r"holds 5 weights, but model .* has 6"),
    (lambda z, meta: meta["weights"].pop(), "optimizer_state lists 6 weights, the file has 5"),
    (lambda z, meta: meta["optimizer_state"].update(slots=[1]), "optimizer_state"),
    (lambda z, meta: meta["optimizer_state"].update(iterations=-3), "optimizer_state"),
    (lambda z, meta: z.pop("slot_003_1"), r"'slot_003_1' is missing"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_inconsistent_file(saved, edit, match):
    m, path, before = saved
    _rewrite(path, edit)
    _assert_refused(m, path, match, before)


def test_shape_mismatch_with_the_model(saved):
    m, path, _ = saved
    pyreg.utils.set_random_seed(0)
    other = models.Sequential([layers.Conv2D(4, 3, input_shape=(8, 8, 3)), layers.Flatten(),
                               layers.Dense(17, activation="tanh"), layers.Dense(5)])
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"weight 2 .* shape \(144, 16\) in the file, but model .* expects "
                                         r"\(144, 17\)") as e:
        other.load_weights(path)
    assert str(path) in str(e.value)
    assert _weights_equal(other.get_weights(), before)
    fewer = models.Sequential([layers.Dense(5, input_shape=(3,))])
    before = fewer.get_weights()
    with pytest.raises(ValueError, match=r"holds 6 weights, but model .* has 2"):
        fewer.load_weights(path)
    assert _weights_equal(fewer.get_weights(), before)


def test_invalid_model_config(saved):
    m, path, _ = saved
    _rewrite(path, lambda z, meta: meta["model_config"]["layers"][0].update(class_name="Lambda"))
    with pytest.raises(ValueError, match=r"invalid model config.*Lambda"):
        models.load_model(path)
    _rewrite(path, lambda z, meta: meta["model_config"]["layers"][0]["config"].update(code="import os"))
    with pytest.raises(ValueError, match="invalid model config"):
        models.load_model(path)


class _Evil:
    """Unpickling this would set a flag (i.e. run code from the file)."""
    ran = False

    def __reduce__(self):
        return (_set_evil_flag, ())


def _set_evil_flag():
    _Evil.ran = True
    return "pwned"


@pytest.mark.parametrize("member", ["weight_001", "__pyreg__", "slot_000_0"])
def test_object_arrays_are_refused_no_pickle(saved, member):
    m, path, before = saved
    members = _members(path)
    evil = np.empty(members[member].shape, dtype=object)
    evil.reshape(-1)[:] = [_Evil() for _ in range(evil.size)]
    members[member] = evil
    with open(path, "wb") as f:
        np.savez(f, **members, allow_pickle=True)
    with zipfile.ZipFile(path) as zf:  # the crafted file really holds a pickle
        assert b"_set_evil_flag" in zf.read(member + ".npy")
    _Evil.ran = False
    _assert_refused(m, path, member + "|pickle|object|bytes", before)
    assert not _Evil.ran


# ----------------------------------------------------------- checkpoints
@pytest.mark.parametrize("weights_only", [False, True])
def test_model_checkpoint_saves_every_epoch(tmp_path, weights_only):
    x, y = _data(24)
    m = _model()
    seen = []
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{loss:.4f}.pyreg"),
                                     save_weights_only=weights_only, monitor="loss")
    rec = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(m.get_weights()))
    hist = m.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[ckpt, rec])
    names = [f"ckpt-{e + 1:02d}-{loss:.4f}.pyreg" for e, loss in enumerate(hist.history["loss"])]
    assert sorted(os.listdir(tmp_path)) == sorted(names)
    for name, w in zip(names, seen):
        other = _model(seed=9)
        other.load_weights(tmp_path / name)
        assert _weights_equal(other.get_weights(), w)
        if not weights_only:
            loaded = models.load_model(tmp_path / name)
            assert _weights_equal(loaded.get_weights(), w)
            assert loaded.compiled
    if not weights_only:  # the last checkpoint resumes exactly
        loaded = models.load_model(tmp_path / names[-1])
        assert loaded.optimizer.iterations == m.optimizer.iterations == 9
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        loaded.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        assert _weights_equal(loaded.get_weights(), m.get_weights())


def test_model_checkpoint_save_best_only_and_batches(tmp_path):
    x, y = _data(24)
    m = _model()
    best = callbacks.ModelCheckpoint(str(tmp_path / "best"), monitor="loss", save_best_only=True)
    per_batch = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}"), save_freq=2,
                                          save_weights_only=True)
    m.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[best, per_batch])
    files = sorted(os.listdir(tmp_path))
    assert "best" in files
    assert {"e1-b2", "e2-b1", "e2-b3"} <= set(files)
    assert not [f for f in files if f.endswith(".tmp")]
    models.load_model(tmp_path / "best").predict(x, verbose=0)
