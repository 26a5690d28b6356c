"""export/variants.py: one VariantSpec per variant, looked up in one registry (VARIANTS)."""

import dataclasses

import pytest

from edgevae.export.quantize import QuantizeConfig, check_config, settings_record
from edgevae.export.variants import DEFAULT_VARIANTS, VARIANTS, variant_file, variant_spec


def test_every_spec_owns_its_file_name_settings_field_and_record():
    fields = {f.name: f for f in dataclasses.fields(QuantizeConfig)}
    config = QuantizeConfig()
    for name, spec in VARIANTS.items():
        assert spec.name == name and variant_file("decoder", name) == f"decoder.{name}.onnx"
        if spec.from_search:
            assert spec.config_field is None
            continue
        assert spec.config_field in fields
        assert isinstance(config.settings_for(name), spec.settings), name  # the field holds the type build takes
        record = settings_record(name, config)
        assert record["format"] and ("calibration_images" in record) == spec.needs_calibration, name


def test_the_cli_default_is_the_registrys():
    from edgevae.cli import build_parser

    args = build_parser().parse_args(["quantize", "m"])
    assert tuple(args.variants.split(",")) == DEFAULT_VARIANTS == QuantizeConfig().variants


@pytest.mark.parametrize("variants,message", [(("int9",), "unknown variant 'int9'; choose from int8, "),
                                              (("int8-mixed",), "'int8-mixed' is found by --search")])
def test_unknown_and_search_only_variants_are_refused_by_name(variants, message):
    with pytest.raises(ValueError, match=message):
        check_config(QuantizeConfig(variants=variants))
    with pytest.raises(ValueError, match="unknown variant 'int9'"):
        variant_spec("int9")
