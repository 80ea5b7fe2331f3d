"""Architecture and learning-rate search (python -m app.tune): each KerasTuner trial is a fresh
app.train subprocess."""
