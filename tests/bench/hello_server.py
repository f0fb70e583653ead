"""A hello-world MCPServer with one tool over stdio: the yardstick bench_startup compares with."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("hello")


@server.tool(description="Says hello.")
def hello(name: str = "world") -> str:
    return f"hello, {name}"


if __name__ == "__main__":
    server.run()
