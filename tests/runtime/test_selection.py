"""runtime/inference/selection.py: the one batch-bucket rule, and which concrete variant `auto` and the fixed-shape
variants make a runtime run, on the shipped model's manifest (no torch)."""

import dataclasses

import pytest

from edgevae.runtime.contract import manifest as contract
from edgevae.runtime.device.profile import Choice, Plan
from edgevae.runtime.inference.selection import bucket, static_sibling, variant_for, variants_needed, with_static


def _with(model: contract.ModelDir, **fields) -> contract.ModelDir:
    """model with manifest fields replaced (the Manifest's own checks run again)."""
    return contract.ModelDir(model.path, dataclasses.replace(model.manifest, **fields))


def _with_static(model: contract.ModelDir, **shapes) -> contract.ModelDir:
    """model plus fixed-shape variants {name: (base, batch)}, listed with their base's files."""
    variants = dict(model.manifest.variants) | {name: model.manifest.variants[base] for name, (base, _) in shapes.items()}
    static = {name: contract.StaticShape(base=base, batch=batch) for name, (base, batch) in shapes.items()}
    return _with(model, variants=variants, static=static)


@pytest.mark.parametrize("batch, expected", [(1, "a"), (3, "a"), (4, "b"), (63, "b"), (64, "c"), (10**6, "c")])
def test_bucket_is_the_largest_key_at_or_below_the_batch(batch, expected):
    assert bucket({"64": "c", "1": "a", "4": "b"}, batch) == expected  # key order does not matter
    assert bucket({64: "c", 1: "a", 4: "b"}, batch) == expected  # int keys too


def test_bucket_below_every_key_is_the_smallest_and_an_empty_table_is_refused():
    assert bucket({"8": "small", "256": "big"}, 1) == "small"
    assert bucket({"8": "small", "256": "big"}, 255) == "small"
    with pytest.raises(KeyError, match="no batch size"):
        bucket({}, 1)


def test_auto_follows_the_shipped_selection_per_graph_and_batch(shipped):
    selection = shipped.manifest.selection
    for graph, choice in selection.items():
        for size, variant in choice.items():
            assert variant_for(shipped.manifest, contract.AUTO, batch=int(size), graph=graph) == variant
    # between two keys: the lower key's variant; the shipped decoder runs fp32 at 1 and int8 from 8 on
    assert [variant_for(shipped.manifest, "auto", batch=n, graph="decoder") for n in (1, 7, 8, 9, 5000)] == \
        [selection["decoder"]["1"]] * 2 + [selection["decoder"]["8"]] * 3
    assert variant_for(shipped.manifest, "fp32", batch=64, graph="decoder") == "fp32"  # a named variant is never second-guessed


def test_without_a_selection_auto_runs_fp32_and_needs_only_it(shipped):
    bare = _with(shipped, selection={}, latency_ms=None)
    assert {variant_for(bare.manifest, "auto", batch=n, graph=g) for n in (1, 64) for g in contract.GRAPH_NAMES} == {"fp32"}
    assert variants_needed(bare.manifest, "auto") == ["fp32"]
    one_graph = _with(shipped, selection={"decoder": {"1": "int8"}}, latency_ms=None)
    assert variant_for(one_graph.manifest, "auto", batch=1, graph="encoder") == "fp32"
    assert variants_needed(one_graph.manifest, "auto") == ["fp32", "int8"]  # fp32 for the graph with no selection


def test_variants_needed_lists_every_selected_variant_and_its_fixed_shape_siblings(shipped):
    assert variants_needed(shipped.manifest, "auto") == sorted(
        {v for choice in shipped.manifest.selection.values() for v in choice.values()})
    model = _with_static(shipped, **{"int8-b8": ("int8", 8), "fp32-b1": ("fp32", 1)})
    assert variants_needed(model.manifest, "int8") == ["int8", "int8-b8"]
    assert variants_needed(model.manifest, "fp32") == ["fp32", "fp32-b1"]
    assert variants_needed(model.manifest, "int8-b8") == ["int8-b8"]  # a sibling has no sibling
    assert with_static(model.manifest, {"fp32", "int8"}) == ["fp32", "fp32-b1", "int8", "int8-b8"]


def test_a_static_sibling_matches_its_base_at_exactly_its_batch(shipped):
    model = _with_static(shipped, **{"int8-b8": ("int8", 8)})
    assert static_sibling(model.manifest, "int8", batch=8) == "int8-b8"
    assert [static_sibling(model.manifest, "int8", batch=n) for n in (1, 7, 9, 16)] == [None] * 4
    assert static_sibling(model.manifest, "fp32", batch=8) is None


def test_a_plan_without_profile_swaps_in_the_sibling_only_at_its_batch(shipped):
    model = _with_static(shipped, **{"int8-b8": ("int8", 8)})
    plan = Plan("auto", None)
    assert plan.choose(model, "encoder", batch=8) == Choice("int8-b8", None)
    assert plan.choose(model, "encoder", batch=16) == Choice("int8", None)
    assert plan.choose(model, "decoder", batch=1) == Choice(shipped.manifest.selection["decoder"]["1"], None)
