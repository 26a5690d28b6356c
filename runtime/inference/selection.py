"""Which concrete variant runs a graph on a batch of a given size: the runtime's policy over the manifest's
`selection` and `static` fields (the contract, runtime/contract/manifest.py, only reads and checks them).

One rule picks a batch-size bucket everywhere in Python (`bucket`): the entry for the largest batch size <= the
batch, the smallest entry when the batch is below all of them. The manifest's selection and a device profile's
choice and timings (runtime/device/profile.py) are all tables keyed by such minimum batch sizes. (web/ has
the rule's JavaScript copy.)
"""

from ..contract.manifest import AUTO, FP32, GRAPH_NAMES, Manifest


def bucket(table: dict, batch: int):
    """The value of table (keys: batch sizes, as ints or decimal strings) for the largest key <= batch, or for
    the smallest key when batch is below all of them. KeyError on an empty table."""
    sizes = {int(key): key for key in table}
    if not sizes:
        raise KeyError(f"no batch size to choose from for a batch of {batch}")
    below = [size for size in sizes if size <= batch]
    return table[sizes[max(below) if below else min(sizes)]]


def variant_for(manifest: Manifest, variant: str, *, batch: int, graph: str) -> str:
    """The concrete variant to run graph on a batch of this size. `auto` follows the graph's selection (its
    `bucket` for batch); fp32 when the manifest has no selection for the graph. Any other name is returned."""
    if variant != AUTO:
        return variant
    choice = manifest.selection.get(graph)
    return bucket(choice, batch) if choice else FP32


def static_sibling(manifest: Manifest, variant: str, *, batch: int) -> str | None:
    """The fixed-shape variant of `variant` at exactly this batch size, or None."""
    return next((v for v, shape in manifest.static.items() if (shape.base, shape.batch) == (variant, batch)), None)


def with_static(manifest: Manifest, variants) -> list:
    """variants and their fixed-shape siblings (a runtime runs a sibling when a batch matches it), sorted."""
    return sorted(set(variants) | {v for v, shape in manifest.static.items() if shape.base in variants})


def variants_needed(manifest: Manifest, variant: str) -> list:
    """The concrete variants a runtime loaded with `variant` may run (with their fixed-shape siblings)."""
    if variant != AUTO:
        return with_static(manifest, {variant})
    chosen = {v for choice in manifest.selection.values() for v in choice.values()}
    missing = [g for g in GRAPH_NAMES if not manifest.selection.get(g)]
    return with_static(manifest, chosen | ({FP32} if missing else set()))
