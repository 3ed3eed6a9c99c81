"""Layers with Keras 2 names, arguments, defaults and weight layouts.

Each layer's call is a line into the C core (csrc/): Python checks shapes and
holds buffers; the arithmetic happens in C with the GIL released.
Images are channels_last (NHWC); Conv2D kernels are (kh, kw, in, out) and
Dense kernels (in, out), so weights trained in Keras load unchanged.
"""
import math
import numbers

import numpy as np

from . import _core, activations, backend, initializers, regularizers

_MAX_ELEMENTS = 2**40  # refuse absurd layers before allocating
LOGIT_ACTIVATIONS = ("softmax", "sigmoid")  # outputs whose logits tf-keras caches
FUSED_BLOCK_ELEMENTS = 1 << 22  # rows of a fused Dense kernel per update block (16 MB)


class Weight:
    """A trainable array with its gradient and regularizer."""

    __slots__ = ("name", "shape", "initializer", "regularizer", "value", "grad", "trainable", "fused")

    def __init__(self, name, shape, initializer, regularizer, trainable=True):
        self.name, self.shape = name, tuple(shape)
        self.initializer, self.regularizer = initializer, regularizer
        self.value = None  # np.float32 array (a view into the model's flat buffer when in a model)
        self.grad = None
        self.trainable = trainable
        self.fused = False  # updated block by block inside backward (models.Sequential)

    @property
    def size(self):
        return math.prod(self.shape)


def _pair(value, name):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        value = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}") from None
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{name}: expected an int or a pair of positive ints, got {value!r}")
    return value


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _padding(value, owner):
    """'valid' or 'same' (any case), else ValueError naming the layer."""
    value = value.lower() if isinstance(value, str) else value
    if value not in ("valid", "same"):
        raise ValueError(f"{owner} padding: expected 'valid' or 'same', got {value!r}")
    return value


def _check_data_format(value, owner):
    if value not in (None, "channels_last"):
        raise ValueError(f"{owner} data_format: only 'channels_last' is supported, got {value!r}")


