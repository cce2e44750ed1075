"""Subcommands of `movinas`, each a module with `register(subparsers)`.

Add a command by writing its module and listing its `register` in `ALL` below.
"""

from . import (
    bench,
    cost,
    demo,
    export,
    fidelity,
    finetune,
    importer,
    latency,
    predict,
    report,
    screen,
    search,
    supernet,
    videos,
)

ALL: list = [
    demo.register,
    cost.register,
    screen.register,
    predict.register,
    search.register,
    report.register,
    export.register,
    importer.register,
    finetune.register,
    fidelity.register,
    bench.register,
    supernet.register,
    videos.register,
    latency.register,
]
