"""pyreg: Keras-compatible convolutional networks with L1 / L2 / elastic-net
regularization, on a C core. See README.md."""
__version__ = "0.1.0"

from . import _core
from . import backend, activations, initializers, regularizers, losses, optimizers, layers, callbacks, models, utils
from . import datasets, interop, testing

from .models import Sequential  # noqa: F401


def set_num_threads(n):
    """Threads used by every C kernel (0 = default: OMP_NUM_THREADS or all cores).
    Results are bitwise identical whatever the count."""
    _core.set_num_threads(int(n))


def get_num_threads():
    return _core.get_num_threads()