def _window_output(layer, what, input_shape, window, strides, padding):
    """(OH, OW) of a sliding window over (H, W, C) input, with TensorFlow's rules:
    valid ceil((H - k + 1) / s), same ceil(H / s)."""
    if len(input_shape) != 3:
        raise ValueError(f"{type(layer).__name__} {layer.name!r}: expected input of rank 4 (batch, height, width, "
                         f"channels), got shape (None, {', '.join(map(str, input_shape))})")
    H, W, _ = input_shape
    (kh, kw), (sh, sw) = window, strides
    if padding == "valid":
        if kh > H or kw > W:
            raise ValueError(f"{type(layer).__name__} {layer.name!r}: {what} {tuple(window)} is larger than its "
                             f"input {H}x{W} with padding 'valid'")
        return (H - kh + sh) // sh, (W - kw + sw) // sw
    return -(-H // sh), -(-W // sw)


class Layer:
    """Base layer: build(input_shape) creates weights; forward/backward run the op.

    Shapes exclude the batch dimension. Calling a layer on a NumPy array builds
    it if needed and returns its output as a new array (Keras's `layer(x)`)."""

    def __init__(self, name=None, input_shape=None, trainable=True, dtype=None, batch_input_shape=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{type(self).__name__}: only dtype float32 is supported, got {dtype!r}")
        self.name = name or backend.unique_name(backend.to_snake_case(type(self).__name__))
        if batch_input_shape is not None and input_shape is None:
            input_shape = tuple(batch_input_shape)[1:]
        self._input_shape_arg = None if input_shape is None else self._check_shape(input_shape)
        self.trainable = trainable
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._weights = []
        self._x = None
        self._y = None
        self._out_buf = None
        self._block = None

    @staticmethod
    def _check_shape(shape):
        try:
            shape = tuple(int(s) for s in shape)
        except TypeError:
            raise TypeError(f"input_shape: expected a tuple of ints, got {shape!r}") from None
        if any(s < 1 for s in shape):
            raise ValueError(f"input_shape: expected positive sizes, got {shape}")
        return shape

    # ---- weights
    def add_weight(self, name, shape, initializer, regularizer=None):
        n = 1
        for s in shape:
            n *= int(s)
        if n > _MAX_ELEMENTS:
            raise ValueError(f"{self.name}: weight {name} of shape {tuple(shape)} has {n} elements, too many to allocate")
        w = Weight(f"{self.name}/{name}", shape, initializer, regularizer)
        self._weights.append(w)
        return w

    def _allocate_standalone(self):
        for w in self._weights:
            if w.value is None:
                try:
                    w.value = np.empty(w.shape, dtype=np.float32)
                except (MemoryError, ValueError) as e:
                    raise MemoryError(f"{self.name}: cannot allocate weight {w.name} of shape {w.shape}") from e
                w.initializer.fill(w.value)

    @property
    def weights(self):
        return [w.value for w in self._weights]

    trainable_weights = weights

    def get_weights(self):
        return [np.array(w.value, copy=True) for w in self._weights]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError(f"You called `set_weights(weights)` on layer {self.name!r} with a weight list of length "
                             f"{len(weights)}, but the layer was expecting {len(self._weights)} weights.")
        arrays = []
        for w, v in zip(self._weights, weights):
            v = np.asarray(v)
            if v.shape != w.shape:
                raise ValueError(f"Layer {self.name!r} weight {w.name}: expected shape {w.shape}, got {v.shape}")
            if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
                raise TypeError(f"Layer {self.name!r} weight {w.name}: expected a real array, got dtype {v.dtype}")
            arrays.append(v)
        for w, v in zip(self._weights, arrays):
            np.copyto(w.value, v, casting="unsafe")

    def count_params(self):
        return sum(w.size for w in self._weights)

    # ---- building
    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _out(self, shape):
        """Output buffer of the given full shape, a prefix view of a buffer kept for the largest batch."""
        B = shape[0]
        if self._out_buf is None or self._out_buf.shape[0] < B or self._out_buf.shape[1:] != tuple(shape[1:]):
            self._out_buf = None
            self._out_buf = np.empty(shape, dtype=np.float32)
        return self._out_buf[:B]

    def release_buffers(self):
        self._out_buf = self._x = self._y = None
        self._block = None

    # ---- running
    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not self.built:
            self.build(x.shape[1:])
            self._allocate_standalone()
        self._check_input(x.shape[1:])
        return np.array(self.forward(x, training=False), copy=True)

    def _check_input(self, shape):
        if tuple(shape) != tuple(self.input_shape):
            raise ValueError(f"Input 0 of layer {self.name!r} is incompatible with the layer: expected shape "
                             f"(None, {', '.join(map(str, self.input_shape))}), got (None, {', '.join(map(str, shape))})")

    def forward(self, x, training=False, logits=False):
        raise NotImplementedError

    def backward(self, dy, alloc_dx, logits=False):
        """Gradient pass: fills each weight's .grad, returns dx (from alloc_dx(shape)) or None if
        alloc_dx is None. May overwrite dy."""
        raise NotImplementedError

    def get_config(self):
        cfg = {"name": self.name, "trainable": self.trainable}
        if self._input_shape_arg is not None:
            cfg["input_shape"] = list(self._input_shape_arg)
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class _ActivationMixin:
    def _init_weight_args(self, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer):
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def _init_activation(self, activation):
        self.activation = activations.get(activation)
        self._act_kind = activations.kind(self.activation)

    # With logits=True (the model's last layer under a cross-entropy loss) the
    # activation is left out: TensorFlow computes the loss from the cached
    # pre-activation logits of a softmax or sigmoid output (see models._fused).
    # Conv2D and Dense pass relu=self._gemm_relu to their C forward, which
    # applies ReLU to each output tile inside the GEMM (the same bits as the
    # separate pass, without a second sweep over the output).
    @property
    def _gemm_relu(self):
        return self._act_kind == _core.ACT_RELU and not isinstance(self, Activation)

    def _activate(self, y, logits):
        if self._act_kind != _core.ACT_LINEAR and not (logits and self.activation in LOGIT_ACTIVATIONS) \
                and not self._gemm_relu:
            _core.activation_forward(self._act_kind, y, y)

    def _activation_grad(self, dy, logits):
        if self._act_kind != _core.ACT_LINEAR and not (logits and self.activation in LOGIT_ACTIVATIONS):
            _core.activation_backward(self._act_kind, self._y, dy, dy)


class Conv2D(_ActivationMixin, Layer):
    """2-D convolution (cross-correlation), channels_last, TensorFlow's padding.

    out = activation(conv(x, kernel) + bias), kernel (kh, kw, in, filters)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "Conv2D filters")
        self.kernel_size = _pair(kernel_size, "Conv2D kernel_size")
        self.strides = _pair(strides, "Conv2D strides")
        self.padding = _padding(padding, "Conv2D")
        _check_data_format(data_format, "Conv2D")
        if _pair(dilation_rate, "Conv2D dilation_rate") != (1, 1) or groups != 1:
            raise ValueError("Conv2D: dilation_rate other than (1, 1) and groups other than 1 are not supported")
        if activity_regularizer is not None:
            raise ValueError("Conv2D: activity_regularizer is not supported")
        self._init_activation(activation)
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)

    def compute_output_shape(self, input_shape):
        oh, ow = _window_output(self, "kernel", input_shape, self.kernel_size, self.strides, self.padding)
        return (oh, ow, self.filters)

    def build(self, input_shape):
        super().build(input_shape)
        kh, kw = self.kernel_size
        self.kernel = self.add_weight("kernel", (kh, kw, input_shape[-1], self.filters),
                                      self.kernel_initializer, self.kernel_regularizer)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None

    def forward(self, x, training=False, logits=False):
        y = self._out((x.shape[0],) + self.output_shape)
        _core.conv2d_forward(x, self.kernel.value, self.bias.value if self.bias else None, y,
                             self.strides[0], self.strides[1], self.padding == "same", self._gemm_relu)
        self._activate(y, logits)
        self._x, self._y = x, y
        return y

    def backward(self, dy, alloc_dx, logits=False):
        self._activation_grad(dy, logits)
        dx = alloc_dx(self._x.shape) if alloc_dx else None
        _core.conv2d_backward(dy, self._x, self.kernel.value, dx, self.kernel.grad,
                              self.bias.grad if self.bias else None,
                              self.strides[0], self.strides[1], self.padding == "same")
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(filters=self.filters, kernel_size=list(self.kernel_size), strides=list(self.strides),
                   padding=self.padding, activation=self.activation, use_bias=self.use_bias,
                   kernel_initializer=initializers.name_of(self.kernel_initializer),
                   bias_initializer=initializers.name_of(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg


class Dense(_ActivationMixin, Layer):
    """out = activation(x @ kernel + bias), kernel (in, units), on the last axis."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "Dense units")
        if activity_regularizer is not None or kernel_constraint is not None or bias_constraint is not None:
            raise ValueError("Dense: activity_regularizer and constraints are not supported")
        self._init_activation(activation)
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)
        self._block = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(f"Dense {self.name!r}: expected input of rank >= 2, got a batch of scalars")
        return tuple(input_shape[:-1]) + (self.units,)

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                                      self.kernel_regularizer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                    self.bias_regularizer) if self.use_bias else None

    def forward(self, x, training=False, logits=False):
        y = self._out((x.shape[0],) + self.output_shape)
        x2 = x.reshape(-1, self.input_shape[-1])
        _core.dense_forward(x2, self.kernel.value, self.bias.value if self.bias else None,
                            y.reshape(-1, self.units), self._gemm_relu)
        self._activate(y, logits)
        self._x, self._y = x, y
        return y

    def backward(self, dy, alloc_dx, logits=False, update=None):
        """With `update` (a callable(weight, grad_rows, r0, r1)), the kernel's
        gradient is never held whole: after dx (which needs the pre-update
        kernel), rows of dW are computed a block at a time and handed to
        `update`, which applies the optimizer to those rows."""
        self._activation_grad(dy, logits)
        dx = alloc_dx(self._x.shape) if alloc_dx else None
        n_in = self.input_shape[-1]
        dy2, x2 = dy.reshape(-1, self.units), self._x.reshape(-1, n_in)
        _core.dense_backward(dy2, x2, self.kernel.value, None if dx is None else dx.reshape(-1, n_in),
                             None if update is not None else self.kernel.grad,
                             self.bias.grad if self.bias else None)
        if update is not None:
            rows = max(1, FUSED_BLOCK_ELEMENTS // self.units)
            if self._block is None or self._block.shape[0] < min(rows, n_in):
                self._block = np.empty((min(rows, n_in), self.units), dtype=np.float32)
            for r0 in range(0, n_in, rows):
                r1 = min(n_in, r0 + rows)
                g = self._block[:r1 - r0]
                _core.dense_weight_grad_rows(dy2, x2, g, r0)
                update(self.kernel, g, r0, r1)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, activation=self.activation, use_bias=self.use_bias,
                   kernel_initializer=initializers.name_of(self.kernel_initializer),
                   bias_initializer=initializers.name_of(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg


class Flatten(Layer):
    """Row-major reshape to (batch, -1) over (H, W, C), as tf.reshape: a view, no copy."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        _check_data_format(data_format, "Flatten")

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=False, logits=False):
        self._x = x
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, alloc_dx, logits=False):
        return dy.reshape(self._x.shape) if alloc_dx else None


class MaxPooling2D(Layer):
    """Max over pool_size windows, channels_last; strides default to pool_size."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, "MaxPooling2D pool_size")
        self.strides = self.pool_size if strides is None else _pair(strides, "MaxPooling2D strides")
        self.padding = _padding(padding, "MaxPooling2D")
        _check_data_format(data_format, "MaxPooling2D")

    def compute_output_shape(self, input_shape):
        oh, ow = _window_output(self, "pool", input_shape, self.pool_size, self.strides, self.padding)
        return (oh, ow, input_shape[-1])

    def _args(self):
        return (self.pool_size[0], self.pool_size[1], self.strides[0], self.strides[1], self.padding == "same")

    def forward(self, x, training=False, logits=False):
        y = self._out((x.shape[0],) + self.output_shape)
        _core.maxpool2d_forward(x, y, *self._args())
        self._x = x
        return y

    def backward(self, dy, alloc_dx, logits=False):
        if not alloc_dx:
            return None
        dx = alloc_dx(self._x.shape)
        _core.maxpool2d_backward(dy, self._x, dx, *self._args())
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(pool_size=list(self.pool_size), strides=list(self.strides), padding=self.padding)
        return cfg


MaxPool2D = MaxPooling2D


class Activation(_ActivationMixin, Layer):
    """Applies an activation by name."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._init_activation(activation)

    def forward(self, x, training=False, logits=False):
        y = self._out(x.shape)
        np.copyto(y, x)
        self._activate(y, logits)
        self._x, self._y = x, y
        return y

    def backward(self, dy, alloc_dx, logits=False):
        self._activation_grad(dy, logits)
        if not alloc_dx:
            return None
        dx = alloc_dx(dy.shape)
        np.copyto(dx, dy)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg


class InputLayer(Layer):
    """Declares the input shape, as keras.layers.InputLayer / Input."""

    def __init__(self, input_shape=None, **kwargs):
        super().__init__(input_shape=input_shape, **kwargs)

    def forward(self, x, training=False, logits=False):
        return x

    def backward(self, dy, alloc_dx, logits=False):
        return dy if alloc_dx else None


def Input(shape, name=None):
    return InputLayer(input_shape=shape, name=name)


_BY_NAME = {c.__name__: c for c in (Conv2D, Dense, Flatten, MaxPooling2D, Activation, InputLayer)}


def deserialize(config):
    cls = _BY_NAME.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown layer {config.get('class_name')!r}: expected one of {sorted(_BY_NAME)}")
    return cls.from_config(dict(config["config"]))


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}
