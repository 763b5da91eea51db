"""Qt item models: the only place panel data is shaped for views, so views stay dumb and fast."""
