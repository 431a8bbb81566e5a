"""The exact posterior p(G | D) under a closed-form marginal likelihood: enumeration of every DAG
(``enumeration``, d <= 6)."""
