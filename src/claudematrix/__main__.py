import sys

if sys.argv[1:] == ["mcp"]:  # a session's MCP server: the small shim, without the CLI's imports
    from claudematrix.thin.shim import run

    sys.exit(run())

from claudematrix.entry import main

main()
