"""The MCP surface, one module per concern; each registers its tools and resources."""
