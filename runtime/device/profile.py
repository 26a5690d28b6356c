"""Device profiles: what `edgevae tune` measured on this device, and how the runtime turns `variant="auto"` and
`threads="auto"` into a (variant, intra-op threads) per graph and batch size.

Resolution, first match wins (`edgevae info` prints which one is in force and why):
1. explicit choices always win: a named variant, and threads as an int (or None: onnxruntime's default);
2. a device profile that matches this model, onnxruntime version and CPU: for each graph and batch size the
   fastest measured (variant, threads), or what rules 3-4 pick when that is within 5% of it (tune.KEEP_MARGIN);
   with an explicit variant or threads, the fastest measured candidate that has it.
   Looked up in the user's cache, $XDG_CACHE_HOME/edgevae/profiles/<model key>.json (~/.cache when unset),
   then in the model dir's device-profile.json (`tune --in-model-dir`, for shipping a dir to a known device);
3. the manifest's selection (`quantize --select`, timed on the machine that quantized) for the variant, with
   the threads it was timed with (latency_ms.threads, at most the usable cores);
4. fallback: fp32, onnxruntime's default threads.
A profile made for another model, onnxruntime or CPU is ignored with one warning line on stderr. (Cache files
are named by the model key, so after a re-export the old model's profile is simply not looked up: a model dir's
own device-profile.json is the one that can go stale that way.)

Profiles are not part of the model dir's contract (device-profile.json is not listed in the manifest, since
tuning must not change the model's hash): they are read with the same safe reader, size-bounded and parsed
into the frozen dataclasses below, so a hostile one can at worst choose a slower listed variant.
"""

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from edgevae.cpu import cache_dir as edgevae_cache_dir, cpu_model

from ..contract.manifest import AUTO, BATCH_KEY, GRAPH_NAMES, SHA256, ModelDir
from ..contract.safe_files import escape, read_regular_file, sha256_hex
from ..contract.typed_json import doc, parse
from ..inference.selection import bucket, static_sibling, variant_for, variants_needed

FORMAT = "edgevae-device-profile/1"
IN_MODEL_DIR = "device-profile.json"
MAX_PROFILE_BYTES = 1 << 20
CPU_PROVIDER = "CPUExecutionProvider"
MAX_THREADS = 4096  # a thread count beyond any CPU this runs on
MAX_TEXT = 256  # characters of a variant name, version or CPU model (they are printed in `info` and warnings)
_warned: set = set()  # one warning per profile path per process


def _check_text(what: str, value: str) -> None:
    if not value or len(value) > MAX_TEXT:
        raise ValueError(f"{what} must be 1 to {MAX_TEXT} characters, got {len(value)}")


def _check_pick(variant: str, threads: int | None, provider: str | None) -> None:
    """A (variant, threads, provider) a profile may name: a concrete variant name, a thread count (None:
    default) and a provider name or None."""
    _check_text("variant", variant)
    if provider is not None:
        _check_text("provider", provider)
    if variant == AUTO:
        raise ValueError(f"variant {AUTO!r} is not a concrete variant")
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads {threads} is not a thread count (1..{MAX_THREADS} or null)")


@dataclass(frozen=True)
class Choice:
    """What to run for one graph and batch size."""

    variant: str = doc("a variant of the model dir")
    threads: int | None = doc("intra-op threads; null: onnxruntime's default")
    provider: str | None = doc("onnxruntime execution provider (the CPU's for nodes it does not take); null: the "
                               "runtime's providers (CPUExecutionProvider unless given)", default=None)

    def __post_init__(self):
        _check_pick(self.variant, self.threads, self.provider)


