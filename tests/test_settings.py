import re

import pytest

from rag.errors import SettingsError
from rag.settings import PROJECT_ROOT, SECTIONS, Settings, load_settings


def test_every_setting_is_described_and_documented():
    page = (PROJECT_ROOT / "docs" / "settings.md").read_text()
    for section, model in SECTIONS.items():
        assert Settings.model_fields[section].description, section
        for name, field in model.model_fields.items():
            variable = f"RAG_{section.upper()}__{name.upper()}"
            assert field.description, variable
            assert f"`{variable}`" in page, f"{variable} missing from docs/settings.md"
    assert "docs/settings.md" in (PROJECT_ROOT / "README.md").read_text()  # linked from the front page


def test_the_settings_page_is_generated_from_the_current_fields(tmp_path, capsys):
    """docs/settings.md is what scripts/settings_doc.py writes now; a changed description makes it stale."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("settings_doc", PROJECT_ROOT / "scripts" / "settings_doc.py")
    settings_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings_doc)
    assert settings_doc.main(["--check"]) == 0
    stale = tmp_path / "settings.md"
    stale.write_text(settings_doc.DOC.read_text().replace("Papers returned per question.", "Old words."))
    assert settings_doc.main(["--check"], doc=stale) == 1
    assert "out of date" in capsys.readouterr().err
    assert settings_doc.main([], doc=stale) == 0 and stale.read_text() == settings_doc.DOC.read_text()


def test_every_page_the_readme_links_exists_and_the_front_page_is_short():
    readme = (PROJECT_ROOT / "README.md").read_text()
    linked = re.findall(r"\]\(([^)#]+)\)", readme)
    assert "docs/settings.md" in linked and "docs/evaluation.md" in linked
    assert all((PROJECT_ROOT / path).is_file() for path in linked), linked
    assert len(readme.splitlines()) < 200


def test_environment_beats_config_file_beats_defaults(tmp_path, monkeypatch):
    config = tmp_path / "rag.toml"
    config.write_text('[retrieval]\ntop_k = 9\nmode = "dense"\n\n[llm]\nmodel = "from-file"\n')
    monkeypatch.setenv("RAG_CONFIG", str(config))
    monkeypatch.setenv("RAG_RETRIEVAL__TOP_K", "4")
    settings = Settings()
    assert settings.retrieval.top_k == 4 and settings.llm.model == "from-file"
    assert settings.retrieval.mode == "dense"  # the file's other value in the same section stays
    assert Settings(top_k=2).retrieval.top_k == 2
    assert Settings(retrieval={"top_k": 3}).retrieval.top_k == 3
    assert settings.changed(llm_model="other").llm.model == "other" and settings.llm.model == "from-file"


def test_bad_values_and_missing_config_are_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_RETRIEVAL__TOP_K", "0")
    with pytest.raises(ValueError, match="top_k"):
        Settings()
    monkeypatch.delenv("RAG_RETRIEVAL__TOP_K")
    monkeypatch.setenv("RAG_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ValueError, match="not a file"):
        Settings()
    monkeypatch.setenv("RAG_CONFIG", str(tmp_path))
    (tmp_path / "typo.toml").write_text("tpo_k = 3\n")
    monkeypatch.setenv("RAG_CONFIG", str(tmp_path / "typo.toml"))
    with pytest.raises(ValueError, match="tpo_k"):
        Settings()


def test_a_renamed_setting_is_told_its_new_name(tmp_path, monkeypatch):
    config = tmp_path / "rag.toml"
    config.write_text("api_request_timeout = 60\n")
    monkeypatch.setenv("RAG_CONFIG", str(config))
    with pytest.raises(SettingsError, match=r"api_request_timeout: now \[answering\] answer_timeout"):
        load_settings()
    monkeypatch.delenv("RAG_CONFIG")
    monkeypatch.setenv("RAG_UI_CONCURRENCY", "4")  # would be ignored without a word
    with pytest.raises(SettingsError, match="RAG_UI_CONCURRENCY is now named RAG_ANSWERING__ANSWER_CONCURRENCY"):
        load_settings()


def test_a_flat_setting_is_told_its_nested_name(tmp_path, monkeypatch):
    """Settings were flat before they were nested: the old names would be ignored without a word."""
    monkeypatch.setenv("RAG_" + "TOP_K", "4")  # written in two, the old name survives renaming scripts
    with pytest.raises(SettingsError, match="RAG_TOP_K is now named RAG_RETRIEVAL__TOP_K"):
        load_settings()
    monkeypatch.delenv("RAG_" + "TOP_K")
    monkeypatch.setenv("RAG_" + "LLM_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(SettingsError, match="RAG_LLM_BASE_URL is now named RAG_LLM__BASE_URL"):
        load_settings()
    monkeypatch.delenv("RAG_" + "LLM_BASE_URL")
    config = tmp_path / "rag.toml"
    config.write_text("chroma_url = 'http://127.0.0.1:8000'\n")
    monkeypatch.setenv("RAG_CONFIG", str(config))
    with pytest.raises(SettingsError, match=r"chroma_url: now \[storage\] chroma_url"):
        load_settings()


def test_the_library_never_reads_the_serving_section():
    """The page's and the API's settings are the front-ends' own."""
    for path in (PROJECT_ROOT / "rag").rglob("*.py"):
        if path.name != "settings.py":
            assert ".serving." not in path.read_text(), path
