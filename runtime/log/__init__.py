"""The event log and what is folded from it: records, projections, snapshots, timelines.

Everything a workspace knows is in the log; the rest of this package derives state from it
by pure folds, so ``status``, ``resume`` and ``replay --at`` cannot disagree.
"""
