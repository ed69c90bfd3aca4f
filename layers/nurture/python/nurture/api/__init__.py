"""The public HTTP API (v1): the resolver and its routes, auth, one error table, and the OpenAPI document."""
