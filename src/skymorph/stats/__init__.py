"""Ground-floor statistics shared by every wing: finite-ensemble calibration and intervals over
independent units (galaxies, maps, simulations). Depends on numpy and scipy only."""
from .bootstrap import bootstrap_interval, paired_verdict, unit_values
from .calibration import (interval_coverage, nominal_coverage, nominal_spread_skill, order_statistic_index,
                          rank_histogram, rank_uniformity, spread_skill)

__all__ = ["interval_coverage", "nominal_coverage", "nominal_spread_skill", "order_statistic_index", "rank_histogram",
           "rank_uniformity", "spread_skill",
           "bootstrap_interval", "paired_verdict", "unit_values"]
