"""Bad input: the error type, and a message that names the shapes, dtypes or devices."""
import pytest
from oracle import DEVICES

import gradforge

x = gradforge.zeros(2, 3)

ERRORS = {
    # shapes
    "broadcast": (lambda: x + gradforge.zeros(4, 5), RuntimeError,
                  (r"\(2\) must match.*\(4\) at non-singleton dimension 0: shapes \(2, 3\) and "
                  r"\(4, 5\)")),
    "broadcast_where": (lambda: gradforge.where(x > 0, gradforge.zeros(4, 5), 0.0),
                        RuntimeError, r"\(2, 3\) and \(4, 5\)"),
    "matmul_inner": (lambda: x @ gradforge.zeros(4, 5), RuntimeError,
                     r"\(2x3 and 4x5\): inner sizes 3 and 4 differ"),
    "matmul_batch": (lambda: gradforge.bmm(gradforge.zeros(2, 2, 3), gradforge.zeros(2, 4, 2)),
                     RuntimeError, "inner sizes 3 and 4"),
    "reshape": (lambda: x.view(4, 2), RuntimeError, (r"shape '\[4, 2\]' is invalid for input "
                                                   "of size 6")),
    "setitem": (lambda: x.__setitem__(0, gradforge.ones(5)), RuntimeError,
                (r"value tensor of shape \[5\] cannot be broadcast to indexing result of shape "
                r"\[3\]")),
    "setitem_tracked": (lambda: (x * 1).__setitem__(0, gradforge.ones(5, requires_grad=True)),
                        RuntimeError, r"shape \[5\].*shape \[3\]"),
    "inplace_broadcast": (lambda: x.add_(gradforge.ones(2, 2, 3)), RuntimeError,
                          (r"output with shape \[2, 3\] doesn't match the broadcast shape "
                          r"\[2, 2, 3\]")),
    "cat": (lambda: gradforge.cat([x, gradforge.zeros(3)]), RuntimeError,
            r"Expected size \(2, 3\) but got size \(3,\) for tensor number 1"),
    "gather_dims": (lambda: x.gather(0, gradforge.zeros(3, dtype=gradforge.int64)),
                    RuntimeError, r"same number of dimensions as input tensor \(1 and 2\)"),
    "index_out_of_range": (lambda: x[gradforge.tensor([5])], IndexError,
                           r"index 5 is out of bounds.*shape \(2, 3\)"),
    "too_many_indices": (lambda: x[0, 0, 0], IndexError, r"too many indices.*shape \(2, 3\)"),
    "dim_out_of_range": (lambda: x.softmax(2), IndexError,
                         r"range of \[-2, 1\], but got 2"),
    "narrow": (lambda: x.narrow(1, 2, 5), RuntimeError,
               r"start \(2\) \+ length \(5\) exceeds dimension size \(3\)"),
    "permute": (lambda: x.permute(0), RuntimeError, r"number of dims \(1\).*dimensions \(2\)"),
    "repeat": (lambda: x.repeat(2), RuntimeError, r"repeat dims \(1\).*tensor \(2\)"),
    "expand": (lambda: x.expand(3), RuntimeError, (r"sizes provided \(1\).*dimensions in the "
                                                  r"tensor \(2\)")),
    "negative_size": (lambda: gradforge.ones(2, -1), RuntimeError,
                      r"negative dimension: \[2, -1\]"),
    "backward_gradient_shape": (
        lambda: (gradforge.ones(2, requires_grad=True) * 2).backward(gradforge.ones(3)),
        RuntimeError, (r"grad_output\[0\] has a shape of \(3,\) and output\[0\] has a shape of "
                      r"\(2,\)")),
    # dtypes
    "matmul_dtype": (lambda: x @ gradforge.zeros(3, 2, dtype=gradforge.float64), RuntimeError,
                     "gradforge.float32 != gradforge.float64"),
    "inplace_dtype": (lambda: gradforge.tensor([1, 2]).mul_(0.5), RuntimeError,
                      ("result type gradforge.float32 can't be cast to the desired output type "
                      "gradforge.int64")),
    "float_index": (lambda: x[gradforge.tensor([0.0])], IndexError,
                    "must be long, int, byte or bool tensors, got gradforge.float32"),
    "mask_dtype": (lambda: x.masked_fill(x, 1.0), RuntimeError,
                   "boolean masks, but got mask with dtype gradforge.float32"),
    "where_condition": (lambda: gradforge.where(x, x, x), RuntimeError,
                        "condition to be a boolean tensor, but got gradforge.float32"),
    "mean_int": (lambda: gradforge.tensor([1]).mean(), RuntimeError, "Got: gradforge.int64"),
    "requires_grad_int": (lambda: gradforge.zeros(2, dtype=gradforge.int32,
                                                  requires_grad=True),
                          RuntimeError, (r"floating point dtype can require gradients \(got "
                                        r"gradforge.int32\)")),
    "unknown_dtype": (lambda: x.to("float8"), TypeError, "unknown dtype 'float8'"),
    "bool_sub": (lambda: x.bool() - x.bool(), RuntimeError, "with a bool tensor"),
    "int_negative_power": (lambda: gradforge.tensor([2]) ** -1, RuntimeError,
                           "negative integer powers"),
    # other arguments
    "norm_type": (lambda: x.norm("nuc"), RuntimeError, "unsupported norm type 'nuc'"),
    "topk": (lambda: x.topk(4), RuntimeError, r"k out of range \(k=4, size of dim 1 is 3\)"),
    "clamp": (lambda: x.clamp(), RuntimeError, "At least one of 'min' or 'max'"),
    "rounding_mode": (lambda: gradforge.div(x, 2, rounding_mode="round"), ValueError,
                      "rounding_mode to be one of None, 'trunc', or 'floor'"),
    "item": (lambda: x.item(), RuntimeError, "6 elements cannot be converted to Scalar"),
    "unknown_device": (lambda: gradforge.zeros(2, device="gpu"), ValueError, "'gpu'"),
}


@pytest.mark.parametrize("call, error, message", ERRORS.values(), ids=ERRORS.keys())
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.cuda
@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: a @ b.t(),
                                lambda a, b: gradforge.cat([a, b]), lambda a, b: a.add_(b)])
def test_device_mismatch_names_both_devices(op):
    a, b = gradforge.zeros(2, 3), gradforge.zeros(2, 3, device="cuda")
    with pytest.raises(RuntimeError, match=r"two devices, cpu and cuda:0"):
        op(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_zero_dim_cpu_tensor_mixes_with_any_device(device):
    a = gradforge.ones(3, device=device)
    out = a * gradforge.tensor(2.0)
    assert out.device == a.device and out.tolist() == [2.0, 2.0, 2.0]


def test_floating_point_exceptions_are_silent_as_in_torch_but_not_for_user_numpy():
    """log(0), x / 0, sqrt(-1) and exp overflow give inf/nan without a warning, as torch does
    (even under -W error); NumPy called from user code still warns."""
    import subprocess
    import sys
    code = ("import gradforge as g, numpy as np\n"
            "x = g.tensor([0.0, 1.0])\n"
            "a, b, c, d = x.log(), x / 0, g.tensor([-1.0]).sqrt(), g.tensor([1e30]).exp()\n"
            "assert a.numpy()[0] == -np.inf and np.isnan(c.numpy()[0]) and d.numpy()[0] == np.inf\n"
            "try:\n"
            "    np.log(np.zeros(1))\n"
            "except RuntimeWarning:\n"
            "    print('user numpy warns')\n")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "user numpy warns"
