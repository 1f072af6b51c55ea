def or_replace(create_function: str) -> str:
    """A frozen CREATE FUNCTION text, to put that version back over a later one (downgrades)."""
    return create_function.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
