"""The test run never touches the user's own data (it ran last: see conftest)."""

import os
from pathlib import Path

import pytest

from rag.settings import Settings
from tests.conftest import SEALED_HOME, USER_DATA_AT_START, USER_DATA_DIRS, snapshot


def test_the_run_is_sealed_in_a_temporary_folder():
    assert Path.home() == SEALED_HOME / "home"
    assert Settings().storage.data_dir == SEALED_HOME / "data"
    assert os.environ["RAG_CONFIG"] == str(SEALED_HOME / "rag.toml")
    assert all(not str(folder).startswith(str(SEALED_HOME)) for folder in USER_DATA_DIRS)


@pytest.mark.last
def test_the_users_data_folder_was_neither_created_nor_modified():
    for folder in USER_DATA_DIRS:
        before, after = USER_DATA_AT_START[folder], snapshot(folder)
        if before is None:
            assert after is None, f"the test run created {folder}"
            continue
        changed = sorted(name for name in set(before) | set(after or {}) if before.get(name) != (after or {}).get(name))
        assert not changed, f"the test run changed the user's data in {folder}: {changed[:10]}"