@dataclass(frozen=True)
class Timing:
    """One (variant, threads) measured by tune."""

    variant: str = doc("variant")
    threads: int | None = doc("intra-op threads; null: onnxruntime's default")
    median_ms: float = doc("median latency of one call, ms")
    p25_ms: float = doc("25th percentile, ms")
    p75_ms: float = doc("75th percentile, ms")
    calls: int = doc("timed calls")
    provider: str | None = doc("execution provider; null in profiles made before providers were timed: the CPU's",
                               default=None)

    def __post_init__(self):
        _check_pick(self.variant, self.threads, self.provider)
        ms = (self.p25_ms, self.median_ms, self.p75_ms)
        if not all(math.isfinite(t) for t in ms) or not 0 <= self.p25_ms <= self.median_ms <= self.p75_ms:
            raise ValueError(f"timings of {self.variant!r} x{self.threads} must be finite with 0 <= p25 <= median "
                             f"<= p75, got {list(ms)}")
        if self.calls < 1:
            raise ValueError(f"calls {self.calls} is not a positive count")


@dataclass(frozen=True)
class DeviceProfile:
    """device-profile.json: the fastest (variant, threads) per graph and batch size on one device."""

    format: str = doc(f'always "{FORMAT}"')
    model_key: str = doc("sha256 of the model's manifest as canonical JSON (see model_key)")
    onnxruntime: str = doc("onnxruntime version that was timed")
    cpu_model: str = doc("CPU model name (/proc/cpuinfo)")
    cores: int = doc("CPU cores the tuning process could use (its affinity mask)")
    choice: dict[str, dict[str, Choice]] = doc("{graph: {min batch size: choice}}")
    timings: dict[str, dict[str, tuple[Timing, ...]]] = doc("{graph: {batch size: every candidate timed}}")
    default: dict[str, dict[str, Choice]] = doc("{graph: {batch size: what the runtime ran before this profile}}")
    budget_s: float = doc("the time budget tune was given")
    edgevae_version: str = doc("edgevae version that tuned")

    def __post_init__(self):
        """Every field, so that nothing read from a profile can fail later (a bad one is ignored when read)."""
        if self.format != FORMAT:
            raise ValueError(f"format {self.format!r} is not {FORMAT!r}")
        if not SHA256.fullmatch(self.model_key):
            raise ValueError("model_key is not 64 lower-case hex digits")
        for field in ("onnxruntime", "cpu_model", "edgevae_version"):
            _check_text(field, getattr(self, field))
        if not 1 <= self.cores <= MAX_THREADS:
            raise ValueError(f"cores {self.cores} is not a core count")
        if not (math.isfinite(self.budget_s) and self.budget_s > 0):
            raise ValueError(f"budget_s {self.budget_s} is not a positive time")
        for name in ("choice", "timings", "default"):
            for graph, sizes in getattr(self, name).items():
                if graph not in GRAPH_NAMES:
                    raise ValueError(f"{name} names graph {graph[:40]!r}, not one of {', '.join(GRAPH_NAMES)}")
                bad = [size for size in sizes if not BATCH_KEY.fullmatch(size)]  # ASCII digits: '²'.isdigit() is True
                if bad:
                    raise ValueError(f"{name}.{graph} key {bad[0][:20]!r} is not a batch size (1-9 ASCII digits, no leading 0)")
        for graph, sizes in self.timings.items():
            for size, rows in sizes.items():
                picks = [(t.variant, t.threads, t.provider or CPU_PROVIDER) for t in rows]
                if not picks or len(set(picks)) != len(picks):
                    raise ValueError(f"timings.{graph}.{size} must list each timed (variant, threads, provider) once")
        for name in ("choice", "default"):  # each pick is one of the candidates timed (tune's table shows both)
            for graph, sizes in getattr(self, name).items():
                for size, c in sizes.items():
                    rows = self.timings.get(graph, {}).get(size, ())
                    pick = (c.variant, c.threads, c.provider or CPU_PROVIDER)  # null: the CPU's
                    if not any((t.variant, t.threads, t.provider or CPU_PROVIDER) == pick for t in rows):
                        raise ValueError(f"{name}.{graph}.{size} ({c.variant[:40]!r} x{c.threads}) is not in timings")


