"""VAERuntime: encode, reparameterize, decode, sample, reconstruct and interpolate with onnxruntime.

Noise is drawn by numpy's Generator (never by an ONNX RandomNormal node), so the same seed, model and
variant give the same output on every run and every machine with the same onnxruntime. Each session is
built once; every method is a pure function of its arguments plus those sessions, and
InferenceSession.run is thread-safe, so one runtime can serve many threads.
"""

import dataclasses
import math
import threading
import time

import numpy as np
import onnxruntime as ort

from .checks import check_count, check_images, check_latent_shape, check_latents, check_threads
from .graph_pair import check_outputs
from ..contract.conventions import to_pixels, to_unit
from ..device.profile import Choice, Plan, plan as make_plan
from ..contract.errors import InputError
from .latent import reparameterize, rng_of, standard_normal
from ..contract.manifest import AUTO, GRAPH_NAMES, ModelDir, load
from .run_guard import check_timeout, default_timeout
from ..contract.safe_files import escape
from .sessions import DEFAULT_PROVIDERS, SessionConfig, create_session, run_checked

# Images per onnxruntime call: bounds the graphs' intermediate tensors. Larger chunks were no faster per
# image but grew peak memory (docs/results.md).
CHUNK = 32
# ...and at most this many output values per call (4 MB of float32), so that a 512 x 512 RGB decoder, whose
# intermediate tensors are ~100x its output, runs one image at a time instead of 32 (several GB).
CHUNK_VALUES = 1 << 20
DEFAULT_TILE = 32  # latent pixels a side: a 256 x 256 image at downsampling 8
NO_PRIOR = "this model has no prior to sample from; decode latents with `edgevae decode`"
DEFAULT_VARIANT = AUTO  # the CLI's default too: one seed gives the same images through both
DEFAULT_THREADS = AUTO  # the device profile's choice, else the manifest's, else onnxruntime's (device_profile.py)
MAX_RESULT_BYTES = 1 << 32  # one result array; more is refused up front (stream with iter_samples instead)


def _seeded(seed) -> np.random.Generator:
    try:
        return rng_of(seed)
    except (TypeError, ValueError) as err:
        raise InputError(str(err)) from None


def _allocate(shape: tuple, what: str) -> np.ndarray:
    """An empty float32 array of shape, or InputError when it would exceed MAX_RESULT_BYTES."""
    size = 4 * math.prod(int(d) for d in shape)  # Python ints: no overflow; np.prod cost 20 us a call
    if size > MAX_RESULT_BYTES:
        raise InputError(f"{what} would need {size / 1e9:.3g} GB in one array (at most {MAX_RESULT_BYTES / 1e9:.3g}); "
                         "ask for fewer or stream them (iter_samples, or --out FILE.npy on the CLI)")
    return np.empty(shape, np.float32)


