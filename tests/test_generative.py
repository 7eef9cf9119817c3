"""Autoencoder and VAE: the KL and reparameterisation, PNG grids, and 20-step runs on a
mixed mesh that write their image grids."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from bigmodels import images, train
from bigmodels.models.autoencoder import VAE
from bigmodels.tasks.autoencode import gaussian_kl, reconstruction_nats
from helpers import experiment_config, read_metrics


_config = experiment_config


def test_gaussian_kl_matches_a_monte_carlo_estimate():
    mean, logvar = jnp.array([[0.5, -1.0, 2.0]]), jnp.array([[0.3, -0.7, 0.0]])
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.key(0), (200_000, 3))
    log_q = jax.scipy.stats.norm.logpdf(z, mean, jnp.exp(0.5 * logvar)).sum(-1)
    log_p = jax.scipy.stats.norm.logpdf(z).sum(-1)
    assert abs(float(gaussian_kl(mean, logvar)[0]) - float(jnp.mean(log_q - log_p))) < 0.02
    assert float(gaussian_kl(jnp.zeros((1, 4)), jnp.zeros((1, 4)))[0]) == 0.0


def test_reconstruction_is_bernoulli_cross_entropy_in_nats():
    image = jnp.array([[[[1.0], [0.0]], [[0.25], [1.0]]]])         # 1 x 2 x 2 x 1
    logits = jnp.zeros_like(image)                                  # p = 0.5 everywhere
    np.testing.assert_allclose(reconstruction_nats(logits, image), [4 * np.log(2)], rtol=1e-6)


def test_reparameterised_samples_have_the_encoded_moments_and_carry_gradients():
    model = VAE(image_shape=(4, 4, 1), latent_dim=3, hidden=(8,))
    x = jax.random.uniform(jax.random.key(1), (1, 4, 4, 1))
    params = jax.jit(model.init)({"params": jax.random.key(0), "latent": jax.random.key(0)}, x)
    mean, logvar = jax.jit(lambda p: model.apply(p, x, method=model.encode))(params)
    sample = jax.vmap(lambda k: model.apply(params, mean, logvar, method=model.sample_latent,
                                            rngs={"latent": k}))
    zs = jax.jit(sample)(jax.random.split(jax.random.key(2), 4000))
    np.testing.assert_allclose(zs.mean(0), mean, atol=0.1)
    np.testing.assert_allclose(jnp.log(zs.var(0)), logvar, atol=0.1)

    def loss(p):
        logits = model.apply(p, x, rngs={"latent": jax.random.key(3)})[0]
        return reconstruction_nats(logits, x).sum()
    grads = jax.jit(jax.grad(loss))(params)["params"]["encoder"]
    # The reconstruction reaches the encoder only through the sampled z.
    assert float(sum(jnp.abs(g).sum() for g in jax.tree.leaves(grads))) > 0


def test_png_round_trips_through_pillow():
    grid = images.grid(np.random.default_rng(0).random((5, 6, 6, 1)), columns=3)
    assert grid.shape == (15, 22, 1)
    decoded = np.asarray(Image.open(io.BytesIO(images.png_bytes(grid, scale=1))))
    np.testing.assert_array_equal(decoded, grid[..., 0])


@pytest.mark.parametrize("name,metric", [("digits_autoencoder", "eval/mse"),
                                         ("digits_vae", "eval/elbo")])
def test_generative_models_train_on_a_mixed_mesh_and_write_grids(name, metric, tmp_path):
    config = _config(name, total_steps=20, log_every=1, eval_every=10)
    config.optim.update(lr=3e-3, warmup_steps=0, schedule="constant")
    config.model.update(hidden=(64,), latent_dim=4)
    config.mesh.update(data=2, fsdp=2, tensor=2)
    result = train.run(config, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert np.mean([losses[s] for s in range(16, 21)]) < 0.9 * losses[1]
    assert metric in result.eval_metrics
    written = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert "reconstructions_000010.png" in written and "reconstructions_000020.png" in written
    if name == "digits_vae":
        assert "samples_000020.png" in written and result.eval_metrics["eval/kl"] > 0
        elbo = read_metrics(str(tmp_path), "eval/elbo")
        assert elbo[20] > elbo[10]