def model_key(model: ModelDir) -> str:
    """The profile's key for a model: the sha256 of its manifest as canonical JSON (sorted keys), which holds
    every graph's sha256, so a re-export or a re-quantization gets a new key."""
    return sha256_hex(json.dumps(model.manifest.to_json(), sort_keys=True, separators=(",", ":")).encode())


def device_identity() -> dict:
    import onnxruntime as ort

    from ..inference.checks import usable_cores

    return {"onnxruntime": ort.__version__, "cpu_model": cpu_model(), "cores": usable_cores()}


def cache_dir() -> Path:
    return edgevae_cache_dir("profiles")


def cache_path(model: ModelDir) -> Path:
    return cache_dir() / f"{model_key(model)}.json"


def write(path: Path, profile: DeviceProfile) -> Path:
    from edgevae.atomic import write_json

    parse(DeviceProfile, profile_json(profile))  # what we write must be what we would accept
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(path), profile_json(profile), mode=0o644)
    return Path(path)


def profile_json(profile: DeviceProfile) -> dict:
    from ..contract.typed_json import to_json

    return to_json(profile)


def _unique_keys(pairs: list) -> dict:
    """A JSON object's members, refusing a key given twice (json.loads would keep the last silently)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"key {twice[:40]!r} appears twice in one object")
    return obj


def _read(path: Path) -> DeviceProfile:
    """The profile at path: a regular file of at most MAX_PROFILE_BYTES, UTF-8 JSON, every field checked
    (DeviceProfile and its parts); ValueError, OSError, UnicodeDecodeError or RecursionError otherwise."""
    data = read_regular_file(path.parent, path.name, max_bytes=MAX_PROFILE_BYTES)
    return parse(DeviceProfile, json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys))


def _warn(path: Path, reason: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        print(f"edgevae: warning: device profile {escape(path)} ignored: {reason}", file=sys.stderr)


def mismatch(model: ModelDir, profile: DeviceProfile, *, identity: dict | None = None) -> str | None:
    """Why profile does not apply to model on this device (None: it applies)."""
    identity = identity or device_identity()
    if profile.model_key != model_key(model):
        return "made for another model (re-run edgevae tune)"
    for field in ("onnxruntime", "cpu_model", "cores"):
        if getattr(profile, field) != identity[field]:
            return f"made with {field} {escape(getattr(profile, field))}, this device has {escape(identity[field])}"
    picks = [c for sizes in profile.choice.values() for c in sizes.values()]
    picks += [t for sizes in profile.timings.values() for ts in sizes.values() for t in ts]
    many = [c.threads for c in picks if (c.threads or 0) > identity["cores"]]
    if many:
        return f"asks for {many[0]} threads, this process may use {identity['cores']} cores"
    unknown = [c.variant for c in picks if c.variant not in model.manifest.variants]
    if unknown:
        return f"names variant {escape(unknown[0])}, which the model dir lacks"
    import onnxruntime as ort

    absent = [c.provider for c in picks if c.provider is not None and c.provider not in ort.get_available_providers()]
    if absent:
        return f"names execution provider {escape(absent[0])}, which this onnxruntime lacks"
    return None


def find(model: ModelDir) -> tuple[DeviceProfile | None, Path | None]:
    """The first applicable profile (cache, then the model dir) and its path; (None, None) when there is none.
    Unreadable, malformed, stale or foreign profiles are skipped with one warning line each."""
    identity = None
    for path in (cache_path(model), model.path / IN_MODEL_DIR):
        if not path.exists() and not path.is_symlink():
            continue
        try:
            profile = _read(path)
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as err:
            _warn(path, f"unreadable ({escape(str(err).splitlines()[0][:100]) if str(err) else type(err).__name__})")
            continue
        identity = identity or device_identity()
        reason = mismatch(model, profile, identity=identity)
        if reason:
            _warn(path, reason)
            continue
        return profile, path
    return None, None


@dataclass(frozen=True)
class Plan:
    """How a runtime picks (variant, threads) per graph and batch size; `why` says which rule is in force."""

    variant: str  # as asked: a variant or "auto"
    threads: object  # as asked: an int, None (onnxruntime's default) or "auto"
    profile: DeviceProfile | None = None
    profile_path: Path | None = None

    @property
    def why(self) -> str:
        if self.variant != AUTO and self.threads != AUTO:
            return "variant and threads given explicitly"
        if self.profile is not None:
            return f"device profile {escape(self.profile_path)} (edgevae tune on this device)"
        return ("no device profile: the manifest's selection and its threads, else fp32 with onnxruntime's "
                "default threads (run edgevae tune)")

    def variants_needed(self, model: ModelDir) -> list:
        """Every concrete variant this plan may run (their files are hashed when a runtime loads)."""
        needed = set(variants_needed(model.manifest, self.variant))
        if self.profile is not None and self.variant == AUTO:
            needed |= {c.variant for sizes in self.profile.choice.values() for c in sizes.values()}
            needed |= {t.variant for sizes in self.profile.timings.values() for ts in sizes.values() for t in ts
                       if t.variant in model.manifest.variants}
        return sorted(needed)

    def choose(self, model: ModelDir, graph: str, *, batch: int) -> Choice:
        """The (variant, threads, provider) to run graph on a batch of this size. A fixed-shape variant that `auto`
        picked runs only on a batch of its own size, its base on the others (one asked for by name is run on
        multiples of its batch, or refused: VAERuntime). Without a profile, a variant's fixed-shape sibling runs
        whenever the batch matches it; with one, tune timed both at that batch and the profile says which."""
        choice = self._choose(model, graph, batch)
        static = model.manifest.static.get(choice.variant)
        if static is not None and static.batch != batch and choice.variant != self.variant:
            return dataclasses.replace(choice, variant=static.base)
        sibling = static_sibling(model.manifest, choice.variant, batch=batch)
        if sibling is not None and self.profile is None:
            return dataclasses.replace(choice, variant=sibling)
        return choice

    def _choose(self, model: ModelDir, graph: str, batch: int) -> Choice:
        if self.variant != AUTO and self.threads != AUTO:
            return Choice(self.variant, self.threads)
        if self.profile is not None and graph in self.profile.choice and self.profile.choice[graph]:
            if self.variant == AUTO and self.threads == AUTO:
                return bucket(self.profile.choice[graph], batch)
            timings = [t for t in bucket(self.profile.timings.get(graph) or {"1": ()}, batch)
                       if (self.variant == AUTO or t.variant == self.variant)
                       and (self.threads == AUTO or t.threads == self.threads)]
            if timings:
                best = min(timings, key=lambda t: t.median_ms)
                return Choice(best.variant, best.threads, best.provider)
        variant = variant_for(model.manifest, self.variant, batch=batch, graph=graph)
        if self.threads != AUTO:
            return Choice(variant, self.threads)
        follows_selection = self.variant == AUTO and bool(model.manifest.selection.get(graph))
        return Choice(variant, manifest_threads(model) if follows_selection else None)


def manifest_threads(model: ModelDir) -> int | None:
    """The threads quantize --select timed with, at most the usable cores (None: onnxruntime's default)."""
    from ..inference.checks import usable_cores

    latency = model.manifest.latency_ms
    if latency is None or latency.threads is None:
        return None
    return min(latency.threads, usable_cores())


def plan(model: ModelDir, variant: str, *, threads) -> Plan:
    """The Plan for a runtime asked for variant and threads (see the module docstring)."""
    if variant != AUTO and threads != AUTO:
        return Plan(variant, threads)
    profile, path = find(model)
    return Plan(variant, threads, profile, path)
