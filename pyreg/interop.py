"""Conversion between pyreg and tf-keras (Keras 2) Sequential models, with
weights and compile settings. tf_keras is imported only when a function is
called. Supported layers: Conv2D, Dense, Flatten, MaxPooling2D, Activation, InputLayer;
optimizers Adam and SGD (converted to tf-keras's *legacy* optimizers, whose
equations pyreg follows, so `lr` and `decay` keep their meaning)."""
import numpy as np

from . import layers as L, losses, models, optimizers, regularizers


def _tfk():
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tf_keras
    return tf_keras


def _reg_from_keras(reg):
    if reg is None:
        return None
    cfg = reg.get_config()
    l1, l2 = float(cfg.get("l1", 0.0)), float(cfg.get("l2", 0.0))
    if "l1" in cfg and "l2" in cfg:
        return regularizers.L1L2(l1, l2)
    return regularizers.L1(l1) if "l1" in cfg else regularizers.L2(l2)


def _reg_to_keras(K, reg):
    if reg is None:
        return None
    if isinstance(reg, regularizers.L1L2):
        return K.regularizers.L1L2(l1=reg.l1, l2=reg.l2)
    if isinstance(reg, regularizers.L1):
        return K.regularizers.L1(reg.l1)
    return K.regularizers.L2(reg.l2)


def _act_name(act):
    name = act if isinstance(act, str) else getattr(act, "__name__", str(act))
    return "linear" if name in (None, "linear") else name


def from_keras(keras_model):
    """A pyreg Sequential with the same layers, weights and compile settings."""
    K = _tfk()
    model = models.Sequential(name=None)
    first = True
    for kl in keras_model.layers:
        kwargs = {}
        if first:
            kwargs["input_shape"] = tuple(keras_model.input_shape[1:])
        if isinstance(kl, K.layers.Conv2D):
            c = kl.get_config()
            if c.get("data_format", "channels_last") != "channels_last" or tuple(c["dilation_rate"]) != (1, 1):
                raise ValueError(f"from_keras: Conv2D {kl.name}: only channels_last without dilation is supported")
            layer = L.Conv2D(c["filters"], tuple(c["kernel_size"]), strides=tuple(c["strides"]), padding=c["padding"],
                             activation=_act_name(kl.activation), use_bias=c["use_bias"],
                             kernel_regularizer=_reg_from_keras(kl.kernel_regularizer),
                             bias_regularizer=_reg_from_keras(kl.bias_regularizer), **kwargs)
        elif isinstance(kl, K.layers.Dense):
            layer = L.Dense(kl.units, activation=_act_name(kl.activation), use_bias=kl.use_bias,
                            kernel_regularizer=_reg_from_keras(kl.kernel_regularizer),
                            bias_regularizer=_reg_from_keras(kl.bias_regularizer), **kwargs)
        elif isinstance(kl, K.layers.Flatten):
            layer = L.Flatten(**kwargs)
        elif isinstance(kl, K.layers.MaxPooling2D):
            layer = L.MaxPooling2D(tuple(kl.pool_size), strides=tuple(kl.strides), padding=kl.padding, **kwargs)
        elif isinstance(kl, K.layers.Activation):
            layer = L.Activation(_act_name(kl.activation), **kwargs)
        else:
            raise ValueError(f"from_keras: layer {kl.name} of type {type(kl).__name__} is not supported")
        model.add(layer)
        first = False
    model.build((None,) + tuple(keras_model.input_shape[1:]))
    model.set_weights(keras_model.get_weights())
    opt = getattr(keras_model, "optimizer", None)
    if opt is not None and getattr(keras_model, "compiled_loss", None) is not None:
        model.compile(optimizer=_opt_from_keras(opt), loss=_loss_from_keras(keras_model.loss),
                      metrics=_metrics_from_keras(keras_model))
    return model


