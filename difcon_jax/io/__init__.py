"""Reading measured powder patterns."""
