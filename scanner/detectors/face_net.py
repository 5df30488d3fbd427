"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) run by torch.

Why: the prebuilt dlib wheel has no BLAS, so its own CPU convolutions take ~90 ms per 150x150
chip (two chips per face with the mirror average): the face stage's largest cost. The same
weights, read from the same sha256-pinned file and run by torch's CPU kernels, give the
same descriptor (cosine to dlib's > 0.9999, see ``tests/test_face_net.py``) several times
faster.

The file is dlib's own serialisation of its ``anet_type`` (dnn_face_recognition_ex.cpp):
layers from the input outwards, each a version string (``con_4``, ``affine_``, ``fc_2``...)
followed by a parameter tensor (``01 02`` version, four packed ints for the shape, then
little-endian float32). Only the 29 convolutions, 29 affine (frozen batch-norm) layers and
the final 128x256 matrix carry weights; the rest of the graph is fixed and written out below:

    con7x7/2 32, affine, relu, max_pool 3x3/2
    3 x res 32, res_down 64 + 3 x res 64, res_down 128 + 2 x res 128,
    res_down 256 + 2 x res 256, res_down 256, global average, fc 128 (no bias)

A residual block is ``relu(x + affine(con3x3(relu(affine(con3x3(x))))))``; the downsampling
one strides its first convolution by 2 and adds ``avg_pool 2x2/2 (x)``. dlib adds tensors of
different shapes as if the smaller one were zero-padded (channels, and at the 8 -> 3 vs 4
and 4 -> 1 vs 2 steps, rows and columns), which ``_add`` reproduces. Convolutions with a
stride of 2 have no padding (dlib's default), stride-1 3x3 ones pad by 1.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from scanner.detectors.torch_threads import torch_threads
from scanner.errors import ModelMissingError

MEAN_RGB = (122.782, 117.001, 104.298)  # dlib input_rgb_image_sized defaults; scale 1/256
# (filters, first stride) per residual block, input side first
BLOCKS = ([(32, 1)] * 3 + [(64, 2)] + [(64, 1)] * 3 + [(128, 2)] + [(128, 1)] * 2
          + [(256, 2)] + [(256, 1)] * 2 + [(256, 2)])
_MARKER = re.compile(rb"(con_4|affine_|fc_2)")


def _int(buf: bytes, pos: int) -> tuple[int, int]:
    """dlib's packed integer: a byte with the length (low 4 bits) and sign (0x80), then little-endian bytes."""
    head = buf[pos]
    size, neg = head & 0x0F, head & 0x80
    value = int.from_bytes(buf[pos + 1:pos + 1 + size], "little")
    return (-value if neg else value), pos + 1 + size


def _tensor(buf: bytes, pos: int) -> tuple[np.ndarray, int]:
    """One serialised dlib tensor (version 2): shape, then float32 little-endian data."""
    version, pos = _int(buf, pos)
    if version != 2:
        raise ValueError(f"unexpected dlib tensor version {version} at byte {pos}")
    shape = []
    for _ in range(4):
        v, pos = _int(buf, pos)
        shape.append(v)
    n = int(np.prod(shape))
    if pos + 4 * n > len(buf):
        raise ValueError(f"truncated dlib tensor at byte {pos}: {n} floats announced, {(len(buf) - pos) // 4} left")
    data = np.frombuffer(buf, "<f4", n, pos).astype(np.float32)
    return data, pos + 4 * n


def read_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """Conv (filters, bias), affine (gamma, beta) and fc matrices of the .dat file, input side first."""
    buf = Path(path).read_bytes()
    convs: list[np.ndarray] = []
    affines: list[np.ndarray] = []
    fc: list[np.ndarray] = []
    pos = 0
    while True:
        m = _MARKER.search(buf, pos)
        if m is None:
            break
        name, pos = m.group(), m.end()
        if name == b"fc_2":
            n_out, pos = _int(buf, pos)
            n_in, pos = _int(buf, pos)
            data, pos = _tensor(buf, pos)
            fc.append(data.reshape(n_in, n_out))
        else:
            data, pos = _tensor(buf, pos)
            (convs if name == b"con_4" else affines).append(data)
    if len(convs) != 29 or len(affines) != 29 or len(fc) != 1:
        raise ValueError(f"{path}: expected 29 conv, 29 affine and 1 fc layers, found "
                         f"{len(convs)}, {len(affines)}, {len(fc)}")
    return {"conv": convs, "affine": affines, "fc": fc}


class DlibResNet:
    """The dlib metric network as torch ops; ``__call__`` maps 150x150 RGB chips to raw 128-d descriptors."""

    def __init__(self, path: Path):
        try:
            import torch
        except ImportError:
            raise ModelMissingError("the torch face descriptor needs torch (`pip install torch`)") from None
        self._torch = torch
        w = read_weights(path)
        self._layers = []
        k_in = 3
        ksizes = [7] + [3] * 28
        n_out = [32] + [n for n, _ in BLOCKS for _ in (0, 1)]
        for i, (flat, aff) in enumerate(zip(w["conv"], w["affine"])):
            k, n = ksizes[i], n_out[i]
            if flat.size != n * k_in * k * k + n or aff.size != 2 * n:
                raise ValueError(f"{path}: layer {i} has {flat.size} conv / {aff.size} affine values, "
                                 f"expected {n * k_in * k * k + n} / {2 * n}")
            filt = torch.from_numpy(flat[: n * k_in * k * k].reshape(n, k_in, k, k).copy())
            bias = flat[n * k_in * k * k:]
            gamma, beta = aff[:n], aff[n:]
            # fold the affine layer into the convolution: gamma * (W x + b) + beta
            self._layers.append((filt * torch.from_numpy(gamma.copy()).view(n, 1, 1, 1),
                                 torch.from_numpy((gamma * bias + beta).copy())))
            k_in = n
        self._fc = torch.from_numpy(w["fc"][0].copy())
        self._mean = torch.tensor(MEAN_RGB, dtype=torch.float32).view(1, 3, 1, 1)
        self._lock = threading.Lock()

    def _add(self, a, b):
        """dlib's add_prev: shapes that differ are zero-padded to the larger one."""
        torch = self._torch
        if a.shape == b.shape:
            return a + b
        shape = [max(x, y) for x, y in zip(a.shape, b.shape)]
        out = torch.zeros(shape, dtype=a.dtype)
        out[:, : a.shape[1], : a.shape[2], : a.shape[3]] += a
        out[:, : b.shape[1], : b.shape[2], : b.shape[3]] += b
        return out

    def __call__(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Raw (not normalised) descriptors, one row per 150x150x3 uint8 RGB chip."""
        torch = self._torch
        if not len(chips):
            return np.zeros((0, 128), np.float32)
        x = torch.from_numpy(np.stack([np.asarray(c, np.uint8) for c in chips])).permute(0, 3, 1, 2).float()
        # one thread: a few 150x150 chips are too small to split, and on busy shared cores
        # torch's spinning worker threads cost 30-80x (measured 1 s vs 25 ms per chip wall)
        with self._lock, torch_threads(torch, 1), torch.inference_mode():
            return self._forward(x)

    def _forward(self, x):
        F = self._torch.nn.functional
        x = (x - self._mean) / 256.0
        w, b = self._layers[0]
        x = F.max_pool2d(F.relu(F.conv2d(x, w, b, stride=2)), 3, 2)
        li = 1
        for _, stride in BLOCKS:
            w1, b1 = self._layers[li]
            w2, b2 = self._layers[li + 1]
            li += 2
            y = F.relu(F.conv2d(x, w1, b1, stride=stride, padding=1 if stride == 1 else 0))
            y = F.conv2d(y, w2, b2, padding=1)
            short = x if stride == 1 else F.avg_pool2d(x, 2, 2)
            x = F.relu(self._add(y, short))
        x = x.mean(dim=(2, 3))
        return (x @ self._fc).numpy().astype(np.float32)


@lru_cache(maxsize=2)
def load(path: str) -> DlibResNet:
    """One network per weights file per process (the file is ~22 MB; parsing takes ~0.1 s)."""
    return DlibResNet(Path(path))
