"""Subcommands: each module has add_parser(sub) and run(args) -> exit code."""
