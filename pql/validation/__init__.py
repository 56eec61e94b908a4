"""The validation stages (PQL-SPEC §9): names -> reachability -> types -> windows and time ->
target and problem. ``pql.validator.validate`` is the entry point."""
