"""The run contract: one output folder per training run, that never mixes two runs.

Every training command (classify, word2vec, glove, gru-lm train, pretrain, finetune, and the demo's
steps) writes into a *run folder* (``--out DIR``) holding ``run.json``: the command, scratchlm's
version, every setting that changes the result, a digest of the input data's contents (the bytes
of the files or the text of a shipped corpus, never their names) and the status, ``running`` or
``complete``, with the step reached.  :func:`open_run` reads the folder and finds it in exactly one
of five states, each with a message that says which:

============================  =====================================================================
the folder                    what happens
============================  =====================================================================
missing or empty              train (``new``)
unfinished, same run          resume from its last checkpoint (``resume``): "resuming DIR from step N of M"
finished, same run            say it is complete, change nothing, exit 0 (``complete``)
another run                   :class:`ScratchlmError` before any work, naming the settings that differ
``--overwrite``               remove the old run, train afresh (``new``)
============================  =====================================================================

A folder that is not empty and holds no ``run.json``, or a path that is a file, is an error too
(``--overwrite`` never deletes a folder scratchlm did not write).  Opening a folder also removes the
stray temporary files a kill mid-write leaves (``NAME.tmpPID``, :func:`scratchlm.io.atomic_write_bytes`)
and cuts the JSON-lines logs back to the last checkpoint, so a resumed run's log is one run's log.
Every checkpoint a run writes updates its ``run.json`` (the step reached and the checkpoint's name,
written atomically, :func:`checkpoint_written`), and :func:`finished` lets a command find a complete
run before it loads a model or builds a vocabulary.
JAX-free: the commands open the folder before anything heavy starts.  With several processes (one
per host) the run folder is shared: process 0 alone writes, moves and removes files in it; the others
only read it to find the state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scratchlm import __version__, jsonio
from scratchlm.errors import NonFiniteLossError, ScratchlmError
from scratchlm.io import atomic_write_text

RUN_FILE = "run.json"
CHECKPOINTS = "checkpoints"  # the one checkpoint folder name; fold or process folders hold their own
_TMP = re.compile(r"\.tmp\d+$")
_CKPT = re.compile(r"^ckpt_(\d{8,})\.msgpack$")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Where a run writes and how it keeps its checkpoints (the ``--out`` family of flags reads these)."""

    out: Path
    overwrite: bool = False  # remove a previous run in ``out`` and train afresh
    # Seconds of wall-clock time between checkpoints; 0: only at the end.  Five minutes: a kill loses at
    # most that much work, while writing one (under a second for the default models, more for a
    # fine-tuned BERT's parameters and AdamW moments, ~1 GB) costs well under 1 % of the time.
    checkpoint_every: float = 300.0
    keep_checkpoints: bool = False  # a finished run keeps its last two checkpoints instead of dropping them

    def __post_init__(self):
        if not (self.checkpoint_every >= 0):  # also NaN
            raise ScratchlmError(f"--checkpoint-every must be >= 0 seconds (0: only at the end), "
                                 f"got {self.checkpoint_every}")


# ----------------------------------------------------------------------------- digests


def data_digest(*parts: Any) -> str:
    """sha256 of the input data's contents: a ``Path`` is read (a folder: its files, in name order),
    ``str`` is taken as text, ``bytes`` as is, lists and tuples part by part.  Names never count."""
    h = hashlib.sha256()

    def add(part):
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for f in files:
                with open(f, "rb") as stream:
                    for block in iter(lambda: stream.read(1 << 20), b""):
                        h.update(block)
                h.update(b"\0file\0")
        elif isinstance(part, str):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        elif isinstance(part, bytes):
            h.update(part)
        elif isinstance(part, (list, tuple)):
            h.update(b"[")
            for p in part:
                add(p)
            h.update(b"]")
        else:
            h.update(repr(part).encode("utf-8"))

    for part in parts:
        add(part)
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """Settings as JSON holds them (tuples as lists, paths as strings), so a re-read record compares equal."""
    return json.loads(json.dumps(value, default=str))


def differences(old: dict, new: dict, where: str = "") -> list[str]:
    """``["lr: 0.001 -> 0.01", ...]`` for the keys whose values differ (nested dicts by dotted name)."""
    found = []
    for k in sorted(set(old) | set(new), key=str):
        name = f"{where}.{k}" if where else str(k)
        a, b = old.get(k, "(unset)"), new.get(k, "(unset)")
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, name)
        elif a != b:
            found.append(f"{name}: {a} -> {b}")
    return found


# ----------------------------------------------------------------------------- the folder