def _opt_from_keras(opt):
    cfg = opt.get_config()
    name = type(opt).__name__
    lr = float(np.float32(cfg.get("learning_rate", 0.001)))
    decay = float(cfg.get("decay", 0.0) or 0.0)
    if name == "Adam":
        return optimizers.Adam(learning_rate=lr, beta_1=float(cfg["beta_1"]), beta_2=float(cfg["beta_2"]),
                               epsilon=float(cfg["epsilon"]), amsgrad=bool(cfg.get("amsgrad", False)), decay=decay)
    if name == "SGD":
        return optimizers.SGD(learning_rate=lr, momentum=float(cfg.get("momentum", 0.0)),
                              nesterov=bool(cfg.get("nesterov", False)), decay=decay)
    raise ValueError(f"from_keras: optimizer {name} is not supported (Adam and SGD are)")


def _loss_from_keras(loss):
    if isinstance(loss, str):
        return losses.get(loss)
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None)
    from_logits = bool(getattr(loss, "get_config", lambda: {})().get("from_logits", False))
    cls = {"categorical_crossentropy": losses.CategoricalCrossentropy,
           "sparse_categorical_crossentropy": losses.SparseCategoricalCrossentropy}.get(name)
    if cls is not None:
        return cls(from_logits=from_logits)
    if name in ("mean_squared_error", "mse"):
        return losses.MeanSquaredError()
    raise ValueError(f"from_keras: loss {loss!r} is not supported")


def _metrics_from_keras(keras_model):
    cm = getattr(keras_model, "compiled_metrics", None)
    user = getattr(cm, "_user_metrics", None) if cm is not None else None
    out = []
    for m in (user or []):
        if isinstance(m, str) and m in ("accuracy", "acc"):
            out.append(m)
    return out


def to_keras(model):
    """A tf_keras Sequential with the same layers, weights and (legacy) optimizer."""
    K = _tfk()
    model._require_built("to_keras")
    kmodel = K.Sequential(name=model.name)
    kmodel.add(K.layers.InputLayer(input_shape=tuple(model.input_shape[1:])))
    for layer in model.layers:
        if isinstance(layer, L.Conv2D):
            kmodel.add(K.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                                       activation=layer.activation, use_bias=layer.use_bias,
                                       kernel_regularizer=_reg_to_keras(K, layer.kernel_regularizer),
                                       bias_regularizer=_reg_to_keras(K, layer.bias_regularizer), name=layer.name))
        elif isinstance(layer, L.Dense):
            kmodel.add(K.layers.Dense(layer.units, activation=layer.activation, use_bias=layer.use_bias,
                                      kernel_regularizer=_reg_to_keras(K, layer.kernel_regularizer),
                                      bias_regularizer=_reg_to_keras(K, layer.bias_regularizer), name=layer.name))
        elif isinstance(layer, L.Flatten):
            kmodel.add(K.layers.Flatten(name=layer.name))
        elif isinstance(layer, L.MaxPooling2D):
            kmodel.add(K.layers.MaxPooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding,
                                             name=layer.name))
        elif isinstance(layer, L.Activation):
            kmodel.add(K.layers.Activation(layer.activation, name=layer.name))
        else:
            raise ValueError(f"to_keras: layer {layer.name} of type {type(layer).__name__} is not supported")
    kmodel.set_weights(model.get_weights())
    if model.compiled:
        opt = model.optimizer
        if isinstance(opt, optimizers.Adam):
            kopt = K.optimizers.legacy.Adam(learning_rate=opt.learning_rate, beta_1=opt.beta_1, beta_2=opt.beta_2,
                                            epsilon=opt.epsilon, amsgrad=opt.amsgrad, decay=opt.decay)
        else:
            kopt = K.optimizers.legacy.SGD(learning_rate=opt.learning_rate, momentum=opt.momentum,
                                           nesterov=opt.nesterov, decay=opt.decay)
        kloss = {losses.CategoricalCrossentropy: K.losses.CategoricalCrossentropy,
                 losses.SparseCategoricalCrossentropy: K.losses.SparseCategoricalCrossentropy}.get(type(model.loss))
        kloss = kloss(from_logits=model.loss.from_logits) if kloss else K.losses.MeanSquaredError()
        kmodel.compile(optimizer=kopt, loss=kloss, metrics=list(model.metrics_names[1:]))
    return kmodel
