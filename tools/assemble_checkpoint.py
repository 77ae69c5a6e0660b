#!/usr/bin/python3
"""Assembles the whole model from a weft checkpoint, whatever layout saved it.

    assemble_checkpoint.py CKPT_DIR OUT.safetensors [--step N] [--moments]

Reads CKPT_DIR/LATEST (or step N), its MANIFEST.json and the pieces every rank's shard holds
(checkpoint/piece.h: each a box of a global tensor and a range of the box's elements), places
them into whole tensors, checks that every element came from exactly one piece, and writes one
safetensors file of the global tensors under their names ("wte", "h0.qkv.w", ...), with
AdamW's moments as "adam_m/NAME" and "adam_v/NAME" when --moments is given. Needs only the
standard library and numpy.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def read_header(path):
    """The safetensors header of `path`: (entries, metadata, data start)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    metadata = header.pop("__metadata__", {})
    return header, metadata, 8 + n


def read_piece(path, offset, elements):
    """`elements` f32 values at byte `offset` of `path` (a piece's data, from the manifest)."""
    return np.fromfile(path, dtype="<f4", count=elements, offset=offset)


def place(whole, covered, piece, data):
    """Writes a piece's elements into the global tensor `whole`, counting them in `covered`."""
    box = tuple(slice(start, start + length) for start, length in piece["box"])
    lengths = [length for _, length in piece["box"]]
    begin, end = piece["range"]
    region = whole[box].reshape(-1)  # a copy when the box is not contiguous
    hits = covered[box].reshape(-1)
    region[begin:end] = data
    hits[begin:end] += 1
    whole[box] = region.reshape(lengths)
    covered[box] = hits.reshape(lengths)


def assemble(ckpt_dir, step=None, moments=False):
    """{name: np.ndarray} of the global tensors of `step` (LATEST's when None), and the step."""
    if step is None:
        with open(os.path.join(ckpt_dir, "LATEST")) as f:
            step_dir = f.read().strip()
    else:
        step_dir = "step-%08d" % step
    step_path = os.path.join(ckpt_dir, step_dir)
    with open(os.path.join(step_path, "MANIFEST.json")) as f:
        manifest = json.load(f)
    kinds = ["param"] + (["adam_m", "adam_v"] if moments else [])
    tensors, covered = {}, {}
    for shard in manifest["shards"]:
        path = os.path.join(step_path, shard["file"])
        if os.path.getsize(path) != shard["bytes"]:
            sys.exit("%s has %d bytes, the manifest says %d" % (path, os.path.getsize(path), shard["bytes"]))
        for piece in shard["pieces"]:
            if piece["kind"] not in kinds:
                continue
            name = piece["tensor"] if piece["kind"] == "param" else piece["kind"] + "/" + piece["tensor"]
            if name not in tensors:
                tensors[name] = np.zeros(piece["global_shape"], dtype=np.float32)
                covered[name] = np.zeros(piece["global_shape"], dtype=np.int32)
            begin, end = piece["range"]
            place(tensors[name], covered[name], piece, read_piece(path, piece["offset"], end - begin))
    for name, hits in covered.items():
        if not (hits == 1).all():
            sys.exit("%s: %d elements of %s are held by no piece or by more than one"
                     % (step_path, int((hits != 1).sum()), name))
    return tensors, manifest["step"]


def write_safetensors(path, tensors, metadata):
    """One safetensors file of `tensors` (f32, in name order)."""
    header, at = {"__metadata__": metadata}, 0
    for name in sorted(tensors):
        size = tensors[name].size * 4
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [at, at + size]}
        at += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in sorted(tensors):
            f.write(tensors[name].astype("<f4").tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt_dir")
    parser.add_argument("out")
    parser.add_argument("--step", type=int, help="the step to assemble (default: LATEST's)")
    parser.add_argument("--moments", action="store_true", help="also AdamW's moments")
    args = parser.parse_args()
    tensors, step = assemble(args.ckpt_dir, args.step, args.moments)
    write_safetensors(args.out, tensors, {"format": "weft-assembled-1", "step": str(step)})
    print("%s: %d tensors of step %d, %d elements" % (args.out, len(tensors), step,
                                                     sum(t.size for t in tensors.values())))


if __name__ == "__main__":
    main()
