"""Reverse-mode automatic differentiation: graph nodes, the backward engine and grad mode."""
from . import functional
from .engine import backward, grad
from .function import Function, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = [
           "Function",
           "GradcheckError",
           "backward",
           "detect_anomaly",
           "enable_grad",
           "functional",
           "grad",
           "gradcheck",
           "gradgradcheck",
           "inference_mode",
           "is_anomaly_enabled",
           "is_grad_enabled",
           "no_grad",
           "set_detect_anomaly",
           "set_grad_enabled",
]
