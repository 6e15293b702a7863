# SPDX-License-Identifier: Apache-2.0
"""Noise schedules and DDIM sampling: math checks, determinism, and ONNX export of the loop."""
import numpy as np
import pytest
import torch

from dgm_policy_ros.diffusion import DDIMSampler, NoiseSchedule


@pytest.mark.parametrize('kind', ['cosine', 'linear'])
def test_schedule_is_a_valid_forward_process(kind):
    schedule = NoiseSchedule(100, kind)
    abar = schedule.alphas_cumprod
    assert torch.all(abar[1:] < abar[:-1]) and abar[0] > 0.99 and abar[-1] < 0.05
    x0 = torch.ones(4000, 1)
    xt = schedule.add_noise(x0, torch.randn(4000, 1, generator=torch.Generator().manual_seed(0)),
                            torch.full((4000,), 99))
    assert float(xt.var()) == pytest.approx(1 - float(abar[99]), rel=0.1)
    assert float(xt.mean()) == pytest.approx(float(abar[99].sqrt()), abs=0.05)


@pytest.mark.parametrize('prediction', ['epsilon', 'sample'])
def test_ddim_with_the_true_predictor_recovers_the_data(prediction):
    """With the exact epsilon (or x0) of a known x0, DDIM (eta=0) lands on x0 in a few steps."""
    schedule = NoiseSchedule(100, prediction=prediction)
    x0 = torch.tensor([[0.3, -0.7], [0.9, 0.1]])

    def oracle(x, t):
        if prediction == 'sample':
            return x0.expand_as(x)
        abar = schedule.alphas_cumprod[t.long()].view(-1, 1)
        return (x - abar.sqrt() * x0) / (1 - abar).sqrt()

    gen = torch.Generator().manual_seed(0)
    for n in (1, 5, 20):
        out = DDIMSampler(schedule, n)(oracle, torch.randn(2, 2, generator=gen))
        # float32: the first step divides by sqrt(abar_T) ~ 0.03, amplifying rounding.
        torch.testing.assert_close(out, x0, atol=1e-3, rtol=0)


def test_sampling_is_deterministic_given_its_noise_inputs():
    torch.manual_seed(0)
    schedule = NoiseSchedule(50)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))

    def denoiser(x, t):
        return net(torch.cat([x, t[:, None] / 50], -1))

    sampler = DDIMSampler(schedule, 10, eta=1.0)
    x_T = torch.randn(5, 2)
    noise = torch.randn(10, 5, 2)
    a, b = sampler(denoiser, x_T, noise), sampler(denoiser, x_T, noise)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, sampler(denoiser, x_T, torch.randn(10, 5, 2)))
    with pytest.raises(ValueError, match='needs step_noise'):
        sampler(denoiser, x_T)
    with pytest.raises(ValueError, match='prediction must be one of'):
        NoiseSchedule(50, prediction='velocity')


@pytest.mark.parametrize('prediction', ['epsilon', 'sample'])
def test_training_loss_falls_on_a_toy_distribution(prediction):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    schedule = NoiseSchedule(50, prediction=prediction)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def denoiser(x, t):
        return net(torch.cat([x, t[:, None] / 50], -1))

    losses = []
    for _ in range(300):
        x0 = torch.randn(256, 2) * 0.1 + torch.tensor([0.5, -0.5])
        loss = schedule.training_loss(denoiser, x0, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-30:]) < 0.7 * np.mean(losses[:30])
    with torch.no_grad():
        samples = DDIMSampler(schedule, 10)(denoiser, torch.randn(512, 2))
    np.testing.assert_allclose(samples.mean(0).numpy(), [0.5, -0.5], atol=0.1)


def test_weighted_training_samples_the_weighted_distribution():
    """Advantage-weighted training (idql's ``awr_temperature``): data at two modes, the
    +0.5 mode's samples weighted 9x, so samples should land there about 90% of the time."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    schedule = NoiseSchedule(50, prediction='sample')
    net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 1))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def denoiser(x, t):
        return net(torch.cat([x, t[:, None] / 50], -1))

    x0 = torch.randn(256, 1, generator=gen) * 0.05 + 0.5
    sign = torch.where(torch.arange(256) % 2 == 0, 1.0, -1.0)[:, None]
    x0, weights = x0 * sign, torch.where(sign[:, 0] > 0, 9.0, 1.0)
    same = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert torch.equal(schedule.training_loss(denoiser, x0, generator=same[0]),
                       schedule.training_loss(denoiser, x0, generator=same[1],
                                              weights=torch.ones(256)))
    for _ in range(600):
        loss = schedule.training_loss(denoiser, x0, generator=gen, weights=weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        samples = DDIMSampler(schedule, 10)(denoiser, torch.randn(2000, 1, generator=gen))
    share = float((samples > 0).float().mean())
    assert 0.8 < share < 0.97, share  # unweighted it would be 0.5


def test_the_whole_sampling_loop_exports_to_one_onnx_graph(tmp_path):
    import onnxruntime as ort

    schedule = NoiseSchedule(50)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))

    class Policy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.sampler = net, DDIMSampler(schedule, 5, eta=1.0)

        def forward(self, x_T, step_noise):
            return self.sampler(lambda x, t: self.net(torch.cat([x, t[:, None] / 50], -1)),
                                x_T, step_noise)

    model = Policy().eval()
    x_T, noise = torch.randn(3, 2), torch.randn(5, 3, 2)
    torch.onnx.export(model, (x_T, noise), str(tmp_path / 'ddim.onnx'), opset_version=17,
                      input_names=['x_T', 'step_noise'], output_names=['x0'], dynamo=False)
    got = ort.InferenceSession(str(tmp_path / 'ddim.onnx')).run(
        None, {'x_T': x_T.numpy(), 'step_noise': noise.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x_T, noise).numpy(), atol=1e-5)


def test_the_denoisers_mish_matches_torchs_in_value_and_gradient(tmp_path):
    import onnx

    from dgm_policy_ros.networks.layers import Mish

    x = torch.linspace(-40, 40, 20001, dtype=torch.float64, requires_grad=True)
    ours = Mish()(x)
    (grad_ours,) = torch.autograd.grad(ours.sum(), x)
    ref = torch.nn.functional.mish(x)
    (grad_ref,) = torch.autograd.grad(ref.sum(), x)
    np.testing.assert_allclose(ours.detach().numpy(), ref.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(grad_ours.numpy(), grad_ref.numpy(), atol=1e-9)
    assert torch.autograd.gradcheck(Mish(), (torch.randn(6, 5, dtype=torch.float64,
                                                         requires_grad=True),))
    x32 = torch.randn(64, 256, requires_grad=True)
    (g32,) = torch.autograd.grad(Mish()(x32).sum(), x32)
    (g32_ref,) = torch.autograd.grad(torch.nn.functional.mish(x32).sum(), x32)
    np.testing.assert_allclose(g32.numpy(), g32_ref.numpy(), atol=1e-5)
    with torch.no_grad():  # the inference path, as in sampling the critic's next actions
        np.testing.assert_allclose(Mish()(x32).numpy(), torch.nn.functional.mish(x32).numpy(),
                                   atol=1e-5)
    # The export traces torch's op, so the graph is the one nn.Mish gives, not the hand path.
    def exported_ops(activation):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), activation)
        path = tmp_path / f'{type(activation).__module__}.onnx'
        torch.onnx.export(net, (torch.randn(2, 4),), str(path), opset_version=17, dynamo=False)
        return [node.op_type for node in onnx.load(str(path)).graph.node]

    assert exported_ops(Mish()) == exported_ops(torch.nn.Mish())
