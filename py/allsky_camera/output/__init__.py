"""Products: which outputs a run writes, the writers, the plots, and the safe publication
of a complete output set."""
