"""Tools for the course's maintainers, used from a checkout: students never import them."""
