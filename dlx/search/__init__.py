"""Searches: sweeps whose trials an Optuna study proposes, each trial an ordinary dlx run on the queue.

`space` parses the search space, `spec` is a search's settings, `study` opens its Optuna study in the
store's database, `driver` is the `search` job kind (ask-and-tell on the queue), `pruning` the hook a
trial's training reports to, `results` what a study holds as dlx shows it. Optuna is imported inside
functions: the server and an idle worker stay without it.
"""
