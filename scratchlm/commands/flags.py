"""How every command's ``--help`` shows its defaults: argparse's own default, or a config dataclass's.

A flag whose default lives in a config dataclass of a module that imports JAX (``LMConfig``,
``PretrainConfig``, ...) is declared with ``default=None`` and resolved when the command runs (reading
the dataclass while the parser is built would import JAX before ``cli.use_compile_cache`` sets the
environment JAX reads at import).  :func:`config_flag` records where that default is stated, and
:class:`HelpFormatter` imports it only when ``--help`` is printed, so the help shows the value that runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re

# argparse takes an argument for a value rather than an option when it looks like a negative number,
# but its own pattern (``^-\d+$|^-\d*\.\d+$``) knows no exponent: ``--lr -1e-3`` would be read as an
# unknown option ``-1e-3``.  No scratchlm option looks like a number, so every number is a value and
# reaches the command's range check ("--lr must be a positive ...").  So does a comma-separated list that
# starts with one (``--class-weights -1,1``).
_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|infinity|nan"
NEGATIVE_NUMBER = re.compile(rf"^-(?:{_NUMBER})(?:,-?(?:{_NUMBER}))*$", re.IGNORECASE)


SEED_LIMIT = 2**32  # NumPy's and JAX's generators both take it, with room for the offsets added per fold or step


def seed(text: str) -> int:
    """``--seed``'s type: a whole number in [0, 2^32), checked when the flags are read (a larger one overflowed
    deep inside the first random draw, after the run folder was made)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number expected, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be in [0, {SEED_LIMIT - 1}], got {value}")
    return value


def config_flag(parser, *names: str, source: str, otherwise: tuple[str, str] | None = None,
                **kwargs) -> argparse.Action:
    """``parser.add_argument(*names, default=None, **kwargs)`` whose ``--help`` shows the default stated at
    ``source``, ``"module:Class.field"`` (e.g. ``"scratchlm.training.lm:LMConfig.lr"``); ``otherwise``,
    ``(condition, source)``, names a second default and when it applies (e.g. LoRA's rate)."""
    action = parser.add_argument(*names, default=None, **kwargs)
    action.config_default = source
    action.config_otherwise = otherwise
    return action


def resolve(source: str):
    """The value stated at ``"module:Owner.name"``: a dataclass field's default, an instance's attribute (e.g.
    ``SMALL_BERT.hidden_size``) or a function's keyword default (``sample_text.top_p``)."""
    module_name, _, attribute = source.partition(":")
    owner_name, _, field = attribute.rpartition(".")
    owner = importlib.import_module(module_name)
    for part in owner_name.split("."):
        owner = getattr(owner, part)
    if inspect.isfunction(owner):  # a keyword argument's default
        return inspect.signature(owner).parameters[field].default
    if dataclasses.is_dataclass(owner) and not isinstance(owner, type):  # an instance, e.g. SMALL_BERT
        return getattr(owner, field)
    if dataclasses.is_dataclass(owner):
        found = {f.name: f for f in dataclasses.fields(owner)}.get(field)
        if found is not None and found.default is not dataclasses.MISSING:
            return found.default
    return getattr(owner, field)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default; a config-resolved one also names where it is stated.

    A required flag, and one whose help already says what its default is (``default=None`` and the word
    "default" in the help), is left as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        source = getattr(action, "config_default", None)
        if source is not None:
            value = str(resolve(source)).replace("%", "%%")
            otherwise = getattr(action, "config_otherwise", None)
            if otherwise is not None:
                condition, other = otherwise
                value += f", from {source.partition(':')[2]}; {condition}: {resolve(other)}".replace("%", "%%")
                return f"{text} (default: {value}, from {other.partition(':')[2]})"
            return f"{text} (default: {value}, from {source.partition(':')[2]})"
        if action.required or (action.default is None and "default" in text.lower()):
            return text
        return super()._get_help_string(action)


def use_everywhere(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every sub-command parser below it :class:`HelpFormatter`, and argparse's test for
    a negative number the exponent it lacks (:data:`NEGATIVE_NUMBER`)."""
    parser.formatter_class = HelpFormatter
    parser._negative_number_matcher = NEGATIVE_NUMBER
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                use_everywhere(sub)
