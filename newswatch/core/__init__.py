"""The base layer: article, errors, strict YAML, config, state, logs, metrics."""
