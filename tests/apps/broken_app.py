"""A module whose import fails with an error the CLI does not handle (it propagates)."""

raise RuntimeError("this module refuses to be imported")
