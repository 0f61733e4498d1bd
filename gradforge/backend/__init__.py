"""Device-agnostic array backend: devices, dtypes, the NumPy and CuPy backends, kernel lookup.

The bottom layer of gradforge; it imports nothing from the layers above.
"""
from .device import CPU, as_device, device, on_device
from .dtypes import dtype, get_default_dtype, set_default_dtype, to_dtype, from_numpy_dtype

__all__ = ["device", "as_device", "CPU", "dtype", "get_default_dtype", "set_default_dtype",
           "to_dtype", "from_numpy_dtype", "array_device", "on_device"]


def array_device(array) -> device:
    """The device holding a NumPy or CuPy array (cupy arrays carry ``.device.id``)."""
    import numpy as np
    if isinstance(array, np.ndarray):
        return CPU
    return as_device(device("cuda", array.device.id))
