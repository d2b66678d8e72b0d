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

from scratchlm import __version__
from scratchlm.commands.flags import use_everywhere
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
    "generate": ("scratchlm.commands.generate", "continue a prompt with a GPT-2-layout model (key/value cache)"),
    "finetune": ("scratchlm.commands.finetune", "fine-tune an encoder on sequence/token tasks"),
    "bench": ("scratchlm.commands.bench", "run the benchmarks beside their peers"),
    "docs": ("scratchlm.commands.docs", "build the code-beside-equations site"),
}


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose mistakes are one line, ``scratchlm CMD: error: ...`` and exit status 2, as every
    other mistake of a command (argparse prints its whole usage first; ``--help`` still shows it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _CommandParser(_Parser):
    """A sub-command's parser: an argument it does not know is its own error, named with its prefix
    (argparse hands it up to ``scratchlm``'s parser, whose message names no command)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def _named_command(argv: list[str] | None) -> str | None:
    """The sub-command ``argv`` runs, when its first argument names one (else None: help, a typo)."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser; with ``only``, that command's alone is filled in (the others keep their
    names and help lines for ``scratchlm --help``), so running one command imports no other's module
    (0.3-0.45 s of every run on 2 busy cores: the demo's module alone imports most of the others)."""
    parser = _Parser(prog="scratchlm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"scratchlm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser)
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # command not built yet in this checkout
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    use_everywhere(parser)  # every --help shows every default
    return parser


def use_compile_cache(environ=os.environ) -> None:
    """Keep XLA's compiled programs between runs of the command, in ``$XDG_CACHE_HOME/scratchlm/xla``
    (``~/.cache/scratchlm/xla``), through JAX's persistent compilation cache.

    A training command compiles its step once per process: a few seconds on a CPU (Word2Vec's step
    takes 4-5 s of a 30 s run on 2 cores) that a second run with the same shapes then reads back
    from disk.  Every program is kept, however quick to compile: a command's small programs (the
    initialisers' random draws, the corpus's transfer) add up (Word2Vec: 10 programs under 0.5 s each,
    0.7 s of each run on 2 busy cores, against 0.15 s to read all 12 back; 180 kB on disk).  Set
    ``JAX_COMPILATION_CACHE_DIR`` to put the cache elsewhere, or ``JAX_ENABLE_COMPILATION_CACHE=false``
    to compile afresh every time.  Read by JAX when it is imported, so this runs before any command
    imports it (and changes nothing in a process that already has).
    """
    if "JAX_COMPILATION_CACHE_DIR" not in environ:
        from scratchlm.data.corpora import user_cache_home

        environ["JAX_COMPILATION_CACHE_DIR"] = str(user_cache_home(environ) / "xla")
    environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def main(argv: list[str] | None = None) -> int:
    args = build_parser(only=_named_command(sys.argv[1:] if argv is None else argv)).parse_args(argv)
    args._argv = ["scratchlm", *(sys.argv[1:] if argv is None else argv)]  # the command, as run.json records it
    if args.command != "bench":  # benchmarks time the first run, compilation included, as a new user sees it
        use_compile_cache()
    try:
        return int(args._run(args) or 0)
    except ScratchlmError as err:
        if "scratchlm.training.run" in sys.modules:  # a run folder opened before the mistake was found
            sys.modules["scratchlm.training.run"].release_unstarted()
        print(f"scratchlm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scratchlm {args.command}: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """``scratchlm`` as its own process: :func:`main`, then an exit that skips the interpreter's teardown.

    Once a command has returned, its files are written and closed; what is left is Python freeing every
    module and JAX's runtime object by object (0.3 s of CPU after a Word2Vec run on 2 cores, 1.8-3 s of wall
    time when the cores are busy).  The exit handlers still run (logging's flush among them) after the
    worker threads still running have finished, then the streams are flushed and the process ends.
    Only for a process of its own: called in-process, :func:`main` returns as usual.
    """
    import atexit
    import threading

    code = main()
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
