"""The data side: synthetic structures, the corpus builder and the corpus reader."""
