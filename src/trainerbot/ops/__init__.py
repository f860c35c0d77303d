"""Operations: Prometheus metrics (``metrics``) and the health/metrics HTTP server (``server``)."""
