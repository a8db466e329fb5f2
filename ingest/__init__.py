"""The HTTP front door: auth, registry, the API dialects over one submit core."""
