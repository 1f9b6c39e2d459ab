"""Searches over programs built from unary and binary functions (activation functions, backward-pass rules).

expressions  Language, Vocabulary, CoreUnit: the expression language over a paper's function tables; canonical
             names, specs, enumeration, random sampling and mutation.
compiler     compile_function, check, Probe: a candidate as a JAX function, rejected with a reason before training.
controller   Controller, PPOTrainer: an LSTM policy over a vocabulary's decisions, trained with PPO.
evolution    regularized_evolution, random_search: aging evolution with tournament selection, and its baseline.
cache        ResultsCache, Evaluation: the JSON-lines results cache that lets a killed search resume.
evaluator    Evaluator, ranking: cached scoring that rejects, trains in groups and shows progress with an ETA.
child        train_children, ChildResult: classifiers trained side by side, scored on a validation split.
"""
