"""Writes a test image whose weight tensors are all at the residual rate (PQ_RESIDUAL records,
format version 3), for the C++ rebuild/corruption tests and the Cortex-M7 bench.

`yonoc build` picks that rate only where the fidelity search wants it, so this drives the
compiler's own stages (frontend, codebooks, encode, lower, writer) with every tensor's choice
set to its finest rate: python make_residual_image.py OUT.bin MODEL.tflite...
"""

from __future__ import annotations

import sys

from yonoc.backend import image_format as fmt
from yonoc.backend.lower import lower_task
from yonoc.fileio import write_atomic
from yonoc.frontend import read_model
from yonoc.passes import encode
from yonoc.pq.codebooks import CodebookOptions, learn


def main(out: str, paths: list) -> None:
    models = [read_model(p) for p in sorted(paths)]
    books = learn([w for m in models for w in m.weights], CodebookOptions(iterations=10))
    entries, index = [], {}
    for b in books.books:
        index[id(b)] = len(entries)
        entries += [fmt.CodebookEntry(int(b.group), s) for s in b.subs]
    tasks = []
    for m in models:
        encs = encode.encode_model(m, books)
        choices = [len(e.rates) - 1 if e.rates else encode.RAW for e in encs]
        rebuilt = encode.rebuilt_model(m, encs, choices, erase_names=True)
        tasks.append(lower_task(m, rebuilt, encode.coded(encs, choices), index))
    image = fmt.write_image(entries, sorted(tasks, key=lambda t: t.name))
    kinds = sum(f.kind == fmt.FillKind.PQ_RESIDUAL for t in tasks for f in t.fills)
    if kinds == 0:
        sys.exit("no PQ_RESIDUAL record: the codebook options have no residual rate")
    write_atomic(out, image)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
