"""``gradforge.nn``: modules, parameters, functional ops, initialisation and utilities."""
from . import functional, init, utils  # noqa: F401  gradforge.nn.functional etc.
from .modules import *  # noqa: F401,F403  the layer classes, listed in modules/__init__.py
from .modules.module import RemovableHandle  # noqa: F401
from .parameter import Parameter  # noqa: F401
