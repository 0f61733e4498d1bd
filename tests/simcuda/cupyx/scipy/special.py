"""Simulated ``cupyx.scipy.special``: the functions gradforge's CUDA backend uses."""
from __future__ import annotations

import math

import numpy as np

from ..._array import check_device, ndarray, unsupported, wrap

_ERF = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """The error function, elementwise, on a device array (exact to round-off via math.erf)."""
    if not isinstance(x, ndarray):
        raise unsupported(x)
    check_device(x._dev)
    a = x._a
    # CuPy's erf loops are float->float and double->double; like any CuPy ufunc it takes the
    # first loop the input casts to safely (so float16 and small ints give float32).
    out_dtype = next(t for t in (np.float32, np.float64) if np.can_cast(a.dtype, t, "safe"))
    return wrap(np.asarray(_ERF(a), dtype=out_dtype))
