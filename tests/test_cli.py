"""The ``slipstream`` command: build, inspect, demo."""

from __future__ import annotations

from PIL import Image

from slipstream.cache import SlipCache
from slipstream.cli import main
from slipstream.demo import run_demo


def test_build_then_inspect(photo_folder, tmp_path, capsys):
    dest = tmp_path / "cache"
    assert main(["build", str(photo_folder), str(dest)]) == 0
    cache = SlipCache.open(dest)
    assert len(cache) == 240
    assert main(["inspect", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "samples: 240" in out
    assert "field 'image': ImageBytes" in out
    assert "field 'label': int, min 0, max 9, 10 distinct" in out
    assert "skipped: 0" in out


def test_demo_writes_a_contact_sheet(tmp_path, capsys):
    rates = run_demo(tmp_path, num_images=40, epochs=2, batch_size=16, num_threads=2, device="cpu")
    assert sorted(rates) == ["epoch_0_images_per_second", "epoch_1_images_per_second"]
    assert all(rate > 0 for rate in rates.values())
    sheet = Image.open(tmp_path / "batch.png")
    # 16 images of 224 px in 8 columns with 2 px padding
    assert sheet.size == (8 * 226 + 2, 2 * 226 + 2)
    assert "40 images" in capsys.readouterr().out
