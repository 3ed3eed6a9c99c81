"""A SYNTHETIC, CIFAR-shaped image classification data set (NOT CIFAR-10).

``load_data()`` returns ``(x_train, y_train), (x_test, y_test)`` in the same
format as :func:`pyreg.datasets.cifar10.load_data` (uint8 images
``(n, 32, 32, 3)``, uint8 labels ``(n, 1)``), generated offline in a few
seconds, so code written for CIFAR-10 runs without the real data.

What the images are -- "a few informative features plus noise": each class
has a fixed template made of ``FEATURES_PER_CLASS`` (3) small localized
features (discs, squares, bars, crosses, rings of 3-6 pixels) at class-specific
positions, in class-specific colours; the templates come from a fixed seed
(:data:`TEMPLATE_SEED`) and do not depend on ``seed``. A sample of class c is::

    clip(background colour + pixel noise
         + amplitude * (template of c with each feature kept w.p. 3/4,
                        shifted by up to +-2 pixels), 0, 255) -> uint8

with a random background colour per image (each channel 48..207), triangular
pixel noise (std ~ 26), feature colours of up to +-48 per channel, a random
amplitude in [3/16, 1] and a random shift. A class's template covers only
~25-55 of the 1024 pixel positions; everything else is noise: the setting in
which L1 regularization helps. It is learnable well above chance but not to 100%: some
samples keep few or no features, at low amplitude. For calibration (seed 0,
30000 train / 3000 test): nearest class mean on background-centred pixels
~70%, 5 epochs of linear softmax regression ~71%, a matched filter that
knows the templates ~86% (a rough ceiling).

Everything is integer arithmetic on draws from
``numpy.random.Generator(PCG64(...))``, so the arrays are bit-identical for
the same arguments across runs and machines (for a given NumPy version's
``Generator`` streams). Sample i of a split depends only on (seed, split, i):
``load_data(n_train=1000)`` is a prefix of ``load_data(n_train=50000)``.
"""

import numpy as np

__all__ = ["load_data", "describe", "class_templates", "DESCRIPTION"]

#: Seed of the class templates (fixed: part of the data set's definition).
TEMPLATE_SEED = 20240611
FEATURES_PER_CLASS = 3
#: Largest shift of the template, in pixels, along each axis.
MAX_SHIFT = 2
#: A feature is kept with probability KEEP_NUM / KEEP_DEN.
KEEP_NUM, KEEP_DEN = 3, 4
#: Amplitude a/16 with a uniform in [AMP_MIN, AMP_MAX].
AMP_MIN, AMP_MAX = 3, 16
#: Largest colour offset of a feature, per channel.
COLOR_MAX = 48
#: Samples generated per random stream (fixed: changing it changes the data).
CHUNK = 4096

_H = _W = 32
_C = 3
_SPLIT_TRAIN, _SPLIT_TEST = 0, 1

DESCRIPTION = (
    "SYNTHETIC data (pyreg.datasets.synthetic), NOT CIFAR-10: CIFAR-shaped "
    "32x32x3 uint8 images of %d localized class-specific features (random "
    "shifts, amplitudes and dropout) on a noisy background."
    % FEATURES_PER_CLASS
)


def describe(n_train=None, n_test=None, seed=None, num_classes=10):
    """One line saying the data is synthetic (for logs and reports)."""
    extra = []
    if n_train is not None:
        extra.append("n_train=%d" % n_train)
    if n_test is not None:
        extra.append("n_test=%d" % n_test)
    if seed is not None:
        extra.append("seed=%d" % seed)
    extra.append("num_classes=%d" % num_classes)
    return DESCRIPTION + " (" + ", ".join(extra) + ")"


def _shape_mask(kind, size):
    """A small boolean footprint of the given kind."""
    yy, xx = np.mgrid[0:size, 0:size]
    c2 = size - 1  # centre * 2, so the comparisons stay in integers
    dy, dx = 2 * yy - c2, 2 * xx - c2
    r2 = dy * dy + dx * dx
    if kind == 0:  # filled square
        m = np.ones((size, size), bool)
    elif kind == 1:  # disc
        m = r2 <= size * size
    elif kind == 2:  # horizontal bar
        m = np.abs(dy) <= 1 + (size > 4)
    elif kind == 3:  # vertical bar
        m = np.abs(dx) <= 1 + (size > 4)
    elif kind == 4:  # plus / cross
        m = (np.abs(dy) <= 1) | (np.abs(dx) <= 1)
    else:  # ring
        m = (r2 <= size * size) & (r2 >= (size - 2) * (size - 2))
    return m


