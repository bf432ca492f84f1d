"""FusedCBAM is numerically the plain CBAM: the same output and the same gradients for input and weights."""

from __future__ import annotations

import copy

import pytest
import torch

from hpsearch.errors import ConfigError
from hpsearch.models import CBAM, create_attention, create_model
from hpsearch.models.attention import FusedCBAM, set_cbam_fused


def _pair(channels: int, dtype: torch.dtype = torch.float32, **kw: int) -> tuple[CBAM, FusedCBAM]:
    torch.manual_seed(0)
    plain = CBAM(channels, **kw).to(dtype)
    fused = FusedCBAM(channels, **kw).to(dtype)
    fused.load_state_dict(plain.state_dict())
    # Non-zero biases everywhere, so that a forgotten or misplaced bias term shows up.
    with torch.no_grad():
        for p in plain.parameters():
            if p.dim() == 1:
                p.uniform_(-0.5, 0.5)
        fused.load_state_dict(plain.state_dict())
    return plain, fused


def _run(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    module.zero_grad(set_to_none=True)
    xx = x.detach().clone().requires_grad_(True)
    out = module(xx)
    (out * g).sum().backward()
    return (out.detach(), xx.grad, *(p.grad for p in module.parameters()))


def _assert_equal(
    plain: torch.nn.Module, fused: torch.nn.Module, x: torch.Tensor, rtol: float, atol: float
) -> None:
    g = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    names = ["output", "grad x"] + [n for n, _ in plain.named_parameters()]
    for name, a, b in zip(names, _run(plain, x, g), _run(fused, x, g), strict=True):
        # atol is relative to the tensor's largest entry: float sums in another order differ in the last bits
        # of the largest values, and those bits are what small entries are compared against.
        scale = float(a.abs().max()) or 1.0
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol * scale, msg=lambda m, n=name: f"{n}: {m}")


def _ties(x: torch.Tensor) -> torch.Tensor:
    """Inputs with exact ties in both max poolings, as dead ReLU/BatchNorm channels produce."""
    x = -torch.relu(x)  # many exact zeros: the channel max is 0, shared by several channels
    x[:, 1] = 0.25  # a constant channel: every pixel ties for its spatial max
    x[:, 2, :3] = 2.0  # a plateau at the spatial max
    return x


@pytest.mark.parametrize("kind", ["random", "ties"])
@pytest.mark.parametrize(
    ("shape", "kw"),
    [
        ((3, 16, 9, 11), {"reduction": 4}),
        ((2, 8, 16, 16), {"reduction": 2, "min_hidden": 1, "kernel_size": 3}),
        ((1, 32, 7, 5), {}),
    ],
)
def test_fused_equals_plain_in_float64(shape: tuple[int, ...], kw: dict[str, int], kind: str) -> None:
    plain, fused = _pair(shape[1], torch.float64, **kw)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2
    if kind == "ties":
        x = _ties(x)
    _assert_equal(plain, fused, x, rtol=1e-10, atol=1e-12)


def test_fused_equals_plain_in_float32_and_channels_last() -> None:
    plain, fused = _pair(24, reduction=4)
    x = torch.randn(4, 24, 32, 32, generator=torch.Generator().manual_seed(3)) * 3
    _assert_equal(plain, fused, x, rtol=1e-5, atol=1e-5)
    xcl = x.contiguous(memory_format=torch.channels_last)
    _assert_equal(plain.to(memory_format=torch.channels_last), fused, xcl, rtol=1e-5, atol=1e-5)


def test_the_equality_check_can_fail() -> None:
    """A fused module with one weight changed must not pass as equal."""
    plain, fused = _pair(8, torch.float64, reduction=2)
    with torch.no_grad():
        fused.spatial.conv.weight[0, 1, 3, 3] += 1e-3
    x = torch.randn(2, 8, 10, 10, dtype=torch.float64)
    with pytest.raises(AssertionError):
        _assert_equal(plain, fused, x, rtol=1e-10, atol=1e-12)


def test_backward_matches_finite_differences() -> None:
    _, fused = _pair(6, torch.float64, reduction=2, min_hidden=2, kernel_size=3)
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fused, (x,))
    params = list(fused.parameters())

    def of_params(*ps: torch.Tensor) -> torch.Tensor:
        from hpsearch.models.attention import _CBAMFunction

        return _CBAMFunction.apply(x.detach(), *ps)

    assert torch.autograd.gradcheck(of_params, tuple(p.detach().requires_grad_() for p in params))


def test_bfloat16_autocast_stays_close_to_plain() -> None:
    plain, fused = _pair(16, reduction=4)
    x = torch.randn(2, 16, 24, 24, generator=torch.Generator().manual_seed(4)).bfloat16()
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(5)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = _run(plain, x, g), _run(fused, x, g)
    assert a[0].dtype == b[0].dtype == torch.bfloat16 and b[1].dtype == torch.bfloat16
    for ta, tb in zip(a, b, strict=True):
        assert tb.dtype == ta.dtype
        rel = (ta.float() - tb.float()).norm() / ta.float().norm().clamp_min(1e-12)
        assert rel < 0.03


def test_fused_keeps_less_for_backward() -> None:
    plain, fused = _pair(16, reduction=4)
    x = torch.randn(2, 16, 32, 32, requires_grad=True)

    def saved_bytes(module: torch.nn.Module) -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            module(x)
        return total

    assert saved_bytes(fused) <= 0.7 * saved_bytes(plain)


def test_registry_default_is_fused_and_plain_is_selectable() -> None:
    assert type(create_attention("cbam", 16)) is FusedCBAM
    assert type(create_attention("cbam", 16, fused=False)) is CBAM
    with pytest.raises(ConfigError, match="fused must be true or false"):
        create_attention("cbam", 16, fused="yes")
    model = create_model("cbam_unet", base_width=4, depth=2)
    kinds = {type(m) for m in model.modules() if isinstance(m, CBAM)}
    assert kinds == {FusedCBAM}
    assert {type(m) for m in set_cbam_fused(model, False).modules() if isinstance(m, CBAM)} == {CBAM}


def test_state_dicts_are_interchangeable() -> None:
    plain, fused = _pair(16)
    assert plain.state_dict().keys() == fused.state_dict().keys()
    fused.load_state_dict(plain.state_dict(), strict=True)
    plain.load_state_dict(fused.state_dict(), strict=True)


@pytest.mark.parametrize("train", [True, False])
def test_whole_cbam_unet_equal_with_fused_and_plain_attention(train: bool) -> None:
    torch.manual_seed(0)
    fused = create_model("cbam_unet", base_width=4, depth=3, attention_decoder=True, min_hidden=2)
    plain = set_cbam_fused(copy.deepcopy(fused), False)
    fused.train(train)
    plain.train(train)
    x = torch.randn(2, 3, 40, 36, generator=torch.Generator().manual_seed(6))
    _assert_equal(plain, fused, x, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_fused_compiles_without_graph_breaks_and_stays_equal() -> None:
    plain, fused = _pair(8, reduction=2)
    compiled = torch.compile(fused, fullgraph=True)
    x = torch.randn(2, 8, 16, 16)
    _assert_equal(plain, compiled, x, rtol=1e-5, atol=1e-5)
