"""The committed Vespa application package is what search/fields.py generates."""

from __future__ import annotations

import re

from search.backends.base import WRITERS
from search.fields import FIELDS
from search.vespa_app import build


def test_committed_package_matches_the_generator():
    stale = build.stale_files()
    assert stale == [], f"regenerate with `python -m search.vespa_app.build`: {stale}"


def test_check_command_fails_on_a_hand_edited_schema(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "APP_DIR", tmp_path)
    assert build.main([]) == 0
    schema = tmp_path / "schemas" / "product.sd"
    schema.write_text(schema.read_text().replace("field price_max type double", "field price_max type float"))
    assert build.main(["--check"]) == 1


def test_every_field_and_version_component_is_in_the_schema():
    schema = build.schema_sd()
    declared = set(re.findall(r"^\s+field (\w+) type", schema, flags=re.MULTILINE))
    assert declared == {f.name for f in FIELDS} | {f"vv_{w}" for w in WRITERS}
    for profile in ("bm25", "semantic", "hybrid"):
        assert f"rank-profile {profile} " in schema
    assert "distance-metric: angular" in schema and "normalize_linear(text_score)" in schema
