"""The Module contract: registration, iteration with prefixes and dedup, state_dict and
load_state_dict (errors by name), hooks, train/eval, zero_grad, _apply behind to/double,
containers and the nested repr, each compared with torch where torch defines it."""
import copy
from collections import OrderedDict

import numpy as np
import pytest

import gradforge
from gradforge import nn


def make_model(lib):
    """A small nested model touching every container and a buffer-holding layer."""
    n = lib.nn
    return n.Sequential(OrderedDict([
        ("embed", n.Linear(3, 4)),
        ("act", n.ReLU()),
        ("block", n.Sequential(n.BatchNorm1d(4), n.Dropout(0.1), n.GELU(approximate="tanh"))),
        ("heads", n.ModuleList([n.Linear(4, 2) for _ in range(3)] + [n.Linear(4, 2, False)])),
        ("extra", n.ModuleDict({"norm": n.LayerNorm(4), "drop2d": n.Dropout2d(0.25)})),
    ]))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.scale = nn.Parameter(gradforge.ones(3))
        self.register_buffer("steps", gradforge.zeros((), dtype=gradforge.int64))
        self.register_buffer("cache", gradforge.zeros(3), persistent=False)
        self.plain = 5

    def forward(self, x):
        return self.fc(x) * self.scale


# -- registration and iteration --------------------------------------------------------------
def test_setattr_registers_parameters_buffers_and_modules():
    net = Net()
    assert list(net._parameters) == ["scale"]
    assert list(net._modules) == ["fc"]
    assert list(net._buffers) == ["steps", "cache"]
    assert net.plain == 5 and "plain" in net.__dict__
    assert [n for n, _ in net.named_parameters()] == ["scale", "fc.weight", "fc.bias"]
    assert [n for n, _ in net.named_buffers()] == ["steps", "cache"]
    assert [n for n, _ in net.named_parameters(prefix="net", recurse=False)] == ["net.scale"]
    assert [n for n, _ in net.named_modules()] == ["", "fc"]
    assert [n for n, _ in net.named_children()] == ["fc"]
    net.fc = None  # a module slot may be emptied ...
    assert net.fc is None and [n for n, _ in net.named_parameters()] == ["scale"]
    net.scale = None  # ... and so may a parameter slot
    assert net.scale is None and list(net.parameters()) == []
    del net.steps
    assert "steps" not in net._buffers
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'missing'"):
        net.missing


