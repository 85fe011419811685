"""Pure logic: stdlib and PyYAML only. Nothing here imports pandas, scikit-learn, docker or jenkins."""
