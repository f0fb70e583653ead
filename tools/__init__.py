"""The wizard's step services: plain, typed Python with no MCP imports.

Each step package exposes a config model (loaded from its configs/*.yaml file by
server.settings) and the service functions the MCP layer adapts.
"""
