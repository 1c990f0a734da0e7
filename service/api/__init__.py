"""HTTP controllers: one per capability, handlers a few lines each."""
