"""`fhir-ns rulesets`: the rule sets available, their versions, populations and sources."""

from __future__ import annotations

import click

from fhir_ns.cli.options import load_config


@click.command()
@click.option("--mappings", "mapping_dirs", multiple=True, metavar="DIR", help="Site mapping directory.")
def rulesets(mapping_dirs: tuple[str, ...]) -> None:
    """List the rule sets."""
    for ruleset in load_config(mapping_dirs).rulesets.values():
        default = (
            f" (default for {ruleset.default_for}ren)"
            if ruleset.default_for == "child"
            else (f" (default for {ruleset.default_for}s)" if ruleset.default_for else "")
        )
        click.echo(f"{ruleset.ref}{default}\n  {ruleset.title}")
        for source in ruleset.sources:
            click.echo(f"  - {source}")