def _class_features(c):
    """The features of class c: list of (y, x, mask, rgb int16)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(TEMPLATE_SEED, spawn_key=(c,))))
    feats = []
    for _ in range(FEATURES_PER_CLASS):
        size = int(rng.integers(3, 7))
        kind = int(rng.integers(0, 6))
        y = int(rng.integers(MAX_SHIFT + 1, _H - MAX_SHIFT - 1 - size))
        x = int(rng.integers(MAX_SHIFT + 1, _W - MAX_SHIFT - 1 - size))
        while True:  # a saturated colour: each channel in +-COLOR_MAX, not all small
            rgb = rng.integers(-6, 7, size=3) * (COLOR_MAX // 6)
            if np.abs(rgb).max() >= COLOR_MAX * 5 // 6:
                break
        feats.append((y, x, _shape_mask(kind, size), rgb.astype(np.int16)))
    return feats


def class_templates(num_classes=10):
    """Full-amplitude, unshifted class templates, int16 ``(num_classes, 32, 32, 3)``
    (signed offsets added to the background; zero where uninformative)."""
    t = np.zeros((num_classes, _H, _W, _C), np.int16)
    for c in range(num_classes):
        for y, x, m, rgb in _class_features(c):
            s = m.shape[0]
            region = t[c, y:y + s, x:x + s]
            region[m] = rgb  # later features overwrite earlier ones where they overlap
    return t


def _template_canvases(num_classes):
    """Every (class, kept-features subset) template on a canvas padded by
    MAX_SHIFT: int16 ``(num_classes * 2**K, 32 + 2*MAX_SHIFT, 32 + 2*MAX_SHIFT, 3)``;
    a shifted template is a 32x32 crop of it."""
    K, S = FEATURES_PER_CLASS, MAX_SHIFT
    canv = np.zeros((num_classes, 2 ** K, _H + 2 * S, _W + 2 * S, _C), np.int16)
    for c in range(num_classes):
        feats = _class_features(c)
        for subset in range(2 ** K):
            for k, (y, x, m, rgb) in enumerate(feats):
                if subset >> k & 1:
                    s = m.shape[0]
                    region = canv[c, subset, S + y:S + y + s, S + x:S + x + s]
                    region[m] = rgb
    return canv.reshape(-1, _H + 2 * S, _W + 2 * S, _C)


def _chunk(canvases, num_classes, seed, split, index, n):
    """Generate samples [index*CHUNK, index*CHUNK + n) of a split."""
    K, ns = FEATURES_PER_CLASS, (2 * MAX_SHIFT + 1) ** 2
    ss = np.random.SeedSequence(seed, spawn_key=(split, index))
    rng = np.random.Generator(np.random.PCG64(ss))
    m = CHUNK  # always draw a full chunk, so a prefix does not depend on n
    # near-balanced labels: a shuffled cycle of the classes
    labels = rng.permutation(np.arange(m, dtype=np.int64) % num_classes)
    keep = rng.integers(0, KEEP_DEN, size=(m, K)) < KEEP_NUM
    subset = (keep.astype(np.int64) << np.arange(K)).sum(axis=1)
    shift = rng.integers(0, ns, size=m)
    amp = rng.integers(AMP_MIN, AMP_MAX + 1, size=m).astype(np.int16)
    background = rng.integers(48, 208, size=(m, 1, 1, _C)).astype(np.int16)
    noise = rng.integers(0, 256, size=(2, m, _H, _W, _C), dtype=np.uint8)
    labels, subset, shift, amp = labels[:n], subset[:n], shift[:n], amp[:n]
    background, noise = background[:n], noise[:, :n]

    img = (noise[0] >> 2).astype(np.int16)
    img += noise[1] >> 2  # triangular noise 0..126, mean 63
    img += background
    img -= 63
    variant = labels * 2 ** K + subset
    t = np.empty((n, _H, _W, _C), np.int16)
    side = 2 * MAX_SHIFT + 1
    for s in range(ns):  # crop the padded templates: shift (MAX_SHIFT - i, MAX_SHIFT - j)
        sel = np.flatnonzero(shift == s)
        i, j = divmod(s, side)
        t[sel] = canvases[variant[sel], i:i + _H, j:j + _W]
    t *= amp[:, None, None, None]
    t >>= 4  # amplitude / 16 (floor, integer: bit-exact everywhere)
    img += t
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8), labels.astype(np.uint8)


def _generate(canvases, num_classes, seed, split, n):
    x = np.empty((n, _H, _W, _C), np.uint8)
    y = np.empty((n, 1), np.uint8)
    for index, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        x[start:start + m], y[start:start + m, 0] = _chunk(canvases, num_classes, seed, split, index, m)
    return x, y


def load_data(n_train=50000, n_test=10000, seed=0, num_classes=10):
    """Generate the SYNTHETIC data set (NOT CIFAR-10) in CIFAR-10's format.

    Returns ``(x_train, y_train), (x_test, y_test)``: uint8 images
    ``(n_train, 32, 32, 3)`` / ``(n_test, 32, 32, 3)`` and uint8 labels
    ``(n_train, 1)`` / ``(n_test, 1)`` in ``0..num_classes-1`` (near-balanced).
    See the module docstring for how the images are made; print
    :func:`describe` (or :data:`DESCRIPTION`) wherever results are reported.

    Args:
      n_train, n_test: number of samples of each split (>= 0).
      seed: integer >= 0; the same arguments give bit-identical arrays. The
        test split is an independent stream (not a continuation of train).
      num_classes: 2..256; class c's template does not depend on it.
    """
    for name, v in (("n_train", n_train), ("n_test", n_test), ("seed", seed),
                    ("num_classes", num_classes)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError("%s must be a non-negative integer, got %r" % (name, v))
    if not 2 <= num_classes <= 256:
        raise ValueError("num_classes must be in 2..256 (uint8 labels), got %d" % num_classes)
    canvases = _template_canvases(int(num_classes))
    train = _generate(canvases, int(num_classes), int(seed), _SPLIT_TRAIN, int(n_train))
    test = _generate(canvases, int(num_classes), int(seed), _SPLIT_TEST, int(n_test))
    return train, test
