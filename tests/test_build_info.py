"""medfuse.build_info(): what was compiled in and what is used."""

from __future__ import annotations

import importlib.metadata

import medfuse


def test_keys_and_types():
    info = medfuse.build_info()
    for key in ("version", "compiler", "simd_compiled", "simd_active", "num_threads"):
        assert key in info, key
    assert isinstance(info["version"], str) and info["version"]
    assert isinstance(info["compiler"], str) and info["compiler"].strip()
    assert isinstance(info["simd_compiled"], list) and info["simd_compiled"]
    assert all(isinstance(p, str) for p in info["simd_compiled"])
    assert isinstance(info["simd_active"], str)
    assert isinstance(info["num_threads"], int) and not isinstance(info["num_threads"], bool)


def test_version_consistent():
    info = medfuse.build_info()
    assert info["version"] == medfuse.__version__
    assert info["version"] == importlib.metadata.version("medfuse")
    if "core_version" in info:  # the extension was built from the same sources
        assert info["core_version"] == medfuse.__version__


def test_simd_consistent():
    info = medfuse.build_info()
    assert "baseline" in info["simd_compiled"]
    assert info["simd_active"] in info["simd_compiled"]
    if "simd_supported" in info:
        assert info["simd_active"] in info["simd_supported"]
        assert "baseline" in info["simd_supported"]


def test_num_threads_follows_setting():
    before = medfuse.build_info()["num_threads"]
    assert before == medfuse.get_num_threads() >= 1
    medfuse.set_num_threads(5)
    assert medfuse.build_info()["num_threads"] == 5
    medfuse.set_num_threads(before)
    assert medfuse.build_info()["num_threads"] == before


def test_returns_a_fresh_dict():
    info = medfuse.build_info()
    info["simd_compiled"].append("bogus")
    info["version"] = "x"
    again = medfuse.build_info()
    assert "bogus" not in again["simd_compiled"]
    assert again["version"] == medfuse.__version__