@dataclasses.dataclass
class Run:
    """An opened run folder.  ``state``: ``new`` (train from the start), ``resume`` (continue from the
    checkpoints there) or ``complete`` (nothing to do); ``message`` says which, for the user."""

    config: RunConfig
    state: str
    message: str
    record: dict
    lead: bool = True  # process 0 of a multi-host run (or the only process): the one that writes the folder
    position: Callable[[Path], float] = dataclasses.field(default=lambda folder: checkpoint_step(folder), repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    @property
    def out(self) -> Path:
        return self.config.out

    @property
    def checkpoints(self) -> Path:
        return self.out / CHECKPOINTS

    @property
    def resume(self) -> bool:
        return self.state == "resume"

    @contextlib.contextmanager
    def training(self):
        """Around the training: a loss that stops being finite ends the run with a message naming the last
        good checkpoint (the folder's latest), which the same command resumes from after a fix."""
        try:
            yield self
        except NonFiniteLossError as err:
            if "last good checkpoint" in str(err):
                raise
            found = sorted(self.out.rglob("ckpt_*.msgpack"), key=lambda p: (p.stat().st_mtime, p.name))
            last = str(found[-1]) if found else "none (no checkpoint was written before it)"
            raise NonFiniteLossError(f"{err}; last good checkpoint: {last}") from None

    def checkpointed(self, path: Path) -> None:
        """After a checkpoint at ``path``: ``run.json`` records how far the run got and that checkpoint."""
        with self._lock:
            self.record.update(step=self.position(self.out), checkpoint=path.relative_to(self.out).as_posix())
            _write(self.out, self.record)

    def finish(self) -> None:
        """Mark the run complete and, unless ``keep_checkpoints``, drop its checkpoint folders (the final
        model is in the run's output files)."""
        _TRAINING.pop(self.out.resolve(), None)
        if not self.lead:
            return
        with self._lock:
            if not self.config.keep_checkpoints:
                for folder in sorted(self.out.rglob(CHECKPOINTS), reverse=True):
                    if folder.is_dir():
                        shutil.rmtree(folder)
                self.record.pop("checkpoint", None)
            self.record.update(status="complete", step=self.record["total_steps"])
            _write(self.out, self.record)


# The runs this process trains (process 0's), by resolved folder: a checkpoint written anywhere under one
# updates its run.json.  Bookkeeping of the files on disk, as a log handler is; no result depends on it.
_TRAINING: dict[Path, Run] = {}


def release_unstarted() -> None:
    """After a mistake found once a run folder was opened (a check that needs the data, such as more folds
    than examples), while nothing but ``run.json`` has been written: this process's new runs give their
    folders back, so the corrected command starts afresh there instead of meeting "holds another run".
    Only this process's own new runs, so another process's run is never touched."""
    for out, run in list(_TRAINING.items()):
        if run.lead and run.state == "new" and run.out.is_dir() and [p.name for p in run.out.iterdir()] == [RUN_FILE]:
            (run.out / RUN_FILE).unlink()
            _TRAINING.pop(out, None)


def checkpoint_written(path: Path) -> None:
    """Called by :func:`scratchlm.training.checkpoint.save_checkpoint` after each checkpoint is in place
    (from its writer thread too): the run training into a folder above ``path`` records it in ``run.json``."""
    path = Path(path).resolve()
    for out, run in list(_TRAINING.items()):
        if out in path.parents:
            run.checkpointed(run.out / path.relative_to(out))


def _write(out: Path, record: dict) -> None:
    atomic_write_text(out / RUN_FILE, jsonio.dumps(record, indent=2) + "\n")


def checkpoint_step(folder: Path) -> int:
    """The highest step among the checkpoints anywhere under ``folder`` (0 if none)."""
    return max((int(m.group(1)) for p in folder.rglob("ckpt_*.msgpack") if (m := _CKPT.match(p.name))), default=0)


def _cut_logs(out: Path) -> None:
    """Remove stray temporary files, and the JSON-lines records written after each folder's last checkpoint
    (a rerun writes them again): a finished fold (``result.json`` beside its log, or ``NAME.result.json``
    beside ``NAME.jsonl``) is left as it is."""
    for tmp in [p for p in out.rglob("*") if _TMP.search(p.name)]:
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    for log in out.rglob("*.jsonl"):
        if (log.parent / "result.json").exists() or log.with_name(log.stem + ".result.json").exists():
            continue
        last = checkpoint_step(log.parent / CHECKPOINTS) if (log.parent / CHECKPOINTS).is_dir() else 0
        kept = []
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                step = json.loads(line).get("step", 0)
            except (json.JSONDecodeError, AttributeError):  # a line cut by the kill
                continue
            if isinstance(step, (int, float)) and step <= last:
                kept.append(line + "\n")
        atomic_write_text(log, "".join(kept))


def check_out(out: Path) -> None:
    """The refusals that need no settings, for a command to make before it reads any input: ``out`` a
    file, or a folder that is neither empty nor a run folder (:func:`open_run` makes them again)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ScratchlmError(f"--out {out} is a file; give a folder (new or empty) for the run")
    if out.is_dir() and not (out / RUN_FILE).is_file() and any(out.iterdir()):
        raise ScratchlmError(f"--out {out} is not empty and is not a scratchlm run folder (no {RUN_FILE}); "
                             "give a new or empty folder (--overwrite only replaces a run folder)")


def open_run(config: RunConfig, *, command: str, settings: dict, data: str, total_steps: int,
             unit: str = "step", position: Callable[[Path], float] = checkpoint_step,
             argv: list[str] | None = None, lead: bool = True) -> Run:
    r"""Open ``config.out`` for a run of ``command`` with ``settings`` (every value that changes the
    result) on data of digest ``data`` (:func:`data_digest`), ``total_steps`` ``unit``\ s long;
    ``position(folder)`` says how far the checkpoints there got, in that unit (the highest step).

    Returns the :class:`Run` in its state (``new``, ``resume`` or ``complete``); raises
    :class:`ScratchlmError`, before anything is written, for a file, a folder of something else, or
    another run.  A ``new`` run's ``run.json`` is written at once, with status ``running``.  A process
    that is not the ``lead`` writes nothing and takes a folder without ``run.json`` (process 0 may be
    creating it) for a new run.
    """
    out = Path(config.out)
    settings = _plain(settings)
    if out.exists() and not out.is_dir():
        raise ScratchlmError(f"--out {out} is a file; give a folder (new or empty) for the run")
    record_path = out / RUN_FILE
    if not lead and not record_path.is_file():
        return Run(config, "new", f"training into {out} (process 0 writes it)", {}, lead=False)
    if out.is_dir() and any(out.iterdir()):
        if not record_path.is_file():
            raise ScratchlmError(f"--out {out} is not empty and is not a scratchlm run folder (no {RUN_FILE}); "
                                 "give a new or empty folder (--overwrite only replaces a run folder)")
        if config.overwrite and lead:
            shutil.rmtree(out)
        elif config.overwrite:
            return Run(config, "new", f"training into {out} (process 0 replaces the run)", {}, lead=False)
        else:
            try:
                old = json.loads(record_path.read_text(encoding="utf-8"))
                if not isinstance(old, dict):
                    raise ValueError("not an object")
            except (ValueError, UnicodeDecodeError) as err:
                raise ScratchlmError(f"{record_path} is damaged ({err}); add --overwrite to replace the run, "
                                     "or choose another --out") from None
            mine = {"command": command, "settings": settings, "data": data}
            theirs = {k: old.get(k) for k in mine}
            if theirs != mine:
                diff = differences({"command": theirs["command"]}, {"command": command})
                diff += differences(theirs["settings"] if isinstance(theirs["settings"], dict) else {}, settings)
                if theirs["data"] != data:
                    diff.append("data: other contents (the digest of the inputs differs: the corpus, task, vectors "
                                "or --init model)")
                raise ScratchlmError(f"{out} holds another run ({'; '.join(diff)}); add --overwrite to replace it, "
                                     "or choose another --out")
            total = old.get("total_steps", total_steps)
            if old.get("status") == "complete":
                return Run(config, "complete", f"{out} holds this run, complete ({total} of {total} {unit}s): "
                           "nothing to do (add --overwrite to train it again)", old, lead=lead)
            at = position(out)
            if lead:
                _cut_logs(out)
                _write(out, {**old, "step": at})  # where the resumed run starts
            return _training(Run(config, "resume", f"resuming {out} from {unit} {at:g} of {total}",
                                 {**old, "step": at}, lead=lead, position=position))
    try:
        out.mkdir(parents=True, exist_ok=True)
        record = {"command": command, "argv": list(sys.argv if argv is None else argv),
                  "scratchlm_version": __version__, "settings": settings, "data": data, "status": "running",
                  "step": 0, "total_steps": int(total_steps)}
        _write(out, record)
    except OSError as err:
        raise ScratchlmError(f"--out {out}: cannot write there ({err.strerror}); choose a writable folder") from None
    return _training(Run(config, "new", f"training into {out} ({total_steps} {unit}s)", record, position=position))


def _training(run: Run) -> Run:
    if run.lead:
        _TRAINING[run.out.resolve()] = run
    return run


def read_record(out: str | Path) -> dict | None:
    """``out``'s ``run.json`` as a dict; None where there is none, or it is damaged (:func:`open_run` names that)."""
    record_path = Path(out) / RUN_FILE
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def finished(config: RunConfig, *, command: str, settings: dict, data: str, unit: str = "step") -> Run | None:
    """The run in ``config.out`` if it is this one and complete (same ``command`` and ``data``, and every
    value in ``settings`` equal to the recorded one; a dict given may name only some of its keys), else
    None.  Cheap, and it writes nothing: a command asks it before loading a model or building a
    vocabulary, so that a complete run is reported at once; ``settings`` is then what the command knows
    before that work (what follows from it and the data is recorded too, and needs no comparing).
    Any other state is left to :func:`open_run`, which names what differs."""
    old = None if config.overwrite else read_record(config.out)
    if old is None or old.get("status") != "complete" or old.get("command") != command \
            or old.get("data") != data or not _agrees(_plain(settings), old.get("settings")):
        return None
    total = old.get("total_steps")
    return Run(config, "complete", f"{config.out} holds this run, complete ({total} of {total} {unit}s): "
               "nothing to do (add --overwrite to train it again)", old)


def _agrees(given, recorded) -> bool:
    if isinstance(given, dict):
        return isinstance(recorded, dict) and all(k in recorded and _agrees(v, recorded[k]) for k, v in given.items())
    return given == recorded
