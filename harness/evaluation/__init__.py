"""The metrics a case logs, one definition each (``metrics``), their names and directions
(``registry``), and the tags that say what they were computed against (``run_tags``)."""
