"""Proximal L1 (beyond Keras): exact zeros where Keras's subgradient L1 only
hovers around zero; same reported penalty formula; SGD and Adam."""
import numpy as np
import pytest

import pyreg
from pyreg.layers import Dense
from pyreg.models import Sequential
from pyreg.regularizers import l1


def _train(opt, steps=300, seed=0):
    # 40 inputs of which only the first 4 carry signal: L1 should zero the rest
    # (2048 samples keep chance correlations of the noise inputs small)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2048, 40)).astype(np.float32)
    true_w = np.zeros((40, 1), np.float32)
    true_w[:4, 0] = [1.5, -2.0, 1.0, 0.5]
    y = x @ true_w
    pyreg.utils.set_random_seed(seed)
    m = Sequential([Dense(1, input_shape=(40,), kernel_regularizer=l1(0.05))])
    m.compile(loss="mse", optimizer=opt)
    for _ in range(steps):
        m.train_on_batch(x, y)
    return m


@pytest.mark.parametrize("make_opt", [
    lambda prox: pyreg.optimizers.Adam(learning_rate=0.01, proximal_l1=prox),
    lambda prox: pyreg.optimizers.SGD(learning_rate=0.05, momentum=0.0, proximal_l1=prox),
    lambda prox: pyreg.optimizers.SGD(learning_rate=0.02, momentum=0.9, proximal_l1=prox),
])
def test_proximal_reaches_exact_zeros_where_subgradient_hovers(make_opt):
    sub = _train(make_opt(False)).layers[0].kernel.value[:, 0]
    prox = _train(make_opt(True)).layers[0].kernel.value[:, 0]
    noise_sub, noise_prox = sub[4:], prox[4:]
    # Keras's subgradient: the 36 useless weights end small but not zero
    assert np.count_nonzero(noise_sub == 0) <= 2
    assert np.max(np.abs(noise_sub)) < 0.05
    # proximal: they are exactly zero, and the useful ones survive with the right signs
    assert np.count_nonzero(noise_prox == 0) >= 34
    assert np.all(np.sign(prox[:4]) == np.sign([1.5, -2.0, 1.0, 0.5]))
    assert np.all(np.abs(prox[:4]) > 0.2)


def test_proximal_reports_the_same_penalty_formula():
    m = _train(pyreg.optimizers.Adam(learning_rate=0.01, proximal_l1=True), steps=50)
    w = m.layers[0].kernel.value
    loss_logs = m.evaluate(np.zeros((4, 40), np.float32), np.zeros((4, 1), np.float32), verbose=0, return_dict=True)
    bias = m.layers[0].bias.value
    expected = float(np.mean(bias.astype(np.float64) ** 2)) + 0.05 * float(np.abs(w.astype(np.float64)).sum())
    assert loss_logs["loss"] == pytest.approx(expected, rel=1e-6)


def test_proximal_flag_survives_save_and_load(tmp_path):
    m = _train(pyreg.optimizers.Adam(learning_rate=0.01, proximal_l1=True), steps=5)
    m.save(tmp_path / "m.pyreg")
    m2 = pyreg.models.load_model(tmp_path / "m.pyreg")
    assert m2.optimizer.proximal_l1 is True
