"""Report: tables and figures regenerated from results/."""
