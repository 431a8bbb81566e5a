"""The end of a session and after: report, paired comparison, baseline gate, history, the
terminal summary and the thresholds a case is judged by."""
