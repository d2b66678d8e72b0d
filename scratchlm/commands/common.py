"""What several commands share: the run-folder flags (one contract, :mod:`scratchlm.training.run`), the
log level, the multi-device flags and the mesh they select, and the CPU thread limit.

Free of JAX at import time (``scratchlm --help`` builds every command's parser); JAX is imported
inside the functions that need it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from scratchlm import checks
from scratchlm.training.run import Run, RunConfig, check_out, finished, open_run

COMMON_LOGGER = "scratchlm"


class _StoreGiven(argparse.Action):
    """Store the value, and note on the namespace that the flag was given (``_DEST_given``): a command may
    treat its default differently from the same value asked for (:func:`given`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        setattr(namespace, f"_{self.dest}_given", True)


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the flag stored in ``dest`` was on the command line (a flag of :func:`add_run_arguments`)."""
    return bool(getattr(args, f"_{dest}_given", False))


def add_run_arguments(parser: argparse.ArgumentParser, *, checkpoint_note: str = "") -> None:
    """The run folder's flags, the same in every training command: ``--out DIR`` (required),
    ``--overwrite``, ``--checkpoint-every SECONDS``, ``--keep-checkpoints``, ``--quiet`` / ``--verbose``;
    ``checkpoint_note`` ends the help of the two checkpoint flags (a command's own rule)."""
    group = parser.add_argument_group("the run folder (see README: Runs: resuming, overwriting, checkpoints)")
    group.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="run folder: new or empty to train, the same run's folder to resume or find it "
                            "complete; another run's folder is refused unless --overwrite")
    group.add_argument("--overwrite", action="store_true", default=RunConfig.overwrite,
                       help="remove the run in --out and train afresh")
    group.add_argument("--checkpoint-every", type=float, default=RunConfig.checkpoint_every, metavar="SECONDS",
                       action=_StoreGiven, help="wall-clock seconds between checkpoints; 0: only at the end "
                       f"(default: %(default)s s){checkpoint_note}")
    group.add_argument("--keep-checkpoints", action="store_true", default=RunConfig.keep_checkpoints,
                       help=f"a finished run keeps its last two checkpoints (default: dropped, the model stays)"
                       f"{checkpoint_note}")
    verbosity = group.add_mutually_exclusive_group()
    verbosity.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    verbosity.add_argument("--verbose", action="store_true", help="also debugging detail on stderr")


def run_config(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` the flags of :func:`add_run_arguments` ask for."""
    return RunConfig(out=Path(args.out), overwrite=bool(getattr(args, "overwrite", False)),
                     checkpoint_every=float(getattr(args, "checkpoint_every", RunConfig.checkpoint_every)),
                     keep_checkpoints=bool(getattr(args, "keep_checkpoints", False)))


def configure_logging(args: argparse.Namespace) -> None:
    """Plain lines on stderr from the ``scratchlm`` loggers at the level ``--quiet``/``--verbose`` ask for."""
    level = logging.WARNING if getattr(args, "quiet", False) else (
        logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    logger = logging.getLogger(COMMON_LOGGER)
    logger.setLevel(level)
    if _HANDLER not in logger.handlers:
        _HANDLER.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(_HANDLER)


class _Stderr(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a line is written (pytest and the demo replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


_HANDLER = _Stderr()


def start_run(args: argparse.Namespace, *, command: str, settings: dict, data: str, total_steps: int,
              **how) -> Run:
    """Open the run folder of ``args`` (:func:`scratchlm.training.run.open_run`) and say which of its
    states it is in (``how``: ``unit`` and ``position``, as there); a refusal is a
    :class:`~scratchlm.errors.ScratchlmError` raised before any work."""
    configure_logging(args)
    lead = getattr(args, "process_id", None) in (None, 0)  # several hosts: process 0 writes the shared folder
    run = open_run(run_config(args), command=command, settings=settings, data=data, total_steps=total_steps,
                   lead=lead, argv=getattr(args, "_argv", None), **how)
    logging.getLogger(COMMON_LOGGER).info(run.message)
    return run


def check_run_folder(args: argparse.Namespace) -> None:
    """``--out`` before any work: a folder scratchlm can write (tried) or create, not a file, and empty or a run
    folder (:func:`scratchlm.training.run.check_out`; with several hosts only process 0 checks that, as it may
    be creating the shared folder)."""
    checks.output_folder(args.out)
    if getattr(args, "process_id", None) in (None, 0):
        check_out(args.out)


def complete_run(args: argparse.Namespace, *, command: str, settings: dict, data: str, unit: str = "step") -> bool:
    """Whether ``--out`` holds this run, complete (:func:`scratchlm.training.run.finished`), saying so: asked
    before a model is loaded or a vocabulary built, with the ``settings`` known by then."""
    run = finished(run_config(args), command=command, settings=settings, data=data, unit=unit)
    if run is not None:
        configure_logging(args)
        logging.getLogger(COMMON_LOGGER).info(run.message)
    return run is not None


def result_settings(args: argparse.Namespace, *, drop: tuple[str, ...] = ()) -> dict:
    """The flags that change a run's result: every flag but the run folder's, the log level, the device
    layout (a run resumes on another mesh) and ``drop``."""
    ignored = {"out", "overwrite", "checkpoint_every", "keep_checkpoints", "quiet", "verbose", "mesh", "coordinator",
               "num_processes", "process_id", "threads", "command", "action", *drop}
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items())
            if k not in ignored and not k.startswith("_")}


def init_source(spec: str | Path, flag: str = "--init") -> str:
    """Check ``--init`` before any work, fetching nothing: ``"folder"`` (readable), ``"minilm"``, or ``"hub"``
    (a HuggingFace Hub id); else a :class:`~scratchlm.errors.ScratchlmError` that names the flag
    (:func:`scratchlm.models.hub.source`)."""
    from scratchlm import checks
    from scratchlm.errors import ScratchlmError
    from scratchlm.models import hub

    try:
        kind = hub.source(spec)
    except ScratchlmError as err:
        raise ScratchlmError(f"{flag} {err}") from None
    if kind == "folder":
        checks.input_folder(spec, flag)
    return "minilm" if kind == "shipped" else kind


def resolve_init(spec: str | Path, flag: str = "--init") -> Path:
    """The folder ``--init`` names (:func:`scratchlm.models.hub.resolve`: a folder, ``minilm``, a Hub id,
    fetched or found in the Hub cache); errors name the flag."""
    from scratchlm.errors import ScratchlmError
    from scratchlm.models import hub

    init_source(spec, flag)
    try:
        return hub.resolve(spec)
    except ScratchlmError as err:
        raise ScratchlmError(f"{flag} {err}") from None


def add_parallel_arguments(parser: argparse.ArgumentParser) -> None:
    """``--mesh``, ``--coordinator``, ``--num-processes``, ``--process-id`` for a training command (read by
    :func:`setup_parallel`); free of JAX, so that building the parser stays fast."""
    group = parser.add_argument_group("several devices / hosts (scratchlm.distributed)")
    group.add_argument("--mesh", default=None, help="device mesh, e.g. data=8 (data parallel) or data=4,model=2 "
                       "(parameters sharded 2 ways: FSDP; embedding tables: by rows); default: one device")
    group.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 for multi-host training; process 0 "
                       "listens on that address only (not every interface)")
    group.add_argument("--num-processes", type=int, default=None, help="number of processes (one per host)")
    group.add_argument("--process-id", type=int, default=None, help="this process's index, 0..N-1")


def setup_parallel(args):
    """From parsed :func:`add_parallel_arguments` flags: initialise multi-host JAX if asked, and build the mesh
    (or None).

    Call it before any other JAX call of the command.  A namespace without the flags (a demo step
    building its own) means one device.  Multi-host without ``--mesh`` puts every device of every
    process on ``data``.
    """
    import jax

    from scratchlm.distributed import initialize_distributed, make_mesh, parse_mesh
    from scratchlm.errors import ScratchlmError

    coordinator, count = getattr(args, "coordinator", None), getattr(args, "num_processes", None)
    process_id = getattr(args, "process_id", None)
    if process_id is not None and coordinator is None and count is None:  # it was ignored
        raise ScratchlmError("--process-id goes with --coordinator and --num-processes")
    if count is not None and count < 1:  # before --process-id's range, which it bounds
        raise ScratchlmError(f"--num-processes must be at least 1, got {count}")
    if coordinator is not None or count is not None:
        if not jax.distributed.is_initialized():
            initialize_distributed(coordinator, count, getattr(args, "process_id", None))
    spec = getattr(args, "mesh", None)
    if spec is None:
        return make_mesh() if jax.process_count() > 1 else None
    return make_mesh(**parse_mesh(spec))


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