def test_registration_errors():
    net = Net()
    with pytest.raises(TypeError, match="cannot assign 'gradforge.float32' as parameter 'scale'"):
        net.scale = gradforge.ones(3)
    with pytest.raises(TypeError, match="as child module 'fc'"):
        net.fc = 3
    with pytest.raises(TypeError, match="as buffer 'steps'"):
        net.steps = [1, 2]
    with pytest.raises(KeyError, match="name can.*contain"):
        net.register_buffer("a.b", gradforge.zeros(1))
    with pytest.raises(KeyError, match="already exists"):
        net.register_parameter("plain", None)
    with pytest.raises(TypeError, match="Parameter or None required"):
        net.register_parameter("w", gradforge.ones(2))
    frozen = nn.Parameter(gradforge.ones(2), requires_grad=False)
    frozen.add_(gradforge.ones(2, requires_grad=True))  # recorded: frozen is now a non-leaf
    with pytest.raises(ValueError, match="non-leaf"):
        net.register_parameter("w", frozen)
    with pytest.raises(TypeError, match="is not a Module subclass"):
        net.add_module("x", gradforge.ones(1))

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(gradforge.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_shared_modules_and_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3
    assert [n for n, _ in model.named_modules(remove_duplicate=False)] == ["", "0", "1", "2"]
    assert len(list(model.named_parameters(remove_duplicate=False))) == 4
    assert model.get_submodule("2") is lin
    with pytest.raises(AttributeError, match="has no attribute `5`"):
        model.get_submodule("5")


def test_parameter_contract():
    data = gradforge.randn(2, 3)
    p = nn.Parameter(data)
    assert isinstance(p, gradforge.Tensor) and p.requires_grad and p.is_leaf
    p.data.mul_(2)
    np.testing.assert_allclose(data.numpy(), p.detach().numpy())  # shares storage
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(data, requires_grad=False).requires_grad
    assert (p * 2).__class__ is gradforge.Tensor
    q = copy.deepcopy(p)
    assert type(q) is nn.Parameter and q is not p and q.requires_grad
    np.testing.assert_array_equal(q.detach().numpy(), p.detach().numpy())
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(gradforge.tensor([1, 2]))


# -- state_dict ------------------------------------------------------------------------------
def test_state_dict_keys_equal_torchs():
    torch = pytest.importorskip("torch")
    assert list(make_model(gradforge).state_dict()) == list(make_model(torch).state_dict())


def test_state_dict_contents():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == ["scale", "steps", "fc.weight", "fc.bias"]  # non-persistent excluded
    assert not sd["scale"].requires_grad and sd["scale"]._data is net.scale._data
    assert net.state_dict(keep_vars=True)["scale"] is net.scale
    assert list(net.state_dict(prefix="m.")) == ["m.scale", "m.steps", "m.fc.weight",
                                                 "m.fc.bias"]


def test_load_state_dict_copies_casts_and_reports():
    a, b = Net(), Net()
    a.steps.fill_(7)
    result = b.load_state_dict(a.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(b.fc.weight.detach().numpy(), a.fc.weight.detach().numpy())
    assert b.steps.item() == 7
    weight = b.fc.weight
    b.load_state_dict({k: v.double() for k, v in a.state_dict().items()})
    assert b.fc.weight is weight and b.fc.weight.dtype == gradforge.float32  # copied in place


def test_load_state_dict_errors_name_keys_and_shapes():
    net = Net()
    sd = net.state_dict()
    del sd["fc.bias"]
    sd["fc.extra"] = gradforge.zeros(1)
    sd["other.weight"] = gradforge.zeros(1)
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(sd)
    msg = str(err.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:")
    assert 'Missing key(s) in state_dict: "fc.bias".' in msg
    # Torch's order: the root's own unexpected keys first, then each child's.
    assert 'Unexpected key(s) in state_dict: "other.weight", "fc.extra".' in msg
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["fc.bias"]
    assert result.unexpected_keys == ["other.weight", "fc.extra"]
    assert result == (["fc.bias"], ["other.weight", "fc.extra"])

    bad = net.state_dict()
    bad["fc.weight"] = gradforge.zeros(4, 2)
    with pytest.raises(RuntimeError, match=r"size mismatch for fc.weight: copying a param with "
                                           r"shape .*\[4, 2\].* current model is .*\[3, 2\]"):
        net.load_state_dict(bad, strict=False)  # shape mismatches raise even when not strict
    bad["fc.weight"] = [[0.0] * 2] * 3
    with pytest.raises(RuntimeError, match='parameter named "fc.weight", expected'):
        net.load_state_dict(bad)
    with pytest.raises(TypeError, match="dict-like"):
        net.load_state_dict([("fc.weight", gradforge.zeros(3, 2))])


def test_load_state_dict_assign_replaces_tensors():
    net = Net()
    sd = {k: v.clone() for k, v in Net().state_dict().items()}
    net.load_state_dict(sd, assign=True)
    assert isinstance(net.fc.weight, nn.Parameter) and net.fc.weight.requires_grad
    assert net.fc.weight._data is sd["fc.weight"]._data


def test_load_torch_state_dict_and_match_outputs():
    torch = pytest.importorskip("torch")
    t_model, g_model = make_model(torch).eval(), make_model(gradforge).eval()
    with torch.no_grad():
        for buf in t_model.block[0].buffers():
            buf.add_(1 if buf.dtype.is_floating_point else 3)
    g_model.load_state_dict({k: gradforge.tensor(v.numpy())
                             for k, v in t_model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    t_out = t_model.extra.norm(t_model.block(t_model.act(t_model.embed(torch.tensor(x)))))
    g_out = g_model.extra.norm(g_model.block(g_model.act(g_model.embed(gradforge.tensor(x)))))
    np.testing.assert_allclose(g_out.detach().numpy(), t_out.detach().numpy(), atol=1e-5)
    assert g_model.block[0].num_batches_tracked.item() == 3


# -- hooks and calling -------------------------------------------------------------------------
def test_forward_hooks_and_pre_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    out = lin(gradforge.randn(3, 2))
    np.testing.assert_allclose(out.detach().numpy(),
                               np.broadcast_to(lin.bias.detach().numpy() + 1, (3, 2)), rtol=1e-6)
    assert calls == [(3, 2)]
    pre.remove()
    post.remove()
    x = gradforge.randn(3, 2)
    np.testing.assert_allclose(lin(x).detach().numpy(),
                               (x @ lin.weight.t() + lin.bias).detach().numpy())
    order = []
    lin.register_forward_hook(lambda m, a, o: order.append("first"))
    lin.register_forward_hook(lambda m, a, o: order.append("prepended"), prepend=True)
    lin(x)
    assert order == ["prepended", "first"]


def test_hooks_with_kwargs_and_always_call():
    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            if factor < 0:
                raise ValueError("negative factor")
            return x * factor

    m = Scale()
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"factor": 3.0}),
                                with_kwargs=True)
    seen = []
    with m.register_forward_hook(lambda mod, args, kwargs, out: seen.append(kwargs["factor"]),
                                 with_kwargs=True):
        assert m(gradforge.ones(1)).item() == 3.0
    assert seen == [3.0] and not m._forward_hooks  # the handle removed it on exit
    failed = []
    m2 = Scale()
    m2.register_forward_hook(lambda mod, a, o: failed.append(o), always_call=True)
    with pytest.raises(ValueError, match="negative factor"):
        m2(gradforge.ones(1), -1.0)
    assert failed == [None]


def test_missing_forward_raises():
    with pytest.raises(NotImplementedError, match='Module \\[Module\\] is missing the required'):
        nn.Module()(gradforge.ones(1))


# -- modes, gradients, conversion ------------------------------------------------------------
def test_train_eval_apply_requires_grad_and_zero_grad():
    model = make_model(gradforge)
    assert model.training and model.block[1].training
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="boolean"):
        model.train("yes")
    visited = []
    model.apply(lambda m: visited.append(type(m).__name__))
    assert visited[-1] == "Sequential" and visited[0] == "Linear"
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    model.requires_grad_()
    out = model.embed(gradforge.randn(2, 3)).sum()
    out.backward()
    model.zero_grad(set_to_none=False)
    assert model.embed.weight.grad is not None
    assert not model.embed.weight.grad.numpy().any()
    model.zero_grad()
    assert model.embed.weight.grad is None


def test_to_double_keeps_parameter_objects_and_integer_buffers():
    model = make_model(gradforge)
    model.embed(gradforge.randn(2, 3)).sum().backward()
    params = list(model.parameters())
    assert model.double() is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(p.dtype == gradforge.float64 for p in model.parameters())
    assert model.embed.weight.grad.dtype == gradforge.float64
    bn = model.block[0]
    assert bn.running_mean.dtype == gradforge.float64
    assert bn.num_batches_tracked.dtype == gradforge.int64
    model.to(gradforge.float32)
    assert model.embed.weight.dtype == gradforge.float32
    model.to("cpu", dtype=gradforge.float64)
    assert model.embed.bias.dtype == gradforge.float64
    model.float().half()
    assert model.embed.weight.dtype == gradforge.float16
    with pytest.raises(TypeError, match="only accepts floating point"):
        model.to(gradforge.int64)


def test_optimizer_built_before_to_keeps_training_the_model():
    model = nn.Linear(3, 1)
    opt = gradforge.optim.SGD(model.parameters(), lr=0.1)
    model.double()
    model(gradforge.ones(1, 3, dtype=gradforge.float64)).sum().backward()
    before = model.weight.detach().clone()
    opt.step()
    np.testing.assert_allclose(model.weight.detach().numpy(), before.numpy() - 0.1)


def test_deepcopy_module():
    model = make_model(gradforge)
    clone = copy.deepcopy(model)
    assert clone.embed.weight is not model.embed.weight
    for (n, p), (_, q) in zip(model.named_parameters(), clone.named_parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy(), err_msg=n)
    clone.embed.weight.data.fill_(0)
    assert model.embed.weight.detach().numpy().any()


# -- containers and repr -----------------------------------------------------------------------
def test_repr_equals_torchs_for_a_nested_model():
    torch = pytest.importorskip("torch")
    assert repr(make_model(gradforge)) == repr(make_model(torch))
    assert repr(nn.ModuleList()) == repr(torch.nn.ModuleList())
    assert repr(nn.Sequential()) == repr(torch.nn.Sequential())


def test_sequential_indexing_slicing_and_editing():
    layers = [nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3), nn.Tanh()]
    seq = nn.Sequential(*layers)
    assert len(seq) == 4 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[3]
    head = seq[1:3]
    assert type(head) is nn.Sequential and list(head._modules) == ["1", "2"]
    with pytest.raises(IndexError, match="index 4 is out of range"):
        seq[4]
    seq.append(nn.Sigmoid())
    assert list(seq._modules) == ["0", "1", "2", "3", "4"]
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2", "3"] and seq[1] is layers[2]
    seq.insert(0, nn.Identity())
    assert isinstance(seq[0], nn.Identity) and seq[1] is layers[0]
    seq[0] = nn.Dropout(0.0)
    assert isinstance(seq[0], nn.Dropout)
    popped = seq.pop(0)
    assert isinstance(popped, nn.Dropout) and len(seq) == 4
    x = gradforge.randn(5, 2)
    expected = layers[3](layers[2](layers[0](x))).sigmoid()
    np.testing.assert_allclose(seq(x).detach().numpy(), expected.detach().numpy())
    both = seq + nn.Sequential(nn.ReLU())
    assert len(both) == 5


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.append(nn.ReLU())
    ml.extend([nn.Tanh(), nn.Sigmoid()])
    ml += [nn.Identity()]
    ml.insert(1, nn.GELU())
    assert [type(m).__name__ for m in ml] == ["Linear", "GELU", "ReLU", "Tanh", "Sigmoid",
                                               "Identity"]
    assert type(ml[1:3]) is nn.ModuleList and len(ml[1:3]) == 2
    del ml[0]
    assert list(ml._modules) == ["0", "1", "2", "3", "4"]
    assert isinstance(ml.pop(), nn.Identity) and len(ml) == 4
    with pytest.raises(TypeError, match="iterable"):
        ml.extend(nn.ReLU())
    md = nn.ModuleDict({"a": nn.ReLU()})
    md.update([("b", nn.Tanh())])
    md["c"] = nn.Linear(2, 2)
    assert list(md) == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert [n for n, _ in md.named_parameters()] == ["c.weight", "c.bias"]
    assert isinstance(md.pop("a"), nn.ReLU) and list(md.keys()) == ["b", "c"]
    md.clear()
    assert len(md) == 0
    with pytest.raises(NotImplementedError, match="ModuleList"):
        ml(gradforge.ones(1))


