"""Fashion-MNIST without a download: the gzipped IDX files of Debian's `dataset-fashion-mnist` package, unpacked
into torchvision's layout (`lab.data.load_dataset("fashion")` reads them through torchvision), and the grey
28x28 -> RGB conversions of the grey datasets."""
import gzip
import os
import shutil
import tempfile

import torch
import torch.nn.functional as F

from .errors import DataNotFoundError

# Debian's `dataset-fashion-mnist` package installs the gzipped IDX files here; load_dataset("fashion")
# reads them when torchvision's layout is absent under root ($LAB_FASHION_IDX overrides the folder).
FASHION_IDX_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                     "t10k-labels-idx1-ubyte")


def grey28_to_rgb32(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) grey images -> (N, 3, 32, 32): zero-padded by 2 pixels, the grey repeated 3 times."""
    img = F.pad(torch.as_tensor(images).view(-1, 1, 28, 28), (2, 2, 2, 2))
    return img.expand(-1, 3, -1, -1).contiguous()


def grey28_to_rgb16(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) grey images -> (N, 3, 16, 16): the mean of every 2x2 block (rounded half up), zero-padded
    by 1 pixel, the grey repeated 3 times."""
    img = torch.as_tensor(images).view(-1, 1, 14, 2, 14, 2).to(torch.int32).sum(dim=(3, 5))  # (N, 1, 14, 14)
    img = F.pad(((img + 2) // 4).to(torch.uint8), (1, 1, 1, 1))
    return img.expand(-1, 3, -1, -1).contiguous()


def fashion_in_root(root) -> bool:
    raw = os.path.join(root, "FashionMNIST", "raw")
    return all(os.path.isfile(os.path.join(raw, f)) for f in FASHION_IDX_FILES)


def fashion_idx_dir(any_dir: bool = False):
    """The folder of the gzipped IDX files ($LAB_FASHION_IDX, else Debian's), or None when incomplete."""
    d = os.environ.get("LAB_FASHION_IDX") or FASHION_IDX_DIR
    if any_dir or all(os.path.isfile(os.path.join(d, f + ".gz")) for f in FASHION_IDX_FILES):
        return d
    return None


def unpack_fashion_idx(idx_dir, root) -> None:
    """Unpack the gzipped IDX files into torchvision's layout, root/FashionMNIST/raw/, via a private temp
    folder: an interrupted or failed unpack leaves nothing under root for torchvision to trip over."""
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".unpack-fashion-", dir=root)
    try:
        for f in FASHION_IDX_FILES:
            with gzip.open(os.path.join(idx_dir, f + ".gz"), "rb") as src, open(os.path.join(tmp, f), "wb") as dst:
                shutil.copyfileobj(src, dst)
        raw = os.path.join(root, "FashionMNIST", "raw")
        os.makedirs(raw, exist_ok=True)
        for f in FASHION_IDX_FILES:
            os.replace(os.path.join(tmp, f), os.path.join(raw, f))
    except (OSError, EOFError) as e:  # a corrupt or truncated .gz (gzip.BadGzipFile is an OSError)
        raise DataNotFoundError(
            f"The Fashion-MNIST IDX files in {idx_dir} could not be read ({type(e).__name__}: {e}); reinstall them "
            f"(`apt-get install --reinstall dataset-fashion-mnist`) or place torchvision's files under "
            f"{os.path.join(os.path.abspath(root), 'FashionMNIST', 'raw')}."
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
