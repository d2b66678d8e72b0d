"""`scratchlm ...`: the command line only wires pieces together.

Each sub-command lives in its own module under ``scratchlm/commands/`` exposing
``add_arguments(parser)`` and ``run(args) -> int``; heavy imports (JAX, models) happen inside
``run`` so that ``scratchlm --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from scratchlm.errors import ScratchlmError

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("scratchlm.commands.demo", "run the whole pipeline on the shipped real data"),
    "tokenize": ("scratchlm.commands.tokenize", "train a BPE/WordPiece tokenizer or encode text"),
    "classify": ("scratchlm.commands.classify", "the embedding-bag sigmoid classifier on polarity"),
    "word2vec": ("scratchlm.commands.word2vec", "train skip-gram / CBOW with negative sampling"),
    "glove": ("scratchlm.commands.glove", "count co-occurrences and train GloVe"),
    "gru-lm": ("scratchlm.commands.gru_lm", "train or sample the GRU language model"),
    "pretrain": ("scratchlm.commands.pretrain", "masked-LM pretraining of a BERT-style encoder"),
    "finetune": ("scratchlm.commands.finetune", "fine-tune an encoder on sequence/token tasks"),
    "bench": ("scratchlm.commands.bench", "run the benchmarks beside their peers"),
    "docs": ("scratchlm.commands.docs", "build the code-beside-equations site"),
}


def add_parallel_arguments(parser: argparse.ArgumentParser) -> None:
    """``--mesh``, ``--coordinator``, ``--num-processes``, ``--process-id`` for a training command (read by
    :func:`scratchlm.parallel.setup`); here, free of JAX, so that building the parser stays fast."""
    group = parser.add_argument_group("several devices / hosts (scratchlm.parallel)")
    group.add_argument("--mesh", default=None, help="device mesh, e.g. data=8 (data parallel) or data=4,model=2 "
                       "(parameters sharded 2 ways: FSDP; embedding tables: by rows); default: one device")
    group.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 for multi-host training")
    group.add_argument("--num-processes", type=int, default=None, help="number of processes (one per host)")
    group.add_argument("--process-id", type=int, default=None, help="this process's index, 0..N-1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratchlm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # command not built yet in this checkout
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def use_compile_cache(environ=os.environ) -> None:
    """Keep XLA's compiled programs between runs of the command, in ``$XDG_CACHE_HOME/scratchlm/xla``
    (``~/.cache/scratchlm/xla``), through JAX's persistent compilation cache.

    A training command compiles its step once per process: a few seconds on a CPU (Word2Vec's step
    takes 4-5 s of a 30 s run on 2 cores) that a second run with the same shapes then reads back
    from disk.  Only programs that took at least 0.5 s to compile are kept.  Set
    ``JAX_COMPILATION_CACHE_DIR`` to put the cache elsewhere, or ``JAX_ENABLE_COMPILATION_CACHE=false``
    to compile afresh every time.  Read by JAX when it is imported, so this runs before any command
    imports it (and changes nothing in a process that already has).
    """
    if "JAX_COMPILATION_CACHE_DIR" not in environ:
        from scratchlm.data.corpora import user_cache_home

        environ["JAX_COMPILATION_CACHE_DIR"] = str(user_cache_home(environ) / "xla")
    environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


def _accelerator_plugin_installed() -> bool:
    """Whether JAX could find a GPU or TPU here (a PJRT plugin or libtpu is installed)."""
    from importlib import metadata, util

    if util.find_spec("libtpu") is not None or util.find_spec("jax_plugins") is not None:
        return True
    try:
        return any(True for _ in metadata.entry_points(group="jax_plugins"))
    except Exception:  # a broken distribution's metadata: assume the worst
        return True


def limit_intra_op_threads(threads: int, environ=os.environ) -> bool:
    """Start JAX's CPU backend with ``threads`` threads for running a program's ops; returns whether it did.

    XLA:CPU sizes that pool once, from the CPU affinity mask, when the backend starts (jax-ml/jax#1539:
    the mask is the one supported control).  So the mask is narrowed to ``threads`` CPUs while the
    backend starts and restored right after, for every thread: compiling and the Python side keep all
    the CPUs.  Word2Vec's step is hundreds of ops of microseconds each; spread over two threads
    their hand-offs cost more than they save (2 vCPUs: skip-gram 1.32-1.46 ms a step with one
    thread against 1.76-2.09 ms with two, compile time unchanged; benchmarks/RESULTS.md).

    Does nothing (returns False) where it cannot help or could harm: no affinity control (not Linux),
    ``threads`` already at or above the CPUs allowed, JAX's backend already started in this process,
    several host devices asked for (``--xla_force_host_platform_device_count``, whose devices share
    the pool), or a GPU/TPU that JAX may pick (unless ``JAX_PLATFORMS=cpu``), whose runtime would
    start its own pools under the narrowed mask.
    """
    if not hasattr(os, "sched_setaffinity") or threads < 1:
        return False
    if "jax" in sys.modules:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return False
    if "xla_force_host_platform_device_count" in environ.get("XLA_FLAGS", ""):
        return False
    if environ.get("JAX_PLATFORMS", "").strip().lower() != "cpu" and _accelerator_plugin_installed():
        return False
    allowed = os.sched_getaffinity(0)
    if len(allowed) <= threads:
        return False
    os.sched_setaffinity(0, set(sorted(allowed)[:threads]))
    try:
        import jax

        jax.devices()  # starts the backend: its pool takes the narrowed mask's size
    finally:
        for task in os.listdir("/proc/self/task"):  # every thread, the backend's new ones included
            try:
                os.sched_setaffinity(int(task), allowed)
            except OSError:  # a thread that ended meanwhile
                pass
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "bench":  # benchmarks time the first run, compilation included, as a new user sees it
        use_compile_cache()
    try:
        return int(args._run(args) or 0)
    except ScratchlmError as err:
        print(f"scratchlm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scratchlm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
