"""The public surface: what ``import aiopgtls`` offers and how it presents itself."""

from __future__ import annotations

import aiopgtls
import aiopgtls.errors


def test_all_names_exist() -> None:
    missing = [name for name in aiopgtls.__all__ if not hasattr(aiopgtls, name)]
    assert missing == []


def test_all_has_no_duplicates() -> None:
    assert len(set(aiopgtls.__all__)) == len(aiopgtls.__all__)


def test_public_classes_show_public_module() -> None:
    private = [
        name
        for name in aiopgtls.__all__
        if getattr(getattr(aiopgtls, name), "__module__", "aiopgtls").startswith("aiopgtls._")
    ]
    assert private == []


def test_every_error_is_exported() -> None:
    exported = set(aiopgtls.__all__)
    errors = {name for name in aiopgtls.errors.__all__}
    assert errors - exported == set()


def test_params_repr_hides_secrets() -> None:
    params = aiopgtls.resolve_params(
        "host=db.example.test user=app password=hunter2-secret sslpassword=pp-secret", {}
    )
    text = repr(params)
    assert "hunter2-secret" not in text
    assert "pp-secret" not in text
    assert "password=<set>" in text


def test_tracing_doc_lists_every_event() -> None:
    from pathlib import Path

    from aiopgtls._trace import EVENTS

    doc = (Path(__file__).parent.parent / "docs" / "tracing.md").read_text()
    assert [event for event in EVENTS if f"`{event}`" not in doc] == []
