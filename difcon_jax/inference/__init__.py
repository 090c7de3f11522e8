"""A trained model for inference (model: restore, export) and the rows its predictions are written as (rows)."""
