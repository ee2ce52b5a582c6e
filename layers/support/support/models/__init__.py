"""Pydantic models: snake_case in Python, camelCase on the wire (the seed's names), mapped by aliases."""