def test_module_dict_update_from_module_dict_and_sequential_repeat_match_torch():
    torch = pytest.importorskip("torch")

    def build(lib):
        n = lib.nn
        md = n.ModuleDict({"b": n.ReLU()})
        md.update(OrderedDict([("x", n.Tanh()), ("a", n.ELU())]))
        md.update(n.ModuleDict({"q": n.Linear(1, 1)}))  # a ModuleDict is no abc.Mapping
        seq = n.Sequential(n.Linear(2, 2), n.ReLU())
        twice, thrice = seq * 2, 3 * seq
        seq *= 2
        return md, twice, thrice, seq

    g_md, g_twice, g_thrice, g_seq = build(gradforge)
    t_md, t_twice, t_thrice, t_seq = build(torch)
    assert list(g_md) == list(t_md) == ["b", "x", "a", "q"]
    for g, t in ((g_twice, t_twice), (g_thrice, t_thrice), (g_seq, t_seq)):
        assert repr(g) == repr(t)
        assert list(g.state_dict()) == list(t.state_dict())
        assert [n for n, _ in g.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert g_twice[0] is g_twice[2]  # repeats share the module objects, as in torch
    for bad, err in ((0, ValueError), (1.5, TypeError)):
        with pytest.raises(err):
            g_twice * bad
        with pytest.raises(err):
            t_twice * bad


def test_batchnorm_checkpoint_without_num_batches_tracked_loads_as_torch():
    torch = pytest.importorskip("torch")

    def build(lib):
        return lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.BatchNorm1d(2))

    g_model, t_model = build(gradforge), build(torch)
    g_sd, t_sd = g_model.state_dict(), t_model.state_dict()
    assert g_sd._metadata == dict(t_sd._metadata)  # each module's _version, by name
    del g_sd["1.num_batches_tracked"], t_sd["1.num_batches_tracked"]
    # A current checkpoint (version 2) that lacks the counter: a missing key in both.
    assert g_model.load_state_dict(g_sd, strict=False).missing_keys == \
        t_model.load_state_dict(t_sd, strict=False).missing_keys == ["1.num_batches_tracked"]
    # Without metadata (an old or converted checkpoint) torch keeps the layer's counter.
    g_model[1].num_batches_tracked.fill_(4)
    result = g_model.load_state_dict(dict(g_sd))
    assert str(result) == str(t_model.load_state_dict(dict(t_sd)))
    assert g_model[1].num_batches_tracked.item() == 4


