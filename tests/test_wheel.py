"""Release files: ``scripts/build_wheel.sh`` builds an sdist and, from it, a manylinux wheel
with libjpeg-turbo vendored; the wheel installs into a fresh venv in a clean folder, decodes a
photo, streams a loader epoch and runs the demo, all from the installed wheel.

The fresh venv has no slipstream but the wheel's. Its third-party packages (torch, numpy,
numba, Pillow, scikit-image, ...) are this interpreter's, reached through one ``.pth`` line
naming a folder of links to them (not slipstream's editable install, not DALI), so the
test needs no network and no second torch download.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env_with_our_bin() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"sdist": ..., "wheel": ...}`` built by scripts/build_wheel.sh into a temp folder."""
    for module in ("build", "auditwheel", "scikit_build_core", "pybind11"):
        pytest.importorskip(module, reason=f"{module} is in the dev extra")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_wheel.sh"), str(out)],
        capture_output=True,
        text=True,
        env=_env_with_our_bin(),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = sorted(out.glob("slipstream-*.whl"))
    sdists = sorted(out.glob("slipstream-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_sdist_holds_the_sources(release):
    with tarfile.open(release["sdist"]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in (
        "pyproject.toml",
        "CMakeLists.txt",
        "README.md",
        "csrc/sources.cmake",
        "csrc/bindings.cpp",
        "csrc/decode_crop.cpp",
        "dali_ops/CMakeLists.txt",
        "dali_ops/slipstream_decode_crop.cc",
        "slipstream/__init__.py",
        "slipstream/cli.py",
    ):
        assert needed in names, needed
    assert not any(n.startswith((".venv/", "build/")) for n in names)


def test_wheel_is_manylinux_with_libjpeg_vendored(release):
    wheel = release["wheel"]
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert f"-{tag}-{tag}-manylinux_" in wheel.name and wheel.name.endswith("_x86_64.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert any(n.startswith("slipstream.libs/libjpeg") for n in names), names
    assert any(n.startswith("slipstream/_core.") and n.endswith(".so") for n in names)
    # the DALI plugin's sources travel with the wheel (built on first use or build-plugin)
    assert "slipstream/_native_src/dali_ops/CMakeLists.txt" in names
    assert "slipstream/_native_src/csrc/sources.cmake" in names


def _link_dependencies(target: Path) -> Path:
    """A folder of links to this interpreter's site-packages, minus slipstream and DALI."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if "slipstream" in name or name.endswith(".pth") or name.startswith("nvidia_dali"):
            continue
        if name == "nvidia" and entry.is_dir():  # CUDA libraries for torch, but not DALI
            (target / "nvidia").mkdir()
            for sub in entry.iterdir():
                if not sub.name.startswith("dali"):
                    (target / "nvidia" / sub.name).symlink_to(sub)
            continue
        (target / entry.name).symlink_to(entry)
    return target


CHECK = textwrap.dedent(
    """
    import io, pathlib, sys
    import numpy as np
    from PIL import Image
    import slipstream, slipstream._core
    from slipstream import SlipstreamDataset, SlipstreamLoader
    from slipstream.demo import make_demo_folder
    from slipstream.native import decode_full
    from slipstream.pipelines import supervised_train

    venv = pathlib.Path(sys.prefix).resolve()
    for module in (slipstream, slipstream._core):
        assert pathlib.Path(module.__file__).resolve().is_relative_to(venv), module.__file__
    maps = pathlib.Path("/proc/self/maps").read_text()
    jpeg = sorted({line.split()[-1] for line in maps.splitlines() if "libjpeg" in line})
    assert any("/slipstream.libs/" in p for p in jpeg), jpeg  # vendored, not the system's:
    assert not any(p.startswith(("/usr/", "/lib")) for p in jpeg), jpeg
    from skimage import data
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=90)
    pixels = np.asarray(decode_full(np.frombuffer(buffer.getvalue(), np.uint8)))
    reference = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert pixels.shape == reference.shape == (512, 512, 3), pixels.shape
    diff = np.abs(pixels.astype(int) - reference.astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 8, (diff.mean(), diff.max())
    folder = make_demo_folder("photos", 40)
    ds = SlipstreamDataset(folder, cache_dir="caches", progress=False)
    loader = SlipstreamLoader(ds, 16, supervised_train(64), backend="native", device="cpu")
    shapes = [tuple(batch["image"].shape) for batch in loader]
    assert shapes == [(16, 3, 64, 64), (16, 3, 64, 64), (8, 3, 64, 64)], shapes
    print("OK", slipstream.__file__, jpeg)
    """
)


def test_wheel_installs_into_a_fresh_venv_and_runs(release, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = _link_dependencies(tmp_path / "deps")
    Path(purelib, "deps.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(release["wheel"]),
        ],
        check=True,
        env=env,
        timeout=600,
    )
    work = tmp_path / "clean"
    work.mkdir()
    proc = subprocess.run(
        [str(python), "-c", CHECK], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0 and proc.stdout.startswith("OK "), proc.stdout + proc.stderr
    demo = subprocess.run(
        [str(venv / "bin" / "slipstream"), "demo", "--num-images", "40", "--epochs", "1"]
        + ["--batch-size", "16", "--device", "cpu", "--out", "demo"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "engine native" in demo.stdout and (work / "demo" / "batch.png").is_file()
