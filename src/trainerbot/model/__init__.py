"""Language-model backends behind one protocol (arrives with the model issue)."""
