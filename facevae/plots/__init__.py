"""Figures: each draws from results computed elsewhere and computes nothing that lands in metrics.json."""
