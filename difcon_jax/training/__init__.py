"""Training's library beside train.py: the checks the trainer runs before it touches anything (config values and
corpora, a resume against the workdir's checkpoint, the memory a batch needs) and the losses."""
