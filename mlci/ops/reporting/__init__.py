"""Report output shared by every stage: the one template renderer and the plot helpers."""
