"""One module per `scratchlm` sub-command: ``add_arguments(parser)``, ``run(args)``, and, for the
steps of ``scratchlm demo``, ``demo_step(ctx) -> dict``."""
