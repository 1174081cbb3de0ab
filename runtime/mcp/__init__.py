"""The workspace as a Model Context Protocol server (a front end over the Engine)."""
