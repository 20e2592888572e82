"""Images/s through dlx's streaming path against torchvision's ImageFolder + DataLoader, and upload-check time.

Streaming: one folder of generated PNGs (64×64 RGB, 4 classes) read for one epoch, resized to
32×32 and normalised, with the same DataLoader settings on both sides (batch, workers, prefetch);
the two readers alternate over the repeats and the headline is the median of the paired ratios.

Upload check: an archive of incompressible PNGs (~100 MB by default) through `import_image_archive`
(entry-by-entry extraction with caps, every image decoded with a pixel cap, checksum, database row),
against a plain `zipfile.extractall` of the same archive, which checks nothing.

Run: python bench/bench_streaming.py [--images 2000] [--repeats 5] [--workers 2] [--upload-mb 100]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from common import machine, median, report, setup

setup()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from dlx.data.streaming import ImageFiles  # noqa: E402
from dlx.data.user_sets import import_image_archive, import_image_folder  # noqa: E402
from dlx.store import default_store  # noqa: E402

SIDE = 32


def make_folder(root: Path, images: int, side: int = 64, classes: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for n in range(images):
        folder = root / f"class{n % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{n}.png")
    return root


def epoch_rate(dataset, batch: int, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        prefetch_factor=4 if workers else None, generator=torch.Generator().manual_seed(0))
    start, seen = time.perf_counter(), 0
    for x, _ in loader:
        seen += len(x)
    return seen / (time.perf_counter() - start)


def bench_streaming(images: int, repeats: int, workers: int, batch: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="stream-"))
    try:
        user_set, _ = import_image_folder(default_store(), make_folder(work / "pngs", images), "bench", side=SIDE)
        details = user_set.details
        files = [user_set.path / relative for relative, _ in details["files"]]
        labels = np.array([label for _, label in details["files"]])
        ours = ImageFiles(files, labels, SIDE, details["channels"], tuple(details["mean"]), tuple(details["std"]))
        theirs = datasets.ImageFolder(str(user_set.path), transform=transforms.Compose([
            transforms.Resize((SIDE, SIDE)), transforms.ToTensor(),
            transforms.Normalize(details["mean"], details["std"])]))
        assert len(theirs) == len(ours)
        epoch_rate(ours, batch, workers), epoch_rate(theirs, batch, workers)  # warm the page cache
        dlx_rates, tv_rates, ratios = [], [], []
        for repeat in range(repeats):
            pair = [("dlx", ours), ("tv", theirs)]
            order = pair if repeat % 2 == 0 else pair[::-1]  # alternate who goes first
            rates = {name: epoch_rate(data, batch, workers) for name, data in order}
            dlx_rates.append(rates["dlx"])
            tv_rates.append(rates["tv"])
            ratios.append(rates["dlx"] / rates["tv"])
        report(f"Streaming {len(ours):,} PNGs (64×64 → {SIDE}×{SIDE}), batch {batch}, {workers} workers, "
               f"{repeats} repeats", [
                   ("torchvision ImageFolder (median images/s)", f"{median(tv_rates):,.0f}"),
                   ("dlx ImageFiles (median images/s)", f"{median(dlx_rates):,.0f}"),
                   ("dlx / torchvision (median paired ratio)", f"{median(ratios):.3f}"),
               ])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_upload(megabytes: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="upload-"))
    try:
        per_image = 256 * 256 * 3  # noise does not compress: a PNG is about its raw size
        folder = make_folder(work / "set", max(8, megabytes * 2**20 // per_image), side=256)
        archive = work / "set.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as handle:
            for path in sorted(folder.rglob("*.png")):
                handle.write(path, path.relative_to(work).as_posix())
        size = archive.stat().st_size
        start = time.perf_counter()
        with zipfile.ZipFile(archive) as handle:
            handle.extractall(work / "plain")
        plain = time.perf_counter() - start
        start = time.perf_counter()
        import_image_archive(default_store(), archive, "upload")
        checked = time.perf_counter() - start
        report(f"Upload check of a {size / 2**20:.0f} MB zip ({len(list(folder.rglob('*.png')))} PNGs, 256×256)", [
            ("plain zipfile.extractall (s)", f"{plain:.2f}"),
            ("dlx import_image_archive: extract, decode, hash, row (s)", f"{checked:.2f}"),
            ("dlx / plain", f"{checked / plain:.1f}×"),
        ])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--upload-mb", type=int, default=100)
    args = parser.parse_args()
    print(machine())
    bench_streaming(args.images, args.repeats, args.workers, args.batch)
    bench_upload(args.upload_mb)


if __name__ == "__main__":
    main()
