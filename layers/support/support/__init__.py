"""The shared layer of the support backend: models, services, database access, auth, errors, config."""
