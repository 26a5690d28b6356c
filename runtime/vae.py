"""VAERuntime: encode, reparameterize, decode, sample, reconstruct and interpolate with onnxruntime.

Noise is drawn by numpy's Generator (never by an ONNX RandomNormal node), so the same seed, model and
variant give the same output on every run and every machine with the same onnxruntime. Each session is
built once; every method is a pure function of its arguments plus those sessions, and
InferenceSession.run is thread-safe, so one runtime can serve many threads.
"""

import threading

import numpy as np
import onnxruntime as ort

from .checks import check_count, check_images, check_latents
from .errors import InputError
from .model_dir import ModelDir, check_variant, read_model_dir
from .sessions import SessionConfig, create_session

# Images per onnxruntime call: bounds the graphs' intermediate tensors. Measured for 4096 samples
# (fp32 decoder, 2 shared cores): 460-550 us/image at every chunk size from 32 to 256 (per-call overhead
# is ~0.25 ms against ~15 ms of compute), while peak RSS grew 79 / 89 / 111 / 153 MiB for 32 / 64 / 128 / 256.
CHUNK = 32


class VAERuntime:
    """An exported edgevae model ready to run. Build it with VAERuntime.load()."""

    def __init__(self, model: ModelDir, variant: str, config: SessionConfig = SessionConfig(), chunk: int = CHUNK):
        self.model = model
        self.variant = variant
        self.config = config
        self.chunk = chunk
        self._sessions = {}  # {(concrete variant, graph): InferenceSession}, each built once
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir=None, variant: str = "fp32", threads: int | None = None, providers=None) -> "VAERuntime":
        """Check model_dir (None: the default model shipped in the package) and its files.

        variant: a variant in the manifest, or "auto" to follow the manifest's per-batch-size selection
        (fp32 when there is none). threads: intra-op threads per session (None: onnxruntime's default,
        one per physical core). providers: onnxruntime execution providers (default CPU).
        Raises ModelDirError for an unusable model dir (every file the variant may use is hashed here),
        InputError for bad threads/providers.

        Each session is built on first use (then ModelDirError if onnxruntime refuses the graph or its
        I/O differs from the manifest): `sample` never needs the encoder, and `auto` needs one decoder
        per batch size; a session costs 12-29 ms of a cold `edgevae sample` here.
        """
        if threads is not None:
            threads = check_count("threads", threads)
        providers = tuple(providers) if providers is not None else SessionConfig.providers
        unknown = [p for p in providers if p not in ort.get_available_providers()]
        if unknown or not providers:
            raise InputError(f"providers {list(providers)} are not available (onnxruntime has {ort.get_available_providers()})")
        model = read_model_dir(model_dir)
        check_variant(model, variant)
        runtime = cls(model, variant, SessionConfig(threads=threads, providers=providers))
        for v in model.variants_needed(variant):
            for graph in ("encoder", "decoder"):
                model.graph_bytes(v, graph)  # hash check now, so a changed file fails load, not a later call
        return runtime

    def _session(self, variant: str, graph: str):
        """The session of (variant, graph), built on first use; the lock makes that happen once even
        when several threads ask at the same moment."""
        key = (variant, graph)
        session = self._sessions.get(key)
        if session is None:
            with self._lock:
                session = self._sessions.get(key)
                if session is None:
                    session = self._sessions[key] = create_session(self.model, variant, graph, self.config)
        return session

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def image_shape(self) -> tuple:
        return self.model.image_shape

    def _run(self, graph: str, array: np.ndarray, outputs: list) -> None:
        """Run graph over array in chunks, writing into the preallocated outputs (one per graph output)."""
        session = self._session(self.model.variant_for(self.variant, len(array), graph), graph)
        name = self.model.io[graph]["inputs"][0]
        for start in range(0, len(array), self.chunk):
            stop = start + self.chunk
            for out, value in zip(outputs, session.run(None, {name: array[start:stop]})):
                out[start:stop] = value

    def encode(self, x: np.ndarray) -> tuple:
        """x float [N,1,28,28] in [0,1] -> (mu, logvar), each float32 [N,D]."""
        x = check_images(x, self.image_shape)
        mu = np.empty((len(x), self.latent_dim), np.float32)
        logvar = np.empty_like(mu)
        self._run("encoder", x, [mu, logvar])
        return mu, logvar

    def reparameterize(self, mu: np.ndarray, logvar: np.ndarray, seed=None) -> np.ndarray:
        """z = mu + exp(logvar/2) * eps, eps ~ N(0, I) from numpy.random.default_rng(seed)
        (Kingma & Welling 2014, eq. 10). seed: int, None (fresh entropy) or a numpy Generator."""
        mu = check_latents(mu, self.latent_dim, "mu")
        logvar = check_latents(logvar, self.latent_dim, "logvar")
        if mu.shape != logvar.shape:
            raise InputError(f"mu and logvar must have the same shape, got {list(mu.shape)} and {list(logvar.shape)}")
        eps = np.random.default_rng(seed).standard_normal(mu.shape, dtype=np.float32)
        with np.errstate(over="ignore"):
            z = mu + np.exp(0.5 * logvar) * eps
        if not np.isfinite(z).all():  # finite inputs, yet exp(logvar/2) or the sum overflowed float32
            raise InputError(f"z = mu + exp(logvar/2) * eps overflows float32: logvar up to {float(logvar.max()):g}, "
                             f"|mu| up to {float(np.abs(mu).max()):g}")
        return z

    def decode(self, z: np.ndarray) -> np.ndarray:
        """z float [N,D] -> x_hat float32 [N,1,28,28], Bernoulli means in [0,1]."""
        z = check_latents(z, self.latent_dim)
        x_hat = np.empty((len(z), *self.image_shape), np.float32)
        self._run("decoder", z, [x_hat])
        if not np.isfinite(x_hat).all():  # a finite but huge z (~1e38) overflows inside the graph: NaN out
            raise InputError(f"z holds values up to {float(np.abs(z).max()):g} in magnitude: too large for the decoder "
                             "(its output overflowed to NaN)")
        return x_hat

    def iter_samples(self, n: int, seed=None):
        """Yield n samples (z ~ N(0, I), decoded) as float32 [k,1,28,28] chunks of at most self.chunk,
        so any n runs in bounded memory. The concatenated chunks equal sample(n, seed)."""
        n = check_count("n", n)
        rng = np.random.default_rng(seed)
        # One variant for the whole request: `auto` selects by the total batch size, as sample() does.
        session = self._session(self.model.variant_for(self.variant, n, "decoder"), "decoder")
        name = self.model.io["decoder"]["inputs"][0]
        for start in range(0, n, self.chunk):
            # Drawn chunk by chunk from one Generator: the same stream as one draw of all n rows.
            z = rng.standard_normal((min(self.chunk, n - start), self.latent_dim), dtype=np.float32)
            yield session.run(None, {name: z})[0]

    def sample(self, n: int, seed=None) -> np.ndarray:
        """n images decoded from z ~ N(0, I): float32 [n,1,28,28]. Same seed, same images.
        An n whose result cannot be allocated raises InputError at once, before any decoding."""
        n = check_count("n", n)
        try:
            out = np.empty((n, *self.image_shape), np.float32)
        except MemoryError:
            raise InputError(f"n={n} samples need {n * 4 * int(np.prod(self.image_shape)) / 1e9:.3g} GB in one array; "
                             "stream them with iter_samples()") from None
        start = 0
        for chunk in self.iter_samples(n, seed):
            out[start:start + len(chunk)] = chunk
            start += len(chunk)
        return out

    def reconstruct(self, x: np.ndarray, seed=None) -> np.ndarray:
        """Decode x's posterior: its mean when seed is None, else one reparameterized draw."""
        mu, logvar = self.encode(x)
        return self.decode(mu if seed is None else self.reparameterize(mu, logvar, seed))

    def interpolate(self, x_a: np.ndarray, x_b: np.ndarray, steps: int = 8) -> np.ndarray:
        """Decode `steps` points on the straight line from mu(x_a) to mu(x_b), ends included:
        float32 [steps,1,28,28]. x_a, x_b: one image each, [1,28,28] or [1,1,28,28]."""
        steps = check_count("steps", steps, minimum=2)
        pair = []
        for name, x in (("x_a", x_a), ("x_b", x_b)):
            if isinstance(x, np.ndarray) and x.ndim == len(self.image_shape):
                x = x[None]
            x = check_images(x, self.image_shape, name)
            if len(x) != 1:
                raise InputError(f"{name} must be one image, got a batch of {len(x)}")
            pair.append(x)
        mu, _ = self.encode(np.concatenate(pair))
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]  # [steps,1]
        return self.decode((1.0 - t) * mu[0] + t * mu[1])