def _tile_starts(length: int, tile: int, overlap: int) -> list:
    """Start positions of tiles of `tile` covering [0, length) with at least `overlap` in common; the last flush
    with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def _ramp(start: int, size: int, length: int, overlap: int, margin: int, factor: int) -> np.ndarray:
    """One tile's blending weight along one axis, in output pixels: 0 over `margin` latent pixels at each side
    shared with a neighbour, then a linear ramp to 1 across the rest of the overlap."""
    pixels = np.arange(size * factor, dtype=np.float32) + 0.5
    span = max(1, (overlap - 2 * margin) * factor)
    weight = np.ones(size * factor, np.float32)
    if start > 0:
        weight = np.minimum(weight, np.clip((pixels - margin * factor) / span, 0, 1))
    if start + size < length:
        weight = np.minimum(weight, np.clip((pixels[::-1] - margin * factor) / span, 0, 1))
    return weight


def _gather(out: np.ndarray, chunks) -> np.ndarray:
    """out filled row by row from the chunks of a streaming method (iter_samples, iter_interpolate)."""
    start = 0
    for chunk in chunks:
        out[start:start + len(chunk)] = chunk
        start += len(chunk)
    return out


class VAERuntime:
    """An exported edgevae model ready to run. Build it with VAERuntime.load()."""

    def __init__(self, model: ModelDir, variant: str, *, config: SessionConfig = SessionConfig(), chunk: int = CHUNK,
                 plan: Plan | None = None):
        self.model = model
        self.variant = variant
        self.config = config
        self.chunk = chunk
        self.plan = plan or Plan(variant, config.threads)  # (variant, threads) per graph and batch size
        # {(concrete variant, graph, threads): InferenceSession}, each built once. A device profile may pick other
        # threads (or variants) per batch size, so one runtime can hold a few sessions per graph, built on first use.
        self._sessions = {}
        self._choices = {}  # {(graph, batch size): Choice}; a plain dict: a race only computes one twice
        self._cost = {}  # {session key: fastest seconds per input seen}: the default deadline's measure
        self._lock = threading.Lock()
        self.providers_given = False  # True: config.providers for every session, whatever a profile chose

    @classmethod
    def load(cls, model_dir=None, variant: str = DEFAULT_VARIANT, *, threads: int | str | None = DEFAULT_THREADS,
             providers=None, timeout_s: float | None = None, spinning: bool = False, trust=None) -> "VAERuntime":
        """Check model_dir (None: the default model shipped in the package) and its files.

        variant: a variant in the manifest, or "auto" (the default, as on the CLI) to follow the manifest's
        per-graph, per-batch-size selection (fp32 where there is none). threads: intra-op threads per session
        (None: onnxruntime's default, one per physical core), or "auto" (the default): both "auto"s follow this
        device's profile from `edgevae tune` first, then the manifest, then fp32 with onnxruntime's default
        (runtime/device/profile.py); explicit values always win. providers: onnxruntime execution providers
        (default: the device profile's per graph and batch size, else CPU). timeout_s: the most one onnxruntime
        call may take (None: 100x the fastest call measured so far, at least 10 s; 300 s for a session's first
        call: runtime/inference/run_guard.py), after which the call is terminated and raises ModelDirError. spinning: let
        onnxruntime's idle intra-op threads busy-wait for work (a little lower latency on an idle machine, a core
        burnt and far worse latency on a busy one; default off). trust: a PEM public key; the dir must then carry
        a signature by its private key (`edgevae sign`) over the manifest and every file it names, checked
        before anything else (needs the `sign` extra; runtime/contract/signing.py). Raises ModelDirError for an unusable
        model dir or a missing or wrong signature (every file the variant may use is hashed here), InputError
        for a bad variant, threads, providers or key.

        Each session is built on first use (then ModelDirError if onnxruntime refuses the graph or its
        boundary differs from the manifest): `sample` never needs the encoder.
        """
        if threads is not None and threads != AUTO:
            threads = check_threads(threads)
        if providers is not None and (not isinstance(providers, (list, tuple)) or not all(isinstance(p, str) for p in providers)):
            raise InputError(f"providers must be a list of provider names, got {escape(repr(providers))[:60]}")
        timeout_s = check_timeout(timeout_s)
        if not isinstance(spinning, bool):
            raise InputError(f"spinning must be True or False, got {escape(repr(spinning))[:60]}")
        given = providers is not None
        providers = tuple(providers) if given else SessionConfig.providers
        unknown = [p for p in providers if p not in ort.get_available_providers()]
        if unknown or not providers:
            raise InputError(f"providers {escape(list(providers))} are not available (onnxruntime has {ort.get_available_providers()})")
        model = load(model_dir)
        if trust is not None:
            from ..contract.signing import check_signature

            check_signature(model, trust)
        model.check_variant(variant)
        config = SessionConfig(threads=None if threads == AUTO else threads, providers=providers, timeout_s=timeout_s,
                               spinning=spinning)
        runtime = cls(model, variant, config=config, plan=make_plan(model, variant, threads=threads))
        runtime.providers_given = given
        for v in runtime.plan.variants_needed(model):
            for graph in GRAPH_NAMES:
                model.graph_bytes(v, graph)  # hash check now, so a changed file fails load, not a later call
        return runtime

    def _session(self, choice: Choice, graph: str):
        """The session of (variant, graph, threads), built on first use; the lock makes that happen once even
        when several threads ask at the same moment."""
        providers = self.config.providers
        if choice.provider is not None and not self.providers_given:  # the profile's provider, the CPU for the rest
            providers = tuple(dict.fromkeys((choice.provider, *DEFAULT_PROVIDERS)))
        key = (choice.variant, graph, choice.threads, providers)
        session = self._sessions.get(key)
        if session is None:
            with self._lock:
                session = self._sessions.get(key)
                if session is None:
                    config = dataclasses.replace(self.config, threads=choice.threads, providers=providers)
                    session = self._sessions[key] = create_session(self.model, choice.variant, graph=graph, config=config)
        return session

    def choice(self, graph: str, batch: int) -> Choice:
        """The (variant, threads) this runtime runs graph with on a batch of this size (memoized: resolving it
        on every call is a visible share of a batch-1 decode: docs/results.md)."""
        key = (graph, batch)
        found = self._choices.get(key)
        if found is None:
            found = self.plan.choose(self.model, graph, batch=batch)
            if len(self._choices) < 4096:  # bounded: a server seeing every batch size must not grow without end
                self._choices[key] = found
        return found

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def image_shape(self) -> tuple:
        return self.model.image_shape

    @property
    def latent_shape(self) -> tuple:
        """One item's latent at image_shape: (D,) or (C, h, w)."""
        return self.model.latent_shape

    @property
    def conventions(self):
        """The model's declared conventions (runtime/contract/manifest.py Conventions), which every method applies."""
        return self.model.conventions

    def _rows(self, item_shape: tuple) -> int:
        """Items per onnxruntime call for items whose larger end (latent or image) is item_shape."""
        return max(1, min(self.chunk, CHUNK_VALUES // max(1, math.prod(item_shape))))

    def _check_images(self, x, name: str = "x") -> np.ndarray:
        return check_images(x, self.image_shape, name=name, multiple_of=self.conventions.downsampling)

    def _check_latents(self, z, name: str = "z") -> np.ndarray:
        return check_latents(z, self.latent_shape, name=name, any_size=self.conventions.downsampling is not None)

    def _to_graph_pixels(self, x: np.ndarray) -> np.ndarray:
        """Images in [0, 1] -> the encoder's pixel range."""
        return to_pixels(x, self.conventions)

    def _to_graph_latent(self, z: np.ndarray) -> np.ndarray:
        """Latents in the model's convention -> the decoder's input: z / latent_scale + latent_shift."""
        c = self.conventions
        if (c.latent_scale, c.latent_shift) == (1.0, 0.0):
            return z
        return (z / np.float32(c.latent_scale) + np.float32(c.latent_shift)).astype(np.float32)

    def _from_graph_latent(self, mu: np.ndarray, logvar: np.ndarray | None) -> tuple:
        """The encoder's (mu, logvar) -> the model's convention: (mu - shift) x scale, logvar + 2 ln scale."""
        c = self.conventions
        if (c.latent_scale, c.latent_shift) == (1.0, 0.0):
            return mu, logvar
        mu = ((mu - np.float32(c.latent_shift)) * np.float32(c.latent_scale)).astype(np.float32)
        if logvar is not None:
            logvar = (logvar + np.float32(2.0 * math.log(c.latent_scale))).astype(np.float32)
        return mu, logvar

    def _to_unit(self, y: np.ndarray) -> np.ndarray:
        """The decoder's x_hat (checked finite) -> images in [0, 1], in place: the declared head's mapping."""
        return to_unit(y, self.conventions)

    def _run_chunk(self, choice: Choice, graph: str, feed: np.ndarray) -> list:
        session = self._session(choice, graph)
        key = (choice.variant, graph, choice.threads, choice.provider)
        timeout_s = self.config.timeout_s or default_timeout(self._cost.get(key), len(feed))
        start = time.perf_counter()
        label = self.model.file_label(choice.variant, graph)
        values = run_checked(self.model, label, session=session, feed={self.model.manifest.io[graph].inputs[0]: feed}, timeout_s=timeout_s)
        per_input = (time.perf_counter() - start) / len(feed)
        if per_input < self._cost.get(key, math.inf):
            self._cost[key] = per_input
        values = check_outputs(self.model, label, graph=graph, values=values, feed=feed)  # a hostile graph hands no garbage on
        if graph == "decoder":
            values[0] = self._to_unit(values[0])
        return values

    def _step(self, choice: Choice, n: int, rows: int) -> int:
        """Rows per onnxruntime call for a request of n rows: rows (see _rows), or a fixed-shape variant's own batch,
        of which n must then be a multiple (a batch is never padded to fit a fixed shape)."""
        static = self.model.manifest.static.get(choice.variant)
        if static is None:
            return rows
        if n % static.batch:
            raise InputError(f"variant {escape(choice.variant)} has a fixed batch of {static.batch}; {n} rows are not a "
                             f"multiple of it (use variant {escape(static.base)} or auto for other sizes)")
        return static.batch

    def _run(self, graph: str, array: np.ndarray, outputs: list) -> None:
        """Run graph over array in chunks, writing into the preallocated outputs (one per graph output)."""
        choice = self.choice(graph, len(array))
        rows = self._rows(max(array.shape[1:], outputs[0].shape[1:], key=math.prod))
        step = self._step(choice, len(array), rows)
        for start in range(0, len(array), step):
            stop = start + step
            for out, value in zip(outputs, self._run_chunk(choice, graph, array[start:stop])):
                out[start:stop] = value

    def encode(self, x: np.ndarray) -> tuple:
        """x float [N,C,H,W] in [0,1] -> (mu, logvar), each float32 [N, *latent_shape] in the model's latent
        convention; a deterministic encoder (conventions.posterior) gives (z, None)."""
        x = self._check_images(x)
        mu = _allocate((len(x), *self.model.latent_shape_for(x.shape[2:])), "mu")
        outputs = [mu] + [np.empty_like(mu) for _ in self.model.manifest.io["encoder"].outputs[1:]]
        self._run("encoder", self._to_graph_pixels(x), outputs)
        return self._from_graph_latent(mu, outputs[1] if len(outputs) == 2 else None)

    def reparameterize(self, mu: np.ndarray, logvar: np.ndarray | None, *, seed=None) -> np.ndarray:
        """z = mu + exp(logvar/2) * eps, eps ~ N(0, I) from numpy.random.default_rng(seed)
        (Kingma & Welling 2014, eq. 10). seed: int >= 0, None (fresh entropy) or a numpy Generator.
        A deterministic encoder's (z, None): z itself."""
        rng = _seeded(seed)
        mu = self._check_latents(mu, "mu")
        if not self.conventions.stochastic:
            if logvar is not None:
                raise InputError("this model's encoder is deterministic: pass logvar=None (encode returns it so)")
            return mu
        logvar = self._check_latents(logvar, "logvar")
        if mu.shape != logvar.shape:
            raise InputError(f"mu and logvar must have the same shape, got {list(mu.shape)} and {list(logvar.shape)}")
        z = reparameterize(mu, logvar, eps=standard_normal(rng, mu.shape))
        if not np.isfinite(z).all():  # finite inputs, yet exp(logvar/2) or the sum overflowed float32
            raise InputError(f"z = mu + exp(logvar/2) * eps overflows float32: logvar up to {float(logvar.max()):g}, "
                             f"|mu| up to {float(np.abs(mu).max()):g}")
        return z

    def decode(self, z: np.ndarray) -> np.ndarray:
        """z float [N, *latent_shape] in the model's latent convention -> x_hat float32 [N,C,H,W] in [0,1]
        (Bernoulli means, or the declared head mapped onto [0, 1])."""
        z = self._check_latents(z)
        x_hat = _allocate((len(z), *self.model.image_shape_for(z.shape[2:])), "x_hat")
        self._run("decoder", self._to_graph_latent(z), [x_hat])
        return x_hat

    def decode_tiled(self, z: np.ndarray, *, tile: int = DEFAULT_TILE, overlap: int | None = None) -> np.ndarray:
        """decode(z) of a fully convolutional model, tile by tile, so that the decoder's intermediate tensors are
        bounded by a tile x tile latent (times N) whatever the latent's size; the output is the same [N,C,H,W].

        Tiles of tile x tile latent pixels overlap by `overlap` (default: twice the declared receptive field, else
        tile // 4). Across an overlap, each tile's outer `margin` latent pixels (the receptive field, else overlap
        // 4), which saw zero padding instead of their neighbours, get weight 0, then a linear ramp hands over to
        the next tile. With a declared receptive field r and overlap >= 2r every output pixel comes from tiles
        that saw all its context, so the result equals decode(z) up to float rounding; otherwise the seams are
        blended and the difference is the model's (measured in docs/results.md)."""
        factor = self.conventions.downsampling
        if factor is None:
            raise InputError("tiled decode needs a fully convolutional model (conventions.downsampling); this one "
                             "decodes one fixed size")
        tile = check_count("tile", tile)
        field = self.conventions.receptive_field
        overlap = (2 * field if field else tile // 4) if overlap is None else check_count("overlap", overlap, minimum=0)
        if overlap >= tile:
            raise InputError(f"overlap {overlap} must be smaller than tile {tile}")
        margin = min(field if field else overlap // 4, overlap // 2)
        z = self._check_latents(z)
        n, _, h, w = z.shape
        out = _allocate((n, *self.model.image_shape_for((h, w))), "x_hat")
        out.fill(0.0)
        total = np.zeros(out.shape[2:], np.float32)
        graph_z = self._to_graph_latent(z)
        for top in _tile_starts(h, tile, overlap):
            for left in _tile_starts(w, tile, overlap):
                part = np.ascontiguousarray(graph_z[:, :, top:top + tile, left:left + tile])
                image = _allocate((n, *self.model.image_shape_for(part.shape[2:])), "tile")
                self._run("decoder", part, [image])
                weight = np.outer(_ramp(top, part.shape[2], h, overlap, margin, factor),
                                  _ramp(left, part.shape[3], w, overlap, margin, factor))
                rows, cols = slice(top * factor, top * factor + image.shape[2]), slice(left * factor, left * factor + image.shape[3])
                out[:, :, rows, cols] += weight * image
                total[rows, cols] += weight
        out /= total
        return out

    def iter_decode(self, z: np.ndarray):
        """decode(z) as float32 [k,C,H,W] chunks, for any N in bounded memory (z may be a np.load memmap)."""
        if not isinstance(z, np.ndarray) or z.ndim == 0 or len(z) == 0:
            self._check_latents(z)  # raises the one-line InputError for it
        # shape and dtype before any work (z is not read whole); each chunk's values are checked as it is read
        check_latent_shape(z.shape, self.latent_shape, name="z", any_size=self.conventions.downsampling is not None)
        self._check_latents(z[:1])
        choice = self.choice("decoder", len(z))
        rows = self._rows(self.model.image_shape_for(z.shape[2:]))
        for start in range(0, len(z), rows):
            part = self._check_latents(z[start:start + rows])
            yield self._run_chunk(choice, "decoder", self._to_graph_latent(part))[0]

    def iter_samples(self, n: int, seed=None):
        """Yield n samples (z ~ N(0, I), decoded) as float32 [k,C,H,W] chunks of at most self.chunk,
        so any n runs in bounded memory. The concatenated chunks equal sample(n, seed).
        InputError for a model that declares no prior (conventions.prior)."""
        n = check_count("n", n)
        rng = _seeded(seed)
        if self.conventions.prior == "none":
            raise InputError(NO_PRIOR)
        # One variant for the whole request: `auto` selects by the total batch size, as sample() does.
        choice = self.choice("decoder", n)
        step = self._step(choice, n, self._rows(self.image_shape))
        for start in range(0, n, step):
            z = standard_normal(rng, (min(step, n - start), *self.latent_shape))  # the prior is on the graph's latent
            yield self._run_chunk(choice, "decoder", z)[0]

    def sample(self, n: int, seed=None) -> np.ndarray:
        """n images decoded from z ~ N(0, I): float32 [n,C,H,W]. Same seed, same images.
        An n whose result is too large raises InputError at once, before any decoding; so does a model
        without a prior (conventions.prior "none": decode latents instead)."""
        n = check_count("n", n)
        if self.conventions.prior == "none":
            raise InputError(NO_PRIOR)
        return _gather(_allocate((n, *self.image_shape), f"n={n} samples"), self.iter_samples(n, seed))

    def reconstruct(self, x: np.ndarray, seed=None) -> np.ndarray:
        """Decode x's posterior: its mean when seed is None, else one reparameterized draw."""
        if seed is not None:
            _seeded(seed)  # a bad seed is refused before any work
        mu, logvar = self.encode(x)
        return self.decode(mu if seed is None else self.reparameterize(mu, logvar, seed=seed))

    def _line_ends(self, x_a: np.ndarray, x_b: np.ndarray) -> np.ndarray:
        """mu of x_a and x_b: float32 [2, *latent]."""
        pair = []
        for name, x in (("x_a", x_a), ("x_b", x_b)):
            if isinstance(x, np.ndarray) and x.ndim == len(self.image_shape):
                x = x[None]
            x = self._check_images(x, name)
            if len(x) != 1:
                raise InputError(f"{name} must be one image, got a batch of {len(x)}")
            pair.append(x)
        if pair[0].shape != pair[1].shape:
            raise InputError(f"x_a and x_b must have the same shape, got {list(pair[0].shape)} and {list(pair[1].shape)}")
        mu, _ = self.encode(np.concatenate(pair))
        return mu

    def iter_interpolate(self, x_a: np.ndarray, x_b: np.ndarray, *, steps: int = 8):
        """interpolate() chunk by chunk (float32 [k,C,H,W] each), for any number of steps in bounded memory."""
        steps = check_count("steps", steps, minimum=2)
        mu = self._line_ends(x_a, x_b)
        choice = self.choice("decoder", steps)
        step = self._step(choice, steps, self._rows(self.model.image_shape_for(mu.shape[2:])))
        for start in range(0, steps, step):
            t = np.arange(start, min(start + step, steps), dtype=np.float64) / (steps - 1)
            t = t.reshape(-1, *[1] * (mu.ndim - 1))  # [k, 1] or [k, 1, 1, 1]
            z = ((1.0 - t) * mu[0] + t * mu[1]).astype(np.float32)
            yield self._run_chunk(choice, "decoder", self._to_graph_latent(z))[0]

    def interpolate(self, x_a: np.ndarray, x_b: np.ndarray, *, steps: int = 8) -> np.ndarray:
        """Decode `steps` points on the straight line from mu(x_a) to mu(x_b), ends included:
        float32 [steps,C,H,W]. x_a, x_b: one image each, [C,H,W] or [1,C,H,W]."""
        steps = check_count("steps", steps, minimum=2)
        frame = self.image_shape if self.conventions.downsampling is None else np.shape(x_a)[-3:]
        return _gather(_allocate((steps, *frame), f"steps={steps} frames"), self.iter_interpolate(x_a, x_b, steps=steps))
