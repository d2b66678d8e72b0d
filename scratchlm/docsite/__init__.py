"""The code-beside-equations site that ``scratchlm docs`` builds (see :mod:`scratchlm.docsite.build`)."""

from scratchlm.docsite.build import BuildReport, build_site

__all__ = ["BuildReport", "build_site"]