def test_custom_extra_repr_and_children_indentation():
    torch = pytest.importorskip("torch")

    def build(lib):
        class Block(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.Softplus(beta=2))

            def extra_repr(self):
                return "custom=1\nsecond line"

        return Block()

    assert repr(build(gradforge)) == repr(build(torch))


@pytest.mark.cuda
def test_cuda_and_cpu_move_parameters_buffers_and_grads_in_place():
    model = make_model(gradforge)
    model.embed(gradforge.randn(2, 3)).sum().backward()
    weight = model.embed.weight
    opt = gradforge.optim.SGD(model.parameters(), lr=0.1)
    assert model.cuda() is model and model.embed.weight is weight
    assert weight.device.type == "cuda" and weight.grad.device.type == "cuda"
    assert model.block[0].running_var.device.type == "cuda"
    assert model.block[0].num_batches_tracked.dtype == gradforge.int64
    # A CPU state_dict loads into the CUDA model (copied to the parameter's device).
    cpu_state = {k: v.cpu() for k, v in make_model(gradforge).state_dict().items()}
    model.load_state_dict(cpu_state)
    assert model.embed.weight is weight and weight.device.type == "cuda"
    np.testing.assert_array_equal(weight.detach().cpu().numpy(),
                                  cpu_state["embed.weight"].numpy())
    model.zero_grad()
    model.embed(gradforge.randn(2, 3, device="cuda")).sum().backward()
    opt.step()
    model.to("cpu")
    assert weight.device.type == "cpu" and model.block[0].running_mean.device.type == "cpu"
