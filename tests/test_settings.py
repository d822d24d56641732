"""lessonlib/engine/settings.py: a setting that cannot be read names itself."""
import pytest


@pytest.mark.parametrize("value", ["lots", "-5", "nan", "inf"])
def test_a_junk_image_cache_size_names_its_setting(monkeypatch, value):
    from lessonlib.engine.settings import settings
    monkeypatch.setenv("LESSONLIB_IMAGE_CACHE_MB", value)
    with pytest.raises(ValueError, match=f"LESSONLIB_IMAGE_CACHE_MB='{value}'.*megabytes"):
        settings()
    monkeypatch.setenv("LESSONLIB_IMAGE_CACHE_MB", " 256 ")
    assert settings().image_cache_mb == 256
